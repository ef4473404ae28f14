"""The leaderboard tab in headless Chromium, as a facilitator reads it after a session: ranks that
agree with the ratings, the legend in view, and a chart whose labels never overlap."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from pipelines.feedback.records import RatingRecord

pytestmark = pytest.mark.browser

TAG = "lb-browser-14"
METHODS = ("raw", "template", "learned", "inversion", "ensemble", "pez", "ip-only")
# where screenshots go when BECOME_SHOTS is set (looked at by people, never kept in the repo)
SHOTS = os.environ.get("BECOME_SHOTS")


@pytest.fixture(scope="module")
def seeded(tiny_services):
    """Three raters on two styles x 7 methods (14 series): raw rated high, learned low, and
    learned clicked as best every time."""
    quality = dict(zip(METHODS, (5, 4, 2, 3, 3, 2, 1), strict=True))
    for style in ("anime", "watercolor"):
        for rater, bump in (("ann", 0), ("ben", -1), ("cat", 0)):
            ratings = {
                m: max(1, min(5, q + (bump if m == "raw" else 0))) for m, q in quality.items()
            }
            tiny_services.store.submit(
                [
                    RatingRecord(
                        rater,
                        f"{TAG}-{style}",
                        style,
                        m,
                        m,
                        0,
                        r,
                        is_best=m == "learned",
                        session_tag=TAG,
                    )
                    for m, r in ratings.items()
                ]
            )
    return TAG


def open_board(page: Page, app_url: str, tag: str) -> None:
    page.goto(app_url)
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#lb-summary")).to_contain_text("rating")  # the opening fill is done
    page.locator("#lb-session textarea, #lb-session input").first.fill(tag)
    page.locator("#lb-refresh").click()
    expect(page.locator("#lb-summary")).to_contain_text("42 ratings across 14")


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_board_shows_ranks_legend_and_a_readable_chart(browser, app_url, seeded, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        open_board(page, app_url, seeded)
        page.locator("#lb-summary").scroll_into_view_if_needed()
        if SHOTS:  # what a person sees on opening, then the whole page
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/board-{width}.png")
            page.screenshot(path=f"{SHOTS}/board-{width}-full.png", full_page=True)
        # the legend sentence and the first ranks are in view together
        expect(page.locator("#lb-legend")).to_contain_text("share a rank")
        expect(page.get_by_text("Methods whose 95% strength ranges overlap")).to_be_in_viewport()
        grid = page.locator("#lb-table [role=grid]")

        def cell(row: int, col: int):  # the grid's ARIA indices: row 1 is the header
            return grid.locator(f'[role=row][aria-rowindex="{row}"] [aria-colindex="{col}"]')

        expect(cell(2, 2)).to_have_text("raw")  # rated 4.67 mean: first, whatever the picks
        expect(cell(2, 1)).to_have_text("=1")
        expect(cell(2, 3)).to_have_text("Anime")  # the style's name, not its id (#28 item 19)
        expect(cell(2, 1)).to_be_in_viewport()
        expect(cell(2, 2)).to_be_in_viewport()
        methods = [cell(r, 2).inner_text().strip() for r in range(2, 9)]  # the anime group
        assert methods.index("raw") < methods.index("learned")
        assert cell(2 + methods.index("learned"), 8).inner_text().strip() == "3 of 3"
        # the chart: one bar and one whisker per series, labels on lines of their own
        chart = page.locator("#lb-chart")
        expect(chart.locator(".lb-series")).to_have_count(14)
        expect(chart.locator(".lb-bar")).to_have_count(14)
        expect(chart.locator(".lb-whisker")).to_have_count(14)
        boxes = [b.bounding_box() for b in chart.locator(".lb-label").all()]
        assert all(b and b["width"] > 0 and b["height"] > 0 for b in boxes)
        for upper, lower in itertools.pairwise(boxes):
            assert upper["y"] + upper["height"] <= lower["y"] + 0.5, (upper, lower)
            assert upper["x"] + upper["width"] <= width  # nothing runs off the page
        whiskers = [b.bounding_box() for b in chart.locator(".lb-whisker").all()]
        assert all(w["width"] > 2 for w in whiskers)  # every range has width
        if SHOTS:
            chart.scroll_into_view_if_needed()
            page.screenshot(path=f"{SHOTS}/board-{width}-chart.png")
    finally:
        context.close()


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_a_running_blind_sessions_standings_are_hidden_from_participants(
    browser, app_url, tiny_services, width, height
):
    # #28 item 3: during a blind session anyone could open the Leaderboard tab and see which
    # method was winning it; staff still see it (here the shared app has no password)
    tag = f"blind-peek-{width}"
    tiny_services.store.submit(
        [
            RatingRecord("ann", f"{tag}-row", "anime", m, m, 0, r, blind=True, session_tag=tag)
            for m, r in (("raw", 5), ("template", 1))
        ]
    )
    tiny_services.sessions.start(tag, [], ["raw", "template"], True)
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(app_url)
        page.get_by_role("tab", name="Leaderboard").click()
        summary = page.locator("#lb-summary")
        expect(summary).to_contain_text(f"running blind session “{tag}” are left out")
        expect(page.locator("#lb-session textarea, #lb-session input").first).to_have_value("")
        page.locator("#lb-session textarea, #lb-session input").first.fill(tag)
        page.locator("#lb-refresh").click()
        expect(summary).to_contain_text(f"The standings of the running blind session '{tag}'")
        expect(summary).to_be_in_viewport()
        assert tag not in page.locator("#lb-table").inner_text()
        if SHOTS:
            page.screenshot(path=f"{SHOTS}/blind-hidden-{width}x{height}.png")
        # staff: the session form's standings button shows the whole session
        page.get_by_role("tab", name="Staff").click()
        page.locator("#fac-standings").click()
        standings = page.locator("#fac-standings-summary")
        expect(standings).to_contain_text(f"Session {tag}: 2 ratings")
        expect(standings).to_contain_text("Participants do not see them")
        expect(standings).to_be_in_viewport()
    finally:
        tiny_services.sessions.end()
        page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_a_date_typed_day_first_is_answered_in_plain_words_and_the_board_stays(
    browser, app_url, seeded, width, height
):
    """#28 item 18: "since='07/12/2026' is not a date: use ISO 8601…" read like a traceback."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    try:
        open_board(page, app_url, seeded)
        page.locator("#lb-since textarea, #lb-since input").first.fill("07/12/2026")
        page.locator("#lb-refresh").click()
        summary = page.locator("#lb-summary")
        expect(summary).to_contain_text("write dates as year-month-day")
        expect(summary).to_contain_text("2026-12-07 for 7 December 2026")
        expect(summary).not_to_contain_text("ISO 8601")
        expect(summary).not_to_contain_text("since=")
        expect(summary).to_be_in_viewport()
        expect(page.locator("#lb-table")).to_contain_text("raw")  # the board stays on screen
    finally:
        page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_a_board_of_the_pages_votes_only(browser, app_url, tiny_services, width, height):
    # #41 item 9: 200 MCP votes under 200 names flipped a board; a reader can leave API and MCP
    # votes out and see the page's alone
    tag = f"page-only-{width}"
    votes = [("ann", "page", 5, 1)] + [(f"bot-{i}", "mcp", 1, 5) for i in range(4)]
    for rater, source, raw, template in votes:
        tiny_services.store.submit(
            [
                RatingRecord(
                    rater, f"{tag}-row", "anime", m, m, 0, r, session_tag=tag, source=source
                )
                for m, r in (("raw", raw), ("template", template))
            ]
        )
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(app_url)
        page.get_by_role("tab", name="Leaderboard").click()
        summary = page.locator("#lb-summary")
        expect(summary).to_contain_text("rating")  # the opening fill is done
        page.locator("#lb-session textarea, #lb-session input").first.fill(tag)
        page.locator("#lb-refresh").click()
        expect(summary).to_contain_text("10 ratings across 2")
        source = page.locator("#lb-source")
        source.get_by_text("This page only").scroll_into_view_if_needed()
        expect(source.get_by_text("This page only (no API or MCP votes)")).to_be_in_viewport()
        source.get_by_text("This page only").click()
        expect(summary).to_contain_text("2 ratings across 2")
        summary.scroll_into_view_if_needed()
        expect(summary).to_be_in_viewport()
        grid = page.locator("#lb-table [role=grid]")
        first = grid.locator('[role=row][aria-rowindex="2"] [aria-colindex="2"]')
        expect(first).to_have_text("raw")  # ann's page vote leads once the bots are left out
        if SHOTS:
            page.screenshot(path=f"{SHOTS}/board-page-only-{width}x{height}.png")
    finally:
        context.close()
