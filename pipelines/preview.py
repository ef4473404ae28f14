"""Weight-free preview engine: OpenCV/Pillow stylisation driven by a style's recipe.

The recipe (``style.preview["recipe"]``, validated by :mod:`pipelines.styles`) is a list of ops
run in order on a square face crop; then every bank modifier found in the prompt adds its
``effects`` (summed, clipped to their ranges) so that "golden hour lighting" warms the image and
"black and white" greys it. All noise is seeded by ``(seed, purpose)``, so one seed gives the
same paper grain for every prompt and outputs differ only where the prompts differ.

Images are float32 RGB in [0, 1], shape (S, S, 3), between ops.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from pipelines.errors import InputError
from pipelines.modifiers import EFFECTS
from pipelines.styles import Style, StyleCatalog

FACE_EXPAND = 1.8  # crop side = face box side * this (before zoom)
REF_SIZE = 512  # spatial op parameters are given in pixels of a 512 px output
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


@dataclass
class _Ctx:
    """What ops need besides the image."""

    seed: int
    size: int  # output side in pixels
    center: tuple[float, float]  # face centre in output pixels (x, y)

    def px(self, value: float, side: int | None = None) -> float:
        """``value`` given at 512 px, in pixels of an image of ``side`` (default: the output)."""
        return value * (side or self.size) / REF_SIZE

    def rng(self, purpose: str) -> np.random.Generator:
        # one stream per purpose: the paper grain must not change when a modifier is added
        return np.random.default_rng([self.seed, zlib.crc32(purpose.encode())])


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


# ----------------------------------------------------------------------------- helpers


def _u8(img: np.ndarray) -> np.ndarray:
    scaled = img * np.float32(255.0) + np.float32(0.5)
    return np.clip(scaled, 0.0, 255.0, out=scaled).astype(np.uint8)


def _f32(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


_LUMA = np.array([[0.299, 0.587, 0.114]], dtype=np.float32)


def _luma(img: np.ndarray) -> np.ndarray:
    return cv2.transform(img, _LUMA)  # (S, S)


# numpy broadcasting over a last axis of 3 is ~10x slower than these OpenCV calls


def _mul(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``img * mask`` per pixel. (S, S, 3) x (S, S) -> (S, S, 3)"""
    return cv2.multiply(img, cv2.merge([mask, mask, mask]))


