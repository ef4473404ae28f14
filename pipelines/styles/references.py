"""Style reference images that staff upload: the CLIP targets of inversion and ensemble.

They live in ``<data>/feedback_sync/references/<style>/<sha256>.png``, inside the folder that
feedback sync uploads (when configured), so a restarted Space gets them back. Each file is
decoded and re-encoded as PNG: nothing but pixels is kept (no EXIF, no original file name).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from pipelines.core.errors import InputError

if TYPE_CHECKING:
    from pipelines.styles.catalog import Style

log = logging.getLogger(__name__)

FOLDER = "references"
MAX_PER_STYLE = 12  # CLIP targets: a dozen say what a style looks like; more only cost time
MAX_SIDE = 768  # CLIP sees 224 px: larger files only cost disk


class ReferenceImageError(InputError):
    """An upload that cannot be a reference image, or a style that has no room for more."""


@dataclass(frozen=True)
class AddedReferences:
    """What an upload of reference images did: how many were new, how many were already there,
    and each file that was not added, with why."""

    added: int
    already_there: int
    refused: tuple[tuple[str, str], ...] = ()


class ReferenceStore:
    """Uploaded reference images per style, as PNG files named by their pixels' hash."""

    def __init__(self, root: Path, styles: Iterable[str]) -> None:
        self.root = root
        self._styles = set(styles)
        self._lock = threading.Lock()

    def paths(self, style_id: str) -> list[Path]:
        """This style's uploaded references, oldest first."""
        folder = self.root / style_id
        if not folder.is_dir():
            return []
        return sorted(folder.glob("*.png"), key=lambda p: (p.stat().st_mtime, p.name))

    def targets(self, style: Style) -> list[Path]:
        """Every reference image of ``style``, as every consumer reads them (the measures, and
        inversion through the service's style targets): the files bundled in
        ``assets/references/<id>/``, then the ones staff uploaded here."""
        return [*style.reference_images(), *self.paths(style.id)]

    def images(self, style_id: str) -> list[Image.Image]:
        """This style's uploaded references, decoded (unreadable files are skipped, logged)."""
        images = []
        for path in self.paths(style_id):
            try:
                with Image.open(path) as im:
                    images.append(im.convert("RGB"))
            except OSError as exc:
                log.warning("skipping unreadable reference %s: %s", path, exc)
        return images

    def add(
        self, style_id: str, files: Iterable[str | Path], load: Callable[..., Image.Image]
    ) -> AddedReferences:
        """Decode each file with ``load`` (the app's image decoder, which refuses bad files with
        a message) and keep it as PNG. A file that cannot be read, or finds the style full, is
        named with why; the others are added all the same."""
        if style_id not in self._styles:
            raise ReferenceImageError(
                f"style {style_id!r} is unknown: use one of {sorted(self._styles)}"
            )
        decoded: list[tuple[str, Image.Image]] = []
        refused: list[tuple[str, str]] = []
        for f in files:
            try:
                decoded.append((Path(f).name, load(f)))
            except InputError as exc:
                refused.append((Path(f).name, str(exc)))
        added, unreadable = 0, len(refused)
        with self._lock:
            folder = self.root / style_id
            folder.mkdir(parents=True, exist_ok=True)
            for name, image in decoded:
                if len(self.paths(style_id)) >= MAX_PER_STYLE:
                    refused.append(
                        (
                            name,
                            f"{style_id} already has {MAX_PER_STYLE} reference images: "
                            "remove some before adding more",
                        )
                    )
                    continue
                added += self._keep(folder, image)
        full = len(refused) - unreadable
        return AddedReferences(added, len(decoded) - added - full, tuple(refused))

    def _keep(self, folder: Path, image: Image.Image) -> int:
        """Write ``image`` as a PNG named by its hash; 0 when that file is already there."""
        image = image.convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        path = folder / f"{hashlib.sha256(data).hexdigest()}.png"
        if path.exists():
            return 0
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # the sync scheduler never sees half a file
        return 1

    def clear(self, style_id: str) -> int:
        """Remove every uploaded reference of a style; returns how many."""
        with self._lock:
            paths = self.paths(style_id)
            for path in paths:
                path.unlink(missing_ok=True)
        return len(paths)

    def counts(self) -> dict[str, int]:
        """Uploaded references per style (styles without any are left out)."""
        return {s: n for s in sorted(self._styles) if (n := len(self.paths(s)))}
