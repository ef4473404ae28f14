"""The deck report's identity section: which judges measured identity, side by side, and the
distribution of each judge's cosine per style x method, not just its mean.

A mean hides what matters for identity: two real photos of one person sit around 0.4-0.5 with
ArcFace (buffalo_l), while a face copied from the selfie scores near 1. A method whose outputs
all score far above what a second photo would reach may be pasting the face rather than
re-drawing it, so the section gives quartiles and the share above :data:`NEAR_COPY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# the identity measures, in the order shown: the judge, then the face pack's own cosine
IDENTITY_MEASURES = ("identity", "identity_face_pack")
# far above what two real photos of one person reach with ArcFace (about 0.4-0.5): nearer a
# copy of the selfie than a new drawing of the person
NEAR_COPY = 0.8


@dataclass(frozen=True)
class Spread:
    """One judge's cosines for one style x method: count, quartiles, range, share near a copy."""

    style: str
    method: str
    measure: str
    n: int
    low: float
    q1: float
    median: float
    q3: float
    high: float
    near_copy: float  # share of outputs at or above NEAR_COPY

    def text(self) -> str:
        """ "0.46 [0.41, 0.52] (0.30 to 0.61), 0% ≥ 0.8 (n=12)"."""
        return (
            f"{self.median:.2f} [{self.q1:.2f}, {self.q3:.2f}] "
            f"({self.low:.2f} to {self.high:.2f}), "
            f"{self.near_copy:.0%} ≥ {NEAR_COPY} (n={self.n})"
        )


@dataclass(frozen=True)
class IdentitySummary:
    """Which model judged each identity measure, and each one's spread per style x method."""

    judges: dict[str, str]  # measure -> judge ("auraface/glintr100.onnx"), measures with values
    spreads: list[Spread]


def identity_summary(lines: Sequence[dict[str, Any]]) -> IdentitySummary:
    """The identity judges and spreads of a deck's manifest lines."""
    judges: dict[str, set[str]] = {}
    values: dict[tuple[str, str, str], list[float]] = {}
    for line in lines:
        measures = line.get("measures") or {}
        for name in IDENTITY_MEASURES:
            m = measures.get(name) or {}
            if m.get("value") is None:
                continue
            judges.setdefault(name, set()).add(str(m.get("judge") or "?"))
            values.setdefault((line["style"], line["method"], name), []).append(float(m["value"]))
    spreads = []
    for (style, method, name), xs in values.items():
        a = np.asarray(xs, dtype=np.float64)
        low, q1, median, q3, high = np.quantile(a, [0.0, 0.25, 0.5, 0.75, 1.0])
        spreads.append(
            Spread(
                style, method, name, int(a.size), float(low), float(q1), float(median),
                float(q3), float(high), float(np.mean(a >= NEAR_COPY)),
            )
        )  # fmt: skip
    order = {name: i for i, name in enumerate(IDENTITY_MEASURES)}
    return IdentitySummary(
        judges={n: ", ".join(sorted(judges[n])) for n in sorted(judges, key=order.__getitem__)},
        spreads=spreads,
    )


def identity_markdown(summary: IdentitySummary) -> list[str]:
    """The report's identity section (Markdown lines); empty when nothing measured identity."""
    if not summary.spreads:
        return []
    names = list(summary.judges)
    out = [
        "",
        "## Identity: each judge's distribution (median [quartiles] (range), share near a copy)",
        "",
        "Judges: " + "; ".join(f"`{n}` by **{summary.judges[n]}**" for n in names) + ". Two "
        "real photos of one person score about 0.4–0.5 with ArcFace; outputs far above that "
        f"(≥ {NEAR_COPY}) may have the selfie's face pasted in rather than re-drawn.",
        "",
        "| style | method | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    cells: dict[tuple[str, str], dict[str, Spread]] = {}
    for s in summary.spreads:
        cells.setdefault((s.style, s.method), {})[s.measure] = s
    for (style, method), per in cells.items():
        shown = [per[n].text() if n in per else "—" for n in names]
        out.append(f"| {style} | {method} | " + " | ".join(shown) + " |")
    return out
