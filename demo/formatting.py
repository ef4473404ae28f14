"""Markdown for captions and traces of one comparison output, and :func:`plain_md` for any text
a person typed (prompts, session tags, names, comments) that a Markdown component shows."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.results import MethodOutput

# CommonMark lets any ASCII punctuation be backslash-escaped; these start emphasis, code, links,
# images, headings, lists, tables, strikethrough, autolinks (":") or Gradio's $$ LaTeX
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")


def plain_md(text: object) -> str:
    """``text`` as Markdown that shows exactly its characters, on one line.

    HTML is escaped (``<img>`` shows as text, never as an element) and Markdown control
    characters are backslash-escaped, so user text cannot add links, images, emphasis, table
    cells or headings. Newlines become spaces: a line break could end a table row.
    """
    one_line = " ".join(str(text).split())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def caption_md(out: MethodOutput, method: str | None, max_tokens: int = 77) -> str:
    """Caption under an image; ``method=None`` hides the method (blind mode)."""
    if out.error:
        name = f"**{plain_md(method)}** — " if method else ""
        return f"{name}⚠️ not available: {plain_md(out.error)}"
    parts = [f"**{plain_md(method)}**"] if method else ["**?** (hidden until you rate)"]
    if method and out.score is not None:
        parts.append(f"score {out.score:.3f}")
    if method and out.tokens is not None:
        parts.append(f"{out.tokens}/{max_tokens} tokens")
    return " · ".join(parts)


def trace_md(out: MethodOutput) -> str:
    """Why the final prompt is what it is: one table row per part."""
    if out.error:
        return plain_md(out.error)
    if not out.trace:
        return "No trace."
    lines = ["| part | from | why |", "|---|---|---|"]
    for t in out.trace:  # the base prompt is user text; sources and reasons are escaped alike
        lines.append(f"| {plain_md(t.part)} | {plain_md(t.source)} | {plain_md(t.reason)} |")
    return "\n".join(lines)
