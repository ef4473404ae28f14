"""What a method proposes: ranked candidate prompts, each with the trace of why it reads so.

Value types shared by the methods (``pipelines.augment``), the results and every reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TraceStep:
    """One piece of a final prompt and why it is there."""

    part: str  # the text that was added (a modifier, recovered tokens, the template, ...)
    source: (
        str  # where it came from: "template", "style bank", "global bank", "pez", "learned", ...
    )
    reason: str  # human-readable: "raises predicted score by +0.12", "CLIP sim 0.31 to references"


@dataclass(frozen=True)
class Candidate:
    """A ranked prompt proposed by a method. ``prompt`` is exactly what gets rendered."""

    prompt: str
    method: str
    score: float | None = None  # the method's own score (higher is better); None if it has none
    negative_prompt: str | None = None  # None = the style's negative prompt
    trace: tuple[TraceStep, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
