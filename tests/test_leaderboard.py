"""Leaderboard statistics and the Bradley–Terry fit, against hand-worked numbers and simulations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from pipelines.feedback.bradley_terry import (
    BradleyTerryError,
    fit_bradley_terry,
    row_win_matrices,
    strength_covariance,
)
from pipelines.feedback.errors import FilterError
from pipelines.feedback.leaderboard import (
    LeaderboardRow,
    format_table,
    leaderboard,
    leaderboard_frame,
    rank_rows,
    to_frame,
)
from pipelines.feedback.records import RatingRecord
from pipelines.feedback.store import FeedbackStore


def row(cid, rater, ratings, best=None, blind=False, style="watercolor", **kw):
    return [
        RatingRecord(
            rater=rater,
            comparison_id=cid,
            style=style,
            method=m,
            final_prompt=m,
            seed=0,
            rating=r,
            is_best=m == best,
            blind=blind,
            **kw,
        )
        for m, r in ratings.items()
    ]


# The hand-worked example. Methods A, B, C in one style, labelled (non-blind) votes:
#   row 1 (c1, alice): A=4 B=3 C=4, best A
#   row 2 (c1, bob):   A=3 B=4 C=2, best B
#   row 3 (c2, alice): A=3 B=4,      no pick
#   row 4 (c3, carol): A=4 B=5 C=3, best B
OPEN = (
    row("c1", "alice", {"A": 4, "B": 3, "C": 4}, best="A")
    + row("c1", "bob", {"A": 3, "B": 4, "C": 2}, best="B")
    + row("c2", "alice", {"A": 3, "B": 4})
    + row("c3", "carol", {"A": 4, "B": 5, "C": 3}, best="B")
)
# Blind votes, which must never mix with the ones above:
BLIND = row("c4", "dave", {"A": 1, "B": 5, "C": 3}, best="B", blind=True) + row(
    "c5", "erin", {"A": 2, "B": 4}, best="A", blind=True
)
# Pairwise outcomes by hand (row: pairs), the pick beating everyone in its row:
#   1: A>B, A>C (the pick wins the A=C tie), C>B     2: B>A, B>C, A>C
#   3: B>A                                            4: B>A, B>C, A>C
HAND_WINS = np.array(
    [
        [0, 1, 3],  # A beat B once (row 1), C three times
        [3, 0, 2],  # B beat A in rows 2, 3, 4; C in rows 2, 4
        [0, 1, 0],  # C beat B in row 1
    ],
    dtype=float,
)


def by_method(rows: list[LeaderboardRow]) -> dict[str, LeaderboardRow]:
    return {r.method: r for r in rows}


def test_hand_worked_means_intervals_and_pick_rates():
    got = by_method(leaderboard(OPEN + BLIND, blind=False, n_boot=0))
    a, b, c = got["A"], got["B"], got["C"]
    assert (a.ratings, b.ratings, c.ratings) == (4, 4, 3)
    # the variance pools the squared deviations with one prior degree of freedom of spread 1:
    # sd = sqrt((SS + 1) / n) with n - 1 + 1 = n degrees of freedom
    # A: 4,3,3,4 -> mean 3.5, SS 1, sd 0.70711, t(0.975, 4) = 2.77645, half-width 0.98162
    assert a.mean == pytest.approx(3.5)
    assert (a.mean_low, a.mean_high) == pytest.approx((2.51838, 4.48162), abs=1e-5)
    # B: 3,4,4,5 -> mean 4, SS 2, sd 0.86603, half-width 1.20224 -> (2.79776, 5.20224), to 5
    assert b.mean == pytest.approx(4.0)
    assert (b.mean_low, b.mean_high) == pytest.approx((2.79776, 5.0), abs=1e-5)
    # C: 4,2,3 -> mean 3, SS 2, sd 1, t(0.975, 3) = 3.18245, half-width 1.83739
    assert c.mean == pytest.approx(3.0)
    assert (c.mean_low, c.mean_high) == pytest.approx((1.16261, 4.83739), abs=1e-5)
    # picks / rows with a pick that showed the method (rows 1, 2, 4)
    assert (a.picks, a.rows, a.pick_rate) == (1, 3, pytest.approx(1 / 3))
    assert (b.picks, b.rows, b.pick_rate) == (2, 3, pytest.approx(2 / 3))
    assert (c.picks, c.rows, c.pick_rate) == (0, 3, 0.0)
    assert (a.comparisons, b.comparisons, c.comparisons) == (7.0, 7.0, 6.0)
    assert all(r.bt_low is None and r.bt_high is None for r in got.values())  # n_boot=0


def test_pairs_extracted_from_rows_match_the_hand_count():
    ratings = np.array([[4, 3, 4], [3, 4, 2], [3, 4, np.nan], [4, 5, 3]])
    best = np.array([0, 1, -1, 1])
    per_row = row_win_matrices(ratings, best)
    assert per_row.shape == (4, 3, 3)
    np.testing.assert_array_equal(per_row.sum(0), HAND_WINS)
    # a tie without a pick is half a win each way
    tie = row_win_matrices(np.array([[3.0, 3.0]]), np.array([-1]))
    np.testing.assert_array_equal(tie[0], [[0, 0.5], [0.5, 0]])


def test_bt_strengths_come_from_the_hand_counted_wins():
    got = by_method(leaderboard(OPEN, n_boot=0))
    expected = fit_bradley_terry(HAND_WINS)
    assert [got[m].bt_strength for m in "ABC"] == pytest.approx(list(expected), abs=1e-9)
    assert got["B"].bt_strength > got["A"].bt_strength > got["C"].bt_strength
    assert sum(r.bt_strength for r in got.values()) == pytest.approx(0.0, abs=1e-12)
    # the rows come sorted by strength
    assert [r.method for r in leaderboard(OPEN, n_boot=0)] == ["B", "A", "C"]


def test_mle_satisfies_the_score_equations():
    s = fit_bradley_terry(HAND_WINS, prior=0)
    games = HAND_WINS + HAND_WINS.T
    p = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))  # P(i beats j)
    # at the MLE, each item's expected wins equal its observed wins
    np.testing.assert_allclose((games * p).sum(1), HAND_WINS.sum(1), atol=1e-8)
    # two items, 3 wins to 1: strengths +-ln(3)/2
    assert fit_bradley_terry(np.array([[0, 3], [1, 0]]), prior=0) == pytest.approx(
        [np.log(3) / 2, -np.log(3) / 2]
    )


def test_blind_and_open_votes_are_kept_apart():
    both = leaderboard(OPEN + BLIND, n_boot=50)
    open_only = leaderboard(OPEN, n_boot=50)
    blind_only = leaderboard(BLIND, n_boot=50)
    assert [r for r in both if not r.blind] == open_only  # blind votes change nothing here
    assert [r for r in both if r.blind] == blind_only
    assert leaderboard(OPEN + BLIND, blind=True, n_boot=50) == blind_only
    assert leaderboard(OPEN + BLIND, blind=False, n_boot=50) == open_only
    b = by_method(blind_only)
    assert (b["A"].ratings, b["A"].mean, b["A"].picks, b["A"].rows) == (2, 1.5, 1, 2)
    assert (b["C"].ratings, b["C"].mean_low, b["C"].pick_rate) == (1, None, 0.0)  # n=1: no CI


def test_filters_by_style_session_and_date():
    recs = (
        row("c1", "a", {"A": 5, "B": 1}, session_tag="s1", created_at="2025-01-10T00:00:00+00:00")
        + row("c2", "a", {"A": 1, "B": 5}, session_tag="s2", created_at="2025-02-10T00:00:00+00:00")
        + row("c3", "a", {"A": 3, "B": 3}, style="anime", created_at="2025-03-10T00:00:00+00:00")
    )
    assert {r.style for r in leaderboard(recs, n_boot=0)} == {"watercolor", "anime"}
    assert {r.style for r in leaderboard(recs, style="anime", n_boot=0)} == {"anime"}
    s1 = by_method(leaderboard(recs, session_tag="s1", n_boot=0))
    assert (s1["A"].mean, s1["B"].mean) == (5.0, 1.0)
    feb = by_method(leaderboard(recs, since="2025-02-01", until="2025-03-01", n_boot=0))
    assert (feb["A"].mean, feb["B"].mean) == (1.0, 5.0)
    assert leaderboard(recs, since="2026-01-01") == []
    with pytest.raises(FilterError, match="until='soon'"):
        leaderboard(recs, until="soon")
    with pytest.raises(FilterError, match="n_boot=-1"):
        leaderboard(recs, n_boot=-1)


def test_bootstrap_interval_matches_binomial_theory_and_is_seeded():
    # two methods, one pair per row: A wins 300 of 400 rows -> A's centred strength is
    # logit(0.75) / 2 = 0.549 with standard error 1 / (2 sqrt(n p (1 - p))) = 0.0577
    recs = []
    for i in range(400):
        a_wins = i < 300
        recs += row(f"c{i}", "r", {"A": 5 if a_wins else 2, "B": 2 if a_wins else 5})
    rows = by_method(leaderboard(recs, n_boot=400, seed=1, prior=0.01))
    a = rows["A"]
    assert a.bt_strength == pytest.approx(np.log(3) / 2, abs=1e-3)
    half = (a.bt_high - a.bt_low) / 2
    assert half == pytest.approx(1.96 * 0.0577, rel=0.25)
    assert a.bt_low < a.bt_strength < a.bt_high
    assert leaderboard(recs, n_boot=50, seed=3) == leaderboard(recs, n_boot=50, seed=3)
    assert leaderboard(recs, n_boot=50, seed=3) != leaderboard(recs, n_boot=50, seed=4)


def test_an_unbeaten_method_keeps_a_finite_strength():
    recs = []
    for i in range(5):
        recs += row(f"c{i}", "r", {"A": 5, "B": 2, "C": 1}, best="A")
    got = by_method(leaderboard(recs, n_boot=100))
    assert np.isfinite(got["A"].bt_strength) and got["A"].bt_strength < 5
    assert np.isfinite(got["A"].bt_high)
    assert got["A"].bt_strength > got["B"].bt_strength > got["C"].bt_strength


def _simulate_wins(strengths, games_per_pair, rng):
    k = len(strengths)
    wins = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            p = 1 / (1 + np.exp(-(strengths[i] - strengths[j])))
            w = rng.binomial(games_per_pair, p)
            wins[i, j], wins[j, i] = w, games_per_pair - w
    return wins


def test_bt_recovers_known_strengths():
    rng = np.random.default_rng(0)
    true = np.array([-1.2, -0.5, 0.0, 0.3, 0.6, 0.8])
    true -= true.mean()
    est = fit_bradley_terry(_simulate_wins(true, 600, rng))
    assert np.max(np.abs(est - true)) < 0.12
    assert stats.spearmanr(est, true).statistic == pytest.approx(1.0)
    # batched over replicates, each fit is the same as fitting alone
    batch = np.stack([_simulate_wins(true, 200, rng) for _ in range(8)])
    together = fit_bradley_terry(batch)
    alone = np.stack([fit_bradley_terry(w) for w in batch])
    np.testing.assert_allclose(together, alone, atol=1e-8)
    assert np.mean(np.abs(together.mean(0) - true)) < 0.1


def _bt_mm(wins: np.ndarray, prior: float, tol: float = 1e-9) -> np.ndarray:
    """Hunter's (2004) MM fit of the app's penalised objective, centred: slow but independent."""
    w = np.array(wins, dtype=np.float64)
    np.fill_diagonal(w, 0.0)
    won = w.sum(1) + prior  # W_i plus the virtual wins against the reference
    games = w + w.T  # N_ij
    s = np.zeros(len(w))
    for _ in range(100_000):
        p = np.exp(s)
        # MM step: p_i <- W_i / sum_j N_ij / (p_i + p_j), the reference (strength 1) included
        denom = (games / (p[:, None] + p[None, :])).sum(1) + 2.0 * prior / (p + 1.0)
        new = np.log(won) - np.log(denom)
        new = new - new.mean() if prior == 0 else _best_shift(new)
        if np.max(np.abs(new - s)) < tol:
            return new - new.mean()
        s = new
    raise AssertionError("the MM reference fit did not converge")


def _best_shift(s: np.ndarray) -> np.ndarray:
    """Shift s to maximise the prior term; the pairwise fit does not depend on the level.

    Without this the common level moves only through the weak prior, and MM crawls.
    """
    c = 0.0
    for _ in range(50):  # Newton on sum_i sigmoid(s_i + c) = k / 2
        q = 1.0 / (1.0 + np.exp(-(s + c)))
        f = q.sum() - len(s) / 2
        c -= f / (q * (1.0 - q)).sum()
        if abs(f) < 1e-12:
            break
    return s + c


def test_newton_and_mm_agree():
    rng = np.random.default_rng(1)
    wins = _simulate_wins(np.array([-0.7, 0.1, 0.2, 0.4]), 50, rng)
    np.testing.assert_allclose(fit_bradley_terry(wins), _bt_mm(wins, prior=0.5), atol=1e-6)
    np.testing.assert_allclose(fit_bradley_terry(wins, prior=0), _bt_mm(wins, prior=0), atol=1e-6)


def test_leaderboard_ranks_simulated_methods_in_true_order():
    rng = np.random.default_rng(2)
    quality = {"raw": 2.4, "template": 3.0, "learned": 3.4, "ensemble": 3.9}
    recs = []
    for i in range(300):
        noisy = {m: q + rng.normal(0, 0.8) for m, q in quality.items()}
        ratings = {m: int(np.clip(np.rint(v), 1, 5)) for m, v in noisy.items()}
        recs += row(f"c{i}", f"r{i % 7}", ratings, best=max(noisy, key=noisy.get))
    got = leaderboard(recs, n_boot=100)
    assert [r.method for r in got] == ["ensemble", "learned", "template", "raw"]
    assert [r.method for r in sorted(got, key=lambda r: -r.mean)] == [r.method for r in got]
    assert all(r.bt_low < r.bt_strength < r.bt_high for r in got)


@pytest.mark.parametrize(
    ("wins", "kwargs", "words"),
    [
        (np.zeros((2, 3)), {}, "shape (2, 3)"),
        (np.array([[0, -1], [1, 0]]), {}, "negative"),
        (np.array([[0, 2], [0, 0]]), {"prior": 0}, "never won or never lost"),
        (np.zeros((2, 2)), {"prior": -1}, "prior=-1"),
    ],
)
def test_bt_bad_input(wins, kwargs, words):
    with pytest.raises(BradleyTerryError) as err:
        fit_bradley_terry(wins, **kwargs)
    assert words in str(err.value)


def test_frame_and_table_for_the_ui(tmp_path):
    store = FeedbackStore(tmp_path / "r.sqlite3")
    for key in {(r.comparison_id, r.rater) for r in OPEN + BLIND}:
        store.submit([r for r in OPEN + BLIND if (r.comparison_id, r.rater) == key])
    df = leaderboard_frame(store, blind=False, n_boot=20)
    assert list(df.columns) == list(LeaderboardRow.__dataclass_fields__)
    assert list(df["method"]) == ["B", "A", "C"] and int(df["ratings"].sum()) == 11
    assert df["bt_strength"].tolist() == pytest.approx(
        list(fit_bradley_terry(HAND_WINS)[[1, 0, 2]])
    )
    assert to_frame([]).empty
    assert "watercolor" in format_table(leaderboard(OPEN, n_boot=0))


def test_chart_has_one_bar_and_whisker_per_series_and_one_line_each():
    """Blind and labelled votes of a style are separate bars: neither series hides the other."""
    from demo.leaderboard_tab import chart_html, readable, series_label

    df = to_frame(leaderboard(OPEN + BLIND, n_boot=20))
    html = chart_html(df)
    labels = list(series_label(df))
    assert len(set(labels)) == len(df) == 6  # 3 labelled + 3 blind
    assert html.count('class="lb-series"') == len(df)
    assert html.count('class="lb-bar"') == len(df)
    assert html.count('class="lb-whisker"') == len(df)  # every series has its range
    assert all(label in html for label in labels)
    assert "watercolor · blind" in html and "watercolor · labelled" in html
    table = readable(df)
    assert list(table.columns)[:4] == ["rank", "method", "style", "votes"]
    assert chart_html(to_frame([])) == ""


def test_ranks_tie_where_strength_ranges_overlap():
    from demo.leaderboard_tab import rank_labels

    def lb(method, s, low, high):
        return LeaderboardRow(
            blind=False, style="anime", method=method, ratings=10, mean=3.0, mean_low=2.0,
            mean_high=4.0, rows=10, picks=3, pick_rate=0.3, comparisons=20.0,
            bt_strength=s, bt_low=low, bt_high=high,
        )  # fmt: skip

    rows = rank_rows([lb("C", -1.0, -1.5, -0.6), lb("B", 0.8, 0.3, 1.2), lb("A", 1.0, 0.5, 1.5)])
    # A and B overlap (tied first); C lies below both
    assert [(r.method, r.rank, r.tied) for r in rows] == [
        ("A", 1, True),
        ("B", 1, True),
        ("C", 3, False),
    ]
    assert rank_labels(to_frame(rows)) == ["=1", "=1", "3"]


# The deck case of issue #17: raters rate raw far above learned but click learned as best.
DECK = (
    row("d1", "ann", {"raw": 5, "learned": 2, "template": 2}, best="learned", style="anime")
    + row("d1", "ben", {"raw": 4, "learned": 2, "template": 1}, best="learned", style="anime")
    + row("d1", "cat", {"raw": 4, "learned": 2, "template": 1}, best="learned", style="anime")
)


def test_ranks_follow_the_ratings_whatever_the_best_picks():
    got = leaderboard(DECK, n_boot=200)
    by = by_method(got)
    assert by["raw"].mean == pytest.approx(13 / 3) and by["learned"].mean == 2.0
    assert by["learned"].picks == 3  # the picks are counted ...
    # ... but do not overturn the ratings: raw first, learned second, template last
    assert [r.method for r in got] == ["raw", "learned", "template"]
    assert by["raw"].bt_strength > by["learned"].bt_strength > by["template"].bt_strength
    assert by["raw"].rank <= by["learned"].rank <= by["template"].rank
    # with the picks moved to template, the order is the same: ratings decide strict pairs
    moved = [replace(r, is_best=r.method == "template") for r in DECK]
    assert [r.method for r in leaderboard(moved, n_boot=0)] == ["raw", "learned", "template"]


def test_the_best_pick_decides_the_ties_it_is_in():
    # A = B in every row; the rater picks B: B beats A, and both beat C
    recs = row("c1", "r", {"A": 4, "B": 4, "C": 1}, best="B")
    wins = row_win_matrices(np.array([[4.0, 4.0, 1.0]]), np.array([1]))[0]
    np.testing.assert_array_equal(wins, [[0, 0, 1], [1, 0, 1], [0, 0, 0]])
    assert [r.method for r in leaderboard(recs, n_boot=0)] == ["B", "A", "C"]
    # a pick rated below another output leaves that pair to the ratings
    wins = row_win_matrices(np.array([[5.0, 2.0]]), np.array([1]))[0]
    np.testing.assert_array_equal(wins, [[0, 1], [0, 0]])


def test_intervals_have_positive_width_after_three_equal_ratings():
    """Three raters who agree exactly: no range may read as certainty."""
    for r in leaderboard(DECK, n_boot=200):
        assert r.ratings == 3
        assert r.mean_low < r.mean_high, r
        assert r.mean_low <= r.mean <= r.mean_high
        assert r.bt_high - r.bt_low > 0.5, r  # three rows say little
        assert r.bt_low < r.bt_strength < r.bt_high
    learned = by_method(leaderboard(DECK, n_boot=200))["learned"]
    assert learned.mean_high - learned.mean_low > 0.5  # 2, 2, 2 is not "2.00 – 2.00"
    # one method always first in 3 identical rows: the row bootstrap alone has no spread
    same = [r for i in range(3) for r in row(f"c{i}", "r", {"A": 5, "B": 1})]
    a = by_method(leaderboard(same, n_boot=100))["A"]
    assert a.bt_high - a.bt_low > 0.5


def test_posterior_interval_matches_binomial_theory():
    # A beats B 300 of 400 times: centred strength logit(0.75) / 2, sd 1 / (2 sqrt(n p q))
    wins = np.array([[0.0, 300.0], [100.0, 0.0]])
    s = fit_bradley_terry(wins, prior=0.01)
    cov = strength_covariance(wins, s, prior=0.01)
    assert np.sqrt(cov[0, 0]) == pytest.approx(1 / (2 * np.sqrt(400 * 0.75 * 0.25)), rel=0.01)
    assert cov.sum() == pytest.approx(0.0, abs=1e-12)  # centred: the strengths sum to 0
    with pytest.raises(BradleyTerryError, match="prior=0"):
        strength_covariance(wins, s, prior=0)


def test_deck_and_tab_agree_with_the_rows():
    """The deck report and the tab show the pipeline's ranks, not ones of their own."""
    from demo.leaderboard_tab import readable

    rows = leaderboard(DECK, n_boot=50)
    table = readable(to_frame(rows))
    assert list(table["method"]) == [r.method for r in rows]
    assert list(table["rank"]) == [f"={r.rank}" if r.tied else str(r.rank) for r in rows]


