"""Which engine renders and why, and the engine bundle: renderer, face analyzer, tokenizer, CLIP.

``diffusers`` renders with real weights, ``tiny`` runs the same code path on tiny random
weights built in code, ``preview`` stylises the selfie without any weights, and ``auto``
picks ``diffusers`` when its weights are available and ``preview`` otherwise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.lazy import Lazy
from pipelines.settings import Settings

if TYPE_CHECKING:
    from pipelines.face import FaceAnalyzer
    from pipelines.renderers.base import Renderer
    from pipelines.styles import StyleCatalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineChoice:
    """The engine that will run and a sentence saying why, shown in the UI banner."""

    name: str  # "diffusers" | "tiny" | "preview"
    reason: str

    @property
    def is_preview(self) -> bool:
        """Whether this is the weight-free preview engine."""
        return self.name == "preview"


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


# ----------------------------------------------------------------------------- engine bundle


@dataclass(frozen=True)
class ModelSource:
    """A hub id or local folder, and whether to stay off the network (None = HF_HUB_OFFLINE)."""

    model_id: str
    local_files_only: bool | None


@dataclass(frozen=True)
class Engine:
    """What the service needs from an engine; models load on first use."""

    choice: EngineChoice
    renderer: Renderer
    face: Lazy[FaceAnalyzer]
    tokenizer: Lazy[Any | None]  # the text encoder's tokenizer; None = token counts estimated
    clip: ModelSource  # CLIP for inversion and ensemble (bootstrap loads it once)
    notes: tuple[str, ...] = ()  # extra lines for the UI banner


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


def build_engine(
    settings: Settings, catalog: StyleCatalog, choice: EngineChoice | None = None
) -> Engine:
    """Construct (but do not load) the engine ``settings`` asks for."""
    from pipelines.face import FaceAnalyzer, face_pack_dir
    from pipelines.renderers.diffusion import DiffusionRenderer, DiffusionWeights, RuntimeOptions
    from pipelines.renderers.preview import PreviewRenderer

    choice = choice or resolve_engine(settings)
    det = settings.face_det_size
    runtime = RuntimeOptions(settings.device, settings.dtype, settings.batch_size)

    if choice.name == "tiny":
        from pipelines.tiny_models import ensure_tiny_models

        paths = ensure_tiny_models(settings.cache_dir / "tiny")
        # the very same loading code as real weights, pointed at the tiny folders
        weights = DiffusionWeights(paths.sd_dir, paths.adapter_dir, paths.adapter_weight, True)
        return Engine(
            choice=choice,
            renderer=DiffusionRenderer.from_weights(weights, runtime),
            # the stand-in detector's boxes do not depend on det_size; 320 is 2x faster
            face=Lazy(lambda: FaceAnalyzer(paths.face_pack_dir, det_size=320), "face models"),
            tokenizer=Lazy(lambda: _tokenizer_from(paths.sd_dir / "tokenizer", True), "tokenizer"),
            clip=ModelSource(str(paths.clip_dir), True),
            notes=("tiny engine: random weights and stand-in face models; images are noise",),
        )

    if choice.name == "diffusers":
        local_only = _hub_offline() or None
        weights = DiffusionWeights(
            settings.base_model, settings.faceid_adapter, settings.faceid_weight, local_only
        )
        renderer = DiffusionRenderer.from_weights(weights, runtime)
        return Engine(
            choice=choice,
            renderer=renderer,
            face=Lazy(
                lambda: FaceAnalyzer(
                    settings.face_pack,
                    settings.face_root,
                    det_size=det,
                    allow_download=not _hub_offline(),
                ),
                "face models",
            ),
            tokenizer=Lazy(lambda: renderer.pipeline.tokenizer, "tokenizer"),
            clip=ModelSource(settings.clip_model, local_only),
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
        face=Lazy(face_loader, "face models"),
        tokenizer=Lazy(lambda: _tokenizer_from(settings.clip_model, True), "tokenizer"),
        # the preview engine means no Hub: never wait on one
        clip=ModelSource(settings.clip_model, True),
        notes=tuple(notes),
    )
