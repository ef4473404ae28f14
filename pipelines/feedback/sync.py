"""Push ratings to a Hugging Face dataset repo, so they outlive a Space's ephemeral disk.

The SQLite file is never uploaded (a copy taken mid-write can be torn). Instead every committed
submission is appended to a JSON Lines log inside a folder that huggingface_hub's
``CommitScheduler`` uploads every few minutes; appends happen under the scheduler's lock, so an
upload never sees half a line. Each process writes its own ``submissions-<uuid>.jsonl`` so two
writers never share a file.

The log is append-only: a changed vote appears again with a later ``submitted_at``. Readers keep,
for each (comparison_id, rater), the lines of the latest submission (see :func:`read_log`).
Output images are not uploaded; their hash is. A model retrained from the ratings is copied to
``learned/current.npz`` in the same folder, so a restarted Space can bring it back too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Protocol

from pipelines.augment.learned.model import CURRENT_MODEL
from pipelines.core.settings import Settings
from pipelines.feedback.errors import FeedbackError
from pipelines.feedback.records import RatingRecord, legacy_source, utc_now
from pipelines.feedback.store import FeedbackStore

log = logging.getLogger(__name__)

SYNC_FOLDER = "feedback_sync"  # under settings.data_dir, next to (not containing) the db
PATH_IN_REPO = "ratings"
EVERY_MINUTES = 5.0
MODEL_FOLDER = "learned"  # the retrained model, under the sync folder and PATH_IN_REPO
REFERENCE_FOLDER = "references"  # staff-uploaded style references (pipelines.styles.references)
_LOCAL_ONLY = ("image_path",)  # a path on this machine means nothing in the dataset


class SyncConfigError(FeedbackError):
    """The feedback sync settings are inconsistent."""


class Scheduler(Protocol):
    """What FeedbackSync needs from ``huggingface_hub.CommitScheduler``."""

    lock: Any  # a threading.Lock held while the folder is uploaded

    def stop(self) -> None:
        """Stop uploading (after a last push)."""

    def trigger(self) -> Any:
        """Ask for an upload now."""


class FeedbackSync:
    """Appends each submission to ``folder/submissions-<uuid>.jsonl`` under the scheduler's lock."""

    def __init__(self, folder: Path, scheduler: Scheduler) -> None:
        self.folder = Path(folder)
        self.scheduler = scheduler
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"submissions-{uuid.uuid4().hex}.jsonl"

    def append(self, records: Sequence[RatingRecord]) -> None:
        """Log one committed submission: one line per rating, sharing a submission id."""
        if not records:
            return
        submission = {"submission_id": uuid.uuid4().hex, "submitted_at": utc_now()}
        lines = "".join(
            json.dumps({**submission, **_public(r)}, ensure_ascii=False) + "\n" for r in records
        )
        with self.scheduler.lock, self.path.open("a", encoding="utf-8") as f:
            f.write(lines)

    __call__ = append  # a FeedbackStore listener

    def save_model(self, path: Path) -> Path:
        """Queue the retrained model file at ``path`` for upload (replacing the last one)."""
        dest = self.folder / MODEL_FOLDER / CURRENT_MODEL
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-", suffix=".tmp")
        os.close(fd)
        shutil.copyfile(path, tmp)  # copied outside the lock: an upload is not held up
        # The lock keeps the swap out of the scheduler's file listing; an upload already under
        # way can still read a mix of old and new (it sized the old file), which the next
        # upload repairs and a restore rejects as a broken model file.
        with self.scheduler.lock:
            os.replace(tmp, dest)
        return dest

    def flush(self) -> Any:
        """Ask for an upload now (returns the scheduler's future)."""
        return self.scheduler.trigger()

    def stop(self) -> None:
        """Stop the scheduler (it pushes what is pending first)."""
        self.scheduler.stop()


def _public(r: RatingRecord) -> dict[str, Any]:
    d = asdict(r)
    for name in _LOCAL_ONLY:
        d.pop(name)
    return d


SchedulerFactory = Callable[..., Scheduler]


def start_sync(
    settings: Settings,
    store: FeedbackStore,
    *,
    scheduler_factory: SchedulerFactory | None = None,
    every: float = EVERY_MINUTES,
    downloader: Callable[..., str] | None = None,
    on_model: Callable[[Path], None] | None = None,
) -> FeedbackSync | None:
    """Start syncing ``store`` to ``settings.feedback_repo``; None when sync is not configured.

    Needs both BECOME_FEEDBACK_REPO and BECOME_FEEDBACK_TOKEN; one without the other is a
    :class:`SyncConfigError`. If the Hub cannot be reached at start, ratings stay local (logged).
    On a fresh disk (no ratings, no retrained model) what earlier runs synced is restored first;
    a synced model file is handed to ``on_model`` (which checks, keeps and loads it).
    """
    repo, token = settings.feedback_repo.strip(), settings.feedback_token.strip()
    if not repo and not token:
        return None
    if not repo or not token:
        missing = "BECOME_FEEDBACK_REPO" if not repo else "BECOME_FEEDBACK_TOKEN"
        raise SyncConfigError(
            f"{missing} is empty while the other feedback sync setting is set: set both "
            "(a dataset repo id like 'org/become-ratings' and a write token) or neither"
        )
    _check_repo_id(repo)
    if store.count() == 0:  # a fresh Space disk: bring back what earlier runs synced
        restore_from_hub(repo, token, store, downloader=downloader)
    if on_model is not None and _no_retrained_model(settings):
        model = restore_model_from_hub(repo, token, downloader=downloader)
        if model is not None:
            on_model(model)
    if scheduler_factory is None:
        from huggingface_hub import CommitScheduler

        scheduler_factory = CommitScheduler
    folder = settings.data_dir / SYNC_FOLDER
    if not any((folder / REFERENCE_FOLDER).glob("*/*.png")):
        restore_references_from_hub(repo, token, folder / REFERENCE_FOLDER, downloader=downloader)
    try:
        scheduler = scheduler_factory(
            repo_id=repo,
            repo_type="dataset",
            folder_path=folder,
            path_in_repo=PATH_IN_REPO,
            every=every,
            token=token,
            private=True,  # ratings name their raters; only applies when the repo is created
            allow_patterns=["*.jsonl", f"{MODEL_FOLDER}/*.npz", f"{REFERENCE_FOLDER}/*/*.png"],
        )
    except Exception as exc:  # no network, bad token: keep the app up, ratings stay local
        log.warning("feedback sync to %s not started, ratings stay local: %s", repo, exc)
        return None
    sync = FeedbackSync(folder, scheduler)
    store.add_listener(sync)
    log.info("feedback sync to dataset %s every %s min", repo, every)
    return sync


