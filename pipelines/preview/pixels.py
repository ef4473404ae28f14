"""Shared pixel primitives of the preview engine: the op context and OpenCV/numpy helpers.

Used by both the recipe ops (:mod:`pipelines.preview.ops`) and the modifier effects
(:mod:`pipelines.preview.effects`). All noise is seeded by ``(seed, purpose)`` through
:meth:`_Ctx.rng`, so one seed gives the same paper grain for every prompt.

Images are float32 RGB in [0, 1], shape (S, S, 3), between ops.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

REF_SIZE = 512  # spatial op parameters are given in pixels of a 512 px output


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
        """A generator seeded by ``(seed, purpose)``, independent of every other purpose."""
        # one stream per purpose: the paper grain must not change when a modifier is added
        return np.random.default_rng([self.seed, zlib.crc32(purpose.encode())])


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
