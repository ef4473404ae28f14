"""Placing checked files into the Hugging Face cache at a pin's commit, in the cache's own layout
(``models--owner--name/blobs/<sha256>`` and ``snapshots/<commit>/<path>`` linking to it), so
``huggingface_hub`` and :func:`~.resolve.cached_snapshot` find them offline like a download."""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from pipelines.weights.pins import ModelPin
from pipelines.weights.verify import WeightsMismatch, WeightsRefused, sha256_of


def repo_folder(repo_id: str) -> Path:
    """The HF cache's folder of the model repo ``repo_id`` (``HF_HUB_CACHE``, read now)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def chosen_files(pin: ModelPin, files: Mapping[str, Path]) -> dict[str, tuple[Path, str]]:
    """{path in the repo: (file, sha256)} of what ``files`` offers for ``pin``: every hashed
    file, checked (:class:`WeightsRefused` if one is missing, :class:`WeightsMismatch` if one
    differs), and the offered files that match its unhashed patterns."""
    chosen: dict[str, tuple[Path, str]] = {}
    for file in pin.files:
        src = files.get(file.path)
        if src is None:
            raise WeightsRefused(f"{pin.repo_id}: the source has no {file.path}; nothing written")
        found = sha256_of(src)
        if found != file.sha256:
            raise WeightsMismatch(pin, file, src, found)
        chosen[file.path] = (src, found)
    for name, src in files.items():
        if name not in chosen and any(fnmatch.fnmatch(name, p) for p in pin.unhashed):
            chosen[name] = (src, sha256_of(src))
    return chosen


def install(pin: ModelPin, files: Mapping[str, Path]) -> Path:
    """Checks ``files`` ({path in the repo: local file}) against ``pin`` and, only when every
    hashed file matches, copies them into the HF cache at the pinned commit; returns that
    snapshot folder. Each file lands atomically: a killed process leaves no half file."""
    chosen = chosen_files(pin, files)
    repo = repo_folder(pin.repo_id)
    snapshot = repo / "snapshots" / pin.revision
    for name, (src, digest) in chosen.items():
        blob = repo / "blobs" / digest
        if not blob.is_file() or sha256_of(blob) != digest:
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = blob.with_name(blob.name + ".incomplete")
            shutil.copyfile(src, tmp)
            os.replace(tmp, blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot
