"""Who a voter is, in headless Chromium (issue #17, section 7): a kiosk's one browser shared by
two people who type two names keeps both people's votes; a reload keeps the browser's voter."""

from __future__ import annotations

import os
import time

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def kiosk(browser, app_url):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(app_url)
        yield page
    finally:
        context.close()


def vote(page: Page, name: str, rating: str) -> None:
    page.locator("#rater textarea, #rater input").first.fill(name)
    page.locator("#rate-0 label", has_text=rating).click()
    page.locator("#submit-ratings").click()


def wait_for_votes(store, cid: str, n: int) -> list:
    """The row's votes once ``n`` are stored (a poll with a deadline: the page's status line
    reads the same for both people, so it cannot tell the second save has landed)."""
    deadline = time.monotonic() + 60
    while len(rows := store.records(comparison_id=cid)) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return rows


def test_two_people_on_one_page_both_keep_their_votes(kiosk, group_path, tiny_services):
    kiosk.locator("#selfie input[type=file]").set_input_files(str(group_path))
    expect(kiosk.locator("#selfie img").first).to_be_visible()
    kiosk.locator("#generate").click()
    expect(kiosk.locator("#out-caption-0")).to_contain_text("raw", timeout=120_000)
    expect(kiosk.locator("#submit-ratings")).to_be_visible()

    status = kiosk.locator("#rating-status")
    vote(kiosk, "kiosk-ann", "2")
    expect(status).to_contain_text("Saved 1 rating(s)")
    (cid,) = {r.comparison_id for r in tiny_services.store.records(rater="kiosk-ann")}
    vote(kiosk, "kiosk-bo", "5")  # the next person at the same browser
    expect(status).to_contain_text("Saved 1 rating(s)")  # a vote of their own, not an update

    rows = wait_for_votes(tiny_services.store, cid, 2)
    assert {(r.rater, r.method, r.rating) for r in rows} == {
        ("kiosk-ann", "raw", 2),
        ("kiosk-bo", "raw", 5),
    }
    voters = {r.rater: r.voter for r in rows}
    assert {r.source for r in rows} == {"page"}  # a page vote: a board keeps it with source=page
    browser_id = voters["kiosk-ann"].rsplit("/", 1)[0]
    assert len(browser_id) == 32  # the id the server issued on page load (its signature kept)
    assert browser_id and voters == {
        "kiosk-ann": f"{browser_id}/kiosk-ann",
        "kiosk-bo": f"{browser_id}/kiosk-bo",
    }

    kiosk.reload()  # the browser keeps its id: the first person changes her own vote
    expect(kiosk.locator("#run-status")).to_contain_text("Your last row")
    expect(kiosk.locator("#rate-0")).to_be_visible()
    vote(kiosk, "kiosk-ann", "3")
    expect(status).to_contain_text("Updated 1 rating(s)")
    rows = tiny_services.store.records(comparison_id=cid)
    assert {(r.voter, r.rating) for r in rows} == {
        (f"{browser_id}/kiosk-ann", 3),
        (f"{browser_id}/kiosk-bo", 5),
    }


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_the_next_person_at_a_kiosk_never_submits_the_last_ones_answers(
    browser, app_url, group_path, tiny_services, width, height
):
    # #28 item 2: Kim's ratings, best pick and comment stayed filled; Kai changed one rating
    # and submitted, and the database held Kim's ratings and comment under Kai's name
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(120_000)
    kim, kai = f"kiosk-kim-{width}", f"kiosk-kai-{width}"
    try:
        page.goto(app_url)
        page.locator("#selfie input[type=file]").set_input_files(str(group_path))
        expect(page.locator("#selfie img").first).to_be_visible()
        page.locator("#generate").click()
        expect(page.locator("#out-caption-0")).to_contain_text("raw", timeout=120_000)
        page.locator("#rate-0 label", has_text="2").click()
        page.locator("#rate-1 label", has_text="5").click()
        page.locator("#best-pick label", has_text="template").click()
        page.locator("#comment textarea, #comment input").first.fill("kim's private note")
        page.locator("#rater textarea, #rater input").first.fill(kim)
        page.locator("#submit-ratings").click()
        status = page.locator("#rating-status")
        expect(status).to_contain_text("cleared for the next person")
        expect(status).to_be_in_viewport()
        # what Kim entered is gone from the screen, where the next person looks
        for i in range(2):  # neither checked nor drawn as chosen
            expect(page.locator(f"#rate-{i} input:checked")).to_have_count(0)
            expect(page.locator(f"#rate-{i} label.selected")).to_have_count(0)
        expect(page.locator("#best-pick input:checked")).to_have_count(0)
        expect(page.locator("#best-pick label.selected")).to_have_count(0)
        page.mouse.move(0, 0)  # no hover tint in the picture
        expect(page.locator("#comment textarea, #comment input").first).to_have_value("")
        if shots := os.environ.get("BECOME_SHOTS"):
            page.screenshot(path=f"{shots}/kiosk-cleared-{width}x{height}.png")
        page.locator("#rater textarea, #rater input").first.fill(kai)
        page.locator("#rate-0 label", has_text="4").click()
        page.locator("#submit-ratings").click()
        expect(status).to_contain_text("Saved 1 rating(s)")
        rows = []
        deadline = time.monotonic() + 60
        while not rows and time.monotonic() < deadline:  # a poll with a deadline
            rows = tiny_services.store.records(rater=kai)
            time.sleep(0.1)
        assert [(r.method, r.rating, r.is_best, r.comment) for r in rows] == [("raw", 4, False, "")]
        kims = tiny_services.store.records(rater=kim)
        assert sorted((r.method, r.rating) for r in kims) == [("raw", 2), ("template", 5)]
        assert {r.comment for r in kims} == {"kim's private note"}
    finally:
        context.close()
