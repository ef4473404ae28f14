"""Hash checks of model files against their pins (:mod:`.pins`)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from pipelines.core.errors import UnavailableError
from pipelines.weights.pins import ModelPin, PinnedFile


class WeightsRefused(UnavailableError):
    """A model's files are missing, or differ from their pins: the model is not loaded."""


class WeightsMismatch(WeightsRefused):
    """A model file's sha256 is not the pinned one; names the file, the expected and found hash."""

    def __init__(self, pin: ModelPin, file: PinnedFile, where: Path, found: str) -> None:
        self.path, self.expected, self.found = where, file.sha256, found
        super().__init__(
            f"{pin.repo_id} ({pin.what}) refused: the file {file.path} ({where}) has sha256 "
            f"{found}, expected {file.sha256} (pinned at revision {pin.revision}). Delete it "
            "and fetch it again: python -m pipelines.weights fetch"
        )


_CHUNK = 8 << 20
# (real path, size, mtime, ctime, inode) -> sha256: a file is hashed once per process while it
# is unchanged (a 16 GB FLUX folder takes ~10 s to hash; the app loads it once anyway)
_HASHED: dict[tuple, str] = {}
_LOCK = threading.Lock()


def sha256_of(path: Path) -> str:
    """The sha256 of the file at ``path`` (hex)."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    with _LOCK:
        known = _HASHED.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with real.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    found = digest.hexdigest()
    with _LOCK:
        _HASHED[key] = found
    return found


def verify_folder(folder: Path, pin: ModelPin) -> None:
    """Checks every pinned file of ``pin`` in ``folder``; raises :class:`WeightsRefused`
    (:class:`WeightsMismatch` for a file that differs) naming the first that fails."""
    for file in pin.files:
        where = folder / file.path
        if not where.is_file():
            raise WeightsRefused(
                f"{pin.repo_id} ({pin.what}) refused: {where} is missing (pinned file "
                f"{file.path} at revision {pin.revision})"
            )
        found = sha256_of(where)
        if found != file.sha256:
            raise WeightsMismatch(pin, file, where, found)


def matches(folder: Path, pin: ModelPin) -> bool:
    """Whether ``folder`` holds every pinned file of ``pin``, each with its pinned hash."""
    try:
        verify_folder(folder, pin)
    except WeightsRefused:
        return False
    return True
