"""Recipe ops of the preview engine: OpenCV/Pillow stylisation steps and the ``OPS`` table.

A style's recipe (``style.preview["recipe"]``, validated against ``PREVIEW_OPS`` in
:mod:`pipelines.styles.catalog`) names these ops and their parameters; the defaults live here.
Spatial parameters are in pixels of a 512 px output and are rescaled through ``ctx.px``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from pipelines.preview.effects import apply_effects
from pipelines.preview.pixels import (
    _at_scale,
    _clip01,
    _Ctx,
    _f32,
    _gauss,
    _grid,
    _hex,
    _ink_mask,
    _luma,
    _mul,
    _noise_texture,
    _odd,
    _over,
    _scale_channels,
    _smoothstep,
    _u8,
)

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
