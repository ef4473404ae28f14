"""Wires settings into the objects the app shares; each job lives in its own module.

Construction is cheap: models load on first use (or in :meth:`Services.warmup`), never at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from pipelines.app.access import AddressLimit, StaffGate
from pipelines.app.engines import Engine, ModelSource, build_engine
from pipelines.app.service import ComparisonService
from pipelines.augment.base import MethodRegistry
from pipelines.augment.clip_backend import LazyClip, load_clip
from pipelines.augment.learned.model import (
    ScorerHolder,
    bundled_model_path,
    default_model_path,
)
from pipelines.augment.learned.search import LearnedMethod
from pipelines.augment.registry import build_registry
from pipelines.core.lazy import Lazy
from pipelines.core.recent import RecentComparisons
from pipelines.core.settings import Settings
from pipelines.decks.board import DeckBoard, LoadedDeck
from pipelines.feedback.leaderboard import CachedBoard, participants_frame
from pipelines.feedback.ratings import RatingService
from pipelines.feedback.retrain import Retrainer, RetrainPolicy
from pipelines.feedback.sessions import SessionBoard, SessionConfig
from pipelines.feedback.store import FeedbackStore
from pipelines.feedback.sync import REFERENCE_FOLDER, SYNC_FOLDER
from pipelines.feedback.voters import VoterIds
from pipelines.measurer import OutputMeasurer
from pipelines.preference.scorer import preference_judges
from pipelines.styles.catalog import StyleCatalog, load_catalog
from pipelines.styles.references import ReferenceStore

if TYPE_CHECKING:
    from pipelines.faces.analysis import FaceAnalyzer
    from pipelines.feedback.leaderboard import LeaderboardQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything the UI and the API call. Built once per process by :func:`build_services`."""

    settings: Settings
    catalog: StyleCatalog
    engine: Engine
    clip: LazyClip
    scorer: ScorerHolder
    registry: MethodRegistry
    comparison: ComparisonService
    store: FeedbackStore
    ratings: RatingService
    sessions: SessionBoard
    decks: DeckBoard  # the deck loaded for the session (raters get its rows), if any
    retrainer: Retrainer
    references: ReferenceStore
    staff: StaffGate
    leaderboard: LeaderboardQuery  # as participants may read it: no running blind session
    staff_leaderboard: LeaderboardQuery  # every rating (behind the staff password)
    voters: VoterIds  # signs and checks the voter ids pages keep
    api_votes: AddressLimit  # /rate calls (API and MCP) per address and minute

    def start_sync(self) -> None:
        """Restore ratings from the HF dataset on a fresh disk and start syncing (if configured)."""
        from pipelines.feedback.sync import start_sync

        sync = start_sync(self.settings, self.store, on_model=self.retrainer.adopt)
        self.retrainer.sync_with(sync, self.settings.feedback_repo)

    def load_deck(self, source: str, blind: bool = True) -> LoadedDeck:
        """Load a deck (folder or dataset repo id) for the live session: raters get its rows."""
        deck = self.decks.load(source, token=self.settings.feedback_token or None)
        self.sessions.set_deck(str(deck.folder), deck.deck_id, blind)
        return deck

    def end_session(self) -> SessionConfig:
        """End the live session; a loaded deck is unloaded with it."""
        self.decks.unload()
        return self.sessions.end()

    def unload_deck(self) -> None:
        """Back to live comparisons for every page opened from now on."""
        self.decks.unload()
        self.sessions.set_deck("", "", self.sessions.get().blind)

    def warmup(self) -> None:
        """Load the face models, tokenizer, pipeline (compiled and warmed up when
        ``BECOME_COMPILE`` is on), safety checker, CLIP and the preference measures' models so
        the first request is fast (and a preference model's download is not its wait)."""
        try:
            self.engine.face.get()
            _ = self.comparison.budget
            load = getattr(self.engine.renderer, "load", None)  # pipeline + safety checker
            if load is not None:
                load()
            warm_learned(self.registry, self.catalog, self.scorer)
            self.registry.availability()  # loads CLIP for inversion/ensemble
        except Exception:  # best effort; the request path reports errors properly
            log.exception("warm-up failed")
        measurer = self.comparison.measurer
        for judge in (measurer.preference if measurer is not None else {}).values():
            try:
                judge.get()
            except Exception as exc:  # remembered: every output says why, the app runs on
                log.warning("preference measure %s will not run: %s", judge.name, exc)


def warm_learned(registry: MethodRegistry, catalog: StyleCatalog, scorer: ScorerHolder) -> None:
    """Precompute each style's modifier gains so no request pays for it."""
    if "learned" in registry and scorer.loaded:
        method = registry.get("learned")
        if isinstance(method, LearnedMethod):
            method.warm_up(catalog)


def shared_clip(source: ModelSource) -> LazyClip:
    """The one CLIP the app loads (on first use), from where the engine says it lives."""
    return LazyClip(
        partial(
            load_clip,
            source.model_id,
            local_files_only=source.local_files_only,
            allow_unverified=source.allow_unverified,
        )
    )


def identity_judge(settings: Settings) -> Lazy[FaceAnalyzer] | None:
    """The second recogniser of ``BECOME_IDENTITY_PACK`` (loaded on first use), or None.

    A Hub pack's name (``auraface``: fal/AuraFace-v1, Apache-2.0) is downloaded on first use."""
    if not settings.identity_pack:
        return None

    def load() -> FaceAnalyzer:
        from pipelines.core.hub import hub_offline
        from pipelines.faces.analysis import FaceAnalyzer
        from pipelines.faces.packs import fetch_hub_pack

        online = not hub_offline()
        # a Hub pack (e.g. "auraface") is fetched into face_root/models first
        pack = fetch_hub_pack(
            settings.identity_pack,
            settings.face_root,
            allow_download=online,
            allow_unverified=settings.unverified_weights,
        )
        return FaceAnalyzer(
            pack, settings.face_root, det_size=settings.face_det_size, allow_download=online
        )

    return Lazy(load, "identity judge")


