"""Which engine renders and why, and the engine bundle: renderer, face analyzer, token budget,
CLIP, model family and safety checker.

``diffusers`` renders with the model family's real weights (``BECOME_MODEL_FAMILY``), ``tiny``
runs the same code path on the family's tiny random weights built in code, ``preview``
stylises the selfie without any weights, and ``auto`` picks ``diffusers`` when the family's
weights are available and ``preview`` otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from pipelines.augment.tokens import TokenBudget
from pipelines.core.families import ModelFamily
from pipelines.core.hub import hub_offline, hub_reachable
from pipelines.core.lazy import Lazy
from pipelines.core.measures import PREFERENCE_MODELS
from pipelines.core.settings import Settings
from pipelines.preference.scorer import PreferenceSource
from pipelines.weights import is_here

if TYPE_CHECKING:
    from pipelines.faces.analysis import FaceAnalyzer
    from pipelines.models.jobs import Renderer
    from pipelines.models.runtime import RuntimeOptions
    from pipelines.models.safety import SafetyChecker
    from pipelines.styles.catalog import StyleCatalog

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


def missing_weights(settings: Settings) -> list[str]:
    """Human descriptions of the real weights that are not available locally."""
    from pipelines.faces.analysis import face_pack_dir

    family = settings.family
    missing = []
    if not is_here(settings.base_model, "model_index.json"):
        missing.append(
            f"{family.id} base model {settings.base_model} (BECOME_BASE_MODEL, BECOME_MODEL_FAMILY)"
        )
    weight = (settings.faceid_weight,)  # one adapter file of the repo's several
    if family.uses_faceid and not is_here(settings.faceid_adapter, settings.faceid_weight, weight):
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
        return EngineChoice("diffusers", f"{settings.model_family} weights found locally")
    if hub_reachable(settings.base_model):
        return EngineChoice("diffusers", "weights will be downloaded from the Hub on first use")
    return EngineChoice(
        "preview",
        "weights not found: " + "; ".join(missing) + ". Set these variables to local folders "
        "or connect to the Hub. Showing stylised previews, not AI results",
    )


# ----------------------------------------------------------------------------- engine bundle


@dataclass(frozen=True)
class SafetyChoice:
    """Whether outputs pass the safety checker, where it loads from, and why (the banner)."""

    on: bool
    model_id: str
    reason: str
    local_files_only: bool | None = None
    allow_unverified: bool = False  # BECOME_UNVERIFIED_WEIGHTS (the tiny engine's own files)


@dataclass(frozen=True)
class ModelSource:
    """A hub id or local folder, and whether to stay off the network (None = HF_HUB_OFFLINE)."""

    model_id: str
    local_files_only: bool | None
    allow_unverified: bool = False  # BECOME_UNVERIFIED_WEIGHTS (the tiny engine's own files)


@dataclass(frozen=True)
class Engine:
    """What the service needs from an engine; models load on first use."""

    choice: EngineChoice
    renderer: Renderer
    face: Lazy[FaceAnalyzer]
    budget: Lazy[TokenBudget]  # the family's text encoder's (estimated without its tokenizer)
    clip: ModelSource  # CLIP for inversion and ensemble (bootstrap loads it once)
    family: ModelFamily
    safety: SafetyChoice
    notes: tuple[str, ...] = ()  # extra lines for the UI banner
    # every preference measure: where it loads from, or why it is off (the measures say so)
    preference: tuple[PreferenceSource, ...] = ()


def _tokenizers_from(path_or_id: str | Path, folders: tuple[str, ...], local_only: bool) -> tuple:
    """The tokenizers in ``folders`` of a model; all or none (a partial set under-counts)."""
    from transformers import AutoTokenizer

    tokenizers = []
    for folder in folders:
        try:
            tok = AutoTokenizer.from_pretrained(
                str(path_or_id), subfolder=folder, local_files_only=local_only
            )
        except (OSError, ValueError) as exc:
            log.info(
                "no tokenizer at %s/%s (%s): token budget is estimated", path_or_id, folder, exc
            )
            return ()
        # transformers 5 builds an empty tokenizer (2 special tokens) when the files are missing
        if len(tok) < 100:
            log.info("no tokenizer files for %s/%s: token budget is estimated", path_or_id, folder)
            return ()
        tokenizers.append(tok)
    return tuple(tokenizers)


def _runtime(settings: Settings) -> RuntimeOptions:
    from pipelines.models.runtime import RuntimeOptions

    return RuntimeOptions(
        device=settings.device,
        dtype=settings.dtype,
        batch_size=settings.batch_size,
        compile=settings.compile,
        channels_last=settings.channels_last,
    )


def resolve_safety(settings: Settings, choice: EngineChoice) -> SafetyChoice:
    """Whether outputs pass the safety checker, from where, and why (the banner says it)."""
    model = settings.safety_model
    if choice.is_preview:
        return SafetyChoice(False, model, "previews are the selfie stylised, nothing is generated")
    if settings.safety_checker == "off":
        return SafetyChoice(False, model, "BECOME_SAFETY_CHECKER=off: outputs are not checked")
    if choice.name == "tiny":
        from pipelines.tiny.safety import ensure_tiny_safety_checker

        tiny = ensure_tiny_safety_checker(settings.cache_dir / "tiny")
        return SafetyChoice(True, str(tiny), "tiny random safety checker", True, True)
    local_only = hub_offline() or None
    unverified = settings.unverified_weights
    if is_here(model, "config.json"):
        return SafetyChoice(True, model, f"safety checker {model}", local_only, unverified)
    # Weights that are not cached never switch the checker off on a machine that may use the
    # Hub (a Space): it downloads them, and a failed download fails loudly at start or on the
    # first render. Only a machine offline by configuration, or a local folder that is not
    # there, runs unchecked, and the banner says why.
    hub_id = not Path(model).expanduser().exists() and model.count("/") == 1
    if settings.safety_checker == "on" or (hub_id and not hub_offline()):
        reason = f"safety checker {model} (downloads on first use)"
        return SafetyChoice(True, model, reason, allow_unverified=unverified)
    why = "HF_HUB_OFFLINE is set and its weights" if hub_id and hub_offline() else "its weights"
    return SafetyChoice(
        False,
        model,
        f"{why} ({model}, BECOME_SAFETY_MODEL) are not here: outputs are not checked",
    )


def _checker(safety: SafetyChoice, runtime: RuntimeOptions) -> Lazy[SafetyChecker] | None:
    if not safety.on:
        return None
    from pipelines.models.runtime import pick_device, pick_dtype
    from pipelines.models.safety import SafetyChecker

    def load() -> SafetyChecker:
        device = pick_device(runtime.device)
        return SafetyChecker.from_pretrained(
            safety.model_id,
            device=device,
            dtype=pick_dtype(device, runtime.dtype),
            local_files_only=safety.local_files_only,
            allow_unverified=safety.allow_unverified,
        )

    return Lazy(load, safety.model_id)


def clip_source(settings: Settings, engine: str | None = None) -> ModelSource:
    """Where the app's CLIP loads from: the tiny engine's stand-in, else ``BECOME_CLIP_MODEL``
    (offline as ``HF_HUB_OFFLINE`` says; the preview engine never waits on the Hub). ``engine``:
    the resolved engine's name (default: the setting, as the command line has no resolution)."""
    engine = engine or settings.engine
    if engine == "tiny":
        from pipelines.tiny.sd15_faceid import ensure_tiny_models

        clip_dir = ensure_tiny_models(settings.cache_dir / "tiny").clip_dir
        return ModelSource(str(clip_dir), True, allow_unverified=True)
    unverified = settings.unverified_weights
    if engine == "preview":  # the preview engine means no Hub: never wait on one
        return ModelSource(settings.clip_model, True, unverified)
    return ModelSource(settings.clip_model, hub_offline() or None, unverified)


