"""From a rendered comparison to stored ratings, and from stored ratings back to the learned model.

The comparison's prompts, seed and images are taken from the server's own recent results,
never from the client, so a rating always describes exactly what was rendered.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.augment.learned_data import ScoredPrompts
from pipelines.errors import InputError
from pipelines.feedback.errors import RatingError
from pipelines.feedback.records import RatingRecord, png_bytes
from pipelines.feedback.store import FeedbackStore

if TYPE_CHECKING:
    from pipelines.augment.learned import ScorerHolder
    from pipelines.service import RecentComparisons


@dataclass(frozen=True)
class SessionConfig:
    """What a facilitator sets for a meeting; every participant's page starts from it."""

    session_tag: str = ""
    styles: tuple[str, ...] = ()  # empty = all styles
    methods: tuple[str, ...] = ("raw", "template", "learned")
    blind: bool = False


class SessionBoard:
    """The current facilitator session, persisted so a restart keeps the meeting going."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._config = self._read()

    def _read(self) -> SessionConfig:
        try:
            raw = json.loads(self._path.read_text())
            return SessionConfig(
                session_tag=str(raw.get("session_tag", "")),
                styles=tuple(raw.get("styles", ())),
                methods=tuple(raw.get("methods", SessionConfig.methods)),
                blind=bool(raw.get("blind", False)),
            )
        except (OSError, ValueError, TypeError):
            return SessionConfig()

    def get(self) -> SessionConfig:
        with self._lock:
            return self._config

    def set(self, config: SessionConfig) -> None:
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(config)))
            tmp.replace(self._path)
            self._config = config


@dataclass
class Receipt:
    saved: int
    replaced_earlier: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)  # revealed methods and prompts


class RatingService:
    """Validates a row of ratings against the rendered comparison and stores it."""

    def __init__(self, store: FeedbackStore, recent: RecentComparisons) -> None:
        self.store = store
        self.recent = recent

    def submit(
        self,
        comparison_id: str,
        ratings: Mapping[str, int | None],
        *,
        rater: str,
        best: str | None = None,
        session_tag: str = "",
        comment: str = "",
        blind: bool = False,
        consent_images: bool = False,
    ) -> Receipt:
        """Store one rater's votes for one comparison row; re-submitting replaces them."""
        result = self.recent.get(comparison_id)
        rendered = {o.method: o for o in result.outputs if o.image is not None}
        rater = " ".join((rater or "").split())
        if not rater:
            raise RatingError("rater is empty: type your name or a nickname before submitting")
        given = {m: r for m, r in ratings.items() if r is not None}
        if not given:
            raise RatingError("no rating given: rate at least one output from 1 to 5")
        for method in given:
            if method not in rendered:
                raise RatingError(
                    f"method {method!r} has no output in this comparison: "
                    f"rate one of {', '.join(rendered)}"
                )
        if best is not None and best not in rendered:
            raise RatingError(f"best pick {best!r} is not one of {', '.join(rendered)}")
        if best is not None and best not in given:
            raise RatingError(f"you picked {best!r} as best: rate it too (1 to 5), then submit")
        n_rendered = max(len(rendered), 1)
        latency = result.timings.get("render", 0.0) / n_rendered
        created = datetime.now(UTC).isoformat(timespec="seconds")
        records, images = [], {}
        for method, rating in given.items():
            out = rendered[method]
            # PNG-encoding a 512 px output costs ~50-100 ms: once per output for its hash (kept
            # on the row for later raters), and again only to keep it for a consenting rater
            data = None
            if out.image_hash is None or consent_images:
                data = png_bytes(out.image)  # type: ignore[arg-type]
                out.image_hash = hashlib.sha256(data).hexdigest()
            h = out.image_hash
            if data is not None and consent_images:
                images[h] = data
            records.append(
                RatingRecord(
                    created_at=created,
                    session_tag=session_tag.strip(),
                    rater=rater,
                    comparison_id=comparison_id,
                    style=result.style_id,
                    method=method,
                    base_prompt=result.base_prompt,
                    final_prompt=out.prompt or "",
                    negative_prompt=out.negative_prompt or "",
                    seed=result.seed,
                    engine=result.engine,
                    model_id=json.dumps(result.model_ids, sort_keys=True),
                    image_hash=h,
                    latency_s=round(latency, 4),
                    rating=int(rating),  # the store validates 1..5
                    is_best=(method == best),
                    comment=comment.strip(),
                    blind=bool(blind),
                    image_path=None,
                )
            )
        replaced = self.store.submit(records, images=images or None)
        outputs = [
            {"method": o.method, "prompt": o.prompt, "score": o.score} for o in result.outputs
        ]
        return Receipt(saved=len(records), replaced_earlier=bool(replaced), outputs=outputs)


class RetrainError(InputError):
    """Retraining cannot run on this data; the message says why and what to do."""


@dataclass
class RetrainReport:
    metadata: dict[str, Any]
    seconds: float
    path: Path


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


def retrain_from_feedback(
    store: FeedbackStore,
    holder: ScorerHolder,
    out_dir: Path,
    extra_files: Sequence[Path] = (),
) -> RetrainReport:
    """Train the learned scorer on the ratings (plus optional files) and swap it in live."""
    from pipelines.augment.learned import CURRENT_MODEL, LearnedScorer
    from pipelines.augment.learned_data import read_scored

    t0 = time.perf_counter()
    try:
        sources = [feedback_training_data(store)]
        sources = [s for s in sources if len(s)] + [read_scored(Path(f)) for f in extra_files]
        if not sources:
            raise RetrainError("no ratings yet: rate some comparisons (or add a file) first")
        scorer = LearnedScorer.train(sources)
    except RetrainError:
        raise
    except ValueError as exc:  # DataError, too few rows, ...
        raise RetrainError(f"cannot retrain: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CURRENT_MODEL
    scorer.save(path)
    holder.swap(scorer)
    return RetrainReport(metadata=scorer.metadata, seconds=time.perf_counter() - t0, path=path)
