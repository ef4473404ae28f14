"""Weight-free preview engine: OpenCV/Pillow stylisation driven by a style's recipe.

The recipe (``style.preview["recipe"]``, validated by :mod:`pipelines.styles.catalog`) is a
list of ops run in order on a square face crop; then every bank modifier found in the prompt
adds its ``effects`` (summed, clipped to their ranges) so that "golden hour lighting" warms
the image and "black and white" greys it. All noise is seeded by ``(seed, purpose)``, so one
seed gives the same paper grain for every prompt and outputs differ only where the prompts differ.

This module checks the inputs, crops the face and runs the recipe then the effects; the ops live
in :mod:`pipelines.preview.ops`, the effects in :mod:`pipelines.preview.effects` and their shared
helpers in :mod:`pipelines.preview.pixels`.

Images are float32 RGB in [0, 1], shape (S, S, 3), between ops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from pipelines.core.errors import InputError
from pipelines.preview.effects import apply_effects
from pipelines.preview.ops import OPS
from pipelines.preview.pixels import _clip01, _Ctx, _u8
from pipelines.styles.catalog import Style, StyleCatalog
from pipelines.styles.modifiers import EFFECTS

FACE_EXPAND = 1.8  # crop side = face box side * this (before zoom)
MIN_SIZE, MAX_SIZE = 64, 2048
_EXIF_ORIENTATION = 0x0112


class PreviewInputError(InputError):
    """A render_preview argument the engine cannot use; the message names it."""


@dataclass
class PreviewResult:
    """A stylised preview and what produced it."""

    image: Image.Image
    applied: list[tuple[str, Mapping[str, float]]]  # (modifier text, its effects), prompt order
    effects: dict[str, float] = field(default_factory=dict)  # summed and clipped
    crop_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (left, top, right, bottom) in the input


def render_preview(
    image: Image.Image,
    style: Style,
    prompt: str,
    catalog: StyleCatalog,
    *,
    face_bbox: tuple[float, float, float, float] | None = None,
    seed: int = 0,
    size: int = 512,
) -> PreviewResult:
    """Stylise the face crop of ``image`` as ``style``, plus the effects of ``prompt``'s modifiers.

    ``face_bbox`` is (x1, y1, x2, y2) in ``image`` pixels; the crop is a square around it,
    ``FACE_EXPAND`` times its longer side (centre crop when None). Deterministic for a seed.
    """
    _check_inputs(image, style, prompt, face_bbox, seed, size)
    found = catalog.find_modifiers(prompt, style)
    effects = combine_effects(m.effects for m in found)

    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # transposing copies: only when needed
        image = ImageOps.exif_transpose(image)
    box = crop_box(image.size, face_bbox, effects.get("zoom", 0.0))
    crop = np.asarray(image.crop(box).convert("RGB"))  # (s, s, 3) uint8
    interp = cv2.INTER_AREA if crop.shape[0] >= size else cv2.INTER_CUBIC
    img = cv2.resize(crop, (size, size), interpolation=interp).astype(np.float32) / 255.0

    center = (size / 2, size / 2)
    if face_bbox is not None:  # the crop may be shifted off-centre by the image border
        x1, y1, x2, y2 = face_bbox
        k = size / (box[2] - box[0])
        center = (((x1 + x2) / 2 - box[0]) * k, ((y1 + y2) / 2 - box[1]) * k)
    ctx = _Ctx(seed=seed, size=size, center=center)

    for step in style.preview["recipe"]:
        params = {k: v for k, v in step.items() if k != "op"}
        img = _clip01(OPS[step["op"]](img, ctx, **params))
    img = apply_effects(img, ctx, effects)

    out = Image.fromarray(_u8(img), "RGB")
    applied = [(m.text, dict(m.effects)) for m in found]
    return PreviewResult(image=out, applied=applied, effects=effects, crop_box=box)


def combine_effects(effect_maps: Any) -> dict[str, float]:
    """Sum effects of several modifiers, clipped to each effect's range; zeros dropped."""
    total: dict[str, float] = {}
    for effects in effect_maps:
        for name, value in effects.items():
            total[name] = total.get(name, 0.0) + float(value)
    clipped = {n: min(max(v, EFFECTS[n][0]), EFFECTS[n][1]) for n, v in total.items()}
    return {n: v for n, v in clipped.items() if v != 0.0}


def crop_box(
    image_size: tuple[int, int],
    face_bbox: tuple[float, float, float, float] | None,
    zoom: float = 0.0,
) -> tuple[int, int, int, int]:
    """Square (left, top, right, bottom) around the face, inside the image.

    ``zoom`` in [-1, 1] halves (+1) or doubles (-1) the crop side.
    """
    w, h = image_size
    scale = 2.0 ** (-zoom)
    if face_bbox is None:
        side, cx, cy = min(w, h) * min(scale, 1.0), w / 2, h / 2
    else:
        x1, y1, x2, y2 = face_bbox
        side = max(x2 - x1, y2 - y1) * FACE_EXPAND * scale
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = round(min(max(side, 8.0), w, h))
    left = round(min(max(cx - side / 2, 0), w - side))
    top = round(min(max(cy - side / 2, 0), h - side))
    return left, top, left + side, top + side


def _check_inputs(
    image: object,
    style: object,
    prompt: object,
    face_bbox: object,
    seed: object,
    size: object,
) -> None:
    if not isinstance(image, Image.Image):
        raise PreviewInputError(f"image must be a PIL.Image.Image, got {type(image).__name__}")
    if min(image.size) < 8:
        raise PreviewInputError(f"image of {image.size[0]}x{image.size[1]} px is too small: use 8+")
    if not isinstance(style, Style):
        raise PreviewInputError(f"style must be a Style from the catalog, got {style!r}")
    if not isinstance(prompt, str):
        raise PreviewInputError(f"prompt must be a str, got {type(prompt).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise PreviewInputError(f"seed={seed!r} is not allowed: use an integer >= 0")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise PreviewInputError(f"size={size!r} is not allowed: use {MIN_SIZE} to {MAX_SIZE}")
    if face_bbox is None:
        return
    try:
        x1, y1, x2, y2 = (float(v) for v in face_bbox)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise PreviewInputError(
            f"face_bbox={face_bbox!r} is not allowed: use (x1, y1, x2, y2) numbers or None"
        ) from None
    w, h = image.size
    finite = all(math.isfinite(v) for v in (x1, y1, x2, y2))
    if not finite or x2 <= x1 or y2 <= y1 or x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise PreviewInputError(
            f"face_bbox={face_bbox!r} is not allowed: need x1 < x2, y1 < y2, "
            f"overlapping the {w}x{h} image"
        )
