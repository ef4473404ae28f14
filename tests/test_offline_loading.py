"""Every family loads offline (HF_HUB_OFFLINE=1) from hub ids in a local HF cache and from a
local folder laid out as the Hub repo, through the app's own settings -> engine -> service path.

Runs in a subprocess: huggingface_hub and diffusers read HF_HUB_OFFLINE and HF_HUB_CACHE when
they are imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.core.families import FAMILIES
from pipelines.core.settings import PROJECT_ROOT
from pipelines.tiny import TINY_WEIGHTS
from pipelines.tiny.face import write_tiny_face_pack
from pipelines.tiny.safety import ensure_tiny_safety_checker

REVISION = "0123456789abcdef0123456789abcdef01234567"

SCRIPT = """
import json, sys
from pipelines.app.bootstrap import build_services
from pipelines.app.engines import resolve_engine
from pipelines.core.request import CompareRequest
from pipelines.core.settings import Settings

rows = []
for env in json.loads(sys.argv[1]):
    settings = Settings.from_env(env)
    choice = resolve_engine(settings)
    services = build_services(settings)
    request = CompareRequest.from_settings(
        settings, style="anime", prompt="a person", methods=["raw", "template"], seed=1
    )
    res = services.comparison.compare(sys.argv[2], request)
    rows.append({
        "family": res.model_family, "engine": choice.name, "reason": choice.reason,
        "model_ids": res.model_ids, "safety": res.to_json()["safety"],
        "sizes": [list(o.image.size) for o in res.outputs if o.rendered],
    })
print("ROWS=" + json.dumps(rows))
"""


def hub_repo(cache: Path, repo_id: str, folder: Path) -> Path:
    """Copy ``folder`` into ``cache`` as the HF cache stores ``repo_id``; the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.mark.slow
def test_every_family_loads_offline_from_hub_ids_and_hub_layout_folders(
    tmp_path, group_path, tiny_settings
):
    hub = tmp_path / "hub"
    tiny = tiny_settings.cache_dir / "tiny"  # copied from, never changed
    safety = hub_repo(hub, "become-test/safety", ensure_tiny_safety_checker(tiny))
    pack = Path(write_tiny_face_pack(tmp_path / "face" / "buffalo_l"))
    cases = []
    for family in FAMILIES.values():
        base, adapter, weight = TINY_WEIGHTS[family.id](tiny)
        base_id = f"become-test/{family.id}"
        snapshot = hub_repo(hub, base_id, base)
        common = {
            "BECOME_MODEL_FAMILY": family.id,
            "BECOME_DATA_DIR": str(tmp_path / "data"),
            "BECOME_FACE_PACK": str(pack),
            "BECOME_SAFETY_MODEL": "become-test/safety",
            "BECOME_STEPS": "2",
            "BECOME_SIZE": "64",
            "BECOME_DEVICE": "cpu",
            # tiny weights under test repo ids: not in the pin table (tests/test_weights.py
            # checks the pinned path)
            "BECOME_UNVERIFIED_WEIGHTS": "1",
        }
        if adapter is not None:
            adapter_id = f"become-test/{family.id}-faceid"
            hub_repo(hub, adapter_id, adapter)
            common |= {"BECOME_FACEID_ADAPTER": adapter_id, "BECOME_FACEID_WEIGHT": weight}
        cases.append({**common, "BECOME_BASE_MODEL": base_id})  # a hub id, from the cache
        cases.append({**common, "BECOME_BASE_MODEL": str(snapshot)})  # a folder as on the Hub

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(cases), str(group_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.split("ROWS=")[-1])
    assert [r["family"] for r in rows] == [f for f in FAMILIES for _ in range(2)]
    for row, case in zip(rows, cases, strict=True):
        # auto picks the real diffusers path: every weight was found without the network
        assert row["engine"] == "diffusers" and "weights found locally" in row["reason"]
        assert row["model_ids"]["base"] == case["BECOME_BASE_MODEL"]
        assert row["model_ids"]["safety_checker"] == "become-test/safety"
        assert row["safety"] == {"checker": "on", "flagged": 0}
        assert row["sizes"] == [[64, 64], [64, 64]]
    assert safety.is_dir()
