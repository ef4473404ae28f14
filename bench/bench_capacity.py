"""Live-session capacity: rows per minute for 1, 4 and 8 people asking at once, their rows
rendered together in one batched call (what the Compare tab does) vs one after another.

Runs the real ComparisonService (face, 4 methods' prompts, render) on
  * the tiny engine (tiny random weights, 64 px), and
  * with --full, a full-size random SD-1.5 + FaceID adapter: 512 px fp16 on CUDA (256 px fp32
    on CPU, slow).
Each row is 4 methods; everyone uses the same style (rows with other settings render in their
own call). Batched and one-at-a-time runs are interleaved, their order alternating per repeat,
so both see the same load on a shared machine; for one person both are the same call (Gradio's
``batch=True`` queue takes whatever is waiting, up to ``max_batch_size``, and never waits for
more), so their ratio is the noise of the measurement. "Served under 30 s": the people who,
clicking all at once, get their row within 30 s when rows render 8 at a time (batched) or one
after another.

    python bench/bench_capacity.py            # tiny only
    python bench/bench_capacity.py --full     # + full-size SD-1.5 (a GPU: ~1 minute)
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

from pipelines.app.bootstrap import Services, build_services
from pipelines.app.service import ComparisonService
from pipelines.core.request import CompareRequest
from pipelines.core.settings import Settings
from pipelines.models.renderer import DiffusionRenderer, RuntimeOptions

METHODS = ["raw", "template", "learned", "inversion"]
PEOPLE = (1, 4, 8)


def photo() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"


def service(services: Services, load: Any, batch_size: int) -> ComparisonService:
    renderer = DiffusionRenderer(load, RuntimeOptions(batch_size=batch_size))
    engine = replace(services.engine, renderer=renderer)
    return ComparisonService(engine, services.catalog, services.registry, scorer=services.scorer)


def median(fn: Any, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (the machine is shared: noisy)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(a: Any, b: Any, repeats: int) -> tuple[float, float]:
    """Median wall times of ``a()`` and ``b()``, run in turn, the first alternating."""
    times: dict[Any, list[float]] = {a: [], b: []}
    for r in range(repeats):
        for fn in (a, b) if r % 2 == 0 else (b, a):
            t0 = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - t0)
    return statistics.median(times[a]), statistics.median(times[b])


def served_within(seconds_per_call: float, rows_per_call: int, wait: float = 30.0) -> int:
    """People served within ``wait`` seconds when all click at once and calls of
    ``rows_per_call`` rows, ``seconds_per_call`` each, run one after another."""
    return rows_per_call * int(wait // seconds_per_call) if seconds_per_call > 0 else 0


def capacity(
    svc: ComparisonService,
    settings: Settings,
    size: int,
    steps: int,
    repeats: int,
    people: tuple[int, ...] = PEOPLE,
) -> list[dict[str, float]]:
    """For each number of people at once: batched and one-at-a-time seconds (interleaved
    medians), their ratio and the people served within 30 s each way."""
    selfie = photo()

    def rows(k: int) -> list[tuple[Path, CompareRequest]]:
        return [
            (
                selfie,
                CompareRequest.from_settings(
                    settings,
                    style="watercolor",
                    prompt=f"a portrait of a person, take {i}",
                    methods=METHODS,
                    seed=i,
                    num_inference_steps=steps,
                    height=size,
                    width=size,
                ),
            )
            for i in range(k)
        ]

    svc.compare_many(rows(1))  # warm-up: pipeline, learned gains, face cache
    out = []
    for k in people:
        asked = rows(k)
        batched, alone = interleaved(
            lambda asked=asked: svc.compare_many(asked),
            lambda asked=asked: [svc.compare_many([r]) for r in asked],
            repeats,
        )
        out.append(
            {
                "people": k,
                "batched_s": batched,
                "alone_s": alone,
                "ratio": batched / alone,
                "served_30s_batched": served_within(batched, k) if k == max(people) else None,
                "served_30s_alone": served_within(alone / k, 1),
            }
        )
    return out


def bench(
    services: Services, load: Any, label: str, size: int, steps: int, bs: int, repeats: int
) -> None:
    svc = service(services, load, bs)
    figures = capacity(svc, services.settings, size, steps, repeats)
    print(f"\n## {label} ({size} px, {steps} steps, UNet batch {bs})")
    print("| people at once | batched: s | rows/min | one at a time: s | rows/min | ratio |")
    print("|---|---|---|---|---|---|")
    for f in figures:
        k, batched, alone = f["people"], f["batched_s"], f["alone_s"]
        print(
            f"| {k} | {batched:.2f} | {60 * k / batched:.1f} | {alone:.2f} | "
            f"{60 * k / alone:.1f} | {batched / alone:.2f} |"
        )
    last = figures[-1]
    print(
        f"\nServed within 30 s, everyone clicking at once: {last['served_30s_batched']} "
        f"batched ({last['people']} rows per call), {last['served_30s_alone']} one at a time"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also full-size random SD-1.5")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    settings = Settings.from_env({"BECOME_ENGINE": "tiny", "BECOME_DATA_DIR": str(data)})
    services = build_services(settings)
    tiny = services.engine.renderer
    assert isinstance(tiny, DiffusionRenderer)
    bench(services, lambda: tiny.pipeline, "tiny engine, CPU", 64, args.steps, 8, args.repeats)

    if args.full:
        from pipelines.models.sd15_faceid import PortraitPipeline
        from pipelines.tiny.sd15_faceid import build_random_sd15

        cuda = torch.cuda.is_available()
        rsd = build_random_sd15(seed=0, dtype=torch.float16 if cuda else torch.float32)
        pipe = PortraitPipeline.from_components(
            rsd.pipe,
            rsd.adapter_state_dict,
            model_ids={"base": "random SD-1.5", "adapter": "random FaceID"},
            dtype="float16" if cuda else "float32",
        )
        size, steps, bs = (512, 20, 8) if cuda else (256, 2, 1)
        bench(services, lambda: pipe, "full-size random SD-1.5", size, steps, bs, args.repeats)


if __name__ == "__main__":
    main()
