"""Retraining cannot wipe the learned method: a minimum of ratings, a held-out check a candidate
must pass before it may replace the model in use, every model kept as a version to restore (the
bundled one always), and comparison records that name the version that ranked their prompts."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.augment.learned.data import ScoredPrompts
from pipelines.augment.learned.model import (
    CURRENT_MODEL,
    LearnedScorer,
    ScorerHolder,
    bundled_model_path,
    model_version,
    read_metadata,
)
from pipelines.feedback.export import training_row
from pipelines.feedback.records import RatingRecord
from pipelines.feedback.retrain import (
    Retrainer,
    RetrainError,
    RetrainPolicy,
    chance_level,
    held_out_check,
)
from pipelines.feedback.store import FeedbackStore
from pipelines.feedback.versions import UnknownVersion

LIKED = "salt texture"
WORDS = ("soft light", "film grain", "wet edges", "ink wash", "gold leaf", "pastel tones", LIKED)
SMALL = RetrainPolicy(min_rows=100, min_held_out=20)


def planted(n: int, seed: int, signal: bool = True) -> list[tuple[str, int]]:
    """(prompt, rating) rows: with ``signal``, prompts with LIKED get 4-5 and the others 1-3;
    without, every rating is a coin toss (what the tiny engine's pictures are worth)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        mods = rng.sample(WORDS, 3)
        prompt = f"a watercolor portrait of person {i}, " + ", ".join(mods)
        liked = LIKED in mods
        rating = rng.choice([4, 5] if liked else [1, 2, 3]) if signal else rng.randint(1, 5)
        rows.append((prompt, rating))
    return rows


def rate(store: FeedbackStore, rows: list[tuple[str, int]], start: int = 0) -> None:
    """One rating per row, each its own comparison (``c<start + i>``)."""
    store.submit(
        [
            RatingRecord(
                rater=f"r{i % 7}",
                comparison_id=f"c{start + i}",
                style="watercolor",
                method="learned",
                final_prompt=prompt,
                seed=i,
                rating=rating,
            )
            for i, (prompt, rating) in enumerate(rows)
        ]
    )


def fast_model(rows: list[tuple[str, int]]) -> LearnedScorer:
    """A fast-stage model trained on ``rows`` (no version id: as a holder built in code has)."""
    data = ScoredPrompts(
        "file.csv",
        [p for p, _ in rows],
        [float(r) for _, r in rows],
        ["watercolor"] * len(rows),
        "prompt",
        "score",
        "style",
    )
    return LearnedScorer.train([data])


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "ratings.sqlite3")


# -- the minimum of data ----------------------------------------------------------------------


def test_too_few_ratings_are_refused_saying_how_many_there_are_and_are_needed(tmp_path, store):
    # the issue: 59 tiny-engine ratings replaced the model trained on 6,000 PQPP rows
    rate(store, planted(59, seed=3, signal=False))
    live = fast_model(planted(300, seed=1))
    holder = ScorerHolder(live)
    retrainer = Retrainer(store, holder, tmp_path / "learned")
    with pytest.raises(RetrainError) as err:
        retrainer.candidate()
    message = str(err.value)
    assert "the store has 59 rating rows" in message
    assert "needs at least 200 rows and 30 held out" in message
    assert "model in use is unchanged" in message
    with pytest.raises(RetrainError, match="59 rating rows"):
        retrainer.retrain()
    assert holder.get() is live and not (tmp_path / "learned").exists()  # nothing trained


def test_the_minimum_counts_held_out_rows_too(tmp_path, store):
    rate(store, planted(120, seed=3))
    retrainer = Retrainer(store, ScorerHolder(), tmp_path, policy=RetrainPolicy(100, 60))
    with pytest.raises(RetrainError, match=r"120 rating rows, \d+ of them held out.*60 held out"):
        retrainer.candidate()


def test_the_minimum_is_a_setting_with_sane_bounds():
    from pipelines.core.settings import Settings, SettingsError

    s = Settings.from_env({"BECOME_RETRAIN_MIN_ROWS": "500", "BECOME_RETRAIN_MIN_HELD_OUT": "50"})
    assert (s.retrain_min_rows, s.retrain_min_held_out) == (500, 50)
    assert (Settings().retrain_min_rows, Settings().retrain_min_held_out) == (200, 30)
    with pytest.raises(SettingsError, match="BECOME_RETRAIN_MIN_HELD_OUT=2"):
        Settings.from_env({"BECOME_RETRAIN_MIN_HELD_OUT": "2"})
    with pytest.raises(SettingsError, match="BECOME_RETRAIN_MIN_ROWS=10"):
        Settings.from_env({"BECOME_RETRAIN_MIN_ROWS": "10"})  # fewer than the held-out ones


