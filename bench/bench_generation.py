"""A 4-method row per model family: one call with 4 prompts batched vs one at a time, the
ratio to the FLOP floor (SD-1.5, SDXL) and what each CUDA speed option changes.

    python bench/bench_generation.py                    # tiny models of every family, CPU
    python bench/bench_generation.py --flops            # + UNet GFLOPs per call (no compute)
    python bench/bench_generation.py --full             # + full-size random weights: on CPU
                                                        #   SD-1.5 at 256 px; on CUDA every
                                                        #   family at its real size
    python bench/bench_generation.py --full --ablate    # + each speed option on/off (CUDA)

Full-size models are random (no download): latency depends on shapes, not values. Batched and
sequential runs are interleaved in one process, so their ratio is measured under one load.
FLOP floor = UNet GFLOPs per call (counted with torch's FlopCounterMode on the meta device)
x UNet calls / the GPU's dense half-precision peak (printed; override with --peak-tflops).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.core.families import FAMILIES, ModelFamily
from pipelines.models.registry import pipeline_class
from pipelines.models.runtime import RuntimeOptions
from pipelines.tiny import TINY_WEIGHTS

PROMPTS = [
    "a watercolor portrait of a person, soft wash",
    "a 3d cartoon portrait of a person, studio lighting",
    "an anime portrait of a person, cel shading",
    "an oil painting portrait of a person, dramatic light",
]
# dense (no sparsity) fp16/bf16 tensor-core peaks, TFLOPS, by a substring of the device name
PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 PCIe": 756.5,
    "H100": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10G": 70.0,
    "T4": 65.1,
}


@dataclass
class Case:
    family: ModelFamily
    label: str
    build: Callable[[RuntimeOptions], Any]  # -> the family's pipeline
    size: int
    steps: int


def identity(family: ModelFamily, size: int) -> dict[str, Any]:
    """The identity argument of the family's pipeline: a face embedding or a selfie."""
    if family.uses_faceid:
        v = np.random.default_rng(0).standard_normal(512).astype(np.float32)
        return {"face_embedding": v / np.linalg.norm(v)}
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    return {"image": Image.fromarray(rgb)}


def row_seconds(pipe: Any, case: Case, batch_size: int) -> float:
    """Seconds for the 4 prompts of a row in one call at ``batch_size`` prompts per UNet call."""
    t0 = time.perf_counter()
    out = pipe(
        PROMPTS,
        num_inference_steps=case.steps,
        height=case.size,
        width=case.size,
        batch_size=batch_size,
        **identity(case.family, case.size),
    )
    assert len(out.images) == len(PROMPTS)
    return time.perf_counter() - t0


def unet_gflops(family: ModelFamily, size: int, rows: int) -> float | None:
    """GFLOPs of one UNet call on ``rows`` latents at ``size`` px (None for transformers)."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from pipelines.tiny.sd15_faceid import SD15_UNET
    from pipelines.tiny.sdxl_faceid import SDXL_UNET

    config = {"sd15-faceid": SD15_UNET, "sdxl-faceid": SDXL_UNET}.get(family.id)
    if config is None:
        return None
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
        x = torch.randn(rows, 4, size // 8, size // 8)
        text = torch.randn(rows, 77, config["cross_attention_dim"])
        extra = {}
        if config.get("addition_embed_type") == "text_time":
            extra = {"text_embeds": torch.randn(rows, 1280), "time_ids": torch.randn(rows, 6)}
        with FlopCounterMode(display=False) as counter:
            unet(x, torch.full((rows,), 500.0), text, added_cond_kwargs=extra or None)
    # the FaceID adapter adds 4 tokens to each cross-attention: under 1% more, not counted
    return counter.get_total_flops() / 1e9


def peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def run_case(case: Case, repeats: int, peak: float | None, options: RuntimeOptions) -> dict:
    t0 = time.perf_counter()
    pipe = case.build(options)
    load = time.perf_counter() - t0
    row_seconds(pipe, case, 4)  # warm-up: kernel selection, allocator growth, compilation
    times: dict[int, list[float]] = {4: [], 1: []}
    for _ in range(repeats):
        for bs in times:  # interleaved, so both see the same machine load
            times[bs].append(row_seconds(pipe, case, bs))
    row = {
        "family": case.family.id,
        "model": case.label,
        "device": pipe.device.type,
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "px": case.size,
        "steps": case.steps,
        "row_b4": min(times[4]),
        "row_b1": min(times[1]),
        "load": load,
        "speed": pipe.speed,
    }
    gflops = unet_gflops(case.family, case.size, rows=2 * 4)  # CFG doubles the 4 rows
    if gflops is not None:
        calls = case.steps + (1 if case.family.id == "sd15-faceid" else 0)  # PNDM: one more
        row["gflops_per_call"] = gflops
        if peak:
            row["floor"] = gflops * calls / (peak * 1e3)
            row["x_floor"] = row["row_b4"] / row["floor"]
    if pipe.device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def ablate(case: Case, repeats: int) -> list[tuple[str, str, float]]:
    """The row (batched) with each speed option changed alone, against the default; with
    what actually applied (on CPU half precision and channels-last do not)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    default = RuntimeOptions()
    variants: list[tuple[str, RuntimeOptions, bool]] = [
        ("default (half, SDPA, channels-last)", default, False),
        ("float32", RuntimeOptions(dtype="float32"), False),
        ("unfused attention (SDPA math kernel)", default, True),
        ("no channels-last", RuntimeOptions(channels_last=False), False),
    ]
    if torch.cuda.is_available():  # on CPU, inductor's C++ build takes minutes per shape
        variants.append(("torch.compile denoiser", RuntimeOptions(compile=True), False))
    out = []
    for name, options, math_only in variants:
        pipe = case.build(options)
        if options.compile:
            pipe.warm_up(case.size, case.size, max_prompts=4)
        ctx = sdpa_kernel(SDPBackend.MATH) if math_only else _nothing()
        with ctx:
            row_seconds(pipe, case, 4)
            best = min(row_seconds(pipe, case, 4) for _ in range(repeats))
        applied = f"{str(pipe.dtype).removeprefix('torch.')}, {pipe.speed}"
        out.append((name, applied, best))
        del pipe
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def cases(args: argparse.Namespace, cache: Path) -> list[Case]:
    out = []
    for family in FAMILIES.values():
        base, adapter, weight = TINY_WEIGHTS[family.id](cache)

        def tiny(options: RuntimeOptions, family=family, base=base, adapter=adapter, w=weight):
            return pipeline_class(family.id).from_pretrained(
                base, adapter, w, device=args.device, local_files_only=True, options=options
            )

        out.append(Case(family, "tiny", tiny, args.tiny_size, args.tiny_steps))
    if args.full:
        cuda = args.device != "cpu" and torch.cuda.is_available()
        for family in FAMILIES.values():
            if not cuda and family.id != "sd15-faceid":
                continue  # SDXL and klein need ~14-32 GB of float32 and minutes per step here
            steps = args.steps or (20 if family.id == "sd15-faceid" else family.num_inference_steps)
            size = family.size if cuda else args.size
            out.append(Case(family, "random full-size", full_pipeline(family), size, steps))
    return out