def _over(img: np.ndarray, color: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paint ``color`` (3,) over ``img`` with coverage ``mask`` (S, S) in [0, 1]."""
    flat = np.empty_like(img)
    flat[:] = color
    return img + _mul(flat - img, mask)


def _scale_channels(img: np.ndarray, gains: np.ndarray) -> np.ndarray:
    return cv2.transform(img, np.diag(gains).astype(np.float32))


def _hex(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def _odd(value: float, low: int = 3) -> int:
    n = max(low, round(value))
    return n if n % 2 else n + 1


def _at_scale(img: np.ndarray, scale: float, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run a slow filter at ``scale`` of the resolution and bring it back (speed)."""
    if scale >= 1.0:
        return fn(img)
    side = img.shape[0]
    small_side = max(16, round(side * scale))
    small = cv2.resize(img, (small_side, small_side), interpolation=cv2.INTER_AREA)
    return cv2.resize(fn(small), (side, side), interpolation=cv2.INTER_LINEAR)


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _radius_map(ctx: _Ctx, from_face: bool) -> np.ndarray:
    """Distance from the face centre (or image centre), 1.0 = half the diagonal. (S, S)"""
    cx, cy = ctx.center if from_face else (ctx.size / 2, ctx.size / 2)
    return _radius_cached(ctx.size, round(cx), round(cy))


@functools.lru_cache(maxsize=16)
def _radius_cached(size: int, cx: int, cy: int) -> np.ndarray:
    xs, ys = _grid(size)
    r = np.hypot(xs - cx, ys - cy) / (size * 0.7071)
    r.setflags(write=False)
    return r


def _clip01(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], in place when allowed (saves an allocation per op)."""
    out = img if img.flags.writeable and img.dtype == np.float32 else img.astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a downscaled copy (4-10x faster, same look)."""
    sigma = max(sigma, 0.3)
    side = img.shape[0]
    factor = int(min(sigma / 3.0, 8.0))
    if factor < 2:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    small_side = max(8, side // factor)
    small = cv2.resize(img, (small_side, small_side), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * small_side / side)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (xs, ys), each (S, S) float32, read-only; cached per size."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def _noise_texture(ctx: _Ctx, purpose: str, feature: float) -> np.ndarray:
    """Seeded paper-like relief in about [-1, 1]: blotches of ``feature`` px plus fine fibres.

    Cached by (seed, purpose, size, feature): the comparison renders one seed many times.
    (S, S) float32, read-only.
    """
    return _noise_cached(ctx.seed, purpose, ctx.size, float(feature))


@functools.lru_cache(maxsize=16)
def _noise_cached(seed: int, purpose: str, s: int, feature: float) -> np.ndarray:
    ctx = _Ctx(seed=seed, size=s, center=(s / 2, s / 2))
    rng = ctx.rng(purpose)
    coarse_side = max(2, int(s / max(ctx.px(feature), 1.0)))
    coarse = rng.standard_normal((coarse_side, coarse_side)).astype(np.float32)
    coarse = cv2.resize(coarse, (s, s), interpolation=cv2.INTER_CUBIC)
    fine = _gauss(rng.standard_normal((s, s)).astype(np.float32), ctx.px(0.8))
    fine /= fine.std() + 1e-6
    relief = np.clip(0.6 * coarse + 0.4 * fine, -2.5, 2.5) / 2.5
    relief.setflags(write=False)
    return relief


def _ink_mask(img: np.ndarray, ctx: _Ctx, block: int, offset: float, thickness: int) -> np.ndarray:
    """Soft mask of dark outlines (1 = ink), from an adaptive threshold. (S, S)"""
    grey = cv2.medianBlur(_u8(_luma(img)), 5)
    block_px = _odd(ctx.px(block))
    lines = cv2.adaptiveThreshold(
        grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block_px, offset
    )
    mask = (lines == 0).astype(np.float32)
    k = max(1, round(ctx.px(thickness)))
    if k > 1:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return _gauss(mask, 0.6)  # anti-aliased lines


# ----------------------------------------------------------------------------- recipe ops


def op_smooth(
    img: np.ndarray, ctx: _Ctx, sigma_s: float = 60, sigma_r: float = 0.4, scale: float = 0.5
) -> np.ndarray:
    """Edge-preserving smoothing (recursive domain transform)."""

    def run(x: np.ndarray) -> np.ndarray:
        s = ctx.px(sigma_s, x.shape[0])
        return _f32(
            cv2.edgePreservingFilter(_u8(x), flags=cv2.RECURS_FILTER, sigma_s=s, sigma_r=sigma_r)
        )

    return _at_scale(img, scale, run)


def op_bilateral(
    img: np.ndarray,
    ctx: _Ctx,
    diameter: int = 9,
    sigma: float = 75,
    passes: int = 2,
    scale: float = 0.5,
) -> np.ndarray:
    """Repeated bilateral filter: flattens skin and fabric into smooth cartoon regions."""

    def run(x: np.ndarray) -> np.ndarray:
        d = _odd(ctx.px(diameter, x.shape[0]))
        y = _u8(x)
        for _ in range(passes):
            y = cv2.bilateralFilter(y, d, sigma, ctx.px(sigma / 10, x.shape[0]))
        return _f32(y)

    return _at_scale(img, scale, run)


def op_kuwahara(img: np.ndarray, ctx: _Ctx, radius: int = 4, scale: float = 0.5) -> np.ndarray:
    """Kuwahara filter: each pixel takes the mean of its least-varied quadrant (painterly)."""

    def run(x: np.ndarray) -> np.ndarray:
        r = max(1, round(ctx.px(radius, x.shape[0])))
        k = r + 1
        lum = _luma(x)
        stack = np.dstack([x, lum, lum * lum])  # (s, s, 5)
        means, variances = [], []
        for anchor in ((r, r), (0, r), (r, 0), (0, 0)):  # the four quadrants ending at a pixel
            box = cv2.boxFilter(stack, -1, (k, k), anchor=anchor, borderType=cv2.BORDER_REFLECT)
            means.append(box[..., :3])
            variances.append(box[..., 4] - box[..., 3] ** 2)
        best = np.argmin(np.stack(variances), axis=0)  # (s, s)
        means_arr = np.stack(means)  # (4, s, s, 3)
        return np.take_along_axis(means_arr, best[None, ..., None], axis=0)[0]

    return _at_scale(img, scale, run)


def op_detail(img: np.ndarray, ctx: _Ctx, radius: float = 4, amount: float = 0.5) -> np.ndarray:
    """Local-contrast boost (large-radius unsharp mask)."""
    return img + amount * (img - _gauss(img, ctx.px(radius)))


def op_pencil(
    img: np.ndarray, ctx: _Ctx, blur: float = 14, darkness: float = 1.8, hatching: float = 0.35
) -> np.ndarray:
    """Graphite sketch: colour-dodge of the inverted blurred grey, plus seeded hatching."""
    grey = _luma(img)
    inv_blur = _gauss(1.0 - grey, ctx.px(blur))
    sketch = np.clip(grey / np.maximum(1.0 - inv_blur, 1e-3), 0.0, 1.0) ** darkness
    if hatching > 0:
        noise = ctx.rng("hatching").standard_normal(grey.shape).astype(np.float32)
        n = _odd(ctx.px(11))
        kernel = np.eye(n, dtype=np.float32)[::-1] / n  # 45-degree strokes
        strokes = cv2.filter2D(noise, -1, kernel)
        strokes = np.clip(strokes / (strokes.std() + 1e-6), 0.0, 2.0) / 2.0
        shadow = _smoothstep(0.2, 0.8, 1.0 - _gauss(grey, ctx.px(3)))
        sketch = sketch * (1.0 - hatching * 0.6 * shadow * strokes)
    return cv2.merge([sketch, sketch, sketch])


def op_quantize(img: np.ndarray, ctx: _Ctx, colors: int = 12) -> np.ndarray:
    """Flat colour regions: reduce to ``colors`` colours (fast octree, no dithering)."""
    pil = Image.fromarray(_u8(img), "RGB")
    q = pil.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return _f32(np.asarray(q.convert("RGB")))


def op_posterize(img: np.ndarray, ctx: _Ctx, levels: int = 4) -> np.ndarray:
    """``levels`` tones per channel."""
    return np.round(img * (levels - 1)) / (levels - 1)


def op_outline(
    img: np.ndarray,
    ctx: _Ctx,
    block: int = 9,
    offset: float = 7,
    thickness: int = 1,
    color: str = "#000000",
) -> np.ndarray:
    """Dark ink lines along edges, drawn over the image."""
    return _over(img, _hex(color), _ink_mask(img, ctx, block, offset, thickness))


def op_color_bleed(img: np.ndarray, ctx: _Ctx, sigma: float = 6, amount: float = 0.7) -> np.ndarray:
    """Colour running past edges: blur the chroma, keep most of the lightness."""
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    bled = _gauss(ycc, ctx.px(sigma))
    weights = np.array([amount * 0.3, amount, amount], np.float32)  # per channel: Y, Cr, Cb
    ycc = ycc + _scale_channels(bled - ycc, weights)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def op_wet_edges(img: np.ndarray, ctx: _Ctx, strength: float = 0.4, width: float = 2) -> np.ndarray:
    """Pigment pooling: darken the borders of colour regions, as watercolour dries."""
    lum = _gauss(_luma(img), ctx.px(1))
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1)
    edge = _gauss(np.hypot(gx, gy), ctx.px(width))
    edge /= np.percentile(edge, 99) + 1e-6
    return _mul(img, 1.0 - strength * 0.5 * np.clip(edge, 0.0, 1.0))


def op_paper(
    img: np.ndarray, ctx: _Ctx, strength: float = 0.3, scale: float = 6, tone: str = "#f5f0e6"
) -> np.ndarray:
    """Paper: tint the whites to ``tone`` and add seeded fibre relief."""
    relief = _noise_texture(ctx, "paper", scale)
    return _mul(_scale_channels(img, _hex(tone)), 1.0 + strength * 0.3 * relief)


def op_canvas(img: np.ndarray, ctx: _Ctx, strength: float = 0.3, period: int = 4) -> np.ndarray:
    """Woven canvas: a seeded-jitter weave pattern multiplied in."""
    s = ctx.size
    p = max(ctx.px(period), 2.0)
    xs, ys = _grid(s)
    jitter = _gauss(ctx.rng("canvas").standard_normal((s, s)).astype(np.float32), p) * p
    warp = np.sin(2 * np.pi * (xs + jitter) / p)
    weft = np.sin(2 * np.pi * (ys - jitter) / p)
    weave = 0.5 * (warp * np.sign(weft) + weft * np.sign(warp))  # over-under threads
    return _mul(img, (1.0 + strength * 0.18 * weave).astype(np.float32))


def op_halftone(
    img: np.ndarray, ctx: _Ctx, cell: int = 7, strength: float = 0.45, angle: float = 45
) -> np.ndarray:
    """Printed dots: dark dots on a rotated grid, bigger where the image is darker."""
    s = ctx.size
    c = max(ctx.px(cell), 3.0)
    xs, ys = _grid(s)
    a = math.radians(angle)
    u = (xs * math.cos(a) + ys * math.sin(a)) / c
    v = (-xs * math.sin(a) + ys * math.cos(a)) / c
    dist = np.hypot(u - np.round(u), v - np.round(v))  # 0 at a dot centre, up to 0.71
    darkness = 1.0 - _gauss(_luma(img), c / 2)
    radius = 0.62 * np.sqrt(np.clip(darkness, 0.0, 1.0))
    dots = np.clip((radius - dist) * c, 0.0, 1.0)  # ~1 px anti-aliasing
    return _mul(img, (1.0 - strength * dots).astype(np.float32))


def op_palette(
    img: np.ndarray, ctx: _Ctx, colors: tuple[str, ...] = (), mix: float = 0.8
) -> np.ndarray:
    """Snap every pixel to the nearest palette colour (in Lab)."""
    pal = np.stack([_hex(c) for c in colors])  # (K, 3)
    lut = _palette_lut(tuple(colors))  # (32, 32, 32) palette index per RGB cell
    cell = np.minimum((img * 32).astype(np.int32), 31)  # (S, S, 3)
    snapped = pal[lut[cell[..., 0], cell[..., 1], cell[..., 2]]]
    return img * (1 - mix) + snapped * mix


@functools.lru_cache(maxsize=32)
def _palette_lut(colors: tuple[str, ...]) -> np.ndarray:
    """Nearest palette index (Lab distance) for each cell of a 32^3 RGB grid."""
    pal = np.stack([_hex(c) for c in colors])  # (K, 3)
    centres = (np.arange(32, dtype=np.float32) + 0.5) / 32
    rgb = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1)  # (32, 32, 32, 3)
    lab = cv2.cvtColor(rgb.reshape(1, -1, 3), cv2.COLOR_RGB2Lab)[0]  # (32768, 3)
    pal_lab = cv2.cvtColor(pal[None], cv2.COLOR_RGB2Lab)[0]  # (K, 3)
    d = ((lab[:, None, :] - pal_lab[None]) ** 2).sum(-1)  # (32768, K)
    lut = np.argmin(d, axis=1).reshape(32, 32, 32)
    lut.setflags(write=False)
    return lut


