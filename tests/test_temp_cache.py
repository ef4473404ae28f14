"""Uploads, face crops and exports do not outlive the app: its Gradio cache is its own folder,
emptied at start (after a crash) and at stop; an export is read into memory and deleted at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import TextIO

import pytest

from demo.temp_cache import MARKER, claim_temp_dir

ROOT = Path(__file__).resolve().parents[1]


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.name != MARKER]


def test_the_default_folder_is_under_the_data_dir_and_emptied_at_start(tmp_path):
    env: dict[str, str] = {}
    left = tmp_path / "gradio-tmp" / "abc123" / "selfie.jpg"  # what a crash left behind
    left.parent.mkdir(parents=True)
    left.write_bytes(b"a selfie")
    (tmp_path / "gradio-tmp" / MARKER).write_text("")
    folder = claim_temp_dir(tmp_path, env, install=False)
    assert folder == tmp_path / "gradio-tmp" and env["GRADIO_TEMP_DIR"] == str(folder)
    assert folder.is_dir() and files_in(folder) == []


def test_a_folder_the_user_named_is_used_and_never_wiped_if_not_ours(tmp_path):
    shared = tmp_path / "shared"
    (shared / "keep.txt").parent.mkdir()
    (shared / "keep.txt").write_text("someone else's file")
    env = {"GRADIO_TEMP_DIR": str(shared)}
    assert claim_temp_dir(tmp_path / "data", env, install=False) == shared
    assert (shared / "keep.txt").exists() and env["GRADIO_TEMP_DIR"] == str(shared)

    fresh = tmp_path / "fresh"  # new (or empty): it becomes the app's, emptied from now on
    claim_temp_dir(tmp_path / "data", {"GRADIO_TEMP_DIR": str(fresh)}, install=False)
    (fresh / "x" / "crop.webp").parent.mkdir()
    (fresh / "x" / "crop.webp").write_bytes(b"crop")
    claim_temp_dir(tmp_path / "data", {"GRADIO_TEMP_DIR": str(fresh)}, install=False)
    assert files_in(fresh) == []


def test_an_export_is_read_into_memory_and_deleted_at_once(tmp_path):
    import json
    import time

    from demo.staff_tab import export_payload

    export = tmp_path / "become-export-x" / "ratings.csv"
    export.parent.mkdir()
    export.write_text("prompt,score,rater,comment\nx,5,ana,nice\n")
    payload = json.loads(export_payload(export, time.gmtime(0)))
    assert payload == {
        "name": "become-ratings-19700101-0000.csv",
        "type": "text/csv",
        "text": "prompt,score,rater,comment\nx,5,ana,nice\n",
    }
    assert not export.exists() and not export.parent.exists()


def _follow(stream: TextIO, log: TextIO, said: list[str], told: threading.Event) -> None:
    """Copy the app's output into its log; ``told`` is set once Gradio says it serves (the line
    goes into ``said``) or once the output ends (the app stopped: the test reports its log)."""
    for line in stream:
        log.write(line)
        log.flush()
        if "Running on local URL" in line:
            said.append(line)
            told.set()
    told.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_app_empties_its_cache_when_stopped(tmp_path, portrait_path):
    """python app.py, one upload and comparison, then SIGTERM (how Spaces and Docker stop it)."""
    from gradio_client import Client, handle_file

    port = _free_port()
    env = {
        **os.environ,
        "BECOME_ENGINE": "preview",
        "BECOME_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",  # Gradio's "Running on" line arrives when it is printed
    }
    env.pop("GRADIO_TEMP_DIR", None)
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said: list[str] = []
    told = threading.Event()
    follower = threading.Thread(target=_follow, args=(app.stdout, log, said, told), daemon=True)
    follower.start()
    try:
        assert told.wait(timeout=240), "the app did not start in 240 s"
        assert said, (tmp_path / "app.log").read_text()[-3000:]  # it stopped before serving
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(
            handle_file(str(portrait_path)), "anime", "a person", ["raw"], 1, api_name="/compare"
        )
        cache = tmp_path / "data" / "gradio-tmp"
        assert any(p.name == portrait_path.name for p in files_in(cache))  # the selfie is there
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=90) is not None
        assert files_in(cache) == [], "the selfie outlived the app"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        follower.join(timeout=30)  # the app's output ends with it
        log.close()


def test_a_folder_not_emptied_at_start_still_loses_this_run_s_uploads_at_stop(
    tmp_path, monkeypatch
):
    """Whatever the folder held when the app started (a crash mid-cleanup, someone else's
    files), every upload this process wrote is deleted at stop; the files it found stay."""
    from demo import temp_cache

    shared = tmp_path / "shared"
    (shared / "theirs").mkdir(parents=True)
    (shared / "theirs" / "keep.txt").write_text("someone else's file")
    cleanups: list = []
    monkeypatch.setattr(temp_cache.atexit, "register", cleanups.append)
    monkeypatch.setattr(temp_cache, "install_stop_handlers", lambda cleanup: None)
    claim_temp_dir(tmp_path / "data", {"GRADIO_TEMP_DIR": str(shared)})
    upload = shared / "abc123" / "selfie.jpg"  # an upload of this run
    upload.parent.mkdir()
    upload.write_bytes(b"a selfie")
    assert len(cleanups) == 1, "no stop-time cleanup was installed"
    cleanups[0]()
    assert not upload.exists() and not upload.parent.exists()
    assert (shared / "theirs" / "keep.txt").read_text() == "someone else's file"


def test_emptying_keeps_the_marker_so_a_killed_cleanup_is_finished_next_start(tmp_path):
    from demo.temp_cache import empty_temp_dir

    folder = tmp_path / "gradio-tmp"
    (folder / "x").mkdir(parents=True)
    (folder / "x" / "selfie.jpg").write_bytes(b"a selfie")
    (folder / MARKER).write_text("")
    assert empty_temp_dir(folder)
    assert (folder / MARKER).exists() and files_in(folder) == []