def restore_from_hub(
    repo: str,
    token: str,
    store: FeedbackStore,
    *,
    downloader: Callable[..., str] | None = None,
) -> int:
    """Load the dataset repo's synced logs into an empty store; returns the ratings restored.

    Runs before the sync listener is attached, so restored ratings are not logged twice.
    """
    if downloader is None:
        from huggingface_hub import snapshot_download

        downloader = snapshot_download
    try:
        folder = downloader(
            repo_id=repo,
            repo_type="dataset",
            allow_patterns=[f"{PATH_IN_REPO}/*.jsonl"],
            token=token,
        )
    except Exception as exc:  # no repo yet, no network: start empty, say so
        log.warning("no ratings restored from %s: %s", repo, exc)
        return 0
    records = read_log(sorted(Path(folder).glob(f"{PATH_IN_REPO}/*.jsonl")))
    rows: dict[tuple[str, str], list[RatingRecord]] = {}
    for r in records:
        rows.setdefault((r.comparison_id, r.voter_key), []).append(r)
    for submission in rows.values():
        store.submit(submission)
    log.info("restored %d ratings from dataset %s", len(records), repo)
    return len(records)


def _no_retrained_model(settings: Settings) -> bool:
    return settings.learned_model is None and not (settings.learned_dir / CURRENT_MODEL).is_file()


def restore_model_from_hub(
    repo: str, token: str, *, downloader: Callable[..., str] | None = None
) -> Path | None:
    """The retrained model an earlier run synced (a path in the Hub cache), or None."""
    if downloader is None:
        from huggingface_hub import snapshot_download

        downloader = snapshot_download
    name = f"{PATH_IN_REPO}/{MODEL_FOLDER}/{CURRENT_MODEL}"
    try:
        folder = downloader(repo_id=repo, repo_type="dataset", allow_patterns=[name], token=token)
    except Exception as exc:  # no repo yet, no network: keep the bundled model
        log.warning("no learned model restored from %s: %s", repo, exc)
        return None
    path = Path(folder) / name
    return path if path.is_file() else None


def restore_references_from_hub(
    repo: str, token: str, dest: Path, *, downloader: Callable[..., str] | None = None
) -> int:
    """Copy the style references an earlier run synced into ``dest``; returns how many."""
    if downloader is None:
        from huggingface_hub import snapshot_download

        downloader = snapshot_download
    pattern = f"{PATH_IN_REPO}/{REFERENCE_FOLDER}/*/*.png"
    try:
        folder = downloader(
            repo_id=repo, repo_type="dataset", allow_patterns=[pattern], token=token
        )
    except Exception as exc:  # no repo yet, no network: the styles' own references only
        log.warning("no style references restored from %s: %s", repo, exc)
        return 0
    found = sorted(Path(folder).glob(pattern))
    for path in found:
        target = dest / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return len(found)


def _check_repo_id(repo: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise SyncConfigError(
            f"BECOME_FEEDBACK_REPO={repo!r} is not a repo id: use 'owner/name' ({exc})"
        ) from None


def _known(d: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k in names}


def read_log(paths: Iterable[Path]) -> list[RatingRecord]:
    """Ratings from sync logs, keeping each (comparison_id, rater)'s latest submission only."""
    names = {f.name for f in fields(RatingRecord)}
    latest: dict[tuple[str, str], tuple[str, str]] = {}  # key -> (submitted_at, submission_id)
    lines: list[dict[str, Any]] = []
    for path in paths:
        with Path(path).open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                d = json.loads(line)
                lines.append(d)
                key = (d["comparison_id"], d.get("voter") or d["rater"])
                stamp = (d["submitted_at"], d["submission_id"])
                latest[key] = max(latest.get(key, stamp), stamp)
    return [
        # a line logged before votes carried a source: known from its voter
        RatingRecord(**{"source": legacy_source(d.get("voter", ""))} | _known(d, names))
        for d in lines
        if latest[(d["comparison_id"], d.get("voter") or d["rater"])]
        == (d["submitted_at"], d["submission_id"])
    ]