def build_measurer(
    settings: Settings,
    engine: Engine,
    clip: LazyClip,
    scorer: ScorerHolder,
    references: ReferenceStore | None = None,
) -> OutputMeasurer:
    """The measures of every output, with the models the app already has (CLIP loaded once)
    and the app's one reference store (bundled and staff-uploaded images, as inversion)."""
    return OutputMeasurer(
        engine.face,
        clip,
        scorer.get,
        identity_judge(settings),
        references=references.targets if references is not None else None,
        preference=preference_judges(engine.preference),
    )


def restore_deck(decks: DeckBoard, sessions: SessionBoard) -> None:
    """Reload the session's deck after a restart (reads its manifest; no model loads)."""
    deck_dir = sessions.get().deck_dir
    if not deck_dir:
        return
    try:
        decks.load_folder(Path(deck_dir))
    except Exception:  # the facilitator reloads it from the Staff tab; the app must start
        log.exception("the session's deck %s could not be reloaded", deck_dir)


def build_services(settings: Settings) -> Services:
    """Every shared object, wired; nothing loads until it is first used."""
    # browsers' stored values must read back after a restart: the secret is fixed (or kept)
    settings = settings.with_browser_secret().with_voter_key()
    catalog = load_catalog(settings.assets_dir)
    engine = build_engine(settings, catalog)
    clip = shared_clip(engine.clip)
    scorer = ScorerHolder.from_path(default_model_path(settings))
    registry = build_registry(settings, scorer, clip)
    store = FeedbackStore(settings.ratings_db)

    references = ReferenceStore(settings.data_dir / SYNC_FOLDER / REFERENCE_FOLDER, catalog.ids())

    def rated_targets(style_id: str) -> list[Image.Image]:
        """Staff-uploaded references, then the top-rated outputs raters agreed to keep."""
        kept = [Image.open(p).convert("RGB") for p in store.top_rated_images(style_id, 4)]
        return references.images(style_id) + kept

    # what rating a row needs is kept on disk (no image, no selfie), so a restart loses no row
    recent = RecentComparisons(folder=settings.recent_dir)
    sessions = SessionBoard(
        settings.data_dir / "session.json", list(catalog.styles), registry.names()
    )
    decks = DeckBoard(store, settings.data_dir / "decks")
    restore_deck(decks, sessions)
    board = CachedBoard(store)  # participants' and staff's reads, until a rating is stored
    return Services(
        settings=settings,
        catalog=catalog,
        engine=engine,
        clip=clip,
        scorer=scorer,
        registry=registry,
        comparison=ComparisonService(
            engine,
            catalog,
            registry,
            rated_targets,
            recent,
            scorer,
            build_measurer(settings, engine, clip, scorer, references),
        ),
        store=store,
        ratings=RatingService(
            store, recent, decks.find, lambda: sessions.get().blind, live_session=sessions.get
        ),
        sessions=sessions,
        decks=decks,
        retrainer=Retrainer(
            store,
            scorer,
            settings.learned_dir,
            partial(warm_learned, registry, catalog, scorer),
            bundled=bundled_model_path(settings),
            policy=RetrainPolicy(settings.retrain_min_rows, settings.retrain_min_held_out),
        ),
        references=references,
        staff=StaffGate(settings.staff_password),
        leaderboard=partial(participants_frame, store, sessions.get, board=board),
        staff_leaderboard=board,
        voters=VoterIds(settings.voter_key),
        api_votes=AddressLimit(settings.api_votes_per_minute, 60.0, what="votes over the API"),
    )


def deck_comparison(services: Services) -> ComparisonService:
    """The app's comparison service as decks render with it: the live rows' engine, methods,
    learned scorer and measures, without the ratings-dependent style targets (a deck must not
    depend on the ratings of the machine it is rendered on: the same spec gives the same deck
    anywhere) and without filling the live recent-comparisons cache (rows go to disk)."""
    return ComparisonService(
        services.engine,
        services.catalog,
        services.registry,
        rated_targets=None,
        recent=RecentComparisons(capacity=0),
        scorer=services.scorer,
        measurer=services.comparison.measurer,
    )


def build_deck_service(settings: Settings) -> ComparisonService:
    """The comparison service a deck renders with, wired for ``settings`` as the live app is
    (:func:`build_services`, then :func:`deck_comparison`). Decks sit below the app, so the
    deck CLI builds it here and hands ``.compare`` to ``render_deck``; under accelerate or
    torchrun each process builds its own."""
    return deck_comparison(build_services(settings))


def build_at_start(services: Services) -> bool:
    """On a ZeroGPU Space, build every model the running family needs now, at import and
    outside any GPU call: the pipeline (compiled ahead of time with ``BECOME_COMPILE``), the
    safety checker, the face models and CLIP. ``.to("cuda")`` here is deferred by ZeroGPU, and
    whatever a ``@spaces.GPU`` call builds dies with its worker. Returns whether it built (off
    ZeroGPU models load on first use or in the background warm-up)."""
    from pipelines.models.runtime import on_zero_gpu

    if not on_zero_gpu():
        return False
    services.warmup()
    return True
