"""Unpacking third-party zip archives (wheels, split zips) without trusting their member names.

An archive with a member whose name climbs out of the target (``../x``), is absolute (``/x``,
``C:\\x``), or is a link is refused whole, before anything is written.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pipelines.core.errors import InputError


class UnsafeArchive(InputError):
    """An archive member would write outside its target folder, or is a link."""


def _problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a path that climbs out of the target ('..')"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a link"
    return None


def checked_members(archive: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """Every member of ``archive``, or :class:`UnsafeArchive` naming the first unsafe one."""
    members = archive.infolist()
    for info in members:
        problem = _problem(info)
        if problem is not None:
            raise UnsafeArchive(
                f"archive {label} refused: its member {info.filename!r} is {problem}; nothing "
                "was unpacked"
            )
    return members


def unpack(
    archive: Path, target: Path, prefix: str = "", wanted: Iterable[str] | None = None
) -> dict[str, Path]:
    """Unpacks the files of ``archive`` under ``prefix`` into ``target`` (names relative to
    ``prefix``), only those in ``wanted`` when given; returns {relative name: written file}.
    Refuses the whole archive first if any member is unsafe (:func:`checked_members`)."""
    keep = None if wanted is None else set(wanted)
    written: dict[str, Path] = {}
    with zipfile.ZipFile(archive) as z:  # its CRCs check that each member arrived whole
        for info in checked_members(z, archive.name):
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            name = info.filename[len(prefix) :]
            if not name or (keep is not None and name not in keep):
                continue
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out, 16 << 20)
            written[name] = dest
    return written


def member_names(archive: Path) -> list[str]:
    """The names of ``archive``'s members (checked: :func:`checked_members`)."""
    with zipfile.ZipFile(archive) as z:
        return [i.filename for i in checked_members(z, archive.name)]
