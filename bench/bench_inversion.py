"""Benchmark of the inversion method: PEZ steps/s and fast-mode (interrogate) latency.

Runs on the tiny CLIP and on a full-size CLIP ViT-L/14 architecture with random weights
(SD-1.5's text encoder size; the tiny tokenizer's ids index the first rows of its 49408-row
embedding, so the projection vocabulary is the tiny one's few hundred words, not ~30k).

    python3 bench/bench_inversion.py [--device cpu|cuda] [--pez-steps N] [--full-steps N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.augment.clip_backend import ClipBackend, load_clip
from pipelines.augment.inversion.interrogate import interrogate
from pipelines.augment.inversion.pez import pez_invert
from pipelines.augment.tokens import TokenBudget
from pipelines.styles.catalog import load_catalog
from pipelines.tiny.sd15_faceid import CLIP_L_TEXT, CLIP_L_VOCAB, write_tiny_clip

CLIP_L_VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                 "num_attention_heads": 16, "image_size": 224, "patch_size": 14,
                 "hidden_act": "quick_gelu"}  # fmt: skip


WARM_PROMPTS = (
    "a portrait of a person",
    "a woman smiling at the camera",
    "an old man with a beard and glasses",
    "a young boy wearing a red cap",
    "a person",
)


def random_clip_l(tokenizer_dir: Path, device: torch.device) -> ClipBackend:
    """openai/clip-vit-large-patch14's architecture, random init, tiny tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    text = {**CLIP_L_TEXT, "vocab_size": CLIP_L_VOCAB, "max_position_embeddings": 77,
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id}  # fmt: skip
    config = CLIPConfig(text_config=text, vision_config=CLIP_L_VISION, projection_dim=768)
    torch.manual_seed(0)
    model = CLIPModel(config).eval().requires_grad_(False).to(device)
    proc = CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    )
    return ClipBackend(model, tok, proc, "random-clip-vit-large-patch14", device)


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(clip: ClipBackend, pez_steps: int, repeats: int) -> dict[str, float]:
    catalog = load_catalog()
    bank = catalog.modifiers_for("watercolor")
    budget = TokenBudget(clip.tokenizer)
    images = _images(3)
    t0 = time.perf_counter()
    feats = clip.image_features(images)
    _sync(clip.device)
    image_s = time.perf_counter() - t0
    pez_invert(clip, feats, prompt_len=16, steps=2)  # warm-up
    _sync(clip.device)
    t0 = time.perf_counter()
    res = pez_invert(clip, feats, prompt_len=16, steps=pez_steps)
    _sync(clip.device)
    pez_s = time.perf_counter() - t0
    # cold: the bank is encoded too; warm: new base prompts, bank features memoised
    fast = []
    for base in WARM_PROMPTS[: repeats + 1]:
        t0 = time.perf_counter()
        ir = interrogate(clip, feats, bank, budget, 8, base_prompt=base)
        _sync(clip.device)
        fast.append(time.perf_counter() - t0)
    return {
        "image_features_3_s": image_s,
        "pez_steps_per_s": pez_steps / pez_s,
        "pez_300_steps_s": 300 * pez_s / pez_steps,
        "pez_gain": res.similarity - res.initial_similarity,
        "fast_cold_s": fast[0],
        "fast_warm_s": statistics.median(fast[1:]),
        "fast_prompts_encoded": ir.evaluated,
        "fast_modifiers": len(ir.chosen),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--pez-steps", type=int, default=100, help="PEZ steps on the tiny CLIP")
    p.add_argument("--full-steps", type=int, default=5, help="PEZ steps on random CLIP-L")
    p.add_argument("--repeats", type=int, default=3, help="warm fast-mode runs (max 4)")
    p.add_argument("--no-full", action="store_true", help="skip the full-size CLIP-L")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = write_tiny_clip(Path(tmp) / "clip")
        tiny = load_clip(str(tiny_dir), local_files_only=True, device=device, allow_unverified=True)
        rows.append(("tiny CLIP (32-d)", bench(tiny, args.pez_steps, args.repeats)))
        if not args.no_full:
            t0 = time.perf_counter()
            full = random_clip_l(tiny_dir, device)
            print(f"random CLIP-L built in {time.perf_counter() - t0:.1f} s")
            rows.append(("CLIP ViT-L/14 (random)", bench(full, args.full_steps, 2)))
    keys = list(rows[0][1])
    print(f"\ndevice: {device}, torch threads: {torch.get_num_threads()}")
    print(f"{'model':24s} " + " ".join(f"{k:>20s}" for k in keys))
    for name, r in rows:
        print(f"{name:24s} " + " ".join(f"{r[k]:>20.3f}" for k in keys))


if __name__ == "__main__":
    main()
