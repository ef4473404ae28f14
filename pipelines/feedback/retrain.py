"""From stored ratings back to the learned method: retrain the scorer and swap it in live."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.augment.learned.data import ScoredPrompts
from pipelines.core.errors import InputError
from pipelines.feedback.store import FeedbackStore

if TYPE_CHECKING:
    from pipelines.augment.learned.model import LearnedScorer, ScorerHolder, TrainConfig
    from pipelines.feedback.sync import FeedbackSync

log = logging.getLogger(__name__)

HELD_OUT_EVERY = 5  # one rating row in five (by its prompt) is held out to measure the gain


class RetrainError(InputError):
    """Retraining cannot run on this data; the message says why and what to do."""


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did: rows, time, where the model went, and the held-out gain."""

    rows: int  # training rows, ratings and extra files together
    sources: tuple[str, ...]
    seconds: float
    path: Path
    held_out_rows: int  # rating rows held out to compare the old and new model
    pearson_before: float | None  # the previous model on the held-out rows (None: too few)
    pearson_after: float | None  # a model trained without them, on them
    synced_to: str | None = None  # dataset repo, "not synced: why", or None without sync
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    # Per stage, {"fast": (before, after), "two-stage": (before, after)}: the held-out Pearson of
    # each stage; "two-stage" is absent when neither model could run its contextual stage.
    stages: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    stage_note: str | None = None  # why the new model has no contextual stage, if it has none

    def stages_line(self) -> str:
        """Held-out Pearson before -> after, for each stage, on one line."""
        parts = [
            f"{name} {_fmt(before)} → {_fmt(after)}"
            for name, (before, after) in self.stages.items()
        ]
        line = "; ".join(parts) or "no held-out figures"
        return line + (f" ({self.stage_note})" if self.stage_note else "")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def feedback_training_data(store: FeedbackStore) -> ScoredPrompts:
    """Every rating as a (final prompt, rating, style) row, the format the scorer trains on."""
    from pipelines.feedback.export import training_rows

    rows = training_rows(store)
    return ScoredPrompts(
        source=f"feedback store {store.path.name}",
        texts=[r["prompt"] for r in rows],
        scores=[float(r["score"]) for r in rows],
        styles=[r["style"] for r in rows],
        text_col="prompt",
        score_col="score",
        style_col="style",
    )


def _split(data: ScoredPrompts) -> tuple[ScoredPrompts, ScoredPrompts]:
    """(kept, held out), by a hash of the prompt so one prompt's ratings stay together."""
    held = [zlib.crc32(t.encode()) % HELD_OUT_EVERY == 0 for t in data.texts]

    def part(want: bool) -> ScoredPrompts:
        idx = [i for i, h in enumerate(held) if h == want]
        return ScoredPrompts(
            source=data.source,
            texts=[data.texts[i] for i in idx],
            scores=[data.scores[i] for i in idx],
            styles=[data.styles[i] for i in idx],
            text_col=data.text_col,
            score_col=data.score_col,
            style_col=data.style_col,
        )

    return part(False), part(True)


def _pearsons(scorer: LearnedScorer | None, data: ScoredPrompts) -> dict[str, float | None]:
    """Held-out Pearson of the final score and of each stage: {"final", "fast", "two-stage"}
    ("two-stage" only when the scorer could run its contextual stage)."""
    if scorer is None:
        return {"final": None, "fast": None}
    try:
        m = scorer.evaluate(data)
    except ValueError:  # fewer than 3 rows, or all ratings equal
        return {"final": None, "fast": None}
    if "fast" not in m:
        return {"final": m["pearson"], "fast": m["pearson"]}
    return {"final": m["pearson"], "fast": m["fast"]["pearson"], "two-stage": m["pearson"]}


def _train_config(live: LearnedScorer | None, out_dir: Path) -> tuple[TrainConfig, str | None]:
    """Both stages when the live model has a contextual stage (its encoders that load here, same
    head), their encodings cached beside the retrained model; the fast stage alone otherwise.
    Also a note on what was left out and why (None when nothing was)."""
    from dataclasses import replace

    from pipelines.augment.learned.model import NoContextStage, TrainConfig

    if live is None or live.context is None:
        return TrainConfig(), None
    try:  # loads the encoders (once per process) before any fitting
        loaded = live.encoders()
    except NoContextStage as exc:
        return TrainConfig(), f"fast stage only: {exc}"
    context, note = live.context.config, None
    if missing := live.missing_encoders():
        keep = [i for i, e in enumerate(loaded) if e is not None]
        context = replace(
            context,
            encoders=tuple(context.encoders[i] for i in keep),
            shares=tuple(context.shares[i] for i in keep),
        )
        note = "without " + "; ".join(f"{name} ({why})" for name, why in missing.items())
    return TrainConfig(context=context, encodings_dir=out_dir), note


