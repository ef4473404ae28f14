"""One prepared GPU check: every model family's speed, compiled speed, capacity and per-row costs.

    python bench/gpu_check.py                           # one CUDA GPU, within 8 minutes
    python bench/gpu_check.py --device cpu --smoke      # the same code on the tiny stand-ins

For every family at its default size and steps, with random full-size weights built from the
real configs (no download; ``--smoke``: the tiny stand-ins at 64 px, 2 steps):
  * a 4-method row (4 prompts, one call): latency (median of 5 after a warm-up), images/s, the
    ratio to the FLOP floor (UNet families: bench_generation's FlopCounterMode count x denoiser
    calls / the GPU's dense half-precision peak) and peak GPU memory;
  * the same row with ``BECOME_COMPILE`` (``torch.compile``) and, where the ``spaces`` package
    can load its AoT helpers, compiled ahead of time as on ZeroGPU (CUDA only: inductor's C++
    build takes minutes per shape on a CPU);
  * through the real ComparisonService (stand-in face models, a random full-size safety checker,
    CLIP ViT-L/14 for the measures, PickScore and HPSv2 at their CLIP ViT-H-14 size): the safety
    checker's and the measures' cost per row;
  * 1, 4 and 8 people at once, batched vs one at a time (bench_capacity.py), and the people
    served with a wait under 30 s when everyone clicks at once.
Stages run in that order of importance and are skipped, with the reason in the table, once the
time budget (``--budget-s``, 450 s: the 8-minute limit less start-up) would be overrun.
Prints one Markdown table and writes the figures to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_capacity as capacity_bench
import bench_generation as gen

from pipelines.core.families import FAMILIES, ModelFamily
from pipelines.core.settings import Settings
from pipelines.models.runtime import RuntimeOptions

PROMPTS = 4  # a 4-method row
UNET_BATCH = 8  # prompts per denoiser call on CUDA (runtime.default_batch_size)


@dataclass
class Plan:
    """What this run measures, and until when."""

    device: str
    smoke: bool
    repeats: int
    capacity_repeats: int
    people: tuple[int, ...]
    peak_tflops: float | None
    deadline: float  # time.monotonic() after which no stage starts
    cache: Path
    skipped: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def size(self, family: ModelFamily) -> int:
        return 64 if self.smoke else family.size

    def steps(self, family: ModelFamily) -> int:
        return 2 if self.smoke else family.num_inference_steps

    def skip(self, what: str, why: str) -> None:
        self.skipped.append(f"{what}: {why}")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def build_pipeline(family: ModelFamily, plan: Plan, options: RuntimeOptions) -> Any:
    """The family's pipeline: random full size from the real configs, or the tiny stand-in."""
    options = replace(options, device=plan.device)
    if plan.smoke:
        from pipelines.models.registry import pipeline_class
        from pipelines.tiny import TINY_WEIGHTS

        base, adapter, weight = TINY_WEIGHTS[family.id](plan.cache)
        return pipeline_class(family.id).from_pretrained(
            base, adapter, weight, device=plan.device, local_files_only=True, options=options
        )
    return gen.full_pipeline(family)(options)


