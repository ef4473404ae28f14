"""Builds the method registry the app, the API and the CLI share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.augment.base import MethodRegistry, RawMethod, TemplateMethod

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import LazyClip
    from pipelines.augment.learned.model import ScorerHolder
    from pipelines.core.settings import Settings

METHOD_NAMES = ("raw", "template", "learned", "inversion", "ensemble")


def build_registry(
    settings: Settings, scorer_holder: ScorerHolder, clip: LazyClip
) -> MethodRegistry:
    """raw, template, learned, inversion and ensemble, in the order the UI shows them.

    ``clip`` is the one CLIP the app loads (see bootstrap); inversion and ensemble share it.
    """
    from pipelines.augment.ensemble import EnsembleMethod
    from pipelines.augment.inversion.method import InversionMethod
    from pipelines.augment.learned.search import LearnedMethod

    raw, template = RawMethod(), TemplateMethod()
    learned = LearnedMethod(scorer_holder)
    inversion = InversionMethod(
        clip,
        cache_dir=settings.cache_dir / "inversion",
        mode=settings.inversion_mode,
        pez_steps=settings.pez_steps,
    )
    ensemble = EnsembleMethod([template, learned, inversion], scorer=scorer_holder.get, clip=clip)
    return MethodRegistry([raw, template, learned, inversion, ensemble])
