"""Markdown for captions and traces, from the JSON form of a comparison output."""

from __future__ import annotations

from typing import Any


def caption_md(out: dict[str, Any], method: str | None) -> str:
    """Caption under an image; ``method=None`` hides the method (blind mode)."""
    if out.get("error"):
        name = f"**{method}** — " if method else ""
        return f"{name}⚠️ not available: {out['error']}"
    parts = [f"**{method}**"] if method else ["**?** (hidden until you rate)"]
    if method and out.get("score") is not None:
        parts.append(f"score {out['score']:.3f}")
    if method and out.get("tokens") is not None:
        parts.append(f"{out['tokens']}/77 tokens")
    return " · ".join(parts)


def trace_md(out: dict[str, Any]) -> str:
    if out.get("error"):
        return out["error"]
    rows = out.get("trace") or []
    if not rows:
        return "No trace."
    lines = ["| part | from | why |", "|---|---|---|"]
    for t in rows:
        part = str(t["part"]).replace("|", "\\|")
        lines.append(f"| {part} | {t['source']} | {t['reason']} |")
    return "\n".join(lines)
