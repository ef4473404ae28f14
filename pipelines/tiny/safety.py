"""A tiny random ``StableDiffusionSafetyChecker``, built in code, laid out as on the Hub.

Its concept thresholds stay at the class's initial 1.0, above any cosine similarity, so it
flags nothing by itself; tests lower them to make it flag everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipelines.tiny.cache import build_once
from pipelines.tiny.sd15_faceid import TINY_TEXT, TINY_VISION

TINY_SAFETY_VERSION = 1


def write_tiny_safety_checker(directory: Path, seed: int = 0) -> Path:
    """Write a tiny checker (config.json, weights, preprocessor_config.json) to ``directory``."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessorPil

    directory = Path(directory)
    config = CLIPConfig(
        text_config=dict(TINY_TEXT), vision_config=dict(TINY_VISION), projection_dim=32
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = StableDiffusionSafetyChecker(config).eval()
    model.save_pretrained(directory)
    size = TINY_VISION["image_size"]
    CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(directory)
    return directory


def ensure_tiny_safety_checker(cache_dir: Path) -> Path:
    """Build the tiny checker once into ``cache_dir/tiny-safety-v<N>/``; its folder."""

    def build(root: Path) -> dict[str, Any]:
        write_tiny_safety_checker(root / "safety_checker")
        return {"version": TINY_SAFETY_VERSION, "safety_checker": "safety_checker"}

    final = Path(cache_dir) / f"tiny-safety-v{TINY_SAFETY_VERSION}"
    return final / build_once(final, build)["safety_checker"]
