"""Which engine renders, why, and the renderers behind one small interface.

``diffusers`` renders with real weights, ``tiny`` runs the same code path on tiny random
weights built in code, ``preview`` stylises the selfie without any weights, and ``auto``
picks ``diffusers`` when its weights are available and ``preview`` otherwise.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.settings import Settings

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.augment.clip_backend import ClipBackend
    from pipelines.face import FaceAnalyzer, FaceResult
    from pipelines.styles import Style, StyleCatalog

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class EngineChoice:
    """The engine that will run and a sentence saying why, shown in the UI banner."""

    name: str  # "diffusers" | "tiny" | "preview"
    reason: str

    @property
    def is_preview(self) -> bool:
        return self.name == "preview"


@dataclass(frozen=True)
class RenderJob:
    """Everything one batched render needs. All prompts share the face, seed and settings."""

    prompts: Sequence[str]
    negative_prompts: Sequence[str]
    face: FaceResult
    image: Image.Image  # the selfie as loaded (used by the preview engine only)
    style: Style
    seed: int
    num_inference_steps: int
    guidance_scale: float
    identity_strength: float
    size: int


@dataclass
class RenderOutput:
    images: list[Image.Image]
    timings: dict[str, float] = field(default_factory=dict)


class Renderer(Protocol):
    """Renders N prompts with one face and one seed; outputs differ only by prompt."""

    model_ids: dict[str, str]

    def render(self, job: RenderJob, progress: ProgressFn | None = None) -> RenderOutput: ...


# ----------------------------------------------------------------------------- resolution


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true"}


def _local_dir_with(path: str, filename: str) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / filename).exists()


def _cached(repo_or_dir: str, filename: str) -> bool:
    """True when ``filename`` is available without the network (local folder or HF cache)."""
    if _local_dir_with(repo_or_dir, filename):
        return True
    if Path(repo_or_dir).expanduser().exists() or repo_or_dir.count("/") != 1:
        return False
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_or_dir, filename)
    return isinstance(hit, str)


def _hub_reachable(repo_id: str, timeout: float = 3.0) -> bool:
    if _hub_offline():
        return False
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except Exception as exc:  # any network or auth failure means "not reachable now"
        log.info("Hub not reachable for %s: %s", repo_id, exc)
        return False
    return True


def missing_weights(settings: Settings) -> list[str]:
    """Human descriptions of the real weights that are not available locally."""
    from pipelines.face import face_pack_dir

    missing = []
    if not _cached(settings.base_model, "model_index.json"):
        missing.append(f"base model {settings.base_model} (BECOME_BASE_MODEL)")
    if not _cached(settings.faceid_adapter, settings.faceid_weight):
        missing.append(
            f"FaceID adapter {settings.faceid_adapter}/{settings.faceid_weight} "
            "(BECOME_FACEID_ADAPTER, BECOME_FACEID_WEIGHT)"
        )
    if face_pack_dir(settings.face_pack, settings.face_root) is None:
        missing.append(
            f"insightface pack {settings.face_pack} in {settings.face_root} "
            "(BECOME_FACE_PACK, BECOME_FACE_ROOT)"
        )
    return missing


def resolve_engine(settings: Settings) -> EngineChoice:
    """Pick the engine for ``settings.engine``; ``auto`` never fails, it falls back to preview."""
    if settings.engine == "tiny":
        return EngineChoice("tiny", "BECOME_ENGINE=tiny: tiny random weights, outputs are noise")
    if settings.engine == "preview":
        return EngineChoice("preview", "BECOME_ENGINE=preview: stylised previews, not AI results")
    missing = missing_weights(settings)
    if settings.engine == "diffusers":
        reason = "BECOME_ENGINE=diffusers"
        if missing:
            reason += "; will download " + "; ".join(missing)
        return EngineChoice("diffusers", reason)
    if not missing:
        return EngineChoice("diffusers", "weights found locally")
    if _hub_reachable(settings.base_model):
        return EngineChoice("diffusers", "weights will be downloaded from the Hub on first use")
    return EngineChoice(
        "preview",
        "weights not found: " + "; ".join(missing) + ". Set these variables to local folders "
        "or connect to the Hub. Showing stylised previews, not AI results",
    )


# ----------------------------------------------------------------------------- renderers


class DiffusionRenderer:
    """The real pipeline (diffusers or tiny weights), loaded once and shared read-only."""

    def __init__(self, loader: Callable[[], Any], settings: Settings) -> None:
        self._loader = loader
        self._settings = settings
        self._pipe: Any = None
        self._load_lock = threading.Lock()
        self.model_ids: dict[str, str] = {}
        # On a ZeroGPU Space the GPU is attached only inside spaces.GPU-decorated calls.
        from pipelines.runtime import gpu_decorator

        self.render = gpu_decorator()(self._render)  # type: ignore[method-assign]

    @property
    def pipeline(self) -> Any:
        if self._pipe is None:
            with self._load_lock:
                if self._pipe is None:
                    t0 = time.perf_counter()
                    pipe = self._loader()
                    self.model_ids = dict(pipe.model_ids)
                    log.info(
                        "pipeline loaded in %.1fs: %s", time.perf_counter() - t0, pipe.model_ids
                    )
                    self._pipe = pipe
        return self._pipe

    @property
    def tokenizer(self) -> Any:
        return self.pipeline.tokenizer

    def _render(self, job: RenderJob, progress: ProgressFn | None = None) -> RenderOutput:
        pipe = self.pipeline
        out = pipe(
            prompt=list(job.prompts),
            negative_prompt=list(job.negative_prompts),
            face_embedding=job.face.embedding,
            ip_adapter_scale=job.identity_strength,
            num_inference_steps=job.num_inference_steps,
            guidance_scale=job.guidance_scale,
            height=job.size,
            width=job.size,
            seed=job.seed,
            batch_size=self._settings.batch_size or None,
            callback=progress,
        )
        return RenderOutput(images=list(out.images), timings=dict(out.timings))


def mentions_style(prompt: str, style: Style) -> bool:
    """Whether ``prompt`` asks for ``style``: its name, or the template's words before the subject.

    A diffusion model given a plain prompt renders a photo-like image, so the preview engine
    applies the style's recipe only to prompts that ask for the style.
    """
    text = " ".join(prompt.lower().split())
    lead = style.template.split("{prompt}")[0].lower().replace(" portrait of", "").strip(" ,")
    keys = {style.name.lower(), style.id.replace("_", " ").lower(), lead}
    return any(k and k in text for k in keys)


class PreviewRenderer:
    """Weight-free stylisation of the selfie; each prompt's modifiers change the result."""

    def __init__(self, catalog: StyleCatalog) -> None:
        self._catalog = catalog
        self.model_ids = {"engine": "preview (OpenCV/Pillow, no weights)"}

    def render(self, job: RenderJob, progress: ProgressFn | None = None) -> RenderOutput:
        from pipelines.preview import render_preview

        t0 = time.perf_counter()
        images = []
        plain = replace(job.style, preview={**job.style.preview, "recipe": []})
        for i, prompt in enumerate(job.prompts):
            result = render_preview(
                job.image,
                job.style if mentions_style(prompt, job.style) else plain,
                prompt,
                self._catalog,
                face_bbox=tuple(float(v) for v in job.face.bbox),
                seed=job.seed,
                size=job.size,
            )
            images.append(result.image)
            if progress is not None:
                progress(i + 1, len(job.prompts))
        return RenderOutput(images=images, timings={"render": time.perf_counter() - t0})


