"""Decks on the Hugging Face Hub: push a rendered deck folder to a dataset repo, pull it back.

A deck rendered on a GPU box is pushed with ``upload_folder`` and pulled on the Space with
``snapshot_download``; the folder layout (deck.json, manifest.jsonl, images/) is the same on both
sides. Row files are not needed to rate or report a deck and are not uploaded.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.core.errors import InputError, UnavailableError
from pipelines.decks.manifest import IMAGES, MANIFEST, SKIPPED, SPEC_FILE, read_manifest

# what a deck needs on the other side; the report files come along when they exist
DECK_PATTERNS = [SPEC_FILE, MANIFEST, SKIPPED, f"{IMAGES}/**", "report.md", "report.png"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class DeckHubError(UnavailableError):
    """The Hub could not be reached, or refused the repo; the message says which and why."""


def is_repo_id(text: str) -> bool:
    """Whether ``text`` reads as a dataset repo id ("owner/name"), not a local path."""
    return bool(_REPO_ID.match(text.strip())) and not Path(text).expanduser().exists()


def _check_repo(repo_id: str) -> str:
    repo_id = repo_id.strip()
    if not _REPO_ID.match(repo_id):
        raise InputError(f"repo={repo_id!r} is not a dataset repo id: use owner/name")
    return repo_id


def push_deck(
    folder: Path | str, repo_id: str, *, token: str | None = None, private: bool = False
) -> str:
    """Upload a deck folder to the dataset ``repo_id`` (created if needed); returns its URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    read_manifest(folder)  # refuse to publish a folder that is not a readable deck
    repo_id = _check_repo(repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            allow_patterns=DECK_PATTERNS,
            commit_message=f"deck {folder.name}",
        )
    except Exception as exc:  # network, auth and HTTP errors share no useful base class
        raise DeckHubError(f"pushing {folder} to dataset {repo_id} failed: {exc}") from exc
    return f"https://huggingface.co/datasets/{repo_id}"


def pull_deck(repo_id: str, out: Path | str, *, token: str | None = None) -> Path:
    """Download the deck in dataset ``repo_id`` into ``out``; returns the folder, checked."""
    from huggingface_hub import snapshot_download

    repo_id = _check_repo(repo_id)
    out = Path(out)
    try:
        path = snapshot_download(
            repo_id=repo_id,
            repo_type="dataset",
            local_dir=str(out),
            allow_patterns=DECK_PATTERNS,
            token=token,
        )
    except Exception as exc:
        raise DeckHubError(f"pulling dataset {repo_id} failed: {exc}") from exc
    folder = Path(path)
    read_manifest(folder)  # a repo that is not a deck fails here, naming the file
    return folder
