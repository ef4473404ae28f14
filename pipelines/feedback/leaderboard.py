"""Leaderboard per (blind, style, method): mean rating, best-pick rate, Bradley–Terry strength.

Blind and non-blind votes are never pooled: with ``blind=None`` they form separate groups, so
a method's label cannot leak into its blind score. Methods are compared only within a style
(a comparison row has one style).

Pairwise outcomes: within each rated row (one rater's submission for one comparison) every pair
of rated outputs is one comparison decided by the 1-5 ratings (ties half a win each); the best
pick wins the ties it is part of (see :func:`row_win_matrices`).

Uncertainty, never of zero width from a handful of votes:
- mean rating: a t-interval whose variance is pooled with a weak prior (``PRIOR_DF`` pseudo
  degrees of freedom of a rating spread of ``PRIOR_SD`` points), so three equal ratings still get
  a range; with many ratings the prior is negligible;
- strength: the wider of the Bradley–Terry posterior interval (the fit's prior, Laplace
  approximation: positive even when one method won every comparison) and a percentile bootstrap
  that resamples rated rows, not single votes (the votes of one row are not independent).

Ranks: within each (blind, style), a row's rank is 1 + the number of rows whose whole strength
interval lies above its interval, so rows whose intervals overlap share a rank.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from pipelines.feedback.bradley_terry import (
    fit_bradley_terry,
    row_win_matrices,
    strength_covariance,
)
from pipelines.feedback.errors import FilterError
from pipelines.feedback.records import RatingRecord
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.store import FeedbackStore, RecordFilter

if TYPE_CHECKING:
    import pandas as pd

MAX_BOOT = 100_000
PRIOR_DF = 1.0  # pseudo degrees of freedom of the mean rating's prior variance
PRIOR_SD = 1.0  # its spread, in rating points (raters' 1-5 scores typically spread about 1)
Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class LeaderboardRow:
    """One method in one style, blind or not. CI bounds are None when undefined."""

    blind: bool
    style: str
    method: str
    ratings: int  # how many ratings
    mean: float  # mean rating, 1..5
    mean_low: float | None  # 95% t-interval with a prior variance, in 1..5; None when n < 2
    mean_high: float | None
    rows: int  # rated rows with a best pick that showed this method
    picks: int  # times picked best
    pick_rate: float | None  # picks / rows; None when rows == 0
    comparisons: float  # pairwise comparisons it took part in
    bt_strength: float  # Bradley–Terry log-strength, mean 0 over the style's methods
    bt_low: float | None  # 95%: posterior or row bootstrap, the wider; None when n_boot == 0
    bt_high: float | None
    rank: int = 1  # within (blind, style): 1 + rows whose strength interval lies wholly above
    tied: bool = False  # another row of the group has the same rank

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-ready values."""
        return asdict(self)


@dataclass
class _Group:
    """The ratings of one (blind, style) as arrays over rated rows."""

    methods: list[str]
    ratings: np.ndarray  # (n_rows, k) rating, NaN where the method was not in the row
    best: np.ndarray  # (n_rows,) index of the best pick, -1 for none


