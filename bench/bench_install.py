"""What installing the app costs: each requirements file into a fresh virtual environment, timed,
its size and package count measured, and ``pip check`` run on it.

    python bench/bench_install.py                          # requirements.txt
    python bench/bench_install.py --compare old-reqs.txt   # and another file, same machine, after

Both installs read the same pip cache: run each once before to warm it (``--warm``), so the
figures compare what is installed, not the network. Prints one Markdown table; exits 1 when
``pip check`` fails on any environment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Install:
    """One fresh install of a requirements file."""

    requirements: Path
    seconds: float
    megabytes: int
    packages: int
    check: str  # pip check's last line


def _size_mb(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            p = Path(dirpath) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total // (1 << 20)


def install(requirements: Path, warm: bool) -> Install:
    """Installs ``requirements`` into a fresh venv and measures it (the venv is deleted)."""
    with tempfile.TemporaryDirectory(prefix="become-venv-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        if warm:  # fill the pip cache first, in a throwaway venv of its own
            warm_venv = Path(tmp) / "warm"
            subprocess.run([sys.executable, "-m", "venv", str(warm_venv)], check=True)
            warm_pip = [str(warm_venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r"]
            subprocess.run([*warm_pip, str(requirements)], check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run(
            [*pip, "install", "-q", "-r", str(requirements)], check=True, capture_output=True
        )
        seconds = time.perf_counter() - start
        listed = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True)
        check = subprocess.run([*pip, "check"], capture_output=True, text=True)
        last = (check.stdout + check.stderr).strip().splitlines()[-1:] or [""]
        return Install(
            requirements,
            seconds,
            _size_mb(venv),
            len(listed.stdout.split()),
            ("ok: " if check.returncode == 0 else "FAILED: ") + last[0],
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    p.add_argument("--compare", type=Path, help="another requirements file, measured first")
    p.add_argument("--warm", action="store_true", help="fill the pip cache before timing")
    args = p.parse_args()
    runs = [install(r, args.warm) for r in (args.compare, args.requirements) if r is not None]
    print("| requirements | install (s) | environment (MB) | packages | pip check |")
    print("|---|---|---|---|---|")
    for r in runs:
        cells = (r.requirements.name, f"{r.seconds:.0f}", r.megabytes, r.packages, r.check)
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0 if all(r.check.startswith("ok") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