def test_deck_report_shows_the_leaderboards_ranks_and_intervals(tmp_path):
    from pipelines.decks.report import DeckReport, chart_panels, to_markdown

    rows = leaderboard(DECK, n_boot=50)
    report = DeckReport("d", tmp_path, "tiny", [], [], ratings=9, leaderboard=rows)
    md = to_markdown(report)
    for r in rows:
        rank = f"={r.rank}" if r.tied else str(r.rank)
        assert f"| labelled | anime | {rank} | {r.method} | 3 |" in md
        assert f"[{r.bt_low:+.2f}, {r.bt_high:+.2f}]" in md
    title, bars = chart_panels(report)[-1]
    assert "Bradley–Terry" in title
    assert [(b[0], b[2], b[3]) for b in bars] == [
        (f"anime · {r.method}", r.bt_low, r.bt_high) for r in rows
    ]


def test_a_date_the_board_cannot_read_is_answered_in_plain_words():
    from demo.leaderboard_tab import day_problem

    assert day_problem("", "From") is None and day_problem(" 2026-12-07 ", "From") is None
    assert day_problem("2026-12-07T10:00:00+01:00", "To") is None
    both = day_problem("07/12/2026", "From")
    assert "2026-12-07 for 7 December 2026 or 2026-07-12 for 12 July 2026" in both
    assert day_problem("31/12/2026", "To").endswith("e.g. 2026-12-31 for 31 December 2026.")
    assert "is not a date" in day_problem("yesterday", "From")
    assert "ISO" not in day_problem("yesterday", "From")


