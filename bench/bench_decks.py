"""Decks: what measuring costs, and rows/s of a deck vs the live /compare path.

1. Measures: a 4-output row (raw, template, learned, inversion) with and without the
   automatic measures, interleaved; prints the median row times and their ratio. Then the added
   cost of each human-preference measure (PickScore, HPSv2): the same rendered row measured
   without any, with one, and with both, interleaved.
2. Deck render, one process (the CLI's path: ComparisonService per row, images, row files,
   manifest) vs the live /compare API per row (gradio_client against the app): rows/s, images/s.
3. With --processes N: the same deck under torchrun (one process per GPU, or gloo CPU
   processes), wall time including process start, and the scaling efficiency vs 1 process.

  python bench/bench_decks.py                    # tiny engine, CPU or the GPU there is
  python bench/bench_decks.py --processes 2      # + torchrun with 2 processes
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from pipelines.app.bootstrap import build_services, deck_comparison  # noqa: E402
from pipelines.core.request import CompareRequest  # noqa: E402
from pipelines.core.settings import Settings  # noqa: E402
from pipelines.decks.spec import load_spec  # noqa: E402

METHODS = ["raw", "template", "learned", "inversion"]


def images_dir() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images"


def write_spec(folder: Path, size: int, steps: int) -> Path:
    selfies = folder / "selfies"
    selfies.mkdir(parents=True)
    Image.open(images_dir() / "Tom_Hanks_54745.png").save(selfies / "hanks.png")
    group = Image.open(images_dir() / "t1.jpg").convert("RGB")
    group.crop((0, 0, 400, 400)).save(selfies / "group_left.jpg")
    spec = {
        "deck": "bench",
        "selfies": "selfies",
        "styles": ["watercolor", "anime"],
        "methods": ["raw", "template", "learned"],
        "prompts": ["a portrait of a person"],
        "seeds": [1, 2],
        "generation": {"num_inference_steps": steps, "height": size, "width": size},
    }
    path = folder / "deck.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def row_request(services, size: int, steps: int) -> CompareRequest:
    """The benches' 4-method watercolor row, t1.jpg as its style reference."""
    return CompareRequest.from_settings(
        services.settings,
        style="watercolor",
        prompt="a portrait of a person",
        methods=METHODS,
        seed=1,
        num_inference_steps=steps,
        height=size,
        width=size,
        reference_images=(Image.open(images_dir() / "t1.jpg").convert("RGB"),),
    )


def bench_measures(services, size: int, steps: int, repeats: int) -> None:
    svc = services.comparison
    selfie = images_dir() / "t1.jpg"
    request = row_request(services, size, steps)
    measurer = svc.measurer
    svc.compare(selfie, request)  # warm-up: pipeline, CLIP, face models, learned gains
    with_m, without, measure_only, shares = [], [], [], []
    for _ in range(repeats):  # interleaved, so machine load hits both sides alike
        svc.measurer = None
        t0 = time.perf_counter()
        svc.compare(selfie, request)
        without.append(time.perf_counter() - t0)
        svc.measurer = measurer
        t0 = time.perf_counter()
        res = svc.compare(selfie, request)
        with_m.append(time.perf_counter() - t0)
        measure_only.append(res.timings["measure"])
        # within one row: robust to other work on the machine, which the medians are not
        shares.append(res.timings["total"] / (res.timings["total"] - res.timings["measure"]))
    a, b = statistics.median(without), statistics.median(with_m)
    print(f"\n## Measures on a 4-output row ({size} px, {steps} steps, {repeats} pairs)\n")
    print("| row without | row with | measure stage | ratio of medians | ratio within each row |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| {a:.3f} s | {b:.3f} s | {statistics.median(measure_only):.3f} s | {b / a:.3f} | "
        f"{statistics.median(shares):.3f} (min {min(shares):.3f}, max {max(shares):.3f}) |"
    )