def leaderboard(
    records: Iterable[RatingRecord],
    *,
    blind: bool | None = None,
    style: str | None = None,
    session_tag: str | None = None,
    since: str | datetime | date | None = None,
    until: str | datetime | date | None = None,
    n_boot: int = 200,
    seed: int = 0,
    prior: float = 0.5,
    deck_id: str | None = None,
    hide_session: str | None = None,
    source: str | None = None,
) -> list[LeaderboardRow]:
    """Leaderboard rows sorted by (blind, style, rank, strength descending).

    ``blind=None`` keeps blind and non-blind votes as separate groups; True or False keeps one.
    ``until`` is exclusive. ``prior`` is the Bradley–Terry shrinkage (see bradley_terry.py).
    ``source="page"`` counts only the votes given on the app's page (no API or MCP votes).
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or not 0 <= n_boot <= MAX_BOOT:
        raise FilterError(f"n_boot={n_boot!r} is not allowed: use an integer 0 to {MAX_BOOT}")
    flt = RecordFilter(
        style=style,
        session_tag=session_tag,
        since=since,
        until=until,
        blind=blind,
        deck_id=deck_id,
        hide_session=hide_session,
        source=source,
    )
    groups = _group(r for r in records if flt.match(r))
    out: list[LeaderboardRow] = []
    for (is_blind, style_id), g in sorted(groups.items()):
        # seeded per group, so a style's interval does not depend on which other styles exist
        rng = np.random.default_rng([seed, zlib.crc32(f"{is_blind}:{style_id}".encode())])
        out.extend(_rows(is_blind, style_id, g, n_boot, rng, prior))
    return out


def _group(records: Iterable[RatingRecord]) -> dict[tuple[bool, str], _Group]:
    # (blind, style) -> (comparison_id, voter) -> [(method, rating, is_best)]
    raw: dict[tuple[bool, str], dict[tuple[str, str], list[tuple[str, int, bool]]]] = {}
    for r in records:
        key = (r.comparison_id, r.voter_key)
        row = raw.setdefault((r.blind, r.style), {}).setdefault(key, [])
        row.append((r.method, r.rating, r.is_best))
    groups: dict[tuple[bool, str], _Group] = {}
    for key, rows in raw.items():
        methods = sorted({m for votes in rows.values() for m, _, _ in votes})
        col = {m: i for i, m in enumerate(methods)}
        ratings = np.full((len(rows), len(methods)), np.nan)
        best = np.full(len(rows), -1)
        for i, votes in enumerate(rows.values()):
            for m, rating, is_best in votes:
                ratings[i, col[m]] = rating
                if is_best:
                    best[i] = col[m]
        groups[key] = _Group(methods, ratings, best)
    return groups


def _rows(
    blind: bool, style: str, g: _Group, n_boot: int, rng: np.random.Generator, prior: float
) -> list[LeaderboardRow]:
    n_rows, k = g.ratings.shape
    present = ~np.isnan(g.ratings)  # (n_rows, k)
    n = present.sum(0)  # (k,)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(g.ratings, 0) / n
        # the sample variance pooled with the prior's: never 0, the data's once n is large
        dof = n - 1 + PRIOR_DF
        sd = np.sqrt((np.nansum((g.ratings - mean) ** 2, 0) + PRIOR_DF * PRIOR_SD**2) / dof)
    picked_rows = present & (g.best >= 0)[:, None]  # (n_rows, k)
    rows = picked_rows.sum(0)
    picks = np.bincount(g.best[g.best >= 0], minlength=k)

    row_wins = row_win_matrices(g.ratings, g.best)  # (n_rows, k, k)
    wins = row_wins.sum(0)  # (k, k)
    comparisons = (wins + wins.T).sum(1)  # (k,)
    bt = fit_bradley_terry(wins, prior=prior)  # (k,)
    bt_low = bt_high = None
    if n_boot:
        counts = rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=n_boot)  # (B, n)
        boot_wins = (counts @ row_wins.reshape(n_rows, k * k)).reshape(n_boot, k, k)
        boot = fit_bradley_terry(boot_wins, prior=prior)  # (B, k)
        bt_low, bt_high = np.percentile(boot, [2.5, 97.5], axis=0)  # (k,) each
        # resampled rows cannot vary when every row says the same: the prior's posterior can
        if prior > 0:  # prior 0 (maximum likelihood) has no posterior to widen with
            half = Z95 * np.sqrt(np.diag(strength_covariance(wins, bt, prior=prior)))
            bt_low, bt_high = np.minimum(bt_low, bt - half), np.maximum(bt_high, bt + half)

    out = []
    for i, method in enumerate(g.methods):
        low = high = None
        if n[i] >= 2:
            half = stats.t.ppf(0.975, dof[i]) * sd[i] / math.sqrt(n[i])
            low, high = max(1.0, mean[i] - half), min(5.0, mean[i] + half)
        out.append(
            LeaderboardRow(
                blind=blind,
                style=style,
                method=method,
                ratings=int(n[i]),
                mean=float(mean[i]),
                mean_low=low,
                mean_high=high,
                rows=int(rows[i]),
                picks=int(picks[i]),
                pick_rate=float(picks[i] / rows[i]) if rows[i] else None,
                comparisons=float(comparisons[i]),
                bt_strength=float(bt[i]),
                bt_low=None if bt_low is None else float(bt_low[i]),
                bt_high=None if bt_high is None else float(bt_high[i]),
            )
        )
    return rank_rows(out)


def rank_rows(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """One group's rows with ranks, ties where intervals overlap, sorted by rank then strength."""

    def span(r: LeaderboardRow) -> tuple[float, float]:
        if r.bt_low is None or r.bt_high is None:  # no intervals asked for: the point alone
            return r.bt_strength, r.bt_strength
        return r.bt_low, r.bt_high

    spans = [span(r) for r in rows]
    ranks = [1 + sum(1 for low, _ in spans if low > high) for _, high in spans]
    out = [
        replace(r, rank=rank, tied=ranks.count(rank) > 1)
        for r, rank in zip(rows, ranks, strict=True)
    ]
    out.sort(key=lambda r: (r.rank, -r.bt_strength))
    return out


def to_frame(rows: Sequence[LeaderboardRow]) -> pd.DataFrame:
    """The rows as a DataFrame (columns = LeaderboardRow fields), in leaderboard order."""
    import pandas as pd  # only the UI needs it

    columns = list(LeaderboardRow.__dataclass_fields__)
    return pd.DataFrame([r.to_dict() for r in rows], columns=columns)


def leaderboard_frame(
    store: FeedbackStore, *, n_boot: int = 200, seed: int = 0, **filters: Any
) -> pd.DataFrame:
    """The leaderboard of a store's ratings as a DataFrame for ``gr.Dataframe``.

    ``filters``: style, session_tag, since, until, blind, deck_id, hide_session, source, as
    in :func:`leaderboard`.
    """
    records = store.query(RecordFilter(**filters))
    return to_frame(leaderboard(records, n_boot=n_boot, seed=seed, **filters))


