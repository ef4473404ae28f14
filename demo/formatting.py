"""Markdown for captions and traces of one comparison output."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.results import MethodOutput


def caption_md(out: MethodOutput, method: str | None, max_tokens: int = 77) -> str:
    """Caption under an image; ``method=None`` hides the method (blind mode)."""
    if out.error:
        name = f"**{method}** — " if method else ""
        return f"{name}⚠️ not available: {out.error}"
    parts = [f"**{method}**"] if method else ["**?** (hidden until you rate)"]
    if method and out.score is not None:
        parts.append(f"score {out.score:.3f}")
    if method and out.tokens is not None:
        parts.append(f"{out.tokens}/{max_tokens} tokens")
    line = " · ".join(parts)
    if method and out.measures is not None:  # hidden in blind mode: numbers would anchor votes
        line += f"  \n{out.measures.summary()}"
    return line


def trace_md(out: MethodOutput) -> str:
    """Why the final prompt is what it is: one table row per part."""
    if out.error:
        return out.error
    if not out.trace:
        return "No trace."
    lines = ["| part | from | why |", "|---|---|---|"]
    for t in out.trace:
        part = str(t.part).replace("|", "\\|")
        lines.append(f"| {part} | {t.source} | {t.reason} |")
    if out.measures is not None:
        lines += ["", "| measure | value | judged by |", "|---|---|---|"]
        for name, shown, judge in out.measures.details():
            lines.append(f"| {name} | {shown} | {judge or '—'} |".replace("\n", " "))
    return "\n".join(lines)
