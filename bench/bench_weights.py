"""What checking the pinned model files costs: for each pinned model in the HF cache, the sha256
of its files in a fresh process (no memo), and the learned method's encoder load with the check
against the same load from the same folder without it, interleaved pair by pair.

    python bench/bench_weights.py [--repeats 3]

Prints one Markdown table; the ratio is measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.weights import PINS, cached_snapshot  # noqa: E402

_CHECK = """
import sys, time
from pipelines.weights import PINS, cached_snapshot, verify_folder
pin = PINS[sys.argv[1]]
folder = cached_snapshot(pin)
t = time.perf_counter(); verify_folder(folder, pin); print(time.perf_counter() - t)
"""

_LOAD = """
import sys, time
from pipelines.augment.learned import encoder
from pipelines.weights import PINS, cached_snapshot
spec = encoder.EncoderSpec.named(sys.argv[1])
if sys.argv[2] == "unchecked":  # the same folder, handed over as an unpinned local folder
    spec = encoder.EncoderSpec(str(cached_snapshot(PINS[sys.argv[1]])), spec.layers)
t = time.perf_counter(); encoder.TextEncoder.load(spec); print(time.perf_counter() - t)
"""


def _seconds(script: str, *args: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print("| model | MB checked | sha256 check (s, median) | MB/s |")
    print("|---|---|---|---|")
    for repo, pin in PINS.items():
        folder = cached_snapshot(pin)
        if folder is None:
            continue
        mb = sum((folder / f.path).stat().st_size for f in pin.files) / (1 << 20)
        t = statistics.median(_seconds(_CHECK, repo) for _ in range(args.repeats))
        print(f"| `{repo}` | {mb:.0f} | {t:.2f} | {mb / t:.0f} |")
    print()
    print("| encoder | load, checked (s) | load, same folder unchecked (s) | ratio |")
    print("|---|---|---|---|")
    for repo in (
        "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers/all-mpnet-base-v2",
    ):
        if cached_snapshot(PINS[repo]) is None:
            continue
        pairs = [  # interleaved, checked then unchecked, so drift hits both sides alike
            (_seconds(_LOAD, repo, "checked"), _seconds(_LOAD, repo, "unchecked"))
            for _ in range(args.repeats)
        ]
        runs = {
            "checked": statistics.median(a for a, _ in pairs),
            "unchecked": statistics.median(b for _, b in pairs),
        }
        ratio = statistics.median(a / b for a, b in pairs)
        print(f"| `{repo}` | {runs['checked']:.2f} | {runs['unchecked']:.2f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
