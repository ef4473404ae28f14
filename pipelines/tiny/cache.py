"""Build a folder of tiny models once per cache, safely across concurrent processes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def build_once(final: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``final``'s manifest, building the folder first if it is not complete.

    ``build(tmp)`` writes everything into a temporary sibling folder and returns the manifest
    (paths relative to that folder); the manifest is written last, marking a complete build,
    and the folder is renamed into place, so no process ever sees a half-written one: the
    first rename wins and the others reuse its folder.
    """
    final = Path(final)
    if (final / MANIFEST).is_file():
        return read_manifest(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        manifest = build(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise  # not a lost race: a real failure
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return read_manifest(final)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest a :func:`build_once` folder holds."""
    return json.loads((Path(folder) / MANIFEST).read_text("utf-8"))