def op_gradient_map(
    img: np.ndarray, ctx: _Ctx, colors: tuple[str, ...] = (), mix: float = 0.7
) -> np.ndarray:
    """Map lightness onto a colour ramp, dark to light."""
    grey = _u8(_luma(img))
    lut = _ramp(tuple(colors), 256).reshape(256, 1, 3)  # (256, 1, 3) float32
    mapped = cv2.LUT(cv2.merge([grey, grey, grey]), lut)
    return cv2.addWeighted(img, 1 - mix, mapped, mix, 0)


@functools.lru_cache(maxsize=32)
def _ramp(colors: tuple[str, ...], n: int) -> np.ndarray:
    """``n`` colours evenly interpolated through ``colors``. (n, 3) float32, read-only"""
    pal = np.stack([_hex(c) for c in colors])  # (K, 3)
    stops = np.linspace(0.0, 1.0, len(pal))
    t = np.linspace(0.0, 1.0, n)
    ramp = np.stack([np.interp(t, stops, pal[:, ch]) for ch in range(3)], -1).astype(np.float32)
    ramp.setflags(write=False)
    return ramp


@functools.lru_cache(maxsize=8)
def _diagonal_ramp(colors: tuple[str, ...], size: int) -> np.ndarray:
    """``colors`` running from the top-left to the bottom-right corner. (S, S, 3), read-only"""
    ramp = _ramp(colors, 2 * size - 1)
    xs, ys = _grid(size)
    out = ramp[(xs + ys).astype(np.int64)]
    out.setflags(write=False)
    return out


