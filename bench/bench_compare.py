"""/compare latency: 4 methods in one batched call vs 4 sequential calls; face cache hit vs miss.

Runs the real ComparisonService (face analysis, augmentation, rendering) on
  * the tiny engine (tiny random weights, 64 px), and
  * with --full, a full-size random-initialised SD-1.5 (UNet/VAE/CLIP-L) + FaceID adapter:
    256 px fp32 on CPU, 512 px fp16 on CUDA.
Prints one table per engine; every ratio is measured within the same run.

    python bench/bench_compare.py            # tiny only
    python bench/bench_compare.py --full     # + full-size SD-1.5 (CPU: a few minutes)
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

import torch
from PIL import Image

from pipelines.bootstrap import Services, build_services
from pipelines.renderers.diffusion import DiffusionRenderer, RuntimeOptions
from pipelines.request import CompareRequest
from pipelines.service import ComparisonService
from pipelines.settings import Settings

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
    """The app's comparison service, rendering with ``load()``'s pipeline at a UNet batch size."""
    renderer = DiffusionRenderer(load, RuntimeOptions(batch_size=batch_size))
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
    ap.add_argument("--full", action="store_true", help="also full-size random SD-1.5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    settings = Settings.from_env({"BECOME_ENGINE": "tiny", "BECOME_DATA_DIR": str(data)})
    services = build_services(settings)
    tiny = services.engine.renderer
    assert isinstance(tiny, DiffusionRenderer)
    bench(services, lambda: tiny.pipeline, "tiny engine", 64, args.steps, args.repeats)

    if args.full:
        from pipelines.generation import PortraitPipeline
        from pipelines.tiny_models import build_random_sd15

        cuda = torch.cuda.is_available()
        dtype = torch.float16 if cuda else torch.float32
        rsd = build_random_sd15(seed=0, dtype=dtype)
        pipe = PortraitPipeline.from_components(
            rsd.pipe,
            rsd.adapter_state_dict,
            model_ids={"base": "random SD-1.5", "adapter": "random FaceID"},
            dtype="float16" if cuda else "float32",
        )
        size = 512 if cuda else 256
        bench(services, lambda: pipe, "full-size random SD-1.5", size, args.steps, args.repeats)


if __name__ == "__main__":
    main()
