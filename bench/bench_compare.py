"""/compare latency per model family: a 4-method row in one batched call vs 4 sequential
calls; face cache hit vs miss.

Runs the real ComparisonService (face analysis, augmentation, rendering, safety checker) on
  * every family's tiny engine (tiny random weights, 64 px), and
  * with --full, every family at full size with random weights on CUDA (SD-1.5 512 px 20
    steps, SDXL 1024 px 30 steps, FLUX.2 klein 4B 1024 px 4 steps, half precision); on CPU
    only SD-1.5 at 256 px in float32.
Prints one table per engine; every ratio is measured within the same run.

    python bench/bench_compare.py                        # tiny, every family
    python bench/bench_compare.py --families sd15-faceid # one family
    python bench/bench_compare.py --full                 # + full size (CPU: minutes)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_generation import full_pipeline
from PIL import Image

from pipelines.app.bootstrap import Services, build_services
from pipelines.app.service import ComparisonService
from pipelines.core.families import FAMILIES
from pipelines.core.request import CompareRequest
from pipelines.core.settings import Settings
from pipelines.models.renderer import DiffusionRenderer, RuntimeOptions

METHODS = ["raw", "template", "learned", "inversion"]


def photo() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def with_renderer(services: Services, load: Any, batch_size: int) -> ComparisonService:
    """The app's comparison service, rendering with ``load()``'s pipeline at a UNet batch size
    (the family's renderer class, with the app's safety checker)."""
    app = services.engine.renderer
    assert isinstance(app, DiffusionRenderer)
    renderer = type(app)(load, RuntimeOptions(batch_size=batch_size), safety=app.safety)
    engine = replace(services.engine, renderer=renderer)
    return ComparisonService(engine, services.catalog, services.registry)


def bench(services: Services, load: Any, label: str, size: int, steps: int, repeats: int) -> None:
    selfie = photo()
    ref = (Image.open(selfie).convert("RGB"),)

    def request(style: str, prompt: str, methods: list[str]) -> CompareRequest:
        return CompareRequest.from_settings(
            services.settings,
            style=style,
            prompt=prompt,
            methods=methods,
            seed=1,
            num_inference_steps=steps,
            height=size,
            width=size,
            reference_images=ref,
        )

    row = request("watercolor", "a portrait of a person", METHODS)
    singles = [request("watercolor", "a portrait of a person", [m]) for m in METHODS]
    by_batch = {bs: with_renderer(services, load, bs) for bs in (1, 4)}
    by_batch[1].compare(selfie, row)  # warm-up: loads the pipeline, CLIP, the learned gains
    rows = []
    for bs, svc in by_batch.items():
        t = statistics.median(timed(lambda svc=svc: svc.compare(selfie, row), repeats))
        rows.append((f"1 call, 4 methods, UNet batch {bs}", t, t / 4))
    svc = by_batch[1]
    t = statistics.median(timed(lambda: [svc.compare(selfie, r) for r in singles], repeats))
    rows.append(("4 calls, 1 method each", t, t / 4))

    analyzer = svc.engine.face.get()
    raw = request("anime", "a person", ["raw"])

    def face_miss() -> float:
        analyzer.clear_cache()
        return svc.compare(selfie, raw).timings["face"]

    def face_hit() -> float:
        return svc.compare(selfie, raw).timings["face"]

    miss = statistics.median(face_miss() for _ in range(repeats))
    hit = statistics.median(face_hit() for _ in range(repeats))
    renderer = svc.engine.renderer
    assert isinstance(renderer, DiffusionRenderer)

    print(f"\n## {label} ({size} px, {steps} steps, device {renderer.pipeline.device})")
    print("| run | total s | s per output |")
    print("|---|---|---|")
    for name, total, per in rows:
        print(f"| {name} | {total:.3f} | {per:.3f} |")
    base = rows[-1][1]
    print(f"\nbatched (UNet batch 1) / sequential = {rows[0][1] / base:.2f}")
    print(f"batched (UNet batch 4) / sequential = {rows[1][1] / base:.2f}")
    print(
        f"face stage: miss {miss * 1000:.1f} ms, hit {hit * 1000:.1f} ms, ratio {miss / hit:.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also full-size random weights")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="tiny engine steps")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    cuda = torch.cuda.is_available()
    for family_id in args.families:
        family = FAMILIES[family_id]
        env = {"BECOME_ENGINE": "tiny", "BECOME_DATA_DIR": str(data)}
        settings = Settings.from_env({**env, "BECOME_MODEL_FAMILY": family_id})
        services = build_services(settings)
        tiny = services.engine.renderer
        assert isinstance(tiny, DiffusionRenderer)
        label = f"{family_id}, tiny engine"
        bench(services, lambda tiny=tiny: tiny.pipeline, label, 64, args.steps, args.repeats)

        if args.full and (cuda or family_id == "sd15-faceid"):
            pipe = full_pipeline(family)(RuntimeOptions())
            size = family.size if cuda else 256
            steps = 20 if family_id == "sd15-faceid" else family.num_inference_steps
            steps = steps if cuda else 2
            label = f"{family_id}, full-size random weights"
            bench(services, lambda pipe=pipe: pipe, label, size, steps, args.repeats)
            del pipe


if __name__ == "__main__":
    main()
