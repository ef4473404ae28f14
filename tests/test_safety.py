"""The safety checker on every output: flagged outputs are replaced, counted, never shown or
stored; the banner says when the checker is off."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipelines.app.engines import SafetyChoice, resolve_engine, resolve_safety
from pipelines.core.settings import Settings
from pipelines.feedback.errors import RatingError
from pipelines.models.safety import FLAGGED_MESSAGE, placeholder


def px(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def svc(tiny_services):
    return tiny_services.comparison


@pytest.fixture
def flag_everything(svc):
    """The tiny checker's real forward pass, with thresholds every image exceeds."""
    weights = svc.engine.renderer.safety.get().model.concept_embeds_weights
    saved = weights.data.clone()
    weights.data.fill_(-2.0)  # cosine similarity is >= -1, so every concept score is > 0
    yield
    weights.data.copy_(saved)


def test_every_output_passes_the_checker(svc, group_path, make_request):
    res = svc.compare(group_path, make_request("anime", "a person", ["raw", "template"], 4))
    assert res.safety_checker and res.flagged == 0
    assert "render.safety" in res.timings
    assert res.model_ids["safety_checker"] == svc.engine.safety.model_id
    assert res.to_json()["safety"] == {"checker": "on", "flagged": 0}
    assert all(o.rendered and not o.flagged for o in res.outputs)


def test_flagged_outputs_are_replaced_counted_and_never_stored(
    svc, flag_everything, group_path, make_request, tiny_services, monkeypatch
):
    from demo.rows import SLOT_VALUES, row_values

    pipeline = svc.engine.renderer.pipeline
    generated = []
    call = pipeline.render_jobs

    def spy(jobs, progress, batch_size=None):
        out = call(jobs, progress, batch_size)
        generated.extend(out.images)
        return out

    monkeypatch.setattr(pipeline, "render_jobs", spy)
    res = svc.compare(group_path, make_request("anime", "a person", ["raw", "template"], 4))
    assert len(generated) == 2 and res.flagged == 2
    for out, pixels in zip(res.outputs, generated, strict=True):
        assert out.flagged and out.error == FLAGGED_MESSAGE
        assert not out.rendered and out.image_hash is None  # no hash: nothing to rate or store
        assert np.array_equal(px(out.image), px(placeholder(64, 64)))  # the placeholder
        assert not np.array_equal(px(out.image), px(pixels))  # never the flagged pixels
    data = res.to_json()
    assert data["safety"] == {"checker": "on", "flagged": 2}
    assert [o["flagged"] for o in data["outputs"]] == [True, True]

    # not stored: a rating (with consent to keep images) is refused for a flagged output
    with pytest.raises(RatingError, match="has no output"):
        tiny_services.ratings.submit(
            res.comparison_id, {"raw": 5}, rater="rater", consent_images=True
        )
    # the page shows the placeholder and says why; blind mode leaves flagged outputs out
    values = row_values(res, blind=False, n_slots=2)
    assert values[4 + 1]["value"] is res.outputs[0].image
    assert "The safety checker flagged this output" in values[4 + 2]  # shown escaped
    blind = row_values(res, blind=True, n_slots=2)
    assert blind[4]["visible"] is False and blind[4 + SLOT_VALUES]["visible"] is False


def test_banner_names_family_licence_and_says_when_the_checker_is_off(tiny_services):
    from demo.layout import engine_banner, server_details

    on = engine_banner(tiny_services)
    # the family and its licence class are for staff: participants read plain words
    assert "sd15-faceid" not in on and "research-only" not in on and "Safety checker off" not in on
    details = " ".join(server_details(tiny_services))
    assert "sd15-faceid" in details and "research-only" in details
    off = SafetyChoice(False, "CompVis/x", "its weights (CompVis/x, BECOME_SAFETY_MODEL) are gone")
    services = replace(tiny_services, engine=replace(tiny_services.engine, safety=off))
    assert "Safety checker off" in engine_banner(services)
    # the reason names a setting: staff read it in the Staff tab, participants never do
    assert "BECOME_SAFETY_MODEL" not in engine_banner(services)
    assert "Safety checker off: its weights (CompVis/x, BECOME_SAFETY_MODEL) are gone." in (
        server_details(services)
    )


def settings_for(tmp_path, **env) -> Settings:
    base = {"BECOME_DATA_DIR": str(tmp_path / "data"), "BECOME_FACE_ROOT": str(tmp_path / "if")}
    return Settings.from_env({**base, **env})


def test_checker_is_on_when_its_weights_are_here_and_off_otherwise(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = settings_for(tmp_path, BECOME_SAFETY_MODEL=str(tmp_path / "no-checker"))
    diffusers = resolve_engine(settings_for(tmp_path, BECOME_ENGINE="diffusers"))
    choice = resolve_safety(missing, diffusers)
    assert not choice.on and "BECOME_SAFETY_MODEL" in choice.reason
    here = tmp_path / "checker"
    here.mkdir()
    (here / "config.json").write_text("{}")
    assert resolve_safety(settings_for(tmp_path, BECOME_SAFETY_MODEL=str(here)), diffusers).on
    off = settings_for(tmp_path, BECOME_SAFETY_MODEL=str(here), BECOME_SAFETY_CHECKER="off")
    choice = resolve_safety(off, diffusers)
    assert not choice.on and "BECOME_SAFETY_CHECKER=off" in choice.reason
    # "on" insists: the first render fails with a message naming the setting, not unchecked
    insist = settings_for(
        tmp_path, BECOME_SAFETY_CHECKER="on", BECOME_SAFETY_MODEL=str(tmp_path / "no")
    )
    assert resolve_safety(insist, diffusers).on


def test_a_missing_checker_says_which_setting_to_change(tmp_path):
    from pipelines.models.safety import SafetyChecker, SafetyCheckerUnavailable

    with pytest.raises(SafetyCheckerUnavailable, match="BECOME_SAFETY_MODEL"):
        SafetyChecker.from_pretrained(tmp_path / "nothing", local_files_only=True)
