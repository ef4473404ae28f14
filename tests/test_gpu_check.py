"""bench/gpu_check.py, the prepared GPU check, runs in smoke mode on the CPU: it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from pipelines.core.families import FAMILIES

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_the_gpu_check_runs_every_family_in_smoke_mode(tmp_path, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = tmp_path / "check.json"
    argv = ["--device", "cpu", "--smoke", "--repeats", "1", "--people", "1", "2", "--out", str(out)]
    report = module.main([*argv, "--budget-s", "600"])
    assert torch.is_grad_enabled()  # run in-process: the check leaves grad mode as it was
    saved = json.loads(out.read_text())
    eager = [r for r in saved["rows"] if r["variant"] == "eager"]
    assert [r["family"] for r in eager] == list(FAMILIES)  # every family, in one table
    for row in eager:
        assert row["row_s"] > 0 and row["images_per_s"] > 0 and row["px"] == 64
        assert row["total_s"] >= row["render_s"] > 0  # through the real ComparisonService
        assert [c["people"] for c in row["capacity"]] == [1, 2]
        assert row["capacity"][-1]["served_30s_batched"] >= 0
    # the safety checker runs on the tiny engine, and its cost is in the row
    assert all(r["safety_s"] > 0 for r in eager)
    # compiled variants are CUDA only, and the table says why they are missing
    assert any("CUDA only" in s for s in saved["skipped"])
    printed = capsys.readouterr().out
    assert report["table"] in printed and "| family | variant |" in printed