# ----------------------------------------------------------------------------- engine bundle


@dataclass
class Engine:
    """What the service needs from an engine: renderer, face analyzer, tokenizer and CLIP."""

    choice: EngineChoice
    renderer: Renderer
    face_loader: Callable[[], FaceAnalyzer]
    tokenizer_loader: Callable[[], Any | None]
    clip_loader: Callable[[], ClipBackend]
    notes: list[str] = field(default_factory=list)  # extra lines for the UI banner
    _face: FaceAnalyzer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def face_analyzer(self) -> FaceAnalyzer:
        if self._face is None:
            with self._lock:
                if self._face is None:
                    self._face = self.face_loader()
        return self._face


def _clip_loader(model_id: str | Path, local_only: bool | None) -> Callable[[], ClipBackend]:
    def load() -> ClipBackend:
        from pipelines.augment.clip_backend import load_clip

        return load_clip(str(model_id), local_files_only=local_only)

    return load


def _tokenizer_from(path_or_id: str | Path, local_only: bool) -> Any | None:
    from transformers import CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(path_or_id), local_files_only=local_only)
    except (OSError, ValueError) as exc:
        log.info("no tokenizer at %s (%s): token budget is estimated", path_or_id, exc)
        return None
    # transformers 5 builds an empty tokenizer (2 special tokens) when the files are missing
    if len(tokenizer) < 100:
        log.info("no tokenizer files for %s: token budget is estimated", path_or_id)
        return None
    return tokenizer


