"""Wires settings into the objects the app shares: catalog, engine, methods, service, ratings.

Construction is cheap: models load on first use (or in :meth:`Services.warmup`), never at import.
"""

from __future__ import annotations

import hmac
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pipelines.augment.base import MethodRegistry, UnknownMethodError
from pipelines.augment.inversion_args import InversionInputError
from pipelines.augment.learned import (
    CURRENT_MODEL,
    LearnedScorer,
    ModelFileError,
    ScorerHolder,
    default_model_path,
)
from pipelines.augment.learned_search import LearnedMethod
from pipelines.augment.registry import build_registry
from pipelines.engines import Engine, build_engine
from pipelines.face import FaceError
from pipelines.feedback.errors import FeedbackError
from pipelines.feedback.store import FeedbackStore
from pipelines.generation import PortraitInputError
from pipelines.ratings import (
    RatingService,
    RetrainError,
    SessionBoard,
    SessionConfig,
    retrain_from_feedback,
)
from pipelines.service import CompareInputError, ComparisonService
from pipelines.settings import Settings
from pipelines.styles import StyleCatalog, UnknownStyleError, load_catalog

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the UI and the API call. Built once per process by :func:`build_services`."""

    settings: Settings
    catalog: StyleCatalog
    engine: Engine
    scorer: ScorerHolder
    registry: MethodRegistry
    comparison: ComparisonService
    store: FeedbackStore
    ratings: RatingService
    sessions: SessionBoard
    sync: Any = None
    # errors whose message is meant for the person using the app (shown as gr.Error)
    user_errors: tuple[type[BaseException], ...] = field(
        default=(
            FaceError,
            CompareInputError,
            UnknownStyleError,
            UnknownMethodError,
            FeedbackError,
            RetrainError,
            PortraitInputError,
            InversionInputError,
        )
    )

    def start_sync(self) -> None:
        """Restore ratings from the HF dataset on a fresh disk and start syncing (if configured)."""
        from pipelines.feedback.sync import start_sync

        self.sync = start_sync(self.settings, self.store, on_model=self.use_synced_model)

    def use_synced_model(self, path: Path) -> None:
        """Keep and load the retrained model an earlier run synced (a fresh Space disk)."""
        try:
            scorer = LearnedScorer.load(path)
            self.settings.learned_dir.mkdir(parents=True, exist_ok=True)
            scorer.save(self.settings.learned_dir / CURRENT_MODEL)
        except (ModelFileError, OSError) as exc:  # best effort at start: keep what is loaded
            log.warning("ignoring the synced learned model %s: %s", path, exc)
            return
        self.scorer.swap(scorer)
        self.warm_learned()
        log.info("restored the retrained learned model from the feedback dataset")

    def warmup(self) -> None:
        """Load the face models, tokenizer and pipeline so the first request is fast."""
        try:
            _ = self.engine.face_analyzer
            _ = self.comparison.budget
            _ = getattr(self.engine.renderer, "pipeline", None)
            self.warm_learned()
            self.registry.availability()  # loads CLIP for inversion/ensemble
        except Exception:  # best effort; the request path reports errors properly
            log.exception("warm-up failed")

    def warm_learned(self) -> None:
        """Precompute each style's modifier gains so no request pays for it."""
        if "learned" in self.registry and self.scorer.loaded:
            method = self.registry.get("learned")
            if isinstance(method, LearnedMethod):
                method.warm_up(self.catalog)

    def learned_summary(self) -> str:
        if not self.scorer.loaded:
            return f"no model loaded ({self.scorer.reason})"
        meta = self.scorer.get().metadata
        sources = ", ".join(
            f"{s.get('name', '?')} ({s.get('rows', '?')} rows)" for s in meta.get("sources", [])
        )
        created = str(meta.get("created", "?"))[:10]  # the date is what a facilitator needs
        held_out = "; ".join(
            f"Pearson {m['pearson']:.3f} on held-out {name}"
            for name, m in (meta.get("validation") or {}).items()
            if isinstance(m, dict) and "pearson" in m
        )
        return f"trained {created} on {sources}" + (f"; {held_out}" if held_out else "")

    def check_staff_password(self, password: str) -> bool:
        expected = self.settings.staff_password
        return not expected or hmac.compare_digest(password.encode(), expected.encode())

    def set_session(
        self, tag: str, styles: list[str], methods: list[str], blind: bool
    ) -> SessionConfig:
        for m in methods:
            self.registry.get(m)
        for st in styles:
            self.catalog.get(st)
        config = SessionConfig(tag, tuple(styles), tuple(methods), blind)
        self.sessions.set(config)
        return config

    def leaderboard_table(self, **filters: Any) -> Any:
        from pipelines.feedback.leaderboard import leaderboard_frame

        return leaderboard_frame(self.store, **filters)

    def export_ratings(self, fmt: str) -> str:
        from pipelines.feedback.export import export_csv, export_jsonl

        out = Path(tempfile.mkdtemp(prefix="become-export-")) / f"ratings.{fmt}"
        {"csv": export_csv, "jsonl": export_jsonl}[fmt](self.store, out)
        return str(out)

    def retrain(self, extra_files: list[str]) -> dict[str, Any]:
        report = retrain_from_feedback(
            self.store, self.scorer, self.settings.learned_dir, [Path(f) for f in extra_files]
        )
        self.warm_learned()
        synced_to = None
        if self.sync is not None:  # so a restarted Space gets it back (see start_sync)
            try:
                self.sync.save_model(report.path)
                synced_to = self.settings.feedback_repo
            except OSError as exc:  # the model is saved and live; only its upload failed
                log.warning("retrained model not queued for upload: %s", exc)
                synced_to = f"not synced: {exc}"
        return {
            **report.metadata,
            "saved_to": str(report.path),
            "synced_to": synced_to,
            "seconds": round(report.seconds, 2),
        }


def build_services(settings: Settings) -> Services:
    catalog = load_catalog(settings.assets_dir)
    engine = build_engine(settings, catalog)
    scorer = ScorerHolder.from_path(default_model_path(settings))
    registry = build_registry(settings, catalog, scorer, clip_loader=engine.clip_loader)
    store = FeedbackStore(settings.ratings_db)

    def rated_targets(style_id: str) -> list[Image.Image]:
        return [Image.open(p).convert("RGB") for p in store.top_rated_images(style_id, 4)]

    comparison = ComparisonService(settings, engine, catalog, registry, rated_targets)
    ratings = RatingService(store, comparison.recent)
    sessions = SessionBoard(settings.data_dir / "session.json")
    return Services(
        settings, catalog, engine, scorer, registry, comparison, store, ratings, sessions
    )
