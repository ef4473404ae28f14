"""Automatic measures: identity on insightface's own photos, CLIP measures, where they travel."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from PIL import Image

from pipelines.app.bootstrap import build_measurer
from pipelines.core.lazy import Lazy
from pipelines.core.measures import NO_FACE, Measure, Measures
from pipelines.core.results import MethodOutput
from pipelines.measurer import OutputMeasurer


@pytest.fixture(scope="module")
def selfie(portrait_path) -> Image.Image:
    return Image.open(portrait_path).convert("RGB")


@pytest.fixture(scope="module")
def other_person(group_path) -> Image.Image:
    # the left of t1.jpg's group: a different person than the Tom Hanks portrait
    return Image.open(group_path).convert("RGB").crop((0, 0, 400, 400))


def _outputs(*images: Image.Image | None) -> list[MethodOutput]:
    return [
        MethodOutput(method=f"m{i}", prompt="a portrait of a person", image=img)
        for i, img in enumerate(images)
    ]


def test_identity_self_near_one_other_lower_blank_no_face(tiny_services, selfie, other_person):
    measurer = tiny_services.comparison.measurer
    style = tiny_services.catalog.get("watercolor")
    face = tiny_services.engine.face.get().analyze_loaded(selfie)
    blank = Image.new("RGB", (128, 128), (200, 180, 160))
    got = measurer.measure(_outputs(selfie, other_person, blank, None), selfie, face, "x", style)
    same, other, empty, missing = got
    assert same.identity.value == pytest.approx(1.0, abs=1e-3)
    assert other.identity.value < 0.5
    assert empty.identity.value is None and empty.identity.reason == NO_FACE and empty.faces == 0
    assert same.faces == 1
    assert missing is None  # no image, nothing measured
    assert same.identity.judge.endswith("rec_arcface_tiny.onnx")
    assert "face: none found" in empty.summary()


def test_second_recogniser_judges_with_its_own_embedding(
    tiny_services, tiny_settings, tmp_path, selfie, other_person
):
    from pipelines.tiny.face import write_tiny_face_pack

    judge_pack = write_tiny_face_pack(tmp_path / "judge_pack", seed=7)
    settings = replace(tiny_settings, identity_pack=str(judge_pack))
    s = tiny_services
    measurer = build_measurer(settings, s.engine, s.clip, s.scorer)
    face = s.engine.face.get().analyze_loaded(selfie)
    style = s.catalog.get("anime")
    own = s.comparison.measurer.measure(_outputs(other_person), selfie, face, "x", style)[0]
    same, other = measurer.measure(_outputs(selfie, other_person), selfie, face, "x", style)
    assert same.identity.judge.startswith("judge_pack/")  # the output says which model judged
    assert same.identity.value == pytest.approx(1.0, abs=1e-3)
    assert other.identity.value != pytest.approx(own.identity.value, abs=1e-3)


def test_missing_judge_pack_says_why_and_keeps_the_other_measures(
    tiny_services, tiny_settings, tmp_path, selfie
):
    settings = replace(tiny_settings, identity_pack=str(tmp_path / "nowhere"))
    s = tiny_services
    measurer = build_measurer(settings, s.engine, s.clip, s.scorer)
    face = s.engine.face.get().analyze_loaded(selfie)
    got = measurer.measure(_outputs(selfie), selfie, face, "x", s.catalog.get("anime"))[0]
    assert got.identity.value is None and "nowhere" in got.identity.reason
    assert got.prompt.value is not None and got.style_text.value is not None


def test_clip_unavailable_is_a_reason_not_a_number(tiny_services, selfie):
    from pipelines.augment.clip_backend import LazyClip

    def no_clip():
        raise OSError("CLIP weights x are not available locally")

    s = tiny_services
    measurer = OutputMeasurer(s.engine.face, LazyClip(no_clip), s.scorer.get)
    face = s.engine.face.get().analyze_loaded(selfie)
    got = measurer.measure(_outputs(selfie), selfie, face, "x", s.catalog.get("anime"))[0]
    for name in ("prompt", "style_text", "style_ref"):
        assert got.get(name).value is None
        assert "not available locally" in got.get(name).reason
    assert got.identity.value is not None and got.learned.value is not None
    assert "prompt" not in got.summary() and "n/a" not in got.summary()


def test_style_references_are_measured_when_the_style_has_some(tiny_services, tmp_path, selfie):
    s = tiny_services
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.new("RGB", (48, 48), (30, 90, 200)).save(refs / "a.png")
    style = replace(s.catalog.get("anime"), reference_dir=refs)
    face = s.engine.face.get().analyze_loaded(selfie)
    measurer = OutputMeasurer(s.engine.face, s.clip, None)
    got = measurer.measure(_outputs(selfie), selfie, face, "x", style)[0]
    assert got.style_ref.value is not None and -1 <= got.style_ref.value <= 1
    assert got.learned.value is None and "no learned scorer" in got.learned.reason
    no_refs = measurer.measure(_outputs(selfie), selfie, face, "x", s.catalog.get("anime"))[0]
    assert no_refs.style_ref.value is None and "no reference images" in no_refs.style_ref.reason


def test_measures_round_trip_json():
    m = Measures(
        identity=Measure(0.71234, "pack/rec.onnx"),
        style_text=Measure(0.28, "clip"),
        prompt=Measure(None, "clip", "CLIP is not available"),
        faces=2,
    )
    back = Measures.from_json(json.loads(json.dumps(m.to_json())))
    assert back.identity.value == pytest.approx(0.7123) and back.faces == 2
    assert back.prompt.reason == "CLIP is not available"
    assert m.summary() == "face 0.71 · style 0.28"  # no value, no word: details say why


def test_compare_returns_measures_and_ratings_store_and_export_them(
    tiny_services, group_path, make_request, tmp_path
):
    from pipelines.feedback.export import export_csv

    s = tiny_services
    res = s.comparison.compare(
        group_path, make_request("watercolor", "a portrait of a person", ["raw", "template"], 5)
    )
    assert "measure" in res.timings
    data = res.to_json()
    for out in data["outputs"]:
        assert out["measures"]["identity"]["value"] is not None
        assert out["measures"]["prompt"]["judge"]  # the CLIP that judged
    s.ratings.submit(res.comparison_id, {"raw": 2, "template": 4}, rater="m-rater")
    stored = s.store.records(comparison_id=res.comparison_id)
    by_method = {r.method: r for r in stored}
    raw_measures = json.loads(by_method["raw"].measures)
    assert raw_measures["identity"]["value"] == data["outputs"][0]["measures"]["identity"]["value"]
    out = tmp_path / "ratings.csv"
    export_csv(s.store, out, style="watercolor")
    rows = [r for r in csv.DictReader(out.open()) if r["rater"] == "m-rater"]
    assert {r["method"] for r in rows} == {"raw", "template"}
    raw_row = next(r for r in rows if r["method"] == "raw")
    assert float(raw_row["measure_identity"]) == pytest.approx(raw_measures["identity"]["value"])
    assert raw_row["identity_judge"].endswith(".onnx") and raw_row["measure_style_ref"] == ""


def test_a_failing_measure_never_costs_the_row(
    tiny_services, group_path, make_request, monkeypatch
):
    s = tiny_services
    broken = OutputMeasurer(Lazy(lambda: 1 / 0, "broken face"), s.clip, s.scorer.get)
    monkeypatch.setattr(s.comparison, "measurer", broken)
    res = s.comparison.compare(group_path, make_request("anime", "a person", ["raw"], 3))
    out = res.outputs[0]
    assert out.image is not None
    identity = out.measures.identity
    assert identity.value is None and "division by zero" in identity.reason
    assert out.measures.prompt.value is not None


def test_style_ref_reads_the_references_staff_upload(tiny_settings, tmp_path, selfie):
    """The measure reads the app's one reference store: images added through the Staff tab
    (as inversion uses them) are measured at once, without a restart."""
    from pipelines.app.bootstrap import build_services
    from pipelines.faces.photo import load_image

    settings = replace(tiny_settings, data_dir=tmp_path / "data")
    s = build_services(settings)
    style = s.catalog.get("anime")
    assert style.reference_images() == []  # nothing bundled: only uploads can count
    face = s.engine.face.get().analyze_loaded(selfie)
    before = s.comparison.measurer.measure(_outputs(selfie), selfie, face, "x", style)[0]
    assert before.style_ref.value is None and "no reference images" in before.style_ref.reason
    assert str(tmp_path) not in before.style_ref.reason  # participants read it: no paths
    upload = tmp_path / "ref.png"
    Image.new("RGB", (48, 48), (30, 90, 200)).save(upload)
    assert s.references.add("anime", [upload], load_image).added == 1
    after = s.comparison.measurer.measure(_outputs(selfie), selfie, face, "x", style)[0]
    assert after.style_ref.value is not None and -1 <= after.style_ref.value <= 1