def preference_sources(
    settings: Settings, engine: str | None = None
) -> tuple[PreferenceSource, ...]:
    """Where each preference measure loads from: the tiny engine's stand-ins, else the
    ``BECOME_<NAME>_MODEL`` / ``_PROCESSOR`` settings (offline as ``HF_HUB_OFFLINE`` says; the
    preview engine never waits on the Hub). A measure left out of
    ``BECOME_PREFERENCE_MEASURES`` is listed with the reason it does not run."""
    engine = engine or settings.engine
    on = settings.preference_list
    tiny: dict[str, Path] = {}
    if engine == "tiny" and on:
        from pipelines.tiny.preference import ensure_tiny_preference

        tiny = ensure_tiny_preference(settings.cache_dir / "tiny")
    sources = []
    for name in PREFERENCE_MODELS:
        model, processor = settings.preference_source(name)
        if name not in on:
            off = (
                f"{name} is not run in this deployment "
                f"(BECOME_PREFERENCE_MEASURES={settings.preference_measures!r})"
            )
            sources.append(PreferenceSource(name, model, processor, True, off=off))
        elif name in tiny:
            tiny_dir = str(tiny[name])
            sources.append(PreferenceSource(name, tiny_dir, tiny_dir, True, allow_unverified=True))
        else:  # the preview engine means no Hub: never wait on one
            local = True if engine == "preview" else hub_offline() or None
            sources.append(
                PreferenceSource(
                    name, model, processor, local, allow_unverified=settings.unverified_weights
                )
            )
    return tuple(sources)


