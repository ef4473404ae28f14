"""A deck's report: per style x method, each measure's mean with a 95% CI; once rated, the
Bradley–Terry strength with its CI, Kendall's tau of each measure against the ratings, each
measure's pairwise agreement with the raters, and per style the measure that agrees best.

Ratings are matched to outputs by (deck, row, method). For Kendall, each rated output's mean
rating (over its raters) is paired with its measure, over the whole deck and within each style.
For pairwise agreement, every two outputs of a row that one rater rated differently are a pair,
and a measure agrees when it orders them the same way (as the preference benchmarks count it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.measures import MEASURES, NO_FACE, NO_SECOND_JUDGE
from pipelines.decks.chart import Bar, Panel, draw_chart
from pipelines.decks.identity import IdentitySummary, identity_markdown, identity_summary
from pipelines.decks.manifest import read_manifest, read_skipped, read_spec_json
from pipelines.decks.stats import (
    Agreement,
    BestMeasure,
    Kendall,
    MeanCI,
    RowPairs,
    best_measure,
    kendall,
    mean_ci,
    pairwise_agreement,
    row_pairs,
)

if TYPE_CHECKING:
    from pipelines.feedback.leaderboard import LeaderboardRow
    from pipelines.feedback.store import FeedbackStore

REPORT_MD = "report.md"
REPORT_PNG = "report.png"


@dataclass(frozen=True)
class Cell:
    """One style x method of a deck: its outputs and each measure's mean with a 95% CI."""

    style: str
    method: str
    outputs: int  # outputs with an image
    unrendered: int  # outputs the method could not produce (error in the manifest)
    no_face: int  # rendered outputs in which no face was found
    measures: dict[str, MeanCI]
    reasons: dict[str, str]  # measure -> why it has no values (when it has none)


@dataclass
class DeckReport:
    """Everything the report says; :func:`write_report` also renders it to files."""

    deck: str
    folder: Path
    engine: str
    cells: list[Cell]
    skipped: list[dict[str, Any]]
    ratings: int = 0
    leaderboard: list[LeaderboardRow] = field(default_factory=list)
    kendall: dict[str, dict[str, Kendall]] = field(default_factory=dict)  # measure -> scope -> tau
    # measure -> scope -> share of rated pairs it orders like the raters
    agreement: dict[str, dict[str, Agreement]] = field(default_factory=dict)
    best: dict[str, BestMeasure] = field(default_factory=dict)  # scope -> best-agreeing measure
    identity: IdentitySummary | None = None  # both identity judges' distributions
    markdown: str = ""
    markdown_path: Path | None = None
    chart_path: Path | None = None


def build_report(
    folder: Path | str, store: FeedbackStore | None = None, *, n_boot: int = 200
) -> DeckReport:
    """Read a deck folder (and its ratings in ``store``) into a :class:`DeckReport`."""
    folder = Path(folder)
    spec = read_spec_json(folder)
    lines = read_manifest(folder)
    deck = spec["deck"]
    cells = _cells(lines)
    report = DeckReport(
        deck=deck,
        folder=folder,
        engine=lines[0]["engine"] if lines else str(spec.get("engine") or ""),
        cells=cells,
        skipped=read_skipped(folder),
        identity=identity_summary(lines),
    )
    if store is not None:
        from pipelines.feedback.leaderboard import leaderboard

        records = store.records(deck_id=deck)
        report.ratings = len(records)
        if records:
            report.leaderboard = leaderboard(records, n_boot=n_boot)
            report.kendall = measure_vs_ratings(lines, records)
            pairs = measure_pairs(lines, records)
            report.agreement = {
                name: {scope: pairwise_agreement(rows, n_boot) for scope, rows in per.items()}
                for name, per in pairs.items()
            }
            scopes = sorted({s for per in pairs.values() for s in per}, key=_scope_order)
            for scope in scopes:
                best = best_measure({n: per.get(scope, {}) for n, per in pairs.items()}, n_boot)
                if best is not None:
                    report.best[scope] = best
    report.markdown = to_markdown(report)
    return report


def write_report(
    folder: Path | str, store: FeedbackStore | None = None, *, n_boot: int = 200
) -> DeckReport:
    """:func:`build_report`, then write ``report.md`` and ``report.png`` into the deck folder."""
    report = build_report(folder, store, n_boot=n_boot)
    report.markdown_path = report.folder / REPORT_MD
    report.chart_path = report.folder / REPORT_PNG
    draw_chart(chart_panels(report)).save(report.chart_path)
    report.markdown_path.write_text(
        report.markdown + f"\n![measures per style x method]({REPORT_PNG})\n", encoding="utf-8"
    )
    return report