def format_table(rows: Sequence[LeaderboardRow]) -> str:
    """A plain-text table for the CLI."""
    header = (
        f"{'blind':5} {'style':18} {'method':10} {'n':>5} {'mean':>5} {'95% CI':>11} "
        f"{'best':>9} {'BT':>6} {'95% CI':>13}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        ci = "" if r.mean_low is None else f"{r.mean_low:.2f}-{r.mean_high:.2f}"
        pick = "" if r.pick_rate is None else f"{r.picks}/{r.rows}"
        bt_ci = "" if r.bt_low is None else f"{r.bt_low:+.2f}..{r.bt_high:+.2f}"
        lines.append(
            f"{'yes' if r.blind else 'no':5} {r.style[:18]:18} {r.method[:10]:10} {r.ratings:>5} "
            f"{r.mean:>5.2f} {ci:>11} {pick:>9} {r.bt_strength:>+6.2f} {bt_ci:>13}"
        )
    return "\n".join(lines)


# what the UI and the API call: one filter in, the leaderboard table out
LeaderboardQuery = Callable[[RecordFilter], "pd.DataFrame"]


def filtered_frame(store: FeedbackStore, flt: RecordFilter) -> pd.DataFrame:
    """:func:`leaderboard_frame` for the style, session, dates, deck, kind and source of vote
    in ``flt``."""
    return leaderboard_frame(
        store,
        style=flt.style,
        session_tag=flt.session_tag,
        since=flt.since,
        until=flt.until,
        blind=flt.blind,
        deck_id=flt.deck_id,
        hide_session=flt.hide_session,
        source=flt.source,
    )


class CachedBoard:
    """:func:`filtered_frame` of one store, remembered per filter until a rating is stored.

    A read floods nothing: the same filter asked again (200 clients polling the board) is a
    copy of the table computed once. Every committed submission (the store's listener) drops
    every table; a table is also recomputed after ``max_age_s`` seconds, for ratings another
    process wrote to the same file. At most ``capacity`` filters are kept (the least recently
    read go first), so filters varied on purpose cost their computation, never memory.
    """

    def __init__(
        self,
        store: FeedbackStore,
        *,
        capacity: int = 64,
        max_age_s: float = 60.0,
        compute: Callable[[FeedbackStore, RecordFilter], pd.DataFrame] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.capacity, self.max_age_s, self._clock = capacity, max_age_s, clock
        self._compute = compute or filtered_frame
        self._tables: OrderedDict[RecordFilter, tuple[int, float, pd.DataFrame]] = OrderedDict()
        self._generation = 0  # bumped by every stored rating
        self._lock = threading.Lock()
        store.add_listener(self._stored)

    def _stored(self, records: Sequence[RatingRecord]) -> None:
        with self._lock:
            self._generation += 1
            self._tables.clear()

    def __call__(self, flt: RecordFilter) -> pd.DataFrame:
        """The board for ``flt``: remembered, or computed now (and remembered)."""
        now = self._clock()
        with self._lock:
            generation = self._generation
            kept = self._tables.get(flt)
            if kept is not None and kept[0] == generation and now - kept[1] < self.max_age_s:
                self._tables.move_to_end(flt)
                return kept[2].copy()  # a copy: a caller may change what it is handed
        table = self._compute(self.store, flt)  # outside the lock: other filters go on
        with self._lock:
            if generation == self._generation:  # no rating landed meanwhile: still current
                self._tables[flt] = (generation, now, table)
                self._tables.move_to_end(flt)
                while len(self._tables) > self.capacity:
                    self._tables.popitem(last=False)
        return table.copy()


class BlindSessionHidden(FilterError):
    """The board asked for is the running blind session's: hidden until staff end it."""


def hidden_session(session: SessionConfig) -> str:
    """The tag of the running blind session whose standings participants may not see yet
    (a peek would unblind it), or "" when none."""
    return session.session_tag if session.blind and session.session_tag else ""


def participants_frame(
    store: FeedbackStore,
    live: Callable[[], SessionConfig],
    flt: RecordFilter,
    *,
    board: LeaderboardQuery | None = None,
) -> pd.DataFrame:
    """:func:`filtered_frame` as participants may read it (the Leaderboard tab, the API, MCP):
    without the ratings of a running blind session; asking for that session's board is
    refused, saying why. Staff read it whole (:func:`filtered_frame`). ``board`` computes the
    table (the app's :class:`CachedBoard`); unset, it is computed from ``store`` each time."""
    hidden = hidden_session(live())
    if hidden:
        if flt.session_tag == hidden:
            raise BlindSessionHidden(
                f"the standings of the running blind session {hidden!r} are hidden until the "
                "facilitator ends the session"
            )
        flt = replace(flt, hide_session=hidden)
    return board(flt) if board is not None else filtered_frame(store, flt)
