"""From stored ratings back to the learned method, behind a held-out check.

A retrain first trains a *candidate* on the rating rows (plus any files) and checks it, on rating
rows it never saw, against the model in use; the candidate is kept as a version
(:mod:`pipelines.feedback.versions`) either way, and nothing changes for participants. Only
:meth:`Retrainer.use` puts a version in use: it becomes ``<learned>/current.npz`` (loaded at the
next start, synced to the feedback dataset) and is swapped in live. Any version, the bundled
model included, can be put back the same way.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from pipelines.augment.learned.data import ScoredPrompts
from pipelines.augment.learned.model import BUNDLED_VERSION, model_version
from pipelines.core.errors import InputError
from pipelines.feedback.store import FeedbackStore
from pipelines.feedback.versions import (
    VERSIONS_FOLDER,
    ModelVersion,
    ModelVersions,
    record_from_metadata,
)

if TYPE_CHECKING:
    from pipelines.augment.learned.model import LearnedScorer, ScorerHolder, TrainConfig
    from pipelines.feedback.sync import FeedbackSync

log = logging.getLogger(__name__)

HELD_OUT_EVERY = 5  # one rating row in five (by its prompt) is held out to check a candidate


class RetrainError(InputError):
    """Retraining cannot run on this data; the message says why and what to do."""


@dataclass(frozen=True)
class RetrainPolicy:
    """How much data a retrain needs, and what its candidate must show on the held-out rows
    before it may replace the model in use."""

    min_rows: int = 200  # rating rows in the store
    min_held_out: int = 30  # of them, held out (one prompt in five): the check's sample
    # the candidate's held-out Pearson must be above chance at this one-sided level
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.min_held_out < 4:  # the Fisher z-test below needs n > 3
            raise ValueError(f"min_held_out={self.min_held_out} is not allowed: use 4 or more")
        if self.min_rows < self.min_held_out:
            raise ValueError(
                f"min_rows={self.min_rows} is below min_held_out={self.min_held_out}: "
                "the held-out rows are part of the rating rows"
            )
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence={self.confidence} is not allowed: use 0.5 to 0.999")


def chance_level(n: int, confidence: float) -> float:
    """The Pearson a model must beat on ``n`` rows to be above chance at ``confidence``
    (one-sided Fisher z-test): 0.31 on 30 rows, 0.17 on 100, 0.59 on 9."""
    z = NormalDist().inv_cdf(confidence)
    return math.tanh(z / math.sqrt(n - 3))


@dataclass(frozen=True)
class HeldOutCheck:
    """Whether a candidate may replace the model in use, and why, in plain words."""

    passed: bool
    verdict: str
    needed: float | None = None  # the Pearson that is above chance on these rows


def held_out_check(
    in_use: float | None, candidate: float | None, n: int, confidence: float
) -> HeldOutCheck:
    """The candidate passes when its held-out Pearson is at least the model in use's and above
    chance on ``n`` rows (:func:`chance_level`): a lucky few rows cannot pass a model."""
    if candidate is None:
        return HeldOutCheck(
            False, f"the {n} held-out ratings cannot check it (too few, or all the same)"
        )
    needed = chance_level(n, confidence)
    if in_use is not None and candidate < in_use:
        return HeldOutCheck(
            False,
            f"it does worse than the model in use on the {n} held-out rating rows "
            f"(Pearson {candidate:.2f} against {in_use:.2f})",
            needed,
        )
    if candidate <= needed:
        return HeldOutCheck(
            False,
            f"its held-out Pearson {candidate:.2f} on {n} rows is within chance "
            f"(above {needed:.2f} is needed on {n} rows)",
            needed,
        )
    than = "" if in_use is None else f" (Pearson {candidate:.2f} against {in_use:.2f})"
    return HeldOutCheck(
        True,
        f"at least as good as the model in use on the {n} held-out rating rows{than}, and "
        f"above chance (above {needed:.2f} is needed on {n} rows)",
        needed,
    )


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did: rows, time, the candidate's version and its held-out check."""

    rows: int  # training rows, ratings and extra files together
    sources: tuple[str, ...]
    seconds: float
    path: Path  # the candidate's file (its version)
    held_out_rows: int  # rating rows held out to compare the model in use and the candidate
    pearson_before: float | None  # the model in use on the held-out rows (None: cannot tell)
    pearson_after: float | None  # the candidate, trained without them, on them
    synced_to: str | None = None  # dataset repo, "not synced: why", or None without sync
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    # Per stage, {"fast": (before, after), "two-stage": (before, after)}: the held-out Pearson of
    # each stage; "two-stage" is absent when neither model could run its contextual stage.
    stages: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    stage_note: str | None = None  # why the new model has no contextual stage, if it has none
    version: str = ""  # the candidate's version id
    replaces: str = ""  # the version in use when it was checked ("" = none loaded)
    passed: bool = False  # the held-out check (:func:`held_out_check`)
    verdict: str = ""  # the check in plain words
    in_use: bool = False  # whether the candidate was put in use (only :meth:`Retrainer.retrain`)

    def stages_line(self) -> str:
        """Held-out Pearson before -> after, for each stage, on one line."""
        parts = [
            f"{name} {_fmt(before)} → {_fmt(after)}"
            for name, (before, after) in self.stages.items()
        ]
        line = "; ".join(parts) or "no held-out figures"
        return line + (f" ({self.stage_note})" if self.stage_note else "")