def _pipeline_renderer(
    settings: Settings,
    base: str | Path,
    adapter: str | Path,
    weight: str,
    *,
    local_only: bool | None,
) -> DiffusionRenderer:
    def load() -> Any:
        from pipelines.generation import PortraitPipeline

        return PortraitPipeline.from_pretrained(
            base,
            adapter,
            weight,
            device=settings.device,
            dtype=settings.dtype,
            local_files_only=local_only,
        )

    return DiffusionRenderer(load, settings)


def build_engine(
    settings: Settings, catalog: StyleCatalog, choice: EngineChoice | None = None
) -> Engine:
    """Construct (but do not load) the engine ``settings`` asks for."""
    from pipelines.face import FaceAnalyzer, face_pack_dir

    choice = choice or resolve_engine(settings)
    det = settings.face_det_size

    if choice.name == "tiny":
        from pipelines.tiny_models import ensure_tiny_models

        paths = ensure_tiny_models(settings.cache_dir / "tiny")
        # the very same loading code as real weights, pointed at the tiny folders
        renderer = _pipeline_renderer(
            settings, paths.sd_dir, paths.adapter_dir, paths.adapter_weight, local_only=True
        )
        return Engine(
            choice=choice,
            renderer=renderer,
            # the stand-in detector's boxes do not depend on det_size; 320 is 2x faster
            face_loader=lambda: FaceAnalyzer(paths.face_pack_dir, det_size=320),
            tokenizer_loader=lambda: _tokenizer_from(paths.sd_dir / "tokenizer", True),
            clip_loader=_clip_loader(paths.clip_dir, True),
            notes=["tiny engine: random weights and stand-in face models; images are noise"],
        )

    if choice.name == "diffusers":
        local_only = _hub_offline() or None
        renderer = _pipeline_renderer(
            settings,
            settings.base_model,
            settings.faceid_adapter,
            settings.faceid_weight,
            local_only=local_only,
        )
        return Engine(
            choice=choice,
            renderer=renderer,
            face_loader=lambda: FaceAnalyzer(
                settings.face_pack,
                settings.face_root,
                det_size=det,
                allow_download=not _hub_offline(),
            ),
            tokenizer_loader=lambda: renderer.tokenizer,
            clip_loader=_clip_loader(settings.clip_model, local_only),
        )

    # preview: real face models when present, else generated stand-ins (KBs, written on first use)
    notes = []
    pack = face_pack_dir(settings.face_pack, settings.face_root)

    def face_loader() -> FaceAnalyzer:
        if pack is not None:
            return FaceAnalyzer(pack, det_size=det)
        from pipelines.tiny_face import write_tiny_face_pack

        stand_in = settings.cache_dir / "stand-in-face"
        if face_pack_dir(stand_in, settings.face_root) is None:
            write_tiny_face_pack(stand_in)
        return FaceAnalyzer(stand_in, det_size=320)

    if pack is None:
        notes.append(
            f"face detection uses stand-in models ({settings.face_pack} not found in "
            f"{settings.face_root}): the crop is centred, not detected"
        )
    return Engine(
        choice=choice,
        renderer=PreviewRenderer(catalog),
        face_loader=face_loader,
        tokenizer_loader=lambda: _tokenizer_from(settings.clip_model, True),
        clip_loader=_clip_loader(settings.clip_model, True),
        notes=notes,
    )