def bench_preference(services, size: int, steps: int, repeats: int) -> None:
    """The added cost per 4-output row of each preference measure: one rendered row measured
    by the app's measurer with no preference scorer, each alone and both (models loaded first,
    as in a running app), interleaved so machine load weighs on every variant alike."""
    from pipelines.measurer import OutputMeasurer

    svc = services.comparison
    measurer = svc.measurer
    selfie = Image.open(images_dir() / "t1.jpg").convert("RGB")
    res = svc.compare(images_dir() / "t1.jpg", row_request(services, size, steps))
    rendered = [o for o in res.outputs if o.image is not None]
    if not rendered:
        raise SystemExit(f"no method rendered: {[o.error for o in res.outputs]}")
    # a 4-output row even when a method cannot run here: the cost follows the image count
    outputs = [replace(rendered[i % len(rendered)], method=m) for i, m in enumerate(METHODS)]
    face = services.engine.face.get().analyze_loaded(selfie)
    style = services.catalog.get("watercolor")
    judges = measurer.preference
    for lazy in judges.values():
        lazy.get()  # loaded once, as in a running app: the first row pays the load alone

    def variant(names: tuple[str, ...]) -> OutputMeasurer:
        return OutputMeasurer(
            measurer.face,
            measurer.clip,
            measurer.scorer,
            measurer.judge,
            references=measurer.references,
            preference={n: judges[n] for n in names},
        )

    variants = {"none": (), **{n: (n,) for n in judges}, "both": tuple(judges)}
    measurers = {k: variant(v) for k, v in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for key, m in measurers.items():
            t0 = time.perf_counter()
            m.measure(outputs, selfie, face, "a portrait of a person", style)
            times[key].append(time.perf_counter() - t0)
    base = statistics.median(times["none"])
    judge = {n: lazy.get().judge for n, lazy in judges.items()}
    n = len(outputs)
    print(f"\n## Preference measures on a {n}-output row ({size} px; {repeats} rounds)\n")
    print("| measures | measure stage (median) | added per row | added per output |")
    print("| --- | --- | --- | --- |")
    for key, values in times.items():
        med = statistics.median(values)
        name = {"none": "identity, CLIP, learned only", "both": "+ both"}.get(key, f"+ {key}")
        if key in judge:
            name += f" ({judge[key]})"
        added = "—" if key == "none" else f"{(med - base) * 1000:+.1f} ms"
        per = "—" if key == "none" else f"{(med - base) * 1000 / len(outputs):+.1f} ms"
        print(f"| {name} | {med * 1000:.1f} ms | {added} | {per} |")


def random_vit_h_scorer(name: str = "pickscore") -> tuple[Any, float, float]:
    """A preference scorer of the real size (CLIP ViT-H-14, PickScore's and HPSv2's shape) with
    random weights built in code (compute does not depend on the weights, and the real ones
    cannot be downloaded here), placed as load_preference places it: half precision on a GPU,
    float32 on a CPU. Returns (scorer, billions of parameters, seconds to build)."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    from pipelines.preference.scorer import PreferenceScorer
    from pipelines.tiny.tokenizer import write_tiny_clip_tokenizer

    tokenizer_dir = write_tiny_clip_tokenizer(Path(tempfile.mkdtemp(prefix="bench-pref-")))
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
        ),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_dir)),
    )
    config = CLIPConfig(  # laion/CLIP-ViT-H-14-laion2B-s32B-b79K's shape
        text_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                     "num_attention_heads": 16, "hidden_act": "gelu",
                     "vocab_size": len(processor.tokenizer)},
        vision_config={"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                       "num_attention_heads": 16, "patch_size": 14, "image_size": 224,
                       "hidden_act": "gelu"},
        projection_dim=1024,
    )  # fmt: skip
    t0 = time.perf_counter()
    model = CLIPModel(config).eval().requires_grad_(False)
    built = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters()) / 1e9
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = model.to(device, dtype)
    scorer = PreferenceScorer(name, model, processor, "random ViT-H-14", device, True)
    return scorer, params, built


def bench_preference_full_size(repeats: int) -> None:
    """One preference model at the real size with random weights (:func:`random_vit_h_scorer`).
    Times :meth:`PreferenceScorer.score` on a 4-output row."""
    scorer, params, built = random_vit_h_scorer()
    device, dtype = scorer.device, next(scorer.model.parameters()).dtype
    images = [Image.open(images_dir() / "t1.jpg").convert("RGB").resize((512, 512))] * 4
    scorer.score(images, "warm-up")
    first, cached = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        scorer.score(images, f"a portrait of a person {i}, Watercolor")  # a new text: encoded
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scorer.score(images, f"a portrait of a person {i}, Watercolor")  # the cached text
        cached.append(time.perf_counter() - t0)
    where = f"{params:.2f} B parameters, {dtype} on {device.type}"
    print(f"\n## One preference model at full size (CLIP ViT-H-14, {where}, random weights "
          f"built in {built:.0f} s; {repeats} rounds)\n")  # fmt: skip
    print("| row | new text (median) | text cached (median) |")
    print("| --- | --- | --- |")
    print(f"| 4 outputs, 512 px | {statistics.median(first):.2f} s | "
          f"{statistics.median(cached):.2f} s |")  # fmt: skip


def bench_deck(services, settings: Settings, size: int, steps: int, processes: int) -> None:
    """Each row rendered by the deck path and by the live /compare API, alternately, so that
    other work on the machine weighs on both sides alike."""
    from gradio_client import Client, handle_file

    from demo import build_demo
    from pipelines.decks.manifest import merge
    from pipelines.decks.render import _render_row, prepare_folder, request_for

    tmp = Path(tempfile.mkdtemp(prefix="bench-decks-"))
    spec_path = write_spec(tmp, size, steps)
    spec = load_spec(spec_path, settings)
    rows = spec.rows()
    out = tmp / "deck"
    prepare_folder(spec, out)
    compare = deck_comparison(services).compare  # what the CLI renders with
    compare(rows[0].selfie.path, request_for(spec, settings, rows[0]), lambda *_: None)  # warm
    demo = build_demo(services)
    demo.queue(default_concurrency_limit=4)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    deck_s = live_s = 0.0
    images = 0
    try:
        client = Client(demo.local_url, verbose=False)
        warm = handle_file(str(rows[0].selfie.path))
        client.predict(warm, "watercolor", "p", ["raw"], 1, api_name="/compare")
        for row in rows:  # the live path renders with the app's settings: same size and steps
            t0 = time.perf_counter()
            n, _ = _render_row(spec, row, out, settings, compare)
            deck_s += time.perf_counter() - t0
            images += n
            t0 = time.perf_counter()
            client.predict(
                handle_file(str(row.selfie.path)),
                row.style,
                row.prompt,
                list(spec.methods),
                row.seed,
                api_name="/compare",
            )
            live_s += time.perf_counter() - t0
    finally:
        demo.close()
    t0 = time.perf_counter()
    merge(out, (r.row_id for r in rows))
    deck_s += time.perf_counter() - t0
    n_rows = len(rows)
    print(f"\n## Deck of {n_rows} rows x {len(spec.methods)} methods ({size} px, {steps} steps)\n")
    print("| path | wall | rows/s | images/s |")
    print("| --- | --- | --- | --- |")
    print(f"| deck render, 1 process (rows, images, row files, manifest) | {deck_s:.2f} s | "
          f"{n_rows / deck_s:.2f} | {images / deck_s:.2f} |")  # fmt: skip
    print(f"| live /compare per row (gradio_client) | {live_s:.2f} s | {n_rows / live_s:.2f} | "
          f"{images / live_s:.2f} |")  # fmt: skip
    if processes > 1:
        bench_processes(spec_path, settings, processes, n_rows, images)


def bench_processes(spec_path: Path, settings: Settings, n: int, rows: int, images: int) -> None:
    env = {**os.environ, "BECOME_DATA_DIR": str(settings.data_dir)}
    walls = {}
    for procs in (1, n):
        out = Path(tempfile.mkdtemp(prefix=f"bench-decks-{procs}p-"))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)]
        cmd += ["-m", "pipelines.decks", "render", str(spec_path), "--out", str(out)]
        cmd.append("--no-progress")
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        walls[procs] = time.perf_counter() - t0
    speedup = walls[1] / walls[n]
    print(f"\n## {n} processes (torchrun; wall time includes process start and model load)\n")
    print("| processes | wall | rows/s | images/s | scaling efficiency |")
    print("| --- | --- | --- | --- | --- |")
    for procs, wall in walls.items():
        eff = "1.00" if procs == 1 else f"{speedup / n:.2f}"
        print(f"| {procs} | {wall:.1f} s | {rows / wall:.2f} | {images / wall:.2f} | {eff} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--measures-only", action="store_true", help="skip the deck part")
    parser.add_argument(
        "--preference-only", action="store_true", help="only the preference measures' cost"
    )
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="also time one preference model at CLIP-H size (random weights; ~4 GB of memory)",
    )
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-decks-data-"))
    settings = Settings.from_env(
        {
            "BECOME_ENGINE": "tiny",
            "BECOME_DATA_DIR": str(data),
            "BECOME_STEPS": str(args.steps),
            "BECOME_SIZE": str(args.size),
        }
    )
    services = build_services(settings)
    import torch

    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"# bench_decks: tiny engine on {where}, torch {torch.__version__}")
    if not args.preference_only:
        bench_measures(services, args.size, args.steps, args.repeats)
    bench_preference(services, args.size, args.steps, max(args.repeats, 15))
    if args.full_size:
        bench_preference_full_size(3)
    if args.measures_only or args.preference_only:
        return
    bench_deck(services, settings, args.size, args.steps, args.processes)


if __name__ == "__main__":
    main()