def op_neon_edges(
    img: np.ndarray,
    ctx: _Ctx,
    colors: tuple[str, ...] = ("#ff2bd6", "#00e5ff"),
    width: int = 2,
    glow: float = 8,
    strength: float = 1.5,
) -> np.ndarray:
    """Glowing coloured edges, screened over the image; colour ramps across the frame."""
    grey = cv2.GaussianBlur(_u8(_luma(img)), (5, 5), 0)
    med = float(np.median(grey))
    edges = cv2.Canny(grey, 0.5 * med, 1.2 * med + 20).astype(np.float32) / 255.0
    k = max(1, round(ctx.px(width)))
    if k > 1:
        edges = cv2.dilate(edges, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    light = _mul(_diagonal_ramp(tuple(colors), ctx.size), edges)
    light = _clip01(strength * (light + 1.5 * _gauss(light, ctx.px(glow))))
    return 1.0 - cv2.multiply(1.0 - img, 1.0 - light)


def op_relight(
    img: np.ndarray, ctx: _Ctx, angle: float = 135, strength: float = 0.35
) -> np.ndarray:
    """Soft key light from ``angle`` (degrees, 90 = top) and a rounded highlight: CG shading."""
    s = ctx.size
    xs, ys = _grid(s)
    a = math.radians(angle)
    ramp = ((xs / s - 0.5) * math.cos(a) - (ys / s - 0.5) * math.sin(a)) * 2  # -1..1 toward light
    lum = _luma(img)
    form = _gauss(lum, ctx.px(12)) - _gauss(lum, ctx.px(40))  # large-scale shape
    shade = 1.0 + strength * (0.35 * ramp + 1.2 * form)
    highlight = _smoothstep(0.55, 1.0, _gauss(lum, ctx.px(6))) * strength * 0.3
    return _mul(img, shade.astype(np.float32)) + cv2.merge([highlight] * 3).astype(np.float32)


def op_mosaic(
    img: np.ndarray, ctx: _Ctx, cells: int = 600, border: int = 2, color: str = "#141210"
) -> np.ndarray:
    """Glass pieces: seeded jittered Voronoi cells filled with their mean colour, leaded."""
    s = ctx.size
    rng = ctx.rng("mosaic")
    n = max(2, round(math.sqrt(cells)))
    grid = (np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(-1, 2) + 0.5) / n
    pts = np.clip((grid + rng.uniform(-0.4, 0.4, grid.shape) / n) * s, 0, s - 1).astype(int)
    seeds = np.ones((s, s), np.uint8)
    seeds[pts[:, 1], pts[:, 0]] = 0
    _, labels = cv2.distanceTransformWithLabels(
        seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    flat = labels.ravel()
    count = np.bincount(flat).astype(np.float32)
    fill = np.stack(
        [np.bincount(flat, img[..., ch].ravel()) / np.maximum(count, 1) for ch in range(3)], -1
    )
    out = fill[labels].astype(np.float32)
    if border > 0:
        lead = np.zeros((s, s), np.float32)
        lead[:, 1:] += labels[:, 1:] != labels[:, :-1]
        lead[1:, :] += labels[1:, :] != labels[:-1, :]
        k = max(1, round(ctx.px(border)))
        lead = cv2.dilate(np.minimum(lead, 1.0), np.ones((k, k), np.uint8))
        out = _over(out, _hex(color), _gauss(lead, 0.6))
    return out


def op_adjust(img: np.ndarray, ctx: _Ctx, **effects: float) -> np.ndarray:
    """The modifier effects, used as a recipe step."""
    return apply_effects(img, ctx, effects)


OPS: dict[str, Callable[..., np.ndarray]] = {
    "smooth": op_smooth,
    "bilateral": op_bilateral,
    "kuwahara": op_kuwahara,
    "detail": op_detail,
    "pencil": op_pencil,
    "quantize": op_quantize,
    "posterize": op_posterize,
    "outline": op_outline,
    "color_bleed": op_color_bleed,
    "wet_edges": op_wet_edges,
    "paper": op_paper,
    "canvas": op_canvas,
    "halftone": op_halftone,
    "palette": op_palette,
    "gradient_map": op_gradient_map,
    "neon_edges": op_neon_edges,
    "relight": op_relight,
    "mosaic": op_mosaic,
    "adjust": op_adjust,
}

# ----------------------------------------------------------------------------- effects

_SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)
_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64
)
_GREY = np.repeat(_LUMA.astype(np.float64), 3, axis=0)  # (3, 3): every channel -> luma


