"""Staff → Retrain in headless Chromium at a laptop's size: the candidate's check and what
**Use this model** would change are on screen before anything changes; the confirm swaps it in,
and a version restores in one click (issue: retraining wiped the learned method in one click)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from playwright.sync_api import expect
from test_retrain_versions import planted, rate

pytestmark = pytest.mark.browser

PASSWORD = "retrain-staff-pw"


@pytest.fixture(scope="module")
def retrain_app(tiny_settings, tmp_path_factory):
    """An app of its own (retraining changes its model), with a staff password and enough
    ratings for a candidate that passes its check."""
    from conftest import served

    from pipelines.app.access import StaffGate
    from pipelines.app.bootstrap import build_services

    settings = replace(
        tiny_settings,
        data_dir=tmp_path_factory.mktemp("retrain-app"),
        retrain_min_rows=100,
        retrain_min_held_out=20,
    )
    services = replace(build_services(settings), staff=StaffGate(PASSWORD))
    rate(services.store, planted(200, seed=11))
    with served(services) as demo:
        yield services, demo.local_url


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_retrain_confirms_what_will_change_before_it_changes_it(
    browser, retrain_app, width, height
):
    services, url = retrain_app
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(url)
        page.get_by_role("tab", name="Staff").click()
        page.locator("#staff-pw input").fill(PASSWORD)
        page.get_by_text("Retrain the learned method").click()
        page.locator("#retrain").click()
        report = page.locator("#retrain-report")
        expect(report).to_contain_text("It passes", timeout=300_000)
        confirm = report.get_by_text("Use this model replaces bundled")
        use = page.locator("#retrain-use")
        expect(confirm).to_be_in_viewport()  # what will change, read where it was asked
        expect(use).to_be_in_viewport()
        expect(report).to_contain_text("for the model in use (bundled)")
        page.screenshot(path=f"/tmp/staff-retrain-candidate-{width}x{height}.png")
        assert services.retrainer.in_use() == "bundled"  # shown, not done
        version = report.locator("code").first.inner_text()  # "Candidate `<id>`"

        use.click()
        expect(report).to_contain_text(f"Version {version} is in use now, in place of bundled")
        expect(report.get_by_text("is in use now")).to_be_in_viewport()
        expect(use).to_be_hidden()
        assert services.retrainer.in_use() == version
        expect(page.locator("#versions-list")).to_contain_text(f"{version} (in use)")
        expect(page.locator("#learned-model")).to_contain_text(f"version {version}")

        # one click back to the bundled model, the restore list naming what is in use
        versions = page.locator("#model-versions")
        versions.locator("input").click()
        page.get_by_role("option", name="bundled").click()
        page.locator("#version-restore").click()
        status = page.locator("#version-status")
        expect(status).to_contain_text("Version bundled is in use now")
        expect(status).to_be_in_viewport()
        assert services.retrainer.in_use() == "bundled"
        expect(report).to_be_empty()  # it was about the model in use before
        expect(page.locator("#versions-list")).to_contain_text("bundled (in use)")
        page.screenshot(path=f"/tmp/staff-retrain-restored-{width}x{height}.png")
    finally:
        page.context.close()
