"""Markdown for captions and "why this prompt" of one comparison output, and :func:`plain_md`
for any text a person typed (prompts, session tags, names, comments) that Markdown shows."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.core.results import MethodOutput

# CommonMark lets any ASCII punctuation be backslash-escaped; these start emphasis, code, links,
# images, headings, lists, tables, strikethrough, autolinks (":") or Gradio's $$ LaTeX
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")


def plain_md(text: object) -> str:
    """``text`` as Markdown that shows exactly its characters, on one line.

    HTML is escaped (``<img>`` shows as text, never as an element) and Markdown control
    characters are backslash-escaped, so user text cannot add links, images, emphasis, table
    cells or headings. Newlines become spaces: a line break could end a list item.
    """
    one_line = " ".join(str(text).split())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def caption_md(out: MethodOutput, method: str | None, slot: str | None = None) -> str:
    """Caption under an image, which names its card (the image's own label is hidden: its
    toolbar cut long labels); ``method=None`` hides the method (blind mode).

    ``slot`` is the card's blind name ("Output A"): shown alone while blind, and as
    "Output A = raw" once revealed.
    """
    if method:
        name = f"**{plain_md(f'{slot} = {method}' if slot else method)}**"
    else:
        name = f"**{plain_md(slot or '?')}** · method hidden until you rate every output"
    if out.error:
        return f"{name} — ⚠️ not available: {plain_md(out.error)}"
    parts = [name]
    if method and out.same_as:
        parts.append(f"same prompt as {plain_md(out.same_as)}, so the same image")
    if method and out.score is not None:
        # the learned scorer's prediction for every method, so the numbers compare
        parts.append(f"predicted score {out.score:+.2f}")
    line = " · ".join(parts)
    if method and out.measures is not None:  # hidden in blind mode: numbers would anchor votes
        line += f"  \n{out.measures.summary()}"
    return line


def trace_md(out: MethodOutput, max_tokens: int = 77) -> str:
    """Why the final prompt is what it is: one line per part, where it came from and why."""
    if out.error:
        return plain_md(out.error)
    if not out.trace:
        return "No trace."
    # the base prompt is user text; sources and reasons are escaped alike
    lines = [
        f"- “{plain_md(t.part)}” — {plain_md(t.source)}: {plain_md(t.reason)}" for t in out.trace
    ]
    if out.tokens is not None:
        lines.append(f"- {out.tokens} of {max_tokens} text-encoder tokens used")
    if out.measures is not None:
        lines.append("")
        lines += [
            f"- measure {plain_md(name)}: {plain_md(shown)} (judged by {plain_md(judge or '—')})"
            for name, shown, judge in out.measures.details()
        ]
    return "\n".join(lines)
