"""Gradio's temp cache in the app's own folder, emptied when the app starts and when it stops.

Gradio keeps every upload (selfies), every displayed image (face crops, outputs) and every
download in ``GRADIO_TEMP_DIR``; its ``delete_cache`` sweep removes them within
:func:`kept_minutes` while the app runs (photos people send are deleted at once by
``demo.transient``), but nothing removes what is left when the app stops or crashes.
:func:`claim_temp_dir` points Gradio at ``DATA_DIR/gradio-tmp`` (or the ``GRADIO_TEMP_DIR`` the
user set), empties it now (what a crash left) and again at exit: on a normal stop, Ctrl+C,
SIGTERM (how Spaces and Docker stop a container) and SIGHUP.

Call it before the Blocks are built: each component reads ``GRADIO_TEMP_DIR`` when it is made.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import signal
import threading
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

MARKER = ".become-lab-temp"  # in a folder the app owns and may empty
# Gradio's sweep (Blocks(delete_cache=...)): every SWEEP_EVERY_S it deletes the files older than
# KEEP_FOR_S, so a file lives at most their sum. A shown row's pictures must outlive a person
# rating them (the page fetches them again when it redraws a card)
SWEEP_EVERY_S = 60
KEEP_FOR_S = 600


def kept_minutes() -> int:
    """The longest a file stays in Gradio's cache while the app runs, in whole minutes."""
    return math.ceil((SWEEP_EVERY_S + KEEP_FOR_S) / 60)


def claim_temp_dir(
    data_dir: Path, environ: MutableMapping[str, str] | None = None, install: bool = True
) -> Path:
    """Set ``GRADIO_TEMP_DIR`` (unless set), empty that folder now and, with ``install``, at exit.

    A folder the user named is emptied only if it is new, empty or already marked as the app's:
    a shared folder such as ``/tmp`` is never wiped.
    """
    env = os.environ if environ is None else environ
    folder = Path(env.get("GRADIO_TEMP_DIR") or Path(data_dir) / "gradio-tmp").expanduser()
    env["GRADIO_TEMP_DIR"] = str(folder)
    before = set(files_under(folder))  # what this process did not write
    ours = empty_temp_dir(folder)
    if not ours:
        log.warning(
            "GRADIO_TEMP_DIR=%s holds files that are not the app's: it is not emptied at start; "
            "at stop only the files this run wrote are deleted",
            folder,
        )
    if install:

        def cleanup() -> None:  # on a signal and again at exit: files may land in between
            # every upload of this process's life goes, whatever the folder held at start
            if not (ours and empty_temp_dir(folder)):
                remove_new_files(folder, before)

        atexit.register(cleanup)
        install_stop_handlers(cleanup)
    return folder


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder`` (none if it does not exist)."""
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def remove_new_files(folder: Path, before: set[Path]) -> None:
    """Delete the files below ``folder`` that are not in ``before``, then empty folders."""
    for path in files_under(folder):
        if path not in before and path.name != MARKER:
            path.unlink(missing_ok=True)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()


def empty_temp_dir(folder: Path) -> bool:
    """Delete everything in ``folder`` and mark it as the app's; False when it is not the app's.

    The marker is written first and never deleted: a process killed mid-way (kill -9) leaves a
    folder still marked as the app's, which the next start empties."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("Become Lab's Gradio cache: emptied at every start and stop.\n")
    for child in folder.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    log.info("Gradio temp cache %s emptied", folder)
    return True


def install_stop_handlers(cleanup: Callable[[], object]) -> None:
    """On SIGTERM/SIGHUP: clean up, then stop as Ctrl+C does (Gradio closes its server)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still runs

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cleanup()
        raise KeyboardInterrupt  # Gradio's launch() loop closes the server on it; atexit follows

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