class Retrainer:
    """Trains the learned scorer on every rating (plus files), saves it and swaps it in."""

    def __init__(
        self,
        store: FeedbackStore,
        holder: ScorerHolder,
        out_dir: Path,
        on_swap: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.out_dir = out_dir
        self._on_swap = on_swap  # e.g. precompute the new model's per-style gains
        self._sync: FeedbackSync | None = None
        self._repo_id = ""

    def sync_with(self, sync: FeedbackSync | None, repo_id: str) -> None:
        """Upload each retrained model to ``repo_id`` with the ratings (once sync has started)."""
        self._sync, self._repo_id = sync, repo_id

    def retrain(self, extra_files: Sequence[Path] = ()) -> RetrainReport:
        """Train, save to ``out_dir``, swap in live; raises :class:`RetrainError` saying why not."""
        from pipelines.augment.learned.data import read_scored
        from pipelines.augment.learned.model import CURRENT_MODEL, LearnedScorer

        t0 = time.perf_counter()
        ratings = feedback_training_data(self.store)
        try:
            extra = [read_scored(Path(f)) for f in extra_files]
            sources = ([ratings] if len(ratings) else []) + extra
            if not sources:
                raise RetrainError("no ratings yet: rate some comparisons (or add a file) first")
            kept, held = _split(ratings)
            live = self.holder.get() if self.holder.loaded else None
            config, note = _train_config(live, self.out_dir)
            before = _pearsons(live, held)
            after = {"final": None, "fast": None}
            if before["final"] is not None and len(kept) >= 5:
                after = _pearsons(LearnedScorer.train([kept, *extra], config), held)
            scorer = LearnedScorer.train(sources, config)
        except RetrainError:
            raise
        except ValueError as exc:  # DataError, too few rows, ...
            raise RetrainError(f"cannot retrain: {exc}") from None
        path = self.out_dir / CURRENT_MODEL
        scorer.save(path)
        self.holder.swap(scorer)
        self._on_swap()
        return RetrainReport(
            rows=sum(len(s) for s in sources),
            sources=tuple(s.source for s in sources),
            seconds=time.perf_counter() - t0,
            path=path,
            held_out_rows=len(held),
            pearson_before=before["final"],
            pearson_after=after["final"],
            synced_to=self._upload(path),
            metadata=dict(scorer.metadata),
            stages={
                stage: (before.get(stage), after.get(stage))
                for stage in ("fast", "two-stage")
                if stage in before or stage in after
            },
            stage_note=note,
        )

    def _upload(self, path: Path) -> str | None:
        if self._sync is None:
            return None
        try:  # so a restarted Space gets it back (see feedback.sync.start_sync)
            self._sync.save_model(path)
        except OSError as exc:  # the model is saved and live; only its upload failed
            log.warning("retrained model not queued for upload: %s", exc)
            return f"not synced: {exc}"
        return self._repo_id

    def adopt(self, path: Path) -> None:
        """Keep and load a retrained model an earlier run synced (a fresh Space disk)."""
        from pipelines.augment.learned.model import CURRENT_MODEL, LearnedScorer, ModelFileError

        try:
            scorer = LearnedScorer.load(path)
            scorer.save(self.out_dir / CURRENT_MODEL)
        except (ModelFileError, OSError) as exc:  # best effort at start: keep what is loaded
            log.warning("ignoring the synced learned model %s: %s", path, exc)
            return
        self.holder.swap(scorer)
        self._on_swap()
        log.info("restored the retrained learned model from the feedback dataset")


def describe_model(holder: ScorerHolder) -> str:
    """One line for staff and the banner: when and on what the live model was trained."""
    if not holder.loaded:
        return f"no model loaded ({holder.reason})"
    meta = holder.get().metadata
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
