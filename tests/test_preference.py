"""Human-preference measures (PickScore, HPSv2): loading, scoring, reasons, where they travel,
and the deck report's pairwise agreement and best-agreeing measure per style."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.app.bootstrap import build_measurer
from pipelines.app.engines import preference_sources
from pipelines.core.measures import MEASURES, PREFERENCE_MODELS, Measures
from pipelines.core.results import MethodOutput
from pipelines.core.settings import Settings, SettingsError
from pipelines.decks.stats import best_measure, pairwise_agreement, row_pairs
from pipelines.measurer import OutputMeasurer, preference_text
from pipelines.preference.scorer import (
    LazyPreference,
    PreferenceInputError,
    PreferenceSource,
    PreferenceUnavailable,
    load_preference,
    preference_judges,
)


@pytest.fixture(scope="module")
def selfie(portrait_path) -> Image.Image:
    return Image.open(portrait_path).convert("RGB")


def _outputs(*images: Image.Image) -> list[MethodOutput]:
    return [MethodOutput(method=f"m{i}", prompt="p", image=img) for i, img in enumerate(images)]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)) for _ in range(3)]


# ----------------------------------------------------------------------------- the scorers


def test_every_preference_measure_is_a_measure_with_a_licence():
    assert set(PREFERENCE_MODELS) == {"pickscore", "hpsv2"} <= set(MEASURES)
    assert PREFERENCE_MODELS["pickscore"].model_id == "yuvalkirstain/PickScore_v1"
    assert PREFERENCE_MODELS["pickscore"].processor_id == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert all(m.licence for m in PREFERENCE_MODELS.values())


def test_tiny_engine_loads_the_stand_ins_with_the_real_loading_code(tiny_settings):
    sources = {s.name: s for s in preference_sources(tiny_settings, "tiny")}
    assert set(sources) == set(PREFERENCE_MODELS)
    images = _images()
    scores = {}
    for name, source in sources.items():
        assert source.local_files_only is True and not source.off
        scorer = load_preference(source, "cpu")
        assert scorer.judge == f"tiny-preference-v1/{name}"
        scores[name] = scorer.score(images, "a portrait of a person, Anime")
        assert len(scores[name]) == 3 and all(np.isfinite(scores[name]))
        assert scorer.score(images, "a portrait of a person, Anime") == scores[name]  # same input
    assert scores["pickscore"] != scores["hpsv2"]  # two models, not one read twice


def test_pickscore_is_the_logit_scaled_cosine_and_hpsv2_the_plain_one(tiny_settings):
    """PickScore's published score is ``logit_scale.exp() * cos``; HPSv2's is the cosine."""
    sources = {s.name: s for s in preference_sources(tiny_settings, "tiny")}
    images = _images()
    for name, scaled in (("pickscore", True), ("hpsv2", False)):
        scorer = load_preference(sources[name], "cpu")
        model, proc = scorer.model, scorer.processor
        with torch.no_grad():
            t = model.get_text_features(**proc(text=["x y"], return_tensors="pt")).pooler_output
            px = proc(images=images, return_tensors="pt")["pixel_values"]
            i = model.get_image_features(pixel_values=px).pooler_output
        cos = torch.nn.functional.cosine_similarity(i, t).numpy()
        expected = cos * (model.logit_scale.exp().item() if scaled else 1.0)
        assert scorer.score(images, "x y") == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-5)
        assert scorer.logit_scaled is scaled


def test_text_features_are_encoded_once_per_text(tiny_settings, monkeypatch):
    scorer = load_preference(preference_sources(tiny_settings, "tiny")[1], "cpu")
    images = _images()
    first = scorer.score(images, "a cat, Anime")

    def no_text(*args, **kwargs):
        raise AssertionError("the text was encoded again")

    monkeypatch.setattr(scorer.model, "get_text_features", no_text)
    assert scorer.score(images[::-1], "a cat, Anime") == pytest.approx(first[::-1], abs=1e-5)
    with pytest.raises(AssertionError, match="encoded again"):
        scorer.score(images, "another text")


def test_bad_input_names_the_value(tiny_settings):
    source = preference_sources(tiny_settings, "tiny")[0]
    scorer = load_preference(source, "cpu")
    with pytest.raises(PreferenceInputError, match="at least one image"):
        scorer.score([], "x")
    with pytest.raises(PreferenceInputError, match="'imagereward'"):
        PreferenceSource("imagereward", "a/b", "a/b")


def test_weights_missing_offline_is_a_reason_remembered_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    unpinned = PreferenceSource("pickscore", "yuvalkirstain/PickScore_v1", "laion/x", True)
    with pytest.raises(PreferenceUnavailable, match=r"no published sha256.*UNVERIFIED_WEIGHTS=1"):
        load_preference(unpinned, "cpu")  # not pinned: runs only when unverified files may load
    source = replace(unpinned, allow_unverified=True)
    with pytest.raises(PreferenceUnavailable, match=r"PickScore_v1.*not available here"):
        load_preference(source, "cpu")
    missing = PreferenceSource(
        "hpsv2", str(tmp_path / "nowhere"), str(tmp_path / "nowhere"), allow_unverified=True
    )
    with pytest.raises(PreferenceUnavailable, match="BECOME_HPSV2_MODEL"):
        load_preference(missing, "cpu")
    calls = []

    def loader(s: PreferenceSource):
        calls.append(s.name)
        return load_preference(s, "cpu")

    lazy = LazyPreference(source, loader)
    for _ in range(2):
        with pytest.raises(PreferenceUnavailable, match="not available"):
            lazy.get()
    assert calls == ["pickscore"]  # not looked for again on every row


# ----------------------------------------------------------------------------- settings


def test_settings_choose_which_measures_run():
    assert Settings.from_env({}).preference_list == ("pickscore", "hpsv2")
    assert Settings.from_env({"BECOME_PREFERENCE_MEASURES": "none"}).preference_list == ()
    only = Settings.from_env({"BECOME_PREFERENCE_MEASURES": " HPSv2 "})
    assert only.preference_list == ("hpsv2",)
    with pytest.raises(SettingsError, match=r"BECOME_PREFERENCE_MEASURES='imagereward'"):
        Settings.from_env({"BECOME_PREFERENCE_MEASURES": "pickscore,imagereward"})
    moved = Settings.from_env({"BECOME_PICKSCORE_MODEL": "/models/pick"})
    assert moved.preference_source("pickscore")[0] == "/models/pick"


def test_a_measure_turned_off_says_so_and_loads_nothing(tiny_settings, tmp_path):
    settings = replace(tiny_settings, preference_measures="hpsv2")
    sources = {s.name: s for s in preference_sources(settings, "diffusers")}
    assert "BECOME_PREFERENCE_MEASURES='hpsv2'" in sources["pickscore"].off
    assert sources["hpsv2"].model_id == settings.hpsv2_model and not sources["hpsv2"].off
    with pytest.raises(PreferenceUnavailable, match="not run in this deployment"):
        load_preference(sources["pickscore"], "cpu")
    preview = preference_sources(tiny_settings, "preview")
    assert all(s.local_files_only is True for s in preview)  # the preview engine: no Hub


# ----------------------------------------------------------------------------- the measurer


def test_every_output_carries_both_preference_measures(tiny_services, selfie):
    s = tiny_services
    style = s.catalog.get("anime")
    face = s.engine.face.get().analyze_loaded(selfie)
    blank = Image.new("RGB", (64, 64), (20, 200, 30))
    got = s.comparison.measurer.measure(_outputs(selfie, blank), selfie, face, "a dog", style)
    for name in PREFERENCE_MODELS:
        values = [m.get(name).value for m in got]
        assert all(v is not None for v in values) and values[0] != values[1]
        assert got[0].get(name).judge == f"tiny-preference-v1/{name}"
    # every output of the row is judged against the same text: base prompt and style
    assert preference_text("  a   dog ", style) == f"a dog, {style.name}"
    scorer = s.comparison.measurer.preference["pickscore"].get()
    expected = scorer.score([selfie], preference_text("a dog", style))[0]
    assert got[0].pickscore.value == pytest.approx(expected)
    assert "pick " in got[0].summary() and "hps " in got[0].summary()


def test_unavailable_or_failing_scorers_give_reasons_and_keep_the_row(tiny_services, selfie):
    s = tiny_services
    face = s.engine.face.get().analyze_loaded(selfie)
    off = PreferenceSource("pickscore", "a/b", "a/b", True, off="pickscore is off here")

    class Broken:
        judge = "broken/hps"

        def score(self, images, text):
            raise RuntimeError("out of memory")

    judges = preference_judges([off])
    judges["hpsv2"] = LazyPreference(PreferenceSource("hpsv2", "c/d", "c/d"), lambda _: Broken())
    measurer = OutputMeasurer(s.engine.face, s.clip, s.scorer.get, preference=judges)
    got = measurer.measure(_outputs(selfie), selfie, face, "x", s.catalog.get("anime"))[0]
    assert got.pickscore.value is None and got.pickscore.reason == "pickscore is off here"
    assert got.hpsv2.value is None and "out of memory" in got.hpsv2.reason
    assert got.hpsv2.judge == "broken/hps"
    assert got.identity.value is not None and got.prompt.value is not None
    bare = OutputMeasurer(s.engine.face, s.clip, None)  # built without preference scorers
    none = bare.measure(_outputs(selfie), selfie, face, "x", s.catalog.get("anime"))[0]
    assert "not set up" in none.pickscore.reason
    rows = dict((name, shown) for name, shown, _ in got.details())
    assert rows["pickscore"] == "— (pickscore is off here)"  # the detail table says why


def test_turned_off_in_settings_reaches_the_output(tiny_services, tiny_settings, selfie):
    s = tiny_services
    settings = replace(tiny_settings, preference_measures="none")
    engine = replace(s.engine, preference=preference_sources(settings, "tiny"))
    measurer = build_measurer(settings, engine, s.clip, s.scorer)
    face = s.engine.face.get().analyze_loaded(selfie)
    got = measurer.measure(_outputs(selfie), selfie, face, "x", s.catalog.get("anime"))[0]
    for name in PREFERENCE_MODELS:
        assert "BECOME_PREFERENCE_MEASURES='none'" in got.get(name).reason


def test_warmup_loads_the_preference_models(tiny_services, tiny_settings):
    import copy

    t = tiny_services
    comparison = copy.copy(t.comparison)  # the app's, with a measurer whose models are unloaded
    comparison.measurer = build_measurer(tiny_settings, t.engine, t.clip, t.scorer)
    judges = comparison.measurer.preference
    assert set(judges) == set(PREFERENCE_MODELS) and not any(j.loaded for j in judges.values())
    replace(t, comparison=comparison).warmup()
    assert all(j.loaded for j in judges.values())


def test_preference_travels_to_the_api_ratings_and_export(
    tiny_services, group_path, make_request, tmp_path
):
    from pipelines.feedback.export import export_csv

    s = tiny_services
    res = s.comparison.compare(
        group_path, make_request("anime", "a portrait of a person", ["raw", "template"], 9)
    )
    data = res.to_json()
    picks = [o["measures"]["pickscore"]["value"] for o in data["outputs"]]
    assert all(v is not None for v in picks)
    assert all(o["measures"]["hpsv2"]["judge"].endswith("hpsv2") for o in data["outputs"])
    s.ratings.submit(res.comparison_id, {"raw": 1, "template": 5}, rater="pref-rater")
    stored = {r.method: r for r in s.store.records(comparison_id=res.comparison_id)}
    back = Measures.from_json(json.loads(stored["raw"].measures))
    assert back.pickscore.value == pytest.approx(picks[0])
    out = tmp_path / "ratings.csv"
    export_csv(s.store, out, style="anime")
    rows = [r for r in csv.DictReader(out.open()) if r["rater"] == "pref-rater"]
    raw = next(r for r in rows if r["method"] == "raw")
    assert float(raw["measure_pickscore"]) == pytest.approx(picks[0])
    assert raw["measure_hpsv2"] != ""
    assert "pickscore" not in raw["measures_missing"]  # measured: nothing to explain
    assert "style_ref: style 'anime' has no reference images" in raw["measures_missing"]


def test_export_says_why_a_preference_measure_is_empty(tmp_path):
    from pipelines.feedback.export import export_jsonl
    from pipelines.feedback.records import RatingRecord
    from pipelines.feedback.store import FeedbackStore

    off = "pickscore is not run in this deployment"
    m = Measures.from_json({"pickscore": {"value": None, "judge": "", "reason": off}})
    store = FeedbackStore(tmp_path / "r.sqlite3")
    store.submit(
        [RatingRecord("x", "c1", "anime", "raw", "p", 1, 3, measures=json.dumps(m.to_json()))]
    )
    export_jsonl(store, tmp_path / "r.jsonl")
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert row["measure_pickscore"] is None
    assert f"pickscore: {off}" in row["measures_missing"]
    assert "hpsv2: not measured" in row["measures_missing"]


def test_old_records_without_preference_read_as_not_measured():
    old = Measures.from_json({"identity": {"value": 0.5, "judge": "j", "reason": None}})
    assert old.pickscore.value is None and old.pickscore.reason == "not measured"
    assert old.summary() == "face 0.50"


# ----------------------------------------------------------------------------- deck statistics


def test_row_pairs_by_hand():
    # (0,1) and (0,2) ordered alike, (1,2) reversed: 2 of 3
    assert row_pairs([1, 2, 3], [1, 3, 2]) == (2.0, 3)
    assert row_pairs([1, 2, 3], [1, 1, 2]) == (2.0, 2)  # the rater's tie is no pair
    assert row_pairs([1, 1, 3], [1, 2, 3]) == (2.5, 3)  # the measure's tie counts one half
    with pytest.raises(ValueError, match="pair them"):
        row_pairs([1, 2], [1])


def test_pairwise_agreement_and_best_measure():
    good = {f"r{i}": (2.0, 2) for i in range(10)}
    bad = {f"r{i}": (0.0, 2) for i in range(10)}
    half = {f"r{i}": (1.0, 2) for i in range(10)}
    a = pairwise_agreement(good, n_boot=100)
    assert (a.pairs, a.share, a.low, a.high) == (20, 1.0, 1.0, 1.0)
    mixed = pairwise_agreement({**good, **{f"s{i}": (0.0, 2) for i in range(10)}}, n_boot=200)
    assert mixed.share == 0.5 and mixed.low < 0.5 < mixed.high
    assert pairwise_agreement({}).share is None
    best = best_measure({"pickscore": good, "hpsv2": bad, "identity": half}, n_boot=100)
    assert best.measure == "pickscore" and best.runner_up == "identity" and best.wins == 1.0
    assert best_measure({"hpsv2": {}}) is None


def test_report_names_the_measure_that_agrees_best_per_style(tmp_path):
    """One rater, 6 rows of raw vs template (3 anime, 3 watercolor); raw preferred except r1.
    pickscore orders every pair like the rater (1.0), identity ties every pair (0.5), hpsv2
    always prefers template: it agrees only on r1 (anime 1/3, watercolor 0/3)."""
    from pipelines.decks.report import build_report, write_report
    from pipelines.feedback.records import RatingRecord
    from pipelines.feedback.store import FeedbackStore

    deck = tmp_path / "deck"
    deck.mkdir()
    (deck / "deck.json").write_text(json.dumps({"deck": "pref"}))
    lines, records = [], []
    for i in range(6):
        row, style = f"r{i}", "anime" if i < 3 else "watercolor"
        flip = i == 1
        for method in ("raw", "template"):
            raw = method == "raw"
            pick = (10.0 if raw else 20.0) if flip else (20.0 if raw else 10.0)
            measures = {
                "identity": {"value": 0.5, "judge": "j", "reason": None},
                "pickscore": {"value": pick, "judge": "p", "reason": None},
                "hpsv2": {"value": 0.2 if raw else 0.3, "judge": "h", "reason": None},
            }
            lines.append(
                {
                    "deck": "pref",
                    "row_id": row,
                    "selfie": "s",
                    "style": style,
                    "base_prompt": "p",
                    "seed": i,
                    "method": method,
                    "final_prompt": method,
                    "negative_prompt": "",
                    "error": None,
                    "image": f"images/{row}/{method}.png",
                    "image_hash": "0" * 64,
                    "measures": measures,
                    "params": {},
                    "timings": {},
                    "engine": "tiny",
                    "model_ids": {},
                }
            )
            rating = (5 if not raw else 1) if flip else (4 if raw else 2)
            records.append(
                RatingRecord(
                    "a", f"pref/{row}", style, method, method, i, rating, deck_id="pref", row_id=row
                )
            )
    (deck / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    store = FeedbackStore(tmp_path / "ratings.sqlite3")
    store.submit(records)
    report = build_report(deck, store, n_boot=50)
    assert report.agreement["pickscore"]["all"].share == 1.0
    assert report.agreement["hpsv2"]["anime"].share == pytest.approx(1 / 3)
    assert report.agreement["hpsv2"]["watercolor"].share == 0.0
    assert report.agreement["identity"]["all"].share == 0.5
    assert report.agreement["pickscore"]["all"].pairs == 6
    for scope in ("all", "anime", "watercolor"):
        best = report.best[scope]
        assert (best.measure, best.runner_up) == ("pickscore", "identity")
        assert best.agreement.low is not None and best.wins == 1.0
    md = report.markdown
    assert "## Pairwise agreement with the raters" in md
    assert "| anime | **pickscore** | 1.00 [1.00, 1.00] (n=3 pairs) | 100% | identity |" in md
    written = write_report(deck, store, n_boot=50)
    assert Image.open(written.chart_path).size[1] > 200