def measure_row(pipe: Any, family: ModelFamily, plan: Plan, variant: str) -> dict[str, Any]:
    """Latency of a 4-prompt row in one call (median after a warm-up), images/s, x FLOP floor
    and peak memory."""
    size, steps = plan.size(family), plan.steps(family)
    case = gen.Case(family, variant, lambda _: pipe, size, steps)
    _free()
    t0 = time.perf_counter()
    gen.row_seconds(pipe, case, PROMPTS)  # warm-up: kernel choice, allocator, compilation
    warm_up = time.perf_counter() - t0
    times = []
    for _ in range(plan.repeats):
        _sync()
        times.append(gen.row_seconds(pipe, case, PROMPTS))
    latency = statistics.median(times)
    row: dict[str, Any] = {
        "family": family.id,
        "variant": variant,
        "device": pipe.device.type,
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "px": size,
        "steps": steps,
        "row_s": latency,
        "row_s_all": times,
        "warm_up_s": warm_up,
        "images_per_s": PROMPTS / latency,
        "speed": dict(pipe.speed),
    }
    if plan.peak_tflops and not plan.smoke:
        gflops = gen.unet_gflops(family, size, rows=2 * PROMPTS)  # guidance doubles the rows
        if gflops is not None:
            calls = steps + (1 if family.id == "sd15-faceid" else 0)  # PNDM: one call more
            row["floor_s"] = gflops * calls / (plan.peak_tflops * 1e3)
            row["x_floor"] = latency / row["floor_s"]
    if pipe.device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def random_safety_checker(device: torch.device) -> Any:
    """CompVis' checker architecture (CLIP ViT-L/14 image tower, 224 px), random weights."""
    from bench_inversion import CLIP_L_VISION
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessorPil

    from pipelines.models.safety import SafetyChecker

    torch.manual_seed(0)
    config = CLIPConfig(vision_config=CLIP_L_VISION, projection_dim=768)
    model = StableDiffusionSafetyChecker(config).eval().requires_grad_(False).to(device)
    if device.type == "cuda":
        model = model.half()
    proc = CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    )
    return SafetyChecker(model, proc, "random CLIP ViT-L/14 safety checker")


def comparison_service(family: ModelFamily, pipe: Any, plan: Plan, data: Path) -> tuple[Any, Any]:
    """The real ComparisonService over ``pipe``, with its safety checker and measures:
    the tiny engine's in smoke mode, else random full-size ones. Returns (service, settings)."""
    from pipelines.app.bootstrap import build_services
    from pipelines.app.service import ComparisonService
    from pipelines.models.renderer import DiffusionRenderer

    size, steps = plan.size(family), plan.steps(family)
    settings = Settings.from_env(
        {
            "BECOME_ENGINE": "tiny",
            "BECOME_MODEL_FAMILY": family.id,
            "BECOME_DATA_DIR": str(data / family.id),
            "BECOME_SIZE": str(size),
            "BECOME_STEPS": str(steps),
        }
    )
    services = build_services(settings)
    tiny = services.engine.renderer
    assert isinstance(tiny, DiffusionRenderer)
    safety, measurer = tiny.safety, services.comparison.measurer
    if not plan.smoke:
        from bench_inversion import random_clip_l

        from pipelines.augment.clip_backend import LazyClip
        from pipelines.core.lazy import Lazy
        from pipelines.measurer import OutputMeasurer
        from pipelines.tiny.sd15_faceid import ensure_tiny_models

        device = pipe.device
        checker = random_safety_checker(device)
        safety = Lazy(lambda: checker, checker.model_id)
        tokenizer = ensure_tiny_models(settings.cache_dir / "tiny").clip_dir
        clip = random_clip_l(tokenizer, device)
        measurer = OutputMeasurer(
            services.engine.face,
            LazyClip(lambda: clip),
            services.scorer.get,
            preference=random_preference(),
        )
    renderer = DiffusionRenderer(
        lambda: pipe, RuntimeOptions(batch_size=UNET_BATCH), safety=safety, family=family.id
    )
    engine = replace(services.engine, renderer=renderer)
    svc = ComparisonService(
        engine, services.catalog, services.registry, scorer=services.scorer, measurer=measurer
    )
    return svc, settings


def random_preference() -> dict[str, Any]:
    """PickScore and HPSv2 at their real size (CLIP ViT-H-14 each) with random weights, as the
    measurer takes them (smoke mode keeps the tiny engine's stand-ins)."""
    from bench_decks import random_vit_h_scorer

    from pipelines.preference.scorer import LazyPreference, PreferenceSource

    lazies = {}
    for name in ("pickscore", "hpsv2"):
        scorer = random_vit_h_scorer(name)[0]
        source = PreferenceSource(name, "random ViT-H-14", "tiny CLIP tokenizer")
        lazies[name] = LazyPreference(source, lambda _source, s=scorer: s)
    return lazies