def apply_effects(img: np.ndarray, ctx: _Ctx, effects: Mapping[str, float]) -> np.ndarray:
    """Apply effects in a fixed order: spatial, colour and tone, light, surface.

    (S, S, 3) float32 in [0, 1] -> same. Colour and tone effects are all affine in RGB, so
    they are composed into one 3x4 matrix and applied in a single pass.
    """
    e = {k: float(v) for k, v in effects.items() if v and k != "zoom"}
    if not e:
        return img
    img = np.array(img, dtype=np.float32)  # a copy: the clips below work in place
    # spatial
    if "blur" in e:
        img = _gauss(img, ctx.px(8.0 * e["blur"]))
    if "sharpen" in e:
        img = cv2.addWeighted(
            img, 1 + 1.5 * e["sharpen"], _gauss(img, ctx.px(1.5)), -1.5 * e["sharpen"], 0
        )
    if "focus" in e:  # shallow depth of field around the face
        far = _smoothstep(0.25, 0.75, _radius_map(ctx, from_face=True)).astype(np.float32)
        img = img + _mul(_gauss(img, ctx.px(8.0 * e["focus"])) - img, far)
    if "posterize" in e:
        levels = round(24 - 21 * e["posterize"])
        img = np.round(_clip01(img) * (levels - 1)) / (levels - 1)
    if "edges" in e:
        img = _over(img, np.full(3, 0.08, np.float32), _ink_mask(img, ctx, 9, 6, 1) * e["edges"])
    # colour and tone
    affine = _color_matrix(e)
    if affine is not None:
        img = cv2.transform(img, affine)
    img = _clip01(img)
    # light
    if "glow" in e:
        bloom = _gauss(np.clip(img - 0.55, 0.0, 1.0) / 0.45, ctx.px(14)) * e["glow"]
        img = 1.0 - cv2.multiply(1.0 - img, 1.0 - np.clip(bloom, 0.0, 1.0))
    if "vignette" in e:
        fall = _smoothstep(0.35, 1.0, _radius_map(ctx, from_face=False))
        img = _mul(img, (1.0 - 0.65 * e["vignette"] * fall).astype(np.float32))
    # surface
    if "texture" in e:
        relief = _noise_texture(ctx, "texture", 5)
        img = _mul(img, (1.0 + 0.3 * e["texture"] * relief).astype(np.float32))
    if "grain" in e:
        noise = ctx.rng("grain").standard_normal(img.shape[:2], dtype=np.float32)
        noise *= 0.09 * e["grain"]
        img = img + cv2.merge([noise, noise, noise])
    return _clip01(img)


