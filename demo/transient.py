"""Photos a person sends leave nothing on disk: each is read into memory and its file deleted.

Gradio writes every upload into its temp cache (the page's selfie and style reference, an API
client's ``handle_file``, an MCP client's base64 image, which Gradio's MCP layer writes once more
into its own folder before uploading it) and deletes it only when the cache is swept. The app
decodes each photo once, deletes every copy Gradio made (:func:`forget_upload`) and, on the
page, shows the decoded photo inline (:func:`inline_image`): the browser holds it, sends it with
each Generate, and the photo stays usable for as long as the page is open.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path

from gradio.data_classes import ImageData
from PIL import Image

from demo.gradio_internals import mcp_uploads, upload_folder

log = logging.getLogger(__name__)

INLINE_QUALITY = 95  # JPEG: the photo the render reads back; no visible loss at 2048 px


def inline_image(img: Image.Image, name: str = "photo.jpg") -> ImageData:
    """``img`` as a JPEG ``data:`` URL the page shows and sends back; no file is written.

    The EXIF block (camera, place, time) is not carried over: only pixels travel."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=INLINE_QUALITY)
    url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return ImageData(url=url, orig_name=Path(name).stem + ".jpg", mime_type="image/jpeg")


def gradio_folders() -> list[Path]:
    """Where Gradio writes what clients send: its temp cache and the MCP server's folder."""
    return [Path(f).resolve() for f in (upload_folder(), mcp_uploads())]


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def forget_upload(source: str | bytes | None, keep: Collection[str] = ()) -> int:
    """Delete ``source`` if it is a file Gradio wrote, and the copy Gradio's MCP layer made of
    it (same bytes); never a file whose sha256 is in ``keep`` (an example photo, which Gradio
    keeps in its cache for every page). How many files were deleted."""
    if not isinstance(source, str):
        return 0
    path = Path(source).resolve()
    folders = gradio_folders()
    if not path.is_file() or not any(path.is_relative_to(f) for f in folders):
        return 0
    digest, size = file_digest(path), path.stat().st_size
    if digest in keep:
        return 0
    copies = [path] + [p for p in _same_file(Path(mcp_uploads()), size, digest) if p != path]
    for copy in copies:
        _delete(copy)
    return len(copies)


def _same_file(folder: Path, size: int, digest: str) -> list[Path]:
    """Files of ``size`` bytes hashing to ``digest`` below ``folder``."""
    found: list[Path] = []
    for p in folder.rglob("*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):  # deleted meanwhile by another request
            if p.is_file() and p.stat().st_size == size and file_digest(p) == digest:
                found.append(p)
    return found


def _delete(path: Path) -> None:
    """Delete ``path`` and, when that empties it, the hash-named folder Gradio made for it."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty, or already gone
        path.parent.rmdir()
    log.debug("deleted the upload %s", path.name)


class RecentPhotos:
    """Photos decoded in the last ``max_age`` seconds, by (page, upload path): a Generate click
    sent while its upload was being read still finds the photo whose file is gone."""

    def __init__(
        self, limit: int = 64, max_age: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.max_age, self.clock = limit, max_age, clock
        self._photos: OrderedDict[tuple[str, str], tuple[float, Image.Image]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, page: str, path: str, photo: Image.Image) -> None:
        """Keep ``photo``, decoded from ``path`` for ``page``, for a while."""
        with self._lock:
            self._photos[(page, path)] = (self.clock(), photo)
            self._drop_old()

    def recall(self, page: str, path: str) -> Image.Image | None:
        """The photo ``page`` uploaded as ``path``, if it was decoded recently."""
        with self._lock:
            self._drop_old()
            found = self._photos.get((page, path))
        return found[1] if found else None

    def _drop_old(self) -> None:
        oldest = self.clock() - self.max_age
        while self._photos and (
            len(self._photos) > self.limit or next(iter(self._photos.values()))[0] < oldest
        ):
            self._photos.popitem(last=False)
