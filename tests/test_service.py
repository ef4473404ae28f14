"""The comparison service end to end on the tiny engine: real face code, real pipeline class."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.core.request import CompareInputError
from pipelines.faces.analysis import NoFaceError
from pipelines.styles.catalog import UnknownStyleError


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


@pytest.fixture(scope="module")
def svc(tiny_services):
    return tiny_services.comparison


def test_one_call_renders_one_image_per_method(svc, group_path, make_request):
    res = svc.compare(
        group_path, make_request("watercolor", "a portrait of a person", ["raw", "template"], 7)
    )
    assert [o.method for o in res.outputs] == ["raw", "template"]
    assert all(o.image is not None and o.image.size == (64, 64) for o in res.outputs)
    assert res.request.seed == 7 and res.engine == "tiny" and res.num_faces == 1
    # different prompts, same face and seed -> different pixels
    assert np.abs(pixels(res.outputs[0].image) - pixels(res.outputs[1].image)).mean() > 1


def test_same_seed_same_pixels_and_prompts_are_what_was_rendered(
    svc, group_path, make_request, monkeypatch
):
    seen = []
    render = svc.engine.renderer.render_many

    def spy(jobs, progress):
        seen.extend(list(job.prompt) for job in jobs)
        return render(jobs, progress)

    monkeypatch.setattr(svc.engine.renderer, "render_many", spy)
    a = svc.compare(
        group_path, make_request("anime", "a portrait of a person", ["template", "learned"], 3)
    )
    b = svc.compare(
        group_path, make_request("anime", "a portrait of a person", ["template", "learned"], 3)
    )
    assert len(seen) == 2  # one batched render per comparison
    assert seen[0] == [o.prompt for o in a.outputs]
    for x, y in zip(a.outputs, b.outputs, strict=True):
        assert np.array_equal(pixels(x.image), pixels(y.image))
    assert svc.engine.face.get().cache_info().hits >= 1  # the second call skipped detection


def test_identity_strength_changes_the_output(svc, group_path, make_request):
    kw = {"style": "oil_painting", "prompt": "a person", "methods": ["raw"], "seed": 5}
    zero = svc.compare(group_path, make_request(ip_adapter_scale=0.0, **kw)).outputs[0].image
    one = svc.compare(group_path, make_request(ip_adapter_scale=1.0, **kw)).outputs[0].image
    assert not np.array_equal(pixels(zero), pixels(one))


def test_learned_prompt_fits_the_token_budget_and_has_a_trace(svc, group_path, make_request):
    res = svc.compare(group_path, make_request("pop_art", "a portrait of a person", ["learned"], 1))
    out = res.outputs[0]
    assert out.error is None and out.score is not None
    assert svc.budget.count(out.prompt) <= 77 == svc.budget.max_tokens
    assert any(t.source != "template" for t in out.trace)


def test_unavailable_method_reports_why_instead_of_failing(
    svc, group_path, make_request, monkeypatch
):
    inversion = svc.registry.get("inversion")
    monkeypatch.setattr(inversion, "unavailable_reason", lambda: "CLIP is not installed here")
    res = svc.compare(group_path, make_request("watercolor", "a person", ["raw", "inversion"], 2))
    inv = res.outputs[1]
    assert inv.image is None and inv.error == "CLIP is not installed here"
    assert res.outputs[0].image is not None


def test_style_without_references_inverts_its_description(svc, group_path, make_request):
    # the tiny catalog's styles ship no reference images: the description is the target
    res = svc.compare(group_path, make_request("watercolor", "a person", ["raw", "inversion"], 2))
    inv = res.outputs[1]
    assert inv.error is None and inv.image is not None
    assert inv.candidates[0].meta["target"] == "style description"
    assert any("style's description" in t.reason for t in inv.trace)


def test_reference_image_makes_inversion_render(svc, group_path, make_request):
    ref = Image.open(group_path).convert("RGB")
    res = svc.compare(
        group_path, make_request("watercolor", "a person", ["inversion"], 2, reference_images=[ref])
    )
    out = res.outputs[0]
    assert out.error is None and out.image is not None
    assert out.prompt.startswith("a person")


def test_ensemble_reuses_the_rows_candidates(svc, group_path, make_request, monkeypatch):
    learned = svc.registry.get("learned")
    calls = []
    real = learned.augment
    monkeypatch.setattr(learned, "augment", lambda *a, **k: calls.append(1) or real(*a, **k))
    # ensemble listed first: it still runs last, pooling what learned proposed for this row
    res = svc.compare(group_path, make_request("anime", "a person", ["ensemble", "learned"], 3))
    assert [o.method for o in res.outputs] == ["ensemble", "learned"]
    assert len(calls) == 1
    pooled = {c.prompt for c in res.outputs[0].candidates if c.meta.get("from_method") == "learned"}
    assert pooled == {c.prompt for c in res.outputs[1].candidates}
    svc.compare(
        group_path, make_request("anime", "a person", ["ensemble"], 3)
    )  # alone: it runs learned itself
    assert len(calls) == 2


def test_ensemble_does_not_rerun_a_method_that_failed_in_the_row(
    svc, group_path, make_request, monkeypatch
):
    learned = svc.registry.get("learned")
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise RuntimeError("scorer exploded")

    monkeypatch.setattr(learned, "augment", broken)
    res = svc.compare(group_path, make_request("anime", "a person", ["learned", "ensemble"], 3))
    row, ens = res.outputs
    assert row.error == "learned failed: scorer exploded" and len(calls) == 1
    assert ens.error is None and ens.image is not None  # the ensemble still renders its best
    assert ens.candidates[0].meta["skipped"]["learned"] == "learned failed: scorer exploded"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": "   "}, "base prompt is empty"),
        ({"methods": []}, "at least one method"),
        ({"methods": ["magic"]}, "Unknown method 'magic'"),
        ({"seed": -1}, "seed=-1"),
        ({"num_inference_steps": 0}, "steps=0"),
        ({"height": 100}, "height=100"),
        ({"ip_adapter_scale": 3.0}, "ip_adapter_scale=3.0"),
    ],
)
def test_bad_requests_name_the_bad_value(svc, group_path, make_request, kwargs, match):
    args = {"style": "anime", "prompt": "a person", "methods": ["raw"], "seed": 1}
    args.update(kwargs)
    with pytest.raises(CompareInputError, match=match):
        svc.compare(group_path, make_request(**args))


def test_unknown_style_and_faceless_photo_are_typed_errors(svc, group_path, make_request):
    with pytest.raises(UnknownStyleError, match="vaporwave"):
        svc.compare(group_path, make_request("vaporwave", "a person", ["raw"], 1))
    blank = Image.new("RGB", (256, 256), (200, 180, 160))
    with pytest.raises(NoFaceError):
        svc.compare(blank, make_request("anime", "a person", ["raw"], 1))


def test_result_json_carries_prompts_and_metadata(svc, group_path, make_request):
    res = svc.compare(group_path, make_request("ukiyo_e", "a person", ["raw", "template"], 11))
    data = res.to_json()
    assert data["seed"] == 11 and data["style"] == "ukiyo_e"
    assert [o["prompt"] for o in data["outputs"]] == [o.prompt for o in res.outputs]
    assert data["outputs"][1]["negative_prompt"]  # the style's negative prompt
    assert set(data["timings"]) >= {"face", "augment", "render", "total"}
    assert svc.recent.get(res.comparison_id).outputs[0].prompt == res.outputs[0].prompt


def test_rows_batched_together_match_each_row_alone(svc, group_path, portrait_path, make_request):
    """Cross-request batching: two people's rows in one pipeline call, each pixel as if alone."""
    from pipelines.models.sd15_faceid import PortraitPipeline

    a = make_request("anime", "a person", ["raw", "template"], 3)
    b = make_request("anime", "a smiling person", ["template", "learned"], 8)
    calls = []
    real = PortraitPipeline.__call__

    def counting(self, *args, **kw):
        calls.append(len(kw["prompt"]))
        return real(self, *args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(PortraitPipeline, "__call__", counting)
    try:
        together = svc.compare_many([(group_path, a), (portrait_path, b)])
    finally:
        mp.undo()
    assert calls == [4]  # both rows' prompts in one call
    alone = [svc.compare(group_path, a), svc.compare(portrait_path, b)]
    for t, s in zip(together, alone, strict=True):
        assert t.timings["render.rows"] == 2 and s.timings["render.rows"] == 1
        for x, y in zip(t.outputs, s.outputs, strict=True):
            assert x.prompt == y.prompt
            assert np.abs(pixels(x.image) - pixels(y.image)).max() <= 1


def test_one_bad_photo_in_a_batch_fails_only_its_row(svc, group_path, make_request):
    blank = Image.new("RGB", (256, 256), (200, 180, 160))
    good = make_request("anime", "a person", ["raw"], 1)
    ok, bad = svc.compare_many([(group_path, good), (blank, good)])
    assert ok.outputs[0].image is not None
    assert isinstance(bad, NoFaceError)


def test_identical_prompts_render_once_and_say_so(svc, group_path, make_request, monkeypatch):
    learned = svc.registry.get("learned")
    template = svc.registry.get("template")
    monkeypatch.setattr(learned, "augment", template.augment)  # learned proposes the template
    seen = []
    render = svc.engine.renderer.render_many

    def spy(jobs, progress):
        seen.append([list(j.prompt) for j in jobs])
        return render(jobs, progress)

    monkeypatch.setattr(svc.engine.renderer, "render_many", spy)
    res = svc.compare(group_path, make_request("anime", "a person", ["template", "learned"], 2))
    assert len(seen[0][0]) == 1  # one prompt rendered, not two
    tpl, lrn = res.outputs
    assert lrn.same_as == "template" and lrn.image is tpl.image
    assert lrn.image_hash == tpl.image_hash and lrn.to_json()["same_as"] == "template"


def test_every_method_is_scored_on_the_learned_scale(svc, group_path, make_request):
    res = svc.compare(group_path, make_request("anime", "a person", ["raw", "template"], 4))
    scorer = svc.scorer.get()
    for out in res.outputs:  # both stages where the encoder loads, as the learned method ranks
        expected = float(scorer.rerank([out.prompt], "anime")[0][0])
        assert out.score == pytest.approx(expected, abs=1e-3)
