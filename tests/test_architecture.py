"""The layering contracts in pyproject.toml hold: CI runs ``lint-imports`` too; this test makes
a broken contract visible to whoever runs the tests, with import-linter's own report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (requirements-dev.txt)")
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "BROKEN" not in run.stdout and run.stdout.count(" KEPT") == 4, run.stdout


def test_pipelines_import_without_gradio() -> None:
    """``pipelines`` runs where gradio is not installed (a render box, a deck worker)."""
    code = (
        "import sys; sys.modules['gradio'] = None\n"
        "import pipelines.app.bootstrap, pipelines.decks.__main__, pipelines.augment.__main__\n"
        "import pipelines.feedback.__main__\n"
        "assert 'demo' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
