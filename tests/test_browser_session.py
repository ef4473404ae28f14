"""A live session in headless Chromium: the facilitator's form, refused votes, refreshes and the
leaderboard's first view (issue: a session of 30 people that holds)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def fresh(browser, app_url, tiny_services):
    """A new browser (its own storage) on the app. The live session a test starts (through
    the staff form or ``sessions.start``) is ended afterwards, pass or fail: the app is shared."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
    finally:
        try:
            context.close()
        finally:
            tiny_services.sessions.end()


def generate(page: Page, photo: str) -> None:
    page.locator("#selfie input[type=file]").set_input_files(photo)
    expect(page.locator("#selfie img").first).to_be_visible()
    page.locator("#generate").click()
    expect(page.locator("#out-caption-0")).to_contain_text("raw", timeout=120_000)
    # the rating panel opens once the row is this page's state: rate only then
    expect(page.locator("#submit-ratings")).to_be_visible()


def test_staff_form_shows_and_keeps_the_live_session(fresh, app_url, tiny_services):
    tiny_services.sessions.start("all-hands-2026-12", [], ["raw", "template"], False)
    fresh.goto(app_url)
    fresh.get_by_role("tab", name="Staff").click()
    expect(fresh.locator("#fac-tag textarea, #fac-tag input").first).to_have_value(
        "all-hands-2026-12"
    )
    expect(fresh.locator("#fac-summary")).to_contain_text("Current session: all-hands-2026-12")
    fresh.locator("#fac-blind input").check()  # the only field touched
    fresh.locator("#fac-start").click()
    expect(fresh.locator("#fac-status")).to_contain_text("is live")
    live = tiny_services.sessions.get()
    assert live.session_tag == "all-hands-2026-12" and live.blind
    assert live.methods == ("raw", "template")
    fresh.locator("#fac-end").click()
    expect(fresh.locator("#fac-status")).to_contain_text("Session ended")
    assert tiny_services.sessions.get().session_tag == ""


def test_a_refused_vote_leaves_the_row_and_a_refresh_brings_it_back(fresh, app_url, group_path):
    fresh.goto(app_url)
    generate(fresh, str(group_path))
    fresh.locator("#rate-0 label", has_text="4").click()
    fresh.locator("#rater textarea, #rater input").first.fill("")
    fresh.locator("#submit-ratings").click()
    expect(fresh.get_by_text("Type your name so your votes can be told apart")).to_be_visible()
    for i, method in enumerate(["raw", "template"]):  # the row is untouched
        expect(fresh.locator(f"#out-caption-{i}")).to_contain_text(method)
        expect(fresh.locator(f"#out-image-{i} img")).to_be_visible()
    expect(fresh.locator("#out-caption-0")).not_to_contain_text("Error")

    fresh.reload()
    expect(fresh.locator("#run-status")).to_contain_text("Your last row")
    expect(fresh.locator("#out-caption-0")).to_contain_text("raw")
    expect(fresh.locator("#out-image-0 img")).to_be_visible()
    expect(fresh.locator("#rate-0")).to_be_visible()  # and it can still be rated


def test_leaderboard_opens_on_the_live_labelled_session(fresh, app_url, tiny_services, group_path):
    tiny_services.sessions.start("lb-open-test", [], ["raw", "template"], False)
    fresh.goto(app_url)
    generate(fresh, str(group_path))
    fresh.locator("#rate-0 label", has_text="5").click()
    fresh.locator("#rate-1 label", has_text="2").click()
    fresh.locator("#rater textarea, #rater input").first.fill("lb-rater")
    fresh.locator("#submit-ratings").click()
    expect(fresh.locator("#rating-status")).to_contain_text("Saved 2 rating(s)")
    fresh.get_by_role("tab", name="Leaderboard").click()
    expect(fresh.locator("#lb-session textarea, #lb-session input").first).to_have_value(
        "lb-open-test"
    )
    expect(fresh.locator("#lb-summary")).to_contain_text("2 ratings across 2")
    expect(fresh.locator("#lb-table")).to_contain_text("labelled")
    expect(fresh.locator("#lb-table")).to_contain_text("template")


def test_leaderboard_chart_draws_every_series(
    fresh, app_url, tiny_services, make_request, group_path
):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 5)
    )
    for blind in (False, True):
        tiny_services.ratings.submit(
            res.comparison_id,
            {"raw": 4, "template": 2},
            rater=f"series-{blind}",
            session_tag="series-test",
            blind=blind,
        )
    fresh.goto(app_url)
    fresh.get_by_role("tab", name="Leaderboard").click()
    # opening the tab fills the filters from the live session: let it finish before typing
    expect(fresh.locator("#lb-summary")).to_contain_text("rating")
    fresh.locator("#lb-session textarea, #lb-session input").first.fill("series-test")
    fresh.locator("#lb-refresh").click()
    expect(fresh.locator("#lb-summary")).to_contain_text("4 ratings across 4")
    chart = fresh.locator("#lb-chart")
    # one bar per method and kind of vote: both series are in the drawn chart's legend
    expect(chart).to_contain_text("Anime · blind")  # the style by its name
    expect(chart).to_contain_text("Anime · labelled")


def test_participants_page_shows_no_setting_names(fresh, app_url):
    fresh.goto(app_url)
    banner = fresh.locator("#engine-banner")
    expect(banner).to_contain_text("Tiny engine")
    expect(banner).not_to_contain_text("BECOME_")
    expect(fresh.locator("#methods")).not_to_contain_text("BECOME_")


def test_a_blind_session_locks_blind_mode_ticked(fresh, app_url, tiny_services):
    tiny_services.sessions.start("blind-lock", [], ["raw", "template"], True)
    fresh.goto(app_url)
    box = fresh.locator("#blind input")
    expect(box).to_be_checked()
    expect(box).to_be_disabled()
    expect(fresh.locator("#blind")).to_contain_text("Set by the facilitator")
    fresh.locator("#blind").scroll_into_view_if_needed()  # below the fold at 1366x900
    expect(box).to_be_in_viewport()
