"""Staff files as a facilitator handles them, in headless Chromium at a laptop's and a phone's
size: an export is saved by the browser from memory (no copy served from the server's cache),
and reference images are added one by one (a bad file is named, the good ones are kept) with
their uploads deleted once stored."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from demo.gradio_internals import upload_folder

pytestmark = pytest.mark.browser
PASSWORD = "staff-files-pw"
SIZES = [(1366, 768), (390, 844)]


@pytest.fixture(scope="module")
def staff_url(tiny_services):
    from conftest import served

    from pipelines.app.access import StaffGate

    with served(replace(tiny_services, staff=StaffGate(PASSWORD))) as demo:
        yield demo.local_url


@pytest.fixture(scope="module")
def rated(tiny_services, group_path, make_request) -> str:
    """One rated row whose rater name a spreadsheet would run as a formula."""
    res = tiny_services.comparison.compare(
        str(group_path), make_request("anime", "a person", ["raw", "template"], seed=31)
    )
    tiny_services.ratings.submit(
        res.comparison_id,
        {"raw": 4, "template": 2},
        rater="=HYPERLINK(zoe)",
        comment="staff-files-comment",
        voter="test:staff-files",
    )
    return res.comparison_id


def staff_page(browser, url: str, size: tuple[int, int]) -> Page:
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("tab", name="Staff").click()
    page.locator("#staff-pw input").fill(PASSWORD)
    return page


def files_holding(text: str) -> list[Path]:
    """Files in Gradio's cache whose bytes hold ``text``."""
    return [
        p
        for p in Path(upload_folder()).rglob("*")
        if p.is_file() and text.encode() in p.read_bytes()
    ]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_an_export_is_saved_by_the_browser_and_no_copy_stays(browser, staff_url, rated, size):
    page = staff_page(browser, staff_url, size)
    try:
        page.get_by_text("Export ratings").click()
        with page.expect_download() as caught:
            page.locator("#export").click()
        download = caught.value
        assert download.suggested_filename.startswith("become-ratings-")
        assert download.suggested_filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
        mine = [r for r in rows if r.get("comment") == "staff-files-comment"]
        assert mine and all(r["rater"] == "'=HYPERLINK(zoe)" for r in mine)  # no formula
        status = page.locator("#export-status")
        expect(status).to_contain_text("No copy of it stays on this server")
        expect(status).to_be_in_viewport()
        assert files_holding("staff-files-comment") == []
        page.screenshot(path=f"/tmp/staff-export-{size[0]}x{size[1]}.png")
    finally:
        page.context.close()


def test_good_references_are_added_and_a_bad_one_named(browser, staff_url, tiny_services, tmp_path):
    good = [tmp_path / "blue.png", tmp_path / "red.png"]
    Image.new("RGB", (40, 40), (20, 40, 200)).save(good[0])
    Image.new("RGB", (40, 40), (200, 30, 30)).save(good[1])
    bad = tmp_path / "cv.jpg"
    bad.write_bytes(b"%PDF-1.7\n" + b"refs" * 40)
    before = tiny_services.references.counts().get("watercolor", 0)
    page = staff_page(browser, staff_url, SIZES[0])
    try:
        page.get_by_text("Style reference images").click()
        style = page.locator("#refs-style input")  # the panel's own, once the tab has drawn it
        style.click()
        page.get_by_role("option", name="Watercolor").click()
        expect(style).to_have_value("Watercolor")
        page.locator("input[type=file][multiple]").first.set_input_files([*good, bad])
        page.locator("#refs-add").click()
        status = page.locator("#refs-status")
        expect(status).to_contain_text("Added 2 new image(s)")
        expect(status).to_contain_text("cv.jpg")
        expect(status).to_contain_text("PDF")
        expect(status).to_be_in_viewport()
        assert tiny_services.references.counts().get("watercolor", 0) == before + 2
        assert files_holding("refs" * 40) == []  # the refused upload is gone too
        page.screenshot(path="/tmp/staff-refs-1366x768.png")
    finally:
        tiny_services.references.clear("watercolor")
        page.context.close()
