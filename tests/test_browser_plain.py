"""What a participant sees, in headless Chromium at a laptop's and a phone's size: plain words
(no server paths or setting names), the facilitator's session tag, a refused staff action that
leaves the form alone, and one row of cards whose 1-5 buttons sit on one line (issue 17, §5).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

FIVE = ["raw", "template", "learned", "inversion", "ensemble"]
# what only staff should read: a file path, a setting name, the model family's id
TECHNICAL = re.compile(r"(?<![\w.:/])/[\w.-]+/[\w./-]+|BECOME_[A-Z_]+|sd15-faceid|research-only")


@pytest.fixture
def session(tiny_services):
    """A live session of all five methods (ended afterwards, pass or fail: the app is shared)."""
    tiny_services.sessions.start("plain-words", [], FIVE, False)
    try:
        yield tiny_services.sessions.get()
    finally:
        tiny_services.sessions.end()


def open_page(browser, url: str, width: int, height: int) -> Page:
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    return page


def render_five(page: Page, photo: str) -> None:
    # the page has opened on the session's five methods (its load ticks them)
    expect(page.get_by_role("checkbox", name=re.compile("^ensemble"))).to_be_checked()
    page.locator("#selfie input[type=file]").set_input_files(photo)
    expect(page.locator("#selfie img").first).to_be_visible()
    page.locator("#generate").click()
    expect(page.locator("#out-caption-4")).to_contain_text("ensemble", timeout=300_000)
    expect(page.locator("#submit-ratings")).to_be_visible()


def visible_text(page: Page) -> str:
    """The text a person can read on the page now (hidden elements have no innerText)."""
    return page.evaluate("document.body.innerText")


def test_participants_read_plain_words_and_one_row_of_cards(browser, app_url, session, group_path):
    page = open_page(browser, app_url, 1366, 768)
    try:
        expect(page.locator("#guide")).to_contain_text("Upload a selfie")
        expect(page.locator("#guide")).to_be_in_viewport()
        render_five(page, str(group_path))
        for i in range(5):  # open every "Why this prompt": its text is read too
            page.get_by_text("Why this prompt").nth(i).click()
            expect(page.locator(f"#out-trace-{i}")).to_contain_text("computer's checks")
        text = visible_text(page)
        assert TECHNICAL.search(text) is None, TECHNICAL.search(text)
        assert "own ranking score" not in text
        for i in range(5):  # a card's caption: its name and the checks legend's three words
            expect(page.locator(f"#out-caption-{i}")).not_to_contain_text("predicted score")
        assert "looks like the selfie" in text  # the measures are named and explained
        # the facilitator's tag: shown, and nobody can type in it
        tag = page.locator("#session-tag textarea, #session-tag input").first
        expect(tag).to_have_value("plain-words")
        expect(tag).to_be_disabled()

        boxes = [page.locator(f"#out-image-{i}").bounding_box() for i in range(5)]
        assert len({round(b["y"]) for b in boxes}) == 1  # one row, same top
        assert len({round(b["width"]) for b in boxes}) == 1  # equal cards
        for i in range(5):  # each card's 1-5 on one line
            tops = {
                round(lab.bounding_box()["y"]) for lab in page.locator(f"#rate-{i} label").all()
            }
            assert len(tops) == 1, (i, tops)
        # the face beside an output: a slider between the two, once its card's fold is opened
        page.locator("#results-row").get_by_text("Compare with your face").first.click()
        slider = page.locator("#out-slider-0")
        expect(slider.locator("img")).to_have_count(2)
        slider.scroll_into_view_if_needed()
        expect(slider).to_be_in_viewport()
        page.screenshot(path="/tmp/work/shots17/plain-test-1366.png")
    finally:
        page.context.close()


def test_on_a_phone_two_cards_sit_side_by_side(browser, app_url, session, group_path):
    page = open_page(browser, app_url, 390, 844)
    try:
        render_five(page, str(group_path))
        page.locator("#out-image-0").scroll_into_view_if_needed()
        first, second = (page.locator(f"#out-image-{i}").bounding_box() for i in (0, 1))
        assert round(first["y"]) == round(second["y"])  # side by side, not stacked
        assert second["x"] + second["width"] <= 390  # both on screen; the rest swipe in
        expect(page.locator("#out-image-1")).to_be_in_viewport()
        tops = {round(lab.bounding_box()["y"]) for lab in page.locator("#rate-0 label").all()}
        assert len(tops) == 1
        page.screenshot(path="/tmp/work/shots17/plain-test-390.png")
    finally:
        page.context.close()


def test_no_session_no_tag_field(browser, app_url, tiny_services):
    assert not tiny_services.sessions.get().session_tag
    page = open_page(browser, app_url, 1366, 768)
    try:
        expect(page.locator("#guide")).to_be_visible()
        expect(page.locator("#session-tag")).to_be_hidden()
    finally:
        page.context.close()


def test_a_wrong_staff_password_leaves_the_form_as_it_was(browser, app_url, tiny_services):
    gate = tiny_services.staff
    saved = gate._password  # the shared app has none (no box shown): an empty one is wrong
    gate._password = "right-one"
    page = open_page(browser, app_url, 1366, 768)
    try:
        page.get_by_role("tab", name="Staff").click()
        tag = page.locator("#fac-tag textarea, #fac-tag input").first
        tag.fill("typed-by-me")
        page.locator("#fac-start").click()
        expect(page.get_by_text("Wrong staff password").first).to_be_visible()
        # said beside the button pressed, in view (the toast alone faded far from it)
        said = page.locator("#fac-status")
        expect(said).to_contain_text("Wrong staff password")
        expect(said).to_contain_text("box at the top of this tab")
        expect(said).to_be_in_viewport()
        expect(tag).to_have_value("typed-by-me")  # the form as it was
        expect(
            page.locator("#fac-tag, #fac-summary, #fac-status").get_by_text("Error")
        ).to_have_count(0)
        # no field turned into an error badge (the toast's own parts carry .error too)
        badges = page.locator("#fac-tag .error, #fac-summary .error, #fac-status .error")
        expect(badges).to_have_count(0)
        assert tiny_services.sessions.get().session_tag == ""
    finally:
        gate._password = saved
        page.context.close()


@pytest.fixture(scope="module")
def staff_app_url(tiny_services):
    """The app with a staff password set: the Staff tab as a deployment with staff shows it."""
    from dataclasses import replace

    from conftest import served

    from pipelines.app.access import StaffGate

    with served(replace(tiny_services, staff=StaffGate("staff-only-pw"))) as demo:
        yield demo.local_url


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_the_server_details_wait_for_the_staff_password(browser, staff_app_url, width, height):
    # #28 item 12: engine, setting names, paths and the model's figures are for staff
    page = open_page(browser, staff_app_url, width, height)
    try:
        page.get_by_role("tab", name="Staff").click()
        page.get_by_text("This server: engine, notes, methods").click()
        panel = page.locator("#staff-methods")
        expect(panel).to_contain_text("Enter the staff password")
        panel.scroll_into_view_if_needed()  # the accordion opened below the fold: scroll to it
        expect(panel).to_be_in_viewport(ratio=0.9)
        assert not TECHNICAL.search(visible_text(page)), "the Staff tab shows server details"
        show = page.get_by_role("button", name="Show server details")
        show.click()  # no password typed: refused, nothing shown, said in the panel
        expect(page.get_by_text("Wrong staff password").first).to_be_visible()
        expect(panel).to_contain_text("Wrong staff password")
        expect(panel).to_be_in_viewport()
        assert not TECHNICAL.search(visible_text(page))
        page.locator("#staff-pw input").fill("staff-only-pw")
        show.click()
        expect(panel).to_contain_text("Engine tiny", timeout=30_000)
        expect(panel).to_contain_text("Learned method ranks with")
        expect(panel.get_by_text("Learned method ranks with")).to_be_in_viewport()
        page.screenshot(path=f"/tmp/staff-server-{width}x{height}.png")
    finally:
        page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_a_tagged_session_offers_only_its_methods(browser, app_url, tiny_services, width, height):
    # #28 item 4: a session limited to raw/template/learned; inversion was tickable and its
    # votes landed under the session's tag
    tiny_services.sessions.start("three-methods", [], ["raw", "template", "learned"], False)
    page = open_page(browser, app_url, width, height)
    try:
        learned = page.get_by_role("checkbox", name=re.compile("^learned"))
        expect(learned).to_be_checked()
        learned.scroll_into_view_if_needed()
        expect(learned).to_be_in_viewport()
        expect(
            page.get_by_role("checkbox", name=re.compile("^(inversion|ensemble)"))
        ).to_have_count(0)
        page.screenshot(path=f"/tmp/session-methods-{width}x{height}.png")
    finally:
        tiny_services.sessions.end()
        page.context.close()
