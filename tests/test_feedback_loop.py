"""Ratings flow back: rows rated in the app retrain the learned method, which then changes."""

from __future__ import annotations

import random

import pytest

from pipelines.augment.base import AugmentContext
from pipelines.augment.learned import LearnedMethod, ScorerHolder, default_model_path
from pipelines.augment.tokens import TokenBudget
from pipelines.feedback.store import FeedbackStore, RatingError, RatingRecord
from pipelines.ratings import RatingService, RetrainError, retrain_from_feedback
from pipelines.styles import load_catalog

PLANTED = "salt texture"  # a watercolor-bank modifier the simulated raters love


def learned_prompt(method: LearnedMethod, catalog, style_id: str) -> str:
    ctx = AugmentContext(catalog=catalog, budget=TokenBudget(None))
    return method.augment("a portrait of a person", catalog.get(style_id), ctx)[0].prompt


def test_planted_preference_is_learned_after_retraining(tiny_settings, tmp_path):
    catalog = load_catalog(tiny_settings.assets_dir)
    style = catalog.get("watercolor")
    holder = ScorerHolder.from_path(default_model_path(tiny_settings))
    method = LearnedMethod(holder)
    before = learned_prompt(method, catalog, "watercolor")
    assert PLANTED not in before  # otherwise the test proves nothing

    # Simulated raters: outputs whose prompt carries the planted modifier get 4-5, others 1-3.
    rng = random.Random(0)
    bank = [m.text for m in catalog.modifiers_for(style)]
    store = FeedbackStore(tmp_path / "ratings.sqlite3")
    for row in range(80):
        mods = rng.sample(bank, 3)
        if row % 2 and PLANTED not in mods:
            mods[0] = PLANTED
        prompt = ", ".join([style.apply("a portrait of a person"), *mods])
        liked = PLANTED in mods
        rating = rng.choice([4, 5]) if liked else rng.choice([1, 2, 3])
        store.submit(
            [
                RatingRecord(
                    rater=f"rater{row % 7}",
                    comparison_id=f"c{row}",
                    style="watercolor",
                    method="learned",
                    final_prompt=prompt,
                    seed=row,
                    rating=rating,
                )
            ]
        )

    report = retrain_from_feedback(store, holder, tmp_path / "learned")
    assert report.path.exists() and report.metadata["rows"] == 80
    after = learned_prompt(method, catalog, "watercolor")
    assert PLANTED in after  # swapped in live, no restart


def test_retrain_without_ratings_says_what_to_do(tiny_settings, tmp_path):
    holder = ScorerHolder.from_path(default_model_path(tiny_settings))
    with pytest.raises(RetrainError, match="no ratings yet"):
        retrain_from_feedback(FeedbackStore(tmp_path / "r.sqlite3"), holder, tmp_path)


def test_rating_a_comparison_stores_what_was_rendered(tiny_services, group_path):
    res = tiny_services.comparison.compare(group_path, "anime", "a person", ["raw", "template"], 9)
    ratings = tiny_services.ratings
    receipt = ratings.submit(
        res.comparison_id, {"raw": 2, "template": 5}, rater="ana", best="template", blind=True
    )
    assert receipt.saved == 2 and not receipt.replaced_earlier
    rows = {r.method: r for r in tiny_services.store.records(comparison_id=res.comparison_id)}
    assert rows["template"].final_prompt == res.outputs[1].prompt
    assert rows["template"].is_best and rows["template"].blind and rows["raw"].rating == 2
    assert rows["raw"].image_path is None  # no consent, no image kept

    again = ratings.submit(res.comparison_id, {"raw": 4}, rater="ana", consent_images=True)
    assert again.replaced_earlier
    rows = tiny_services.store.records(comparison_id=res.comparison_id)
    assert [(r.method, r.rating) for r in rows] == [("raw", 4)]
    assert rows[0].image_path  # consented: the generated output (never the selfie) is kept


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratings": {"raw": 3}, "rater": "  "}, "rater is empty"),
        ({"ratings": {}, "rater": "bo"}, "no rating given"),
        ({"ratings": {"ensemble": 3}, "rater": "bo"}, "'ensemble' has no output"),
        ({"ratings": {"raw": 3}, "rater": "bo", "best": "learned"}, "best pick 'learned'"),
        ({"ratings": {"raw": 3, "template": None}, "rater": "bo", "best": "template"}, "rate it"),
        ({"ratings": {"raw": 9}, "rater": "bo"}, "9"),
    ],
)
def test_bad_ratings_are_refused_with_a_reason(tiny_services, group_path, kwargs, match):
    res = tiny_services.comparison.compare(group_path, "anime", "a person", ["raw", "template"], 1)
    ratings = kwargs.pop("ratings")
    with pytest.raises(RatingError, match=match):
        RatingService(tiny_services.store, tiny_services.comparison.recent).submit(
            res.comparison_id, ratings, **kwargs
        )
