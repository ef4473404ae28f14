"""Tiny random stand-ins of the preference models (PickScore, HPSv2), built in code.

Each is a tiny ``CLIPModel`` with its tokenizer and image processor in one folder, laid out as
the real weights are on the Hub, so the measurer loads and scores them with the very code that
loads ``yuvalkirstain/PickScore_v1``. Their scores are noise; only shapes, code paths and
determinism are meaningful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.tiny.cache import build_once
from pipelines.tiny.sd15_faceid import write_tiny_clip

TINY_PREFERENCE_VERSION = 1
# one seed per measure: two different random models, so their scores differ as the real ones do
TINY_PREFERENCE_SEEDS = {"pickscore": 11, "hpsv2": 12}


def ensure_tiny_preference(cache_dir: Path) -> dict[str, Path]:
    """Build every tiny preference model once into ``cache_dir/tiny-preference-v<N>/``;
    ``{measure: folder}`` (each folder is both the model and the processor)."""

    def build(root: Path) -> dict[str, Any]:
        folders = {}
        for name, seed in TINY_PREFERENCE_SEEDS.items():
            write_tiny_clip(root / name, seed=seed)
            folders[name] = name
        return {"version": TINY_PREFERENCE_VERSION, "folders": folders}

    final = Path(cache_dir) / f"tiny-preference-v{TINY_PREFERENCE_VERSION}"
    manifest = build_once(final, build)
    return {name: final / folder for name, folder in manifest["folders"].items()}