# -- the held-out check -----------------------------------------------------------------------


def test_the_check_needs_at_least_the_model_in_use_and_better_than_chance():
    assert chance_level(30, 0.95) == pytest.approx(0.306, abs=1e-3)
    assert chance_level(9, 0.95) == pytest.approx(0.586, abs=1e-3)
    assert chance_level(400, 0.95) < 0.1
    worse = held_out_check(0.5, 0.3, 40, 0.95)
    assert not worse.passed and "does worse than the model in use" in worse.verdict
    assert "0.30 against 0.50" in worse.verdict
    lucky = held_out_check(-0.2, 0.25, 30, 0.95)  # better than the model in use, by luck
    assert not lucky.passed and "within chance" in lucky.verdict and "0.31" in lucky.verdict
    assert held_out_check(None, 0.4, 30, 0.95).passed  # no model loaded: chance is the bar
    assert held_out_check(0.1, 0.45, 30, 0.95).passed
    assert held_out_check(0.45, 0.45, 30, 0.95).passed  # as well as the model in use
    flat = held_out_check(0.3, None, 30, 0.95)
    assert not flat.passed and "cannot check it" in flat.verdict


def test_a_candidate_from_noise_is_kept_as_a_version_but_not_put_in_use(tmp_path, store):
    rate(store, planted(250, seed=5, signal=False))
    live = fast_model(planted(300, seed=1))
    holder = ScorerHolder(live)
    retrainer = Retrainer(store, holder, tmp_path / "learned")
    report = retrainer.retrain()  # the one-step retrain obeys the check too
    assert not report.passed and not report.in_use
    # better than the model in use (the "-0.08 -> 0.17"), yet within chance
    assert report.pearson_after > report.pearson_before  # type: ignore[operator]
    assert "within chance" in report.verdict
    assert report.held_out_rows >= 30 and report.rows == 250 - report.held_out_rows
    assert holder.get() is live  # the model in use did not change
    assert not (tmp_path / "learned" / CURRENT_MODEL).exists()
    kept = retrainer.versions.get(report.version)
    assert kept.passed is False and kept.verdict == report.verdict
    assert kept.held_out_rows == report.held_out_rows and kept.pearson == report.pearson_after
    assert report.path.is_file() and read_metadata(report.path)["version_id"] == report.version


def test_a_candidate_worse_than_the_model_in_use_is_not_put_in_use(tmp_path, store):
    rows = planted(220, seed=7)
    rows = [(p, r if i % 3 else 6 - r) for i, (p, r) in enumerate(rows)]  # a third flipped
    rate(store, rows)
    live = fast_model(planted(3000, seed=1))  # the clean signal, on many more rows
    holder = ScorerHolder(live)
    report = Retrainer(store, holder, tmp_path / "learned", policy=SMALL).candidate()
    assert report.pearson_before is not None and report.pearson_after is not None
    assert report.pearson_after < report.pearson_before
    assert not report.passed and "does worse than the model in use" in report.verdict
    assert holder.get() is live


# -- versions: use, restore, keep -------------------------------------------------------------


