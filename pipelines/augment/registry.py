"""Builds the method registry the app, the API and the CLI share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipelines.augment.base import MethodRegistry, RawMethod, TemplateMethod

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import ClipBackend
    from pipelines.augment.learned import ScorerHolder
    from pipelines.settings import Settings
    from pipelines.styles import StyleCatalog

METHOD_NAMES = ("raw", "template", "learned", "inversion", "ensemble")


def default_clip_loader(settings: Settings) -> Callable[[], ClipBackend]:
    """CLIP for inversion: the tiny one on the tiny engine, else ``settings.clip_model``."""

    def load() -> ClipBackend:
        from pipelines.augment.clip_backend import load_clip
        from pipelines.engines import resolve_engine

        if settings.engine == "tiny":
            from pipelines.tiny_models import ensure_tiny_models

            paths = ensure_tiny_models(settings.cache_dir / "tiny")
            return load_clip(str(paths.clip_dir), local_files_only=True)
        # the engine the app would run: preview means no Hub, so never wait on one
        local_only = True if resolve_engine(settings).is_preview else None
        return load_clip(settings.clip_model, local_files_only=local_only)

    return load


def build_registry(
    settings: Settings,
    catalog: StyleCatalog,
    scorer_holder: ScorerHolder,
    clip_loader: Callable[[], ClipBackend] | None = None,
) -> MethodRegistry:
    """raw, template, learned, inversion and ensemble, in the order the UI shows them."""
    from pipelines.augment.ensemble import EnsembleMethod
    from pipelines.augment.inversion import InversionMethod
    from pipelines.augment.learned_search import LearnedMethod

    clip_loader = clip_loader or default_clip_loader(settings)
    raw, template = RawMethod(), TemplateMethod()
    learned = LearnedMethod(scorer_holder)
    inversion = InversionMethod(
        clip_loader,
        cache_dir=settings.cache_dir / "inversion",
        mode=settings.inversion_mode,
        pez_steps=settings.pez_steps,
    )
    ensemble = EnsembleMethod(
        [template, learned, inversion], scorer=scorer_holder.get, clip_loader=clip_loader
    )
    return MethodRegistry([raw, template, learned, inversion, ensemble])