def chart_panels(report: DeckReport) -> list[Panel]:
    """The chart's panels: one per measure with values (mean, 95% CI), then the Bradley–Terry
    strengths once the deck is rated."""
    panels: list[Panel] = []
    for name in MEASURES:
        bars: list[Bar] = [
            (f"{c.style} · {c.method}", m.mean, m.low, m.high)
            for c in report.cells
            if (m := c.measures[name]).mean is not None
        ]
        if bars:
            panels.append((f"{name} (mean, 95% CI)", bars))
    bt: list[Bar] = [
        (
            f"{r.style} · {r.method}" + (" (blind)" if r.blind else ""),
            r.bt_strength,
            r.bt_low,
            r.bt_high,
        )
        for r in report.leaderboard
    ]
    if bt:
        panels.append(("Bradley–Terry strength (95%: prior's posterior or row bootstrap)", bt))
    agree: list[Bar] = [
        (f"{scope} · {name}", a.share, a.low, a.high)
        for name, per in report.agreement.items()
        for scope, a in sorted(per.items(), key=lambda kv: _scope_order(kv[0]))
        if a.share is not None
    ]
    if agree:
        panels.append(
            ("pairwise agreement with the raters (0.5 = chance; 95% row bootstrap)", agree)
        )
    return panels


def _cells(lines: Sequence[dict[str, Any]]) -> list[Cell]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault((line["style"], line["method"]), []).append(line)
    cells = []
    for (style, method), group in groups.items():
        rendered = [g for g in group if g["image"]]
        measures, reasons = {}, {}
        for name in MEASURES:
            values = [
                m[name]["value"]
                for g in rendered
                if (m := g.get("measures")) and m.get(name, {}).get("value") is not None
            ]
            measures[name] = mean_ci(values)
            if not values:
                why = {(g.get("measures") or {}).get(name, {}).get("reason") for g in rendered}
                reasons[name] = "; ".join(sorted(str(w) for w in why if w)) or "not measured"
        no_face = sum(1 for g in rendered if _identity_reason(g) == NO_FACE)
        cells.append(
            Cell(
                style=style,
                method=method,
                outputs=len(rendered),
                unrendered=len(group) - len(rendered),
                no_face=no_face,
                measures=measures,
                reasons=reasons,
            )
        )
    return cells


def _identity_reason(line: dict[str, Any]) -> str | None:
    return (line.get("measures") or {}).get("identity", {}).get("reason")


def measure_vs_ratings(
    lines: Sequence[dict[str, Any]], records: Sequence[Any]
) -> dict[str, dict[str, Kendall]]:
    """Kendall's tau of each measure against each rated output's mean rating.

    Scopes: ``"all"`` (the whole deck) and each style. An output's ratings are averaged over its
    raters first, so a row rated by many people does not count many times.
    """
    sums: dict[tuple[str, str], list[int]] = {}
    for r in records:
        sums.setdefault((r.row_id, r.method), []).append(r.rating)
    by_output = {(line["row_id"], line["method"]): line for line in lines}
    out: dict[str, dict[str, Kendall]] = {}
    for name in MEASURES:
        pairs: dict[str, tuple[list[float], list[float]]] = {}
        for key, ratings in sums.items():
            line = by_output.get(key)
            value = ((line or {}).get("measures") or {}).get(name, {}).get("value")
            if value is None:
                continue
            mean_rating = sum(ratings) / len(ratings)
            for scope in ("all", line["style"]):  # type: ignore[index]
                xs, ys = pairs.setdefault(scope, ([], []))
                xs.append(float(value))
                ys.append(mean_rating)
        out[name] = {scope: kendall(xs, ys) for scope, (xs, ys) in pairs.items()}
    return out


def measure_pairs(
    lines: Sequence[dict[str, Any]], records: Sequence[Any]
) -> dict[str, dict[str, dict[str, RowPairs]]]:
    """Each measure's rated pairs, ``{measure: {scope: {row: (agreements, pairs)}}}``.

    A pair is two outputs of one row that one rater (voter) rated differently and that the
    measure measured both of; scopes are ``"all"`` and each style."""
    ratings: dict[tuple[str, str], dict[str, int]] = {}
    for r in records:
        ratings.setdefault((r.row_id, r.voter_key), {})[r.method] = r.rating
    by_output = {(line["row_id"], line["method"]): line for line in lines}
    out: dict[str, dict[str, dict[str, RowPairs]]] = {}
    for name in MEASURES:
        per_scope: dict[str, dict[str, RowPairs]] = {}
        for (row, _voter), rated in ratings.items():
            values, marks, style = [], [], None
            for method, rating in rated.items():
                line = by_output.get((row, method))
                value = ((line or {}).get("measures") or {}).get(name, {}).get("value")
                if value is None:
                    continue
                values.append(float(value))
                marks.append(float(rating))
                style = line["style"]  # type: ignore[index]
            if len(values) < 2:
                continue
            agree, n = row_pairs(values, marks)
            if not n:
                continue
            for scope in ("all", style):
                rows = per_scope.setdefault(str(scope), {})
                a0, n0 = rows.get(row, (0.0, 0))
                rows[row] = (a0 + agree, n0 + n)  # a row's raters together: resampled as one
        if per_scope:
            out[name] = per_scope
    return out


