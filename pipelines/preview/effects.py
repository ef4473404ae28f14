"""Modifier effects of the preview engine: blur, colour, tone, light and surface adjustments.

A prompt's bank modifiers name effects (see ``EFFECTS`` in :mod:`pipelines.styles.catalog`); their
summed values are applied here in a fixed order, after the style's recipe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from pipelines.preview.pixels import (
    _LUMA,
    _clip01,
    _Ctx,
    _gauss,
    _ink_mask,
    _mul,
    _noise_texture,
    _over,
    _radius_map,
    _smoothstep,
)

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
