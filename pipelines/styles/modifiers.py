"""Prompt modifiers: the ``Modifier`` record, the preview effects it may carry, and conflicts.

In a bank a modifier is ``"text"`` or ``{"text": ..., "group": ..., "excludes": [...],
"effects": {...}}``. ``group`` marks mutually exclusive modifiers ("black and white" vs "vibrant
colors"), ``excludes`` names other groups it contradicts, and ``effects`` are what the
weight-free preview engine does when the modifier appears in a prompt. Banks are loaded and
checked by :mod:`pipelines.styles.catalog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Preview effects a modifier may carry: name -> allowed (low, high). Values of all modifiers
# found in a prompt are summed, then clipped to this range.
EFFECTS: dict[str, tuple[float, float]] = {
    "warmth": (-1.0, 1.0),  # + orange, - blue
    "tint": (-1.0, 1.0),  # + magenta, - green
    "brightness": (-1.0, 1.0),
    "contrast": (-1.0, 1.0),
    "saturation": (-1.0, 1.0),  # -1 = grey
    "hue": (-180.0, 180.0),  # degrees
    "monochrome": (0.0, 1.0),
    "sepia": (0.0, 1.0),
    "pastel": (0.0, 1.0),  # desaturate and lift toward white
    "fade": (0.0, 1.0),  # lifted blacks, matte look
    "vignette": (0.0, 1.0),
    "glow": (0.0, 1.0),  # bloom of the highlights
    "grain": (0.0, 1.0),
    "texture": (0.0, 1.0),  # paper / canvas relief
    "blur": (0.0, 1.0),
    "sharpen": (0.0, 1.0),
    "posterize": (0.0, 1.0),
    "edges": (0.0, 1.0),  # dark ink outlines
    "focus": (0.0, 1.0),  # shallow depth of field: blur away from the face
    "zoom": (-1.0, 1.0),  # + tighter crop on the face, - wider
}


@dataclass(frozen=True)
class Modifier:
    """One prompt modifier from a bank."""

    text: str  # as it appears in a prompt, e.g. "golden hour lighting"
    category: str  # "lighting", "camera", "medium", "color", "mood", "detail", "composition", ...
    group: str | None  # mutually-exclusive group: at most one modifier of a group per prompt
    effects: Mapping[str, float] = field(hash=False)  # preview effects, e.g. {"warmth": 0.3}
    source: str = "global"  # "global" or the style id
    excludes: tuple[str, ...] = ()  # other groups it contradicts ("starry night sky": time_of_day)


def conflicts(a: Modifier, b: Modifier) -> bool:
    """True when ``a`` and ``b`` should not both be in one prompt."""
    same_text = a.text.lower() == b.text.lower()
    same_group = a.group is not None and a.group == b.group
    return same_text or same_group or a.group in b.excludes or b.group in a.excludes