def to_markdown(report: DeckReport) -> str:
    """The report as Markdown: measures table, skipped rows, and the ratings once there are."""
    # the face pack's own identity is a column only when a second judge measured beside it
    # (decks rendered before it existed say "not measured")
    unjudged = {NO_SECOND_JUDGE, "not measured"}
    shown = [
        n
        for n in MEASURES
        if not report.cells or not all(c.reasons.get(n) in unjudged for c in report.cells)
    ]
    out = [
        f"# Deck `{report.deck}`",
        "",
        f"Engine **{report.engine}** · {sum(c.outputs for c in report.cells)} outputs in "
        f"{len({c.style for c in report.cells})} styles · {len(report.skipped)} rows skipped · "
        f"{report.ratings} ratings.",
        "",
        "## Automatic measures (mean [95% CI] (n))",
        "",
        "| style | method | outputs | no face | " + " | ".join(shown) + " |",
        "|---|---|---|---|" + "---|" * len(shown),
    ]
    for c in report.cells:
        values = [c.measures[n].text() if c.measures[n].n else "—" for n in shown]
        extra = f" (+{c.unrendered} not rendered)" if c.unrendered else ""
        out.append(
            f"| {c.style} | {c.method} | {c.outputs}{extra} | {c.no_face} | "
            + " | ".join(values)
            + " |"
        )
    missing = sorted(
        {f"{n}: {why}" for c in report.cells for n, why in c.reasons.items() if n in shown}
    )
    if missing:
        out += ["", "Measures without values, and why:", ""]
        out += [f"- {m}" for m in missing]
    if report.identity is not None:
        out += identity_markdown(report.identity)
    if report.skipped:
        out += ["", "## Skipped rows", ""]
        out += [f"- `{s['row_id']}`: {s.get('reason', '?')}" for s in report.skipped]
    if not report.ratings:
        out += ["", "No ratings of this deck yet: load it in a session (Staff tab) to rate it."]
        return "\n".join(out) + "\n"
    out += [
        "",
        "## Ratings: rank and Bradley–Terry strength [95% interval]",
        "",
        "Pairs within each rated row, decided by the 1-5 ratings (ties half each, the best pick "
        "decides its ties). Strength interval: the wider of the fit's prior posterior and a "
        "bootstrap over rated rows. Rows whose intervals overlap share a rank (`=`).",
        "",
        "| votes | style | rank | method | ratings | mean rating | BT strength |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.leaderboard:
        ci = "" if r.bt_low is None else f" [{r.bt_low:+.2f}, {r.bt_high:+.2f}]"
        rank = f"={r.rank}" if r.tied else str(r.rank)
        out.append(
            f"| {'blind' if r.blind else 'labelled'} | {r.style} | {rank} | {r.method} | "
            f"{r.ratings} | {r.mean:.2f} | {r.bt_strength:+.2f}{ci} |"
        )
    scopes = sorted({s for per in report.kendall.values() for s in per}, key=lambda s: s != "all")
    out += [
        "",
        "## Which measure agrees with the raters: Kendall's tau-b vs mean rating (n, p)",
        "",
        "| measure | " + " | ".join(scopes) + " |",
        "|---|" + "---|" * len(scopes),
    ]
    for name, per in report.kendall.items():
        cells = []
        for scope in scopes:
            k = per.get(scope)
            cells.append(
                "—" if k is None or k.tau is None else f"{k.tau:+.2f} (n={k.n}, p={k.p:.2g})"
            )
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += _agreement_markdown(report)
    return "\n".join(out) + "\n"


def _scope_order(scope: str) -> tuple[bool, str]:
    """The deck ("all") first, then the styles by name."""
    return scope != "all", scope


def _agreement_markdown(report: DeckReport) -> list[str]:
    """Pairwise agreement per measure and scope, then the best-agreeing measure per scope."""
    if not report.agreement:
        return []
    scopes = sorted({s for per in report.agreement.values() for s in per}, key=_scope_order)
    out = [
        "",
        "## Pairwise agreement with the raters [95% interval]",
        "",
        "The share of rated pairs (two outputs of a row one rater rated differently) that the "
        "measure orders like the rater, as the preference benchmarks report it: 0.5 is chance, "
        "1 always agrees; a measure's tie counts one half. Interval: bootstrap over rows.",
        "",
        "| measure | " + " | ".join(scopes) + " |",
        "|---|" + "---|" * len(scopes),
    ]
    for name, per in report.agreement.items():
        out.append(
            f"| {name} | " + " | ".join(per[s].text() if s in per else "—" for s in scopes) + " |"
        )
    if report.best:
        out += [
            "",
            "## The measure that agrees best with the room",
            "",
            "Per style (and over the deck): the measure with the highest pairwise agreement, its "
            "95% interval, and how often it stays the best when the rated rows are resampled "
            "(below ~95%, the room does not yet tell it from the runner-up).",
            "",
            "| scope | best measure | agreement [95% interval] | best in resamples | runner-up |",
            "|---|---|---|---|---|",
        ]
        for scope, b in report.best.items():
            wins = "—" if b.wins is None else f"{b.wins:.0%}"
            out.append(
                f"| {scope} | **{b.measure}** | {b.agreement.text()} | {wins} | "
                f"{b.runner_up or '—'} |"
            )
    return out
