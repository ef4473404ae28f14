"""Wires settings into the objects the app shares: catalog, engine, methods, service.

Construction is cheap: models load on first use (or in :meth:`Services.warmup`), never at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines.augment.base import MethodRegistry
from pipelines.augment.learned import LearnedScorer, ScorerHolder, default_model_path
from pipelines.augment.registry import build_registry
from pipelines.engines import Engine, build_engine
from pipelines.service import ComparisonService
from pipelines.settings import Settings
from pipelines.styles import StyleCatalog, load_catalog

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    catalog: StyleCatalog
    engine: Engine
    scorer: ScorerHolder
    registry: MethodRegistry
    comparison: ComparisonService

    def warmup(self) -> None:
        """Load the face models, tokenizer and pipeline so the first request is fast."""
        try:
            _ = self.engine.face_analyzer
            _ = self.comparison.budget
            pipeline = getattr(self.engine.renderer, "pipeline", None)
            del pipeline
        except Exception:  # warm-up is best effort; the request path reports errors properly
            log.exception("warm-up failed")


def build_services(settings: Settings) -> Services:
    catalog = load_catalog(settings.assets_dir)
    engine = build_engine(settings, catalog)
    scorer = ScorerHolder(LearnedScorer.load(Path(default_model_path(settings))))
    registry = build_registry(settings, catalog, scorer, clip_loader=engine.clip_loader)
    service = ComparisonService(settings, engine, catalog, registry)
    return Services(settings, catalog, engine, scorer, registry, service)
