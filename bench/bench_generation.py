"""Per-image latency of PortraitPipeline: 4 prompts in one batch vs one at a time.

    python3 bench/bench_generation.py                 # tiny models, CPU
    python3 bench/bench_generation.py --full          # + full-size random SD-1.5, 256 px
    python3 bench/bench_generation.py --full --steps 3 --repeats 2

On CUDA the full-size model also runs at 512 px in float16. Weights are random (no
download): latency depends on shapes, not values. Both batch sizes run in the same process,
interleaved, so the ratio is measured under the same load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "a watercolor portrait of a person, soft wash",
    "a 3d cartoon portrait of a person, studio lighting",
    "an anime portrait of a person, cel shading",
    "an oil painting portrait of a person, dramatic light",
]


@dataclass
class Case:
    name: str
    build: Callable[[], Any]  # -> PortraitPipeline
    size: int
    steps: int


def face() -> np.ndarray:
    v = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def per_image(pipe, batch_size: int, size: int, steps: int) -> float:
    t0 = time.perf_counter()
    out = pipe(
        PROMPTS,
        face_embedding=face(),
        num_inference_steps=steps,
        height=size,
        width=size,
        batch_size=batch_size,
    )
    assert len(out.images) == len(PROMPTS)
    return (time.perf_counter() - t0) / len(PROMPTS)


def run_case(case: Case, repeats: int) -> list[tuple]:
    t0 = time.perf_counter()
    pipe = case.build()
    load = time.perf_counter() - t0
    # warm-up: first calls pay for kernel selection and allocator growth
    pipe(
        PROMPTS[:1], face_embedding=face(), num_inference_steps=1, height=case.size, width=case.size
    )
    times: dict[int, list[float]] = {4: [], 1: []}
    for _ in range(repeats):
        for bs in times:  # interleaved, so both see the same machine load
            times[bs].append(per_image(pipe, bs, case.size, case.steps))
    dev, dt = pipe.device.type, str(pipe.dtype).removeprefix("torch.")
    rows = []
    for bs, ts in times.items():
        rows.append((case.name, dev, dt, case.size, case.steps, bs, min(ts), statistics.median(ts)))
    ratio = min(times[4]) / min(times[1])
    print(f"  {case.name}: loaded in {load:.1f}s; batch4/batch1 per-image ratio {ratio:.2f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--full", action="store_true", help="also full-size random SD-1.5")
    ap.add_argument("--size", type=int, default=256, help="full-size image side on CPU")
    ap.add_argument("--steps", type=int, default=3, help="denoising steps (full size)")
    ap.add_argument("--tiny-size", type=int, default=128)
    ap.add_argument("--tiny-steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache-dir", type=Path, default=None, help="tiny model cache (default: tmp)")
    args = ap.parse_args()

    from pipelines.generation import PortraitPipeline
    from pipelines.tiny_models import build_random_sd15, ensure_tiny_models

    torch.set_grad_enabled(False)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    paths = ensure_tiny_models(cache)

    def tiny(device: str) -> PortraitPipeline:
        return PortraitPipeline.from_pretrained(
            paths.sd_dir, paths.adapter_dir, paths.adapter_weight, device=device
        )

    def full(device: str, dtype: str):
        def build() -> PortraitPipeline:
            model = build_random_sd15(seed=0)
            return PortraitPipeline.from_components(
                model.pipe,
                model.adapter_state_dict,
                model_ids={"base": "random SD-1.5", "adapter": "random FaceID"},
                device=device,
                dtype=dtype,
            )

        return build

    cases = [Case("tiny", lambda: tiny("cpu"), args.tiny_size, args.tiny_steps)]
    if args.full:
        cases.append(Case("sd15-random", full("cpu", "float32"), args.size, args.steps))
    if torch.cuda.is_available():
        cases.append(Case("tiny", lambda: tiny("cuda"), args.tiny_size, args.tiny_steps))
        cases.append(Case("sd15-random", full("cuda", "float16"), 512, max(args.steps, 20)))

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {len(PROMPTS)} prompts"
    )
    rows = []
    for case in cases:
        rows.extend(run_case(case, args.repeats))

    header = ("model", "device", "dtype", "px", "steps", "batch", "s/img min", "s/img median")
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, dev, dt, size, steps, bs, best, med in rows:
        print(f"| {name} | {dev} | {dt} | {size} | {steps} | {bs} | {best:.3f} | {med:.3f} |")


if __name__ == "__main__":
    main()