# ----------------------------------------------------------------------------- reads at scale


class Counting:
    """filtered_frame, counting its computations."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def __call__(self, store, flt):
        from pipelines.feedback.leaderboard import filtered_frame

        self.calls.append(flt)
        return filtered_frame(store, flt)


def test_a_board_read_again_is_not_computed_again_until_a_rating_lands(tmp_path):
    """#41 item 8: 200 concurrent /leaderboard calls each recomputed the board (bootstrap
    included) and filled the queue; the same filter is now computed once per stored rating."""
    from pipelines.feedback.leaderboard import CachedBoard
    from pipelines.feedback.store import RecordFilter

    store = FeedbackStore(tmp_path / "r.sqlite3")
    store.submit(OPEN)
    now = [0.0]
    compute = Counting()
    board = CachedBoard(store, compute=compute, capacity=2, max_age_s=60, clock=lambda: now[0])
    flt = RecordFilter(style="watercolor")
    first = board(flt)
    for _ in range(200):
        assert board(RecordFilter(style="watercolor")).equals(first)  # an equal filter: a hit
    assert len(compute.calls) == 1
    total = int(first["ratings"].sum())
    first.loc[0, "ratings"] = -1  # a caller changing its table changes no one else's
    assert board(flt)["ratings"].min() > 0 and len(compute.calls) == 1

    store.submit(row("c9", "erin", {"A": 1, "B": 5}))  # a rating lands: the board is stale
    assert int(board(flt)["ratings"].sum()) == total + 2
    assert len(compute.calls) == 2

    board(RecordFilter(style="oil"))
    board(RecordFilter(blind=True))  # a third filter: the least recently read goes
    board(flt)
    assert len(compute.calls) == 5
    now[0] += 61  # ratings another process wrote are seen within max_age_s
    board(RecordFilter(blind=True))
    assert len(compute.calls) == 6


def test_a_board_can_leave_api_and_mcp_votes_out(tmp_path):
    """#41 item 9: votes carry their source; source="page" counts the page's votes only."""
    from pipelines.feedback.store import RecordFilter

    store = FeedbackStore(tmp_path / "r.sqlite3")
    store.submit(row("c1", "ann", {"A": 5, "B": 1}))
    for i in range(5):  # a script's votes for B, over the API and MCP
        store.submit(row(f"c{i}", f"bot-{i}", {"A": 1, "B": 5}, source=("api", "mcp")[i % 2]))
    every = by_method(leaderboard(store.records()))
    page = by_method(leaderboard(store.query(RecordFilter(source="page")), source="page"))
    assert every["B"].bt_strength > every["A"].bt_strength  # the script flipped the board
    assert page["A"].bt_strength > page["B"].bt_strength and page["A"].ratings == 1
    assert leaderboard_frame(store, source="mcp")["ratings"].sum() == 2 * 2
    with pytest.raises(FilterError, match="source='bots' is not allowed"):
        RecordFilter(source="bots")