@dataclass(frozen=True)
class UseReport:
    """What :meth:`Retrainer.use` did."""

    version: str  # the version in use now
    replaced: str  # the version in use before ("" = none)
    path: Path  # the model in use's file (current.npz)
    synced_to: str | None = None  # as in RetrainReport
    changed: bool = True  # False: it already was the model in use


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


def _subset(data: ScoredPrompts, idx: Sequence[int]) -> ScoredPrompts:
    return ScoredPrompts(
        source=data.source,
        texts=[data.texts[i] for i in idx],
        scores=[data.scores[i] for i in idx],
        styles=[data.styles[i] for i in idx],
        text_col=data.text_col,
        score_col=data.score_col,
        style_col=data.style_col,
    )


def _split(data: ScoredPrompts) -> tuple[ScoredPrompts, ScoredPrompts]:
    """(kept, held out), by a hash of the prompt so one prompt's ratings stay together, and
    the same prompts are held out at every retrain: no version ever trains on them, so every
    version's check is on rows it never saw."""
    held = [zlib.crc32(t.encode()) % HELD_OUT_EVERY == 0 for t in data.texts]
    return (
        _subset(data, [i for i, h in enumerate(held) if not h]),
        _subset(data, [i for i, h in enumerate(held) if h]),
    )


def _without(data: ScoredPrompts, texts: set[str]) -> ScoredPrompts:
    """``data`` without the rows whose prompt is in ``texts`` (held-out prompts never train)."""
    return _subset(data, [i for i, t in enumerate(data.texts) if t not in texts])


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


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` so that a reader sees the old file or the new, never half."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


class Retrainer:
    """Trains candidates of the learned scorer on every rating (plus files), keeps each as a
    version and puts one in use on request (the held-out check decides what :meth:`retrain`
    does alone). One operation at a time: they share the live model and its files."""

    def __init__(
        self,
        store: FeedbackStore,
        holder: ScorerHolder,
        out_dir: Path,
        on_swap: Callable[[], None] = lambda: None,
        *,
        bundled: Path | None = None,
        policy: RetrainPolicy | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.holder = holder
        self.out_dir = out_dir
        self.policy = policy or RetrainPolicy()
        self.versions = ModelVersions(out_dir / VERSIONS_FOLDER, bundled)
        self._on_swap = on_swap  # e.g. precompute the new model's per-style gains
        self._now = now
        self._lock = threading.Lock()
        self._sync: FeedbackSync | None = None
        self._repo_id = ""

    def sync_with(self, sync: FeedbackSync | None, repo_id: str) -> None:
        """Upload each model put in use to ``repo_id`` with the ratings (once sync has started)."""
        self._sync, self._repo_id = sync, repo_id

    def in_use(self) -> str:
        """The version id of the model in use ("" when none is loaded, or it has no id)."""
        return model_version(self.holder.get()) if self.holder.loaded else ""

    def candidate(self, extra_files: Sequence[Path] = ()) -> RetrainReport:
        """Train a candidate on the kept rating rows (plus ``extra_files``), check it on the
        held-out rows against the model in use and keep it as a version; the model in use does
        not change. Raises :class:`RetrainError` saying why not (too few ratings, a bad file)."""
        with self._lock:
            return self._candidate(extra_files)

    def retrain(self, extra_files: Sequence[Path] = ()) -> RetrainReport:
        """:meth:`candidate`, then :meth:`use` it if it passed its check (``in_use`` says)."""
        report = self.candidate(extra_files)
        if not report.passed:
            return report
        used = self.use(report.version, replacing=report.replaces)
        return replace(report, in_use=True, synced_to=used.synced_to)

    def use(self, version_id: str, replacing: str | None = None) -> UseReport:
        """Put ``version_id`` (a kept version, or "bundled") in use: the app's
        ``current.npz``, live now, synced. ``replacing``: the version the person was shown as
        the one it replaces; refused if another is in use by now. The model it replaces is
        kept as a version first, if it is not one yet."""
        with self._lock:
            return self._use(version_id, replacing)

    def adopt(self, path: Path) -> None:
        """Keep and load the model an earlier run synced (a fresh Space disk)."""
        from pipelines.augment.learned.model import (
            CURRENT_MODEL,
            LearnedScorer,
            ModelFileError,
            stamp_version,
        )

        with self._lock:
            try:
                scorer = stamp_version(LearnedScorer.load(path), path)
                self._keep(scorer, "brought back from the feedback dataset")
                scorer.save(self.out_dir / CURRENT_MODEL)
            except (ModelFileError, OSError) as exc:  # best effort at start: keep what is loaded
                log.warning("ignoring the synced learned model %s: %s", path, exc)
                return
            self.holder.swap(scorer)
        self._on_swap()
        log.info("restored the learned model in use from the feedback dataset")

    # -- the steps ---------------------------------------------------------------------------

    def _candidate(self, extra_files: Sequence[Path]) -> RetrainReport:
        from pipelines.augment.learned.data import read_scored
        from pipelines.augment.learned.model import LearnedScorer

        t0 = time.perf_counter()
        ratings = feedback_training_data(self.store)
        kept, held = _split(ratings)
        self._check_enough(len(ratings), len(held))
        live = self.holder.get() if self.holder.loaded else None
        parent = self.in_use()
        try:
            held_texts = set(held.texts)
            extra = [_without(read_scored(Path(f)), held_texts) for f in extra_files]
            sources = [kept, *(e for e in extra if len(e))]
            config, note = _train_config(live, self.out_dir)
            before = _pearsons(live, held)
            scorer = LearnedScorer.train(sources, config)
        except ValueError as exc:  # DataError, too few rows, ...
            raise RetrainError(f"cannot retrain: {exc}") from None
        after = _pearsons(scorer, held)
        check = held_out_check(before["final"], after["final"], len(held), self.policy.confidence)
        record = ModelVersion(
            id=self.versions.new_id(self._now()),
            created=str(scorer.metadata.get("created", "")),
            rows=sum(len(s) for s in sources),
            rating_rows=len(ratings),
            sources=tuple(f"{s.source} ({len(s)} rows)" for s in sources),
            held_out_rows=len(held),
            pearson_parent=before["final"],
            pearson=after["final"],
            parent=parent,
            passed=check.passed,
            verdict=check.verdict,
        )
        path = self.versions.add(scorer, record)
        return RetrainReport(
            rows=record.rows,
            sources=tuple(s.source for s in sources),
            seconds=time.perf_counter() - t0,
            path=path,
            held_out_rows=len(held),
            pearson_before=before["final"],
            pearson_after=after["final"],
            metadata=dict(scorer.metadata),
            stages={
                stage: (before.get(stage), after.get(stage))
                for stage in ("fast", "two-stage")
                if stage in before or stage in after
            },
            stage_note=note,
            version=record.id,
            replaces=parent,
            passed=check.passed,
            verdict=check.verdict,
        )

    def _check_enough(self, rows: int, held_out: int) -> None:
        p = self.policy
        if rows == 0:
            raise RetrainError(
                f"no ratings yet: rate some comparisons first (retraining needs at least "
                f"{p.min_rows} rating rows)"
            )
        if rows < p.min_rows or held_out < p.min_held_out:
            raise RetrainError(
                f"too few ratings to retrain: the store has {rows} rating rows, {held_out} of "
                f"them held out to check a new model; retraining needs at least {p.min_rows} "
                f"rows and {p.min_held_out} held out. Rate more comparisons first; the model in "
                "use is unchanged."
            )

    def _use(self, version_id: str, replacing: str | None) -> UseReport:
        from pipelines.augment.learned.model import CURRENT_MODEL, VERSION_KEY, LearnedScorer

        current = self.in_use()
        if replacing is not None and replacing != current:
            raise RetrainError(
                f"the model in use changed since that check (it is {current or 'none'} now, "
                f"not {replacing or 'none'}): train a new candidate, or restore {version_id} "
                "from the versions list"
            )
        source = self.versions.path(version_id)  # UnknownVersion names a bad id
        dest = self.out_dir / CURRENT_MODEL
        if version_id == current:
            return UseReport(version_id, current, dest, changed=False)
        if self.holder.loaded:  # a way back to what it replaces
            self._keep(self.holder.get(), "kept when another version replaced it")
        if version_id == BUNDLED_VERSION:  # stamped, so a restart and the dataset know it
            scorer = LearnedScorer.load(source)
            scorer.metadata[VERSION_KEY] = BUNDLED_VERSION
            scorer.save(dest)
        else:
            _copy_atomic(source, dest)  # the very file that was checked
            scorer = LearnedScorer.load(dest)
        self.holder.swap(scorer)
        self._on_swap()
        return UseReport(version_id, current, dest, synced_to=self._upload(dest))

    def _keep(self, scorer: LearnedScorer, verdict: str) -> None:
        """Keep ``scorer`` as a version if it is not the bundled model or one already."""
        version = model_version(scorer)
        if version == BUNDLED_VERSION or (version and self.versions.has(version)):
            return
        version = version or self.versions.new_id(self._now())
        self.versions.add(scorer, record_from_metadata(scorer.metadata, version, verdict))

    def _upload(self, path: Path) -> str | None:
        if self._sync is None:
            return None
        try:  # so a restarted Space gets it back (see feedback.sync.start_sync)
            self._sync.save_model(path)
        except OSError as exc:  # the model is saved and live; only its upload failed
            log.warning("learned model in use not queued for upload: %s", exc)
            return f"not synced: {exc}"
        return self._repo_id


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