def _tiny_engine(settings: Settings, catalog: StyleCatalog, choice: EngineChoice) -> Engine:
    """The family's pipeline on tiny random weights: the very same loading code as real
    weights, pointed at folders written in code (the only door to ``pipelines.tiny``)."""
    from pipelines.faces.analysis import FaceAnalyzer
    from pipelines.models.renderer import DiffusionRenderer, DiffusionWeights
    from pipelines.tiny import TINY_WEIGHTS
    from pipelines.tiny.sd15_faceid import ensure_tiny_models

    family, runtime = settings.family, _runtime(settings)
    safety = resolve_safety(settings, choice)
    paths = ensure_tiny_models(settings.cache_dir / "tiny")  # CLIP and face stand-ins
    base, adapter, weight = TINY_WEIGHTS[family.id](settings.cache_dir / "tiny")
    weights = DiffusionWeights(base, adapter, weight, True, family.id, allow_unverified=True)
    renderer = DiffusionRenderer.from_weights(
        weights, runtime, _checker(safety, runtime), settings.size
    )
    folders = family.tokenizer_folders
    return Engine(
        choice=choice,
        renderer=renderer,
        # the stand-in detector's boxes do not depend on det_size; 320 is 2x faster
        face=Lazy(lambda: FaceAnalyzer(paths.face_pack_dir, det_size=320), "face models"),
        budget=Lazy(
            lambda: TokenBudget.for_family(family, _tokenizers_from(base, folders, True)),
            "token budget",
        ),
        clip=clip_source(settings, choice.name),
        preference=preference_sources(settings, choice.name),
        family=family,
        safety=safety,
        notes=("tiny engine: random weights and stand-in face models; images are noise",),
    )


def _diffusers_engine(settings: Settings, catalog: StyleCatalog, choice: EngineChoice) -> Engine:
    """The family's real weights, from hub ids or local folders."""
    from pipelines.faces.analysis import FaceAnalyzer
    from pipelines.models.renderer import DiffusionRenderer, DiffusionWeights

    family, runtime = settings.family, _runtime(settings)
    safety = resolve_safety(settings, choice)
    local_only = hub_offline() or None
    weights = DiffusionWeights(
        settings.base_model,
        settings.faceid_adapter or None,
        settings.faceid_weight or None,
        local_only,
        family.id,
        allow_unverified=settings.unverified_weights,
    )
    renderer = DiffusionRenderer.from_weights(
        weights, runtime, _checker(safety, runtime), settings.size
    )
    return Engine(
        choice=choice,
        renderer=renderer,
        face=Lazy(
            lambda: FaceAnalyzer(
                settings.face_pack,
                settings.face_root,
                det_size=settings.face_det_size,
                allow_download=not hub_offline(),
            ),
            "face models",
        ),
        budget=Lazy(
            lambda: TokenBudget.for_family(family, renderer.pipeline.tokenizers), "token budget"
        ),
        clip=clip_source(settings, choice.name),
        preference=preference_sources(settings, choice.name),
        family=family,
        safety=safety,
    )


def _preview_engine(settings: Settings, catalog: StyleCatalog, choice: EngineChoice) -> Engine:
    """No weights: the selfie stylised; real face models when present, else generated
    stand-ins (KBs, written on first use)."""
    from pipelines.faces.analysis import FaceAnalyzer, face_pack_dir
    from pipelines.preview.renderer import PreviewRenderer

    family = settings.family
    pack = face_pack_dir(settings.face_pack, settings.face_root)

    def face_loader() -> FaceAnalyzer:
        if pack is not None:
            return FaceAnalyzer(pack, det_size=settings.face_det_size)
        from pipelines.tiny.face import write_tiny_face_pack

        stand_in = settings.cache_dir / "stand-in-face"
        if face_pack_dir(stand_in, settings.face_root) is None:
            write_tiny_face_pack(stand_in)
        return FaceAnalyzer(stand_in, det_size=320)

    def preview_budget() -> TokenBudget:
        # CLIP families count with the CLIP model's tokenizer (the same BPE); others estimate
        if family.chat_template:
            return TokenBudget.for_family(family)
        return TokenBudget.for_family(family, _tokenizers_from(settings.clip_model, ("",), True))

    notes = ()
    if pack is None:
        notes = (
            f"face detection uses stand-in models ({settings.face_pack} not found in "
            f"{settings.face_root}): the crop is centred, not detected",
        )
    return Engine(
        choice=choice,
        renderer=PreviewRenderer(catalog),
        face=Lazy(face_loader, "face models"),
        budget=Lazy(preview_budget, "token budget"),
        clip=clip_source(settings, choice.name),
        preference=preference_sources(settings, choice.name),
        family=family,
        safety=resolve_safety(settings, choice),
        notes=notes,
    )


# engine name -> builder; the one place that knows how each engine is put together
EngineBuilder = Callable[["Settings", "StyleCatalog", EngineChoice], Engine]
ENGINE_BUILDERS: Mapping[str, EngineBuilder] = MappingProxyType(
    {"diffusers": _diffusers_engine, "tiny": _tiny_engine, "preview": _preview_engine}
)


def build_engine(
    settings: Settings, catalog: StyleCatalog, choice: EngineChoice | None = None
) -> Engine:
    """Construct (but do not load) the engine ``settings`` asks for."""
    choice = choice or resolve_engine(settings)
    return ENGINE_BUILDERS[choice.name](settings, catalog, choice)