def row_costs(svc: Any, settings: Settings, family: ModelFamily, plan: Plan) -> dict[str, float]:
    """One person's row through the service: its total, render, safety and measures seconds
    (medians after a warm-up)."""
    from pipelines.core.request import CompareRequest

    request = CompareRequest.from_settings(
        settings,
        style="watercolor",
        prompt="a portrait of a person",
        methods=capacity_bench.METHODS,
        seed=1,
        num_inference_steps=plan.steps(family),
        height=plan.size(family),
        width=plan.size(family),
    )
    selfie = capacity_bench.photo()
    svc.compare(selfie, request)  # warm-up: face cache, learned gains, CLIP, checker
    keys = ("total", "render", "render.safety", "measure")
    seen: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(max(1, plan.repeats // 2)):
        timings = svc.compare(selfie, request).timings
        for k in keys:
            seen[k].append(float(timings.get(k, 0.0)))
    return {f"{k.replace('render.', '')}_s": statistics.median(v) for k, v in seen.items()}


def compiled_variants(
    family: ModelFamily, plan: Plan, rows: list[dict[str, Any]], eager_s: float
) -> None:
    """The row with ``BECOME_COMPILE`` (torch.compile) and compiled ahead of time (spaces)."""
    if plan.device == "cpu" or not torch.cuda.is_available():
        plan.skip(f"{family.id} compiled", "CUDA only (inductor's C++ build: minutes per shape)")
        return
    # compilation costs minutes for the big denoisers: start only with room for it
    need = 120 + 10 * eager_s
    if plan.left() < need:
        plan.skip(f"{family.id} torch.compile", f"time budget ({plan.left():.0f} s left)")
    else:
        pipe = build_pipeline(family, plan, RuntimeOptions(compile=True))
        rows.append(measure_row(pipe, family, plan, "torch.compile"))
        del pipe
        _free()
    try:
        import spaces  # noqa: F401

        from pipelines.models.runtime import aot_compile
    except Exception as exc:  # not installed, or its AoT module cannot load here
        plan.skip(f"{family.id} AoT", f"spaces AoT helpers unavailable ({exc})")
        return
    if plan.left() < need:
        plan.skip(f"{family.id} AoT", f"time budget ({plan.left():.0f} s left)")
        return
    try:
        pipe = build_pipeline(family, plan, RuntimeOptions())
        size = plan.size(family)
        denoiser = getattr(pipe.pipe, pipe.denoiser)
        aot_compile(denoiser, {PROMPTS: lambda: pipe.warm_up_call(PROMPTS, size, size)})
        pipe.speed["aot"] = True
        rows.append(measure_row(pipe, family, plan, "AoT (spaces)"))
    except Exception as exc:  # the check goes on; the table says what failed
        plan.skip(f"{family.id} AoT", f"failed: {type(exc).__name__}: {exc}"[:300])
    finally:
        pipe = None
        _free()


def check_family(family: ModelFamily, plan: Plan, data: Path) -> list[dict[str, Any]]:
    """Every stage for one family; the eager row first, compiled variants last."""
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    pipe = build_pipeline(family, plan, RuntimeOptions())
    build_s = time.perf_counter() - t0
    eager = measure_row(pipe, family, plan, "eager")
    eager["build_s"] = build_s
    rows.append(eager)
    if plan.left() < 20 * eager["row_s"]:
        plan.skip(f"{family.id} costs and capacity", f"time budget ({plan.left():.0f} s left)")
    else:
        svc, settings = comparison_service(family, pipe, plan, data)
        eager.update(row_costs(svc, settings, family, plan))
        # k people batched + one at a time: about 2 x sum(k) rows per repeat
        need = 2 * sum(plan.people) * eager["total_s"] * plan.capacity_repeats
        if plan.left() < need:
            plan.skip(f"{family.id} capacity", f"time budget (needs ~{need:.0f} s)")
        else:
            eager["capacity"] = capacity_bench.capacity(
                svc,
                settings,
                plan.size(family),
                plan.steps(family),
                plan.capacity_repeats,
                plan.people,
            )
        del svc
    del pipe
    _free()
    compiled_variants(family, plan, rows, eager["row_s"])
    return rows


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: Sequence[dict[str, Any]], plan: Plan) -> str:
    """The one table: a line per family and variant; costs and capacity on the eager line."""
    people = "/".join(str(k) for k in plan.people)
    head = [
        "family",
        "variant",
        "px",
        "steps",
        "row s (median)",
        "images/s",
        "x FLOP floor",
        "peak GiB",
        "safety s/row",
        "measures s/row",
        f"batched/alone, {people} people",
        "served < 30 s (batched / alone)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cap = r.get("capacity") or []
        ratios = "/".join(f"{c['ratio']:.2f}" for c in cap) or "–"
        served = "–"
        if cap:
            served = f"{cap[-1]['served_30s_batched']} / {cap[-1]['served_30s_alone']}"
        floor = "–"
        if "x_floor" in r:
            floor = f"{r['x_floor']:.2f} (floor {r['floor_s']:.3f} s)"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["family"],
                    r["variant"],
                    str(r["px"]),
                    str(r["steps"]),
                    _fmt(r["row_s"]),
                    _fmt(r["images_per_s"], ".2f"),
                    floor,
                    _fmt(r.get("peak_gib"), ".1f"),
                    _fmt(r.get("safety_s")),
                    _fmt(r.get("measure_s")),
                    ratios,
                    served,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What ran the check."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import spaces

        info["spaces"] = getattr(spaces, "__version__", "installed")
    except ImportError:
        info["spaces"] = None
    return info


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the check without autograd; grad mode is restored after (tests run it in-process)."""
    with torch.no_grad():
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="tiny stand-ins, 64 px, 2 steps")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--repeats", type=int, default=5, help="timed rows after the warm-up")
    ap.add_argument("--capacity-repeats", type=int, default=1)
    ap.add_argument("--people", type=int, nargs="*", default=list(capacity_bench.PEOPLE))
    ap.add_argument("--budget-s", type=float, default=None, help="default 450 (smoke: 170)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="GPU dense fp16 peak")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = ap.parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA GPU here; use --device cpu --smoke")
    if args.device == "cpu" and not args.smoke:
        ap.error("--device cpu runs full-size models for hours: add --smoke")

    start = time.monotonic()
    budget = args.budget_s or (170.0 if args.smoke else 450.0)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    plan = Plan(
        device=args.device,
        smoke=args.smoke,
        repeats=args.repeats,
        capacity_repeats=args.capacity_repeats,
        people=tuple(args.people),
        peak_tflops=gen.peak_tflops(args.peak_tflops),
        deadline=time.monotonic() + budget,
        cache=work / "tiny",
    )
    rows: list[dict[str, Any]] = []
    for fid in args.families:
        family = FAMILIES[fid]
        if plan.left() <= 0:
            plan.skip(fid, "time budget spent")
            continue
        rows.extend(check_family(family, plan, work / "data"))
        print(f"  {fid}: done, {plan.left():.0f} s of the budget left", file=sys.stderr)
    table = markdown(rows, plan)
    report = {
        "machine": machine(),
        "smoke": plan.smoke,
        "peak_tflops": plan.peak_tflops,
        "rows": rows,
        "skipped": plan.skipped,
        "wall_s": time.monotonic() - start,
    }
    print(f"\n{table}\n")
    for line in plan.skipped:
        print(f"- skipped {line}")
    print(f"\n{report['machine']}; {report['wall_s']:.0f} s; figures in {args.out}")
    args.out.write_text(json.dumps(report, indent=2, default=str))
    report["table"] = table
    return report


if __name__ == "__main__":
    main()