def test_use_and_restore_any_version_the_bundled_one_included(tmp_path, store, tiny_settings):
    rate(store, planted(200, seed=11))
    weak = fast_model(planted(200, seed=2, signal=False))  # in use: knows nothing
    holder = ScorerHolder(weak)
    learned = tmp_path / "learned"
    swaps: list[str] = []
    retrainer = Retrainer(
        store,
        holder,
        learned,
        on_swap=lambda: swaps.append(model_version(holder.get())),
        bundled=bundled_model_path(tiny_settings),
        policy=SMALL,
    )
    report = retrainer.candidate()
    assert report.passed, report.verdict
    assert holder.get() is weak and swaps == []  # step 1 changes nothing in use

    used = retrainer.use(report.version, replacing=report.replaces)
    assert used.changed and retrainer.in_use() == report.version == swaps[-1]
    current = learned / CURRENT_MODEL
    assert current.read_bytes() == report.path.read_bytes()  # the very file that was checked
    # the model it replaced had no version: it was kept as one, so there is a way back
    ids = [v.id for v in retrainer.versions.all()]
    assert len(ids) == 3 and ids[-1] == "bundled" and report.version in ids
    (before,) = set(ids) - {report.version, "bundled"}
    assert "kept when another version replaced it" in retrainer.versions.get(before).verdict

    back = retrainer.use("bundled")  # the bundled model is always there
    assert back.replaced == report.version and retrainer.in_use() == "bundled"
    assert read_metadata(current)["version_id"] == "bundled"  # a restart, and the sync, know
    assert ScorerHolder.from_path(current).get().metadata["rows"] == 6000
    retrainer.use(before)
    assert retrainer.in_use() == before and swaps[-1] == before
    retrainer.use(report.version)
    assert ScorerHolder.from_path(current).get().metadata["version_id"] == report.version
    assert not retrainer.use(report.version).changed  # already in use: nothing happens

    with pytest.raises(UnknownVersion, match="20990101-000000-abcd"):
        retrainer.use("20990101-000000-abcd")
    with pytest.raises(UnknownVersion, match="not a model version id"):
        retrainer.use("../ratings")
    # a check made against another model than the one in use now no longer holds
    with pytest.raises(RetrainError, match="model in use changed since that check"):
        retrainer.use(before, replacing="bundled")
    assert retrainer.in_use() == report.version


def test_an_unversioned_model_in_use_is_kept_when_replaced(tmp_path, store, tiny_settings):
    learned = tmp_path / "learned"
    fast_model(planted(200, seed=4)).save(learned / CURRENT_MODEL)  # saved before versions
    holder = ScorerHolder.from_path(learned / CURRENT_MODEL)
    old = model_version(holder.get())
    assert old.startswith("current-") and len(old) == len("current-") + 8
    assert model_version(ScorerHolder.from_path(learned / CURRENT_MODEL).get()) == old
    retrainer = Retrainer(store, holder, learned, bundled=bundled_model_path(tiny_settings))
    retrainer.use("bundled")
    assert retrainer.versions.has(old)
    retrainer.use(old)
    assert retrainer.in_use() == old


def test_version_records_read_back_and_skip_what_they_do_not_know(tmp_path, store):
    rate(store, planted(200, seed=11))
    retrainer = Retrainer(store, ScorerHolder(), tmp_path, policy=SMALL)
    report = retrainer.candidate()
    record = tmp_path / "versions" / f"{report.version}.json"
    data = json.loads(record.read_text())
    assert data["parent"] == "" and data["rating_rows"] == 200 and data["passed"] is True
    record.write_text(json.dumps({**data, "from_a_newer_app": 1}))
    assert retrainer.versions.get(report.version).rows == report.rows
    record.write_text("{torn")  # the model file still says what it is
    assert retrainer.versions.get(report.version).created == data["created"]


# -- records name the version ------------------------------------------------------------------


def test_comparison_records_name_the_learned_model_version(tiny_services, group_path, make_request):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "learned"], 5)
    )
    assert res.learned_model == tiny_services.retrainer.in_use() == "bundled"
    assert res.to_json()["learned_model"] == "bundled"
    tiny_services.ratings.submit(res.comparison_id, {"raw": 3, "learned": 4}, rater="vera")
    rows = tiny_services.store.records(comparison_id=res.comparison_id)
    assert {r.learned_model for r in rows} == {"bundled"}
    assert {training_row(r)["learned_model"] for r in rows} == {"bundled"}
    # rows stored before the version was recorded still read
    for model_id in ("", '{"base": "x"}', "not json", '["x"]'):
        assert replace(rows[0], model_id=model_id).learned_model == ""


def test_a_retrained_version_is_named_by_the_rows_it_ranks(tiny_services, group_path, make_request):
    from pipelines.app.service import ComparisonService

    scorer = fast_model(planted(120, seed=9))
    scorer.metadata["version_id"] = "20260301-142530-a1b2"
    service = ComparisonService(
        tiny_services.engine,
        tiny_services.catalog,
        tiny_services.registry,
        scorer=ScorerHolder(scorer),
    )
    res = service.compare(group_path, make_request("anime", "a person", ["raw"], 5))
    assert res.learned_model == "20260301-142530-a1b2"
    assert res.model_ids["learned_model"] == "20260301-142530-a1b2"
    bare = ComparisonService(tiny_services.engine, tiny_services.catalog, tiny_services.registry)
    res = bare.compare(group_path, make_request("anime", "a person", ["raw"], 5))
    assert res.learned_model == "" and res.to_json()["learned_model"] is None
