"""Staff → Retrain in two steps: a candidate is trained, checked and shown with what using it
would change; only **Use this model** puts it in use; every version restores in one click."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest
from test_retrain_versions import planted, rate

from demo.staff_tab import StaffHandlers, create_staff_tab


@pytest.fixture
def services(tiny_settings, tmp_path):
    from pipelines.app.bootstrap import build_services

    settings = replace(
        tiny_settings, data_dir=tmp_path, retrain_min_rows=100, retrain_min_held_out=20
    )
    return build_services(settings)


@pytest.fixture
def h(services) -> StaffHandlers:
    from demo.layout import staff_callbacks

    cb = replace(
        staff_callbacks(services),
        check_password=lambda pw, key: pw == "staff-pw",
        password_required=True,
    )
    return StaffHandlers(cb)


def test_retrain_shows_the_check_first_and_only_the_confirm_swaps(services, h):
    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.retrain("guess", None)
    with pytest.raises(gr.Error, match="no ratings yet"):
        h.retrain("staff-pw", None)
    rate(services.store, planted(59, seed=3, signal=False))
    with pytest.raises(gr.Error, match=r"the store has 59 rating rows.*at least 100 rows"):
        h.retrain("staff-pw", None)
    rate(services.store, planted(200, seed=11), start=59)

    report, use, candidate, model, listing, versions = h.retrain("staff-pw", None)
    version, replaces = candidate
    assert model.startswith("Current learned model: version `bundled`, trained")
    assert replaces == "bundled" and services.retrainer.in_use() == "bundled"  # not yet
    assert f"**Candidate `{version}`** trained on" in report
    assert "✅ It passes" in report and "**Use this model** replaces `bundled` (trained" in report
    assert use["visible"] is True
    assert f"`{version}`: trained" in listing and "`bundled` **(in use)**" in listing
    assert [v for _, v in versions["choices"]] == [version, "bundled"]
    assert versions["value"] == "bundled"

    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.use("guess", candidate)
    assert services.retrainer.in_use() == "bundled"
    report, use, state, model, listing, versions = h.use("staff-pw", candidate)
    assert services.retrainer.in_use() == version
    assert f"Version `{version}` is in use now, in place of `bundled`" in report
    assert use["visible"] is False and state is None
    assert model.startswith(f"Current learned model: version `{version}`, trained")
    assert f"`{version}` **(in use)**" in listing and versions["value"] == version
    with pytest.raises(gr.Error, match="Train and check a candidate first"):
        h.use("staff-pw", None)

    status, report, model, use, state, listing, versions = h.restore("staff-pw", "bundled")
    assert report == "" and use["visible"] is False and state is None
    assert services.retrainer.in_use() == "bundled" and "Version `bundled` is in use now" in status
    assert "version `bundled`, trained" in model and versions["value"] == "bundled"
    with pytest.raises(gr.Error, match="Choose a version"):
        h.restore("staff-pw", None)
    with pytest.raises(gr.Error, match="no kept model version 'gone-1'"):
        h.restore("staff-pw", "gone-1")
    # the candidate shown earlier was checked against `bundled`, which is in use again: fine
    h.use("staff-pw", candidate)
    assert services.retrainer.in_use() == version


def test_a_candidate_that_fails_is_kept_and_offers_no_confirm(services, h):
    rate(services.store, planted(220, seed=5, signal=False))
    report, use, candidate, _, listing, versions = h.retrain("staff-pw", None)
    assert "⚠️ **Not put in use**" in report and "The model in use (`bundled`) stays" in report
    assert use["visible"] is False and candidate is None
    assert services.retrainer.in_use() == "bundled"
    (kept,) = [v for _, v in versions["choices"] if v != "bundled"]
    assert f"`{kept}`: trained" in listing and "did not pass its check" in listing
    h.restore("staff-pw", kept)  # staff may still choose it, knowingly
    assert services.retrainer.in_use() == kept


def test_versions_wait_for_the_staff_password(h):
    listing, versions = h.versions_panel()
    assert "Enter the staff password" in listing and versions["choices"] == []
    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.versions("guess")
    listing, versions = h.versions("staff-pw")
    assert "`bundled` **(in use)**" in listing and versions["value"] == "bundled"
    open_app = StaffHandlers(replace(h.cb, password_required=False))
    listing, versions = open_app.versions_panel()  # no password: listed as the panel opens
    assert "`bundled` **(in use)**" in listing and versions["choices"][0][1] == "bundled"


def test_the_retrain_panel_has_its_two_steps_and_the_versions(h):
    with gr.Blocks() as demo, gr.Tab("Staff") as tab:
        create_staff_tab(h.cb, tab)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {"retrain", "retrain-report", "retrain-use", "model-versions", "version-restore"} <= ids
    api = {d.get("api_name") for d in demo.config["dependencies"]}
    assert not {"retrain", "use", "restore", "versions"} & api  # staff actions: no API