def _color_matrix(e: Mapping[str, float]) -> np.ndarray | None:
    """Compose the colour and tone effects, in order, into one (3, 4) affine RGB map."""
    m = np.eye(4)  # homogeneous: rows act on (r, g, b, 1)

    def then(linear: np.ndarray, offset: float = 0.0) -> None:
        step = np.eye(4)
        step[:3, :3] = linear
        step[:3, 3] = offset
        m[:] = step @ m

    eye = np.eye(3)
    if "hue" in e:  # rotate about the grey axis in YIQ: keeps luma
        a = math.radians(e["hue"])
        rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        then(np.linalg.inv(_TO_YIQ) @ rot @ _TO_YIQ)
    if "saturation" in e:
        then(_GREY + (eye - _GREY) * (1.0 + e["saturation"]))
    if "warmth" in e:
        w = e["warmth"]
        then(np.diag([1 + 0.22 * w, 1 + 0.04 * w, 1 - 0.22 * w]))
    if "tint" in e:
        t = e["tint"]
        then(np.diag([1 + 0.12 * t, 1 - 0.15 * t, 1 + 0.12 * t]))
    if "monochrome" in e:
        then(eye * (1 - e["monochrome"]) + _GREY * e["monochrome"])
    if "sepia" in e:
        then(eye * (1 - e["sepia"]) + _SEPIA * e["sepia"])
    if "pastel" in e:  # desaturate, then lift toward white
        p = e["pastel"]
        then((_GREY + (eye - _GREY) * (1 - 0.45 * p)) * (1 - 0.35 * p), 0.35 * p)
    if "brightness" in e:  # + : toward white, - : toward black
        b = e["brightness"]
        then(eye * (1 - 0.35 * abs(b)), 0.35 * b if b > 0 else 0.0)
    if "contrast" in e:  # about mid grey
        c = 1.0 + e["contrast"]
        then(eye * c, 0.5 * (1 - c))
    if "fade" in e:  # lifted blacks, dimmer whites
        f = e["fade"]
        then(eye * (1 - 0.28 * f), 0.18 * f)
    if np.allclose(m, np.eye(4)):
        return None
    return m[:3].astype(np.float32)