def full_pipeline(family: ModelFamily) -> Callable[[RuntimeOptions], Any]:
    """A builder of ``family``'s pipeline at full size with random weights (on CUDA if any)."""

    def build(options: RuntimeOptions) -> Any:
        cls = pipeline_class(family.id)
        device = "cuda" if torch.cuda.is_available() and options.device != "cpu" else "cpu"
        if family.id == "flux2-klein-edit":
            from pipelines.tiny.flux2_klein import build_random_flux2_klein

            model = build_random_flux2_klein(device=device, dtype=torch.float32)
            return cls.from_components(
                model.pipe, model_ids={"base": "random klein 4B"}, options=options, **_rt(options)
            )
        if family.id == "sdxl-faceid":
            from pipelines.tiny.sdxl_faceid import build_random_sdxl

            model = build_random_sdxl(seed=0, device=device)  # 14 GB in float32: build there
        else:
            from pipelines.tiny.sd15_faceid import build_random_sd15

            model = build_random_sd15(seed=0)
        return cls.from_components(
            model.pipe,
            model.adapter_state_dict,
            model_ids={"base": f"random {family.id}"},
            options=options,
            **_rt(options),
        )

    return build


def _rt(options: RuntimeOptions) -> dict[str, str]:
    return {"device": options.device, "dtype": options.dtype}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--full", action="store_true", help="also full-size random weights")
    ap.add_argument("--ablate", action="store_true", help="each speed option on/off (full size)")
    ap.add_argument("--flops", action="store_true", help="print UNet GFLOPs per call")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--size", type=int, default=256, help="full-size SD-1.5 side on CPU")
    ap.add_argument("--steps", type=int, default=0, help="full-size steps (0: 20 / family's)")
    ap.add_argument("--tiny-size", type=int, default=128)
    ap.add_argument("--tiny-steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=None, help="GPU dense fp16 peak")
    ap.add_argument("--cache-dir", type=Path, default=None, help="tiny model cache (default: tmp)")
    args = ap.parse_args()

    torch.set_grad_enabled(False)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    peak = peak_tflops(args.peak_tflops)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {gpu}, "
        f"peak {peak or '?'} TFLOPS (dense half precision), {len(PROMPTS)} prompts per row"
    )
    if args.flops:
        print("\n| family | px | UNet GFLOPs per call (2 x 4 rows, CFG) | per sample |")
        print("|---|---|---|---|")
        for fid, px in (("sd15-faceid", 512), ("sdxl-faceid", 1024)):
            g = unet_gflops(FAMILIES[fid], px, rows=8)
            print(f"| {fid} | {px} | {g:,.0f} | {g / 8:,.0f} |")

    options = RuntimeOptions(device=args.device)
    rows = []
    for case in cases(args, cache):
        row = run_case(case, args.repeats, peak, options)
        rows.append(row)
        print(f"  {row['family']} {row['model']}: loaded in {row['load']:.1f}s, {row['speed']}")
    header = (
        "family",
        "model",
        "device",
        "dtype",
        "px",
        "steps",
        "row batched s",
        "row one-by-one s",
        "batched/seq",
        "x FLOP floor",
        "peak GiB",
    )
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        floor = f"{r['x_floor']:.2f} (floor {r['floor']:.3f} s)" if "x_floor" in r else "–"
        mem = f"{r['peak_gib']:.1f}" if "peak_gib" in r else "–"
        print(
            f"| {r['family']} | {r['model']} | {r['device']} | {r['dtype']} | {r['px']} | "
            f"{r['steps']} | {r['row_b4']:.3f} | {r['row_b1']:.3f} | "
            f"{r['row_b4'] / r['row_b1']:.2f} | {floor} | {mem} |"
        )

    if args.ablate:
        for case in cases(args, cache):
            if case.label == "tiny" and args.full:
                continue
            print(f"\n{case.family.id} {case.label} ({case.size} px, {case.steps} steps):")
            print("| option | applied | row batched s |\n|---|---|---|")
            for name, applied, seconds in ablate(case, args.repeats):
                print(f"| {name} | {applied} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
