"""Markdown for captions and "why this prompt" of one comparison output.

Everything a person typed (prompts, tags, names, comments) goes through :func:`plain_md`, so it
is shown as text and never rendered as HTML or Markdown.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.results import MethodOutput

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def plain_md(text: str) -> str:
    """``text`` shown literally in Markdown: HTML escaped, Markdown control characters too."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def caption_md(out: MethodOutput, method: str | None) -> str:
    """Caption under an image; ``method=None`` hides the method (blind mode)."""
    name = f"**{method}**" if method else "**?** (hidden until you rate)"
    if out.error:
        return f"{name} — ⚠️ not available: {plain_md(out.error)}"
    parts = [name]
    if method and out.same_as:
        parts.append(f"same prompt as {out.same_as}, so the same image")
    if method and out.score is not None:
        # the learned scorer's prediction for every method, so the numbers compare
        parts.append(f"predicted score {out.score:+.2f}")
    return " · ".join(parts)


def trace_md(out: MethodOutput) -> str:
    """Why the final prompt is what it is: one line per part, where it came from and why."""
    if out.error:
        return plain_md(out.error)
    if not out.trace:
        return "No trace."
    lines = [
        f"- **{plain_md(t.part)}** — {plain_md(t.source)}: {plain_md(t.reason)}" for t in out.trace
    ]
    if out.tokens is not None:
        lines.append(f"- {out.tokens} of 77 text-encoder tokens used")
    return "\n".join(lines)
