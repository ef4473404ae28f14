"""Ratings flow back: rows rated in the app retrain the learned method, which then changes."""

from __future__ import annotations

import random
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub.utils import filter_repo_objects

from pipelines.augment.base import AugmentContext
from pipelines.augment.learned.model import ScorerHolder, default_model_path
from pipelines.augment.learned.search import LearnedMethod
from pipelines.augment.tokens import TokenBudget
from pipelines.feedback.errors import RatingError
from pipelines.feedback.ratings import RatingService
from pipelines.feedback.records import RatingRecord
from pipelines.feedback.retrain import Retrainer, RetrainError, RetrainPolicy, describe_model
from pipelines.feedback.store import FeedbackStore
from pipelines.feedback.sync import PATH_IN_REPO, start_sync
from pipelines.styles.catalog import load_catalog

PLANTED = "salt texture"  # a watercolor-bank modifier the simulated raters love
SMALL = RetrainPolicy(min_rows=50, min_held_out=10)  # what 80 simulated ratings can meet


def learned_prompt(method: LearnedMethod, catalog, style_id: str) -> str:
    ctx = AugmentContext(catalog=catalog, budget=TokenBudget(None))
    return method.augment("a portrait of a person", catalog.get(style_id), ctx)[0].prompt


def rate_planted(store: FeedbackStore, catalog, rows: int = 80) -> None:
    """Simulated raters: outputs whose prompt has the planted modifier get 4-5, others 1-3."""
    style = catalog.get("watercolor")
    rng = random.Random(0)
    bank = [m.text for m in catalog.modifiers_for(style)]
    for row in range(rows):
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


def test_planted_preference_is_learned_after_retraining(tiny_settings, tmp_path):
    catalog = load_catalog(tiny_settings.assets_dir)
    holder = ScorerHolder.from_path(default_model_path(tiny_settings))
    method = LearnedMethod(holder)
    before = learned_prompt(method, catalog, "watercolor")
    assert PLANTED not in before  # otherwise the test proves nothing

    store = FeedbackStore(tmp_path / "ratings.sqlite3")
    rate_planted(store, catalog)

    report = Retrainer(store, holder, tmp_path / "learned", policy=SMALL).retrain()
    assert report.passed and report.in_use, report.verdict
    # the model in use is the model checked: trained without the held-out rows
    assert report.path.exists() and report.metadata["rows"] == 80 - report.held_out_rows
    after = learned_prompt(method, catalog, "watercolor")
    assert PLANTED in after  # swapped in live, no restart


def _services(settings, data_dir):
    from pipelines.app.bootstrap import build_services

    return build_services(
        replace(
            settings,
            data_dir=data_dir,
            feedback_repo="org/r",
            feedback_token="hf_x",
            retrain_min_rows=SMALL.min_rows,
            retrain_min_held_out=SMALL.min_held_out,
        )
    )


class FakeHub:
    """A dataset repo on disk that honours the patterns the app passes, as the Hub does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.schedulers: list[dict] = []

    def scheduler(self, **kw) -> SimpleNamespace:
        self.schedulers.append(kw)
        return SimpleNamespace(lock=threading.Lock())

    def push(self) -> None:
        """What CommitScheduler uploads from each sync folder."""
        for kw in self.schedulers:
            self._copy(
                Path(kw["folder_path"]), self.root / kw["path_in_repo"], kw["allow_patterns"]
            )

    def download(self, **kw) -> str:
        """What snapshot_download returns: a folder with the matching files only."""
        out = self.root.parent / f"snapshot-{len(list(self.root.parent.glob('snapshot-*')))}"
        self._copy(self.root, out, kw["allow_patterns"])
        return str(out)

    @staticmethod
    def _copy(src: Path, dest: Path, patterns: list[str]) -> None:
        files = [f.relative_to(src).as_posix() for f in src.rglob("*") if f.is_file()]
        for rel in filter_repo_objects(files, allow_patterns=patterns):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest / rel)


def test_retrained_model_comes_back_on_a_fresh_disk_through_the_dataset(tiny_settings, tmp_path):
    hub = FakeHub(tmp_path / "hub" / "repo")
    first = _services(tiny_settings, tmp_path / "run1")
    sync = start_sync(
        first.settings, first.store, scheduler_factory=hub.scheduler, downloader=hub.download
    )
    first.retrainer.sync_with(sync, first.settings.feedback_repo)
    rate_planted(first.store, first.catalog)
    bundled = first.scorer.get().metadata["validation"]["validation.csv"]["pearson"]
    assert bundled > 0.59  # the bundled two-stage model's figure, as the banner states it
    assert describe_model(first.scorer).endswith(
        f"on train.csv (6000 rows); Pearson {bundled:.3f} on held-out validation.csv"
    )
    report = first.retrainer.retrain([])
    assert report.in_use and report.synced_to == "org/r"
    today = report.metadata["created"][:10]
    kept = 80 - report.held_out_rows
    assert (
        describe_model(first.scorer)
        == f"trained {today} on feedback store ratings.sqlite3 ({kept} rows)"
    )
    hub.push()
    synced = hub.root / PATH_IN_REPO / "learned" / "current.npz"
    assert synced.read_bytes() == report.path.read_bytes()

    # the Space restarts on an empty disk: the bundled model until the dataset is read
    second = _services(tiny_settings, tmp_path / "run2")
    learned = second.registry.get("learned")
    assert PLANTED not in learned_prompt(learned, second.catalog, "watercolor")
    start_sync(
        second.settings,
        second.store,
        scheduler_factory=hub.scheduler,
        downloader=hub.download,
        on_model=second.retrainer.adopt,
    )
    assert second.store.count() == 80
    assert PLANTED in learned_prompt(learned, second.catalog, "watercolor")
    assert (tmp_path / "run2" / "learned" / "current.npz").is_file()  # kept for the next start
    # the model in use keeps its version id, and is kept as a version on the new disk
    assert second.retrainer.in_use() == report.version
    assert [v.id for v in second.retrainer.versions.all()] == [report.version, "bundled"]

    # staff put the bundled model back: the dataset gets it, so a third disk starts with it
    first.retrainer.use("bundled")
    hub.push()
    third = _services(tiny_settings, tmp_path / "run3")
    start_sync(
        third.settings,
        third.store,
        scheduler_factory=hub.scheduler,
        downloader=hub.download,
        on_model=third.retrainer.adopt,
    )
    assert third.retrainer.in_use() == "bundled"
    assert PLANTED not in learned_prompt(third.registry.get("learned"), third.catalog, "watercolor")


def test_a_broken_synced_model_is_ignored(tiny_settings, tmp_path):
    services = _services(tiny_settings, tmp_path)
    before = services.scorer.get()
    good = default_model_path(services.settings).read_bytes()
    for name, data in [("junk.npz", b"not a model"), ("cut.npz", good[: len(good) // 2])]:
        bad = tmp_path / name
        bad.write_bytes(data)
        services.retrainer.adopt(bad)  # logged, never raised: the app must still start
        assert services.scorer.get() is before
    assert not (tmp_path / "learned" / "current.npz").exists()


def test_retrain_without_ratings_says_what_to_do(tiny_settings, tmp_path):
    holder = ScorerHolder.from_path(default_model_path(tiny_settings))
    with pytest.raises(RetrainError, match="no ratings yet"):
        Retrainer(FeedbackStore(tmp_path / "r.sqlite3"), holder, tmp_path).retrain()


def test_rating_a_comparison_stores_what_was_rendered(tiny_services, group_path, make_request):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 9)
    )
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
    assert again.replaced_earlier and again.saved == 1
    rows = {r.method: r for r in tiny_services.store.records(comparison_id=res.comparison_id)}
    # a correction changes the picture it rates; the rest of ana's row stays as it was
    assert {m: (r.rating, r.is_best) for m, r in rows.items()} == {
        "raw": (4, False),
        "template": (5, True),
    }
    assert rows["raw"].image_path  # consented: the generated output (never the selfie) is kept


def test_outputs_are_png_encoded_once_per_need(
    tiny_services, group_path, make_request, monkeypatch
):
    from pipelines.feedback import ratings as ratings_module
    from pipelines.feedback.records import image_sha256

    encoded = []
    real = ratings_module.png_bytes
    monkeypatch.setattr(ratings_module, "png_bytes", lambda im: encoded.append(1) or real(im))
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 5)
    )
    ratings = tiny_services.ratings
    ratings.submit(res.comparison_id, {"raw": 3, "template": 4}, rater="a", consent_images=True)
    assert len(encoded) == 2  # one encoding per kept output: the hash was taken at render time
    ratings.submit(res.comparison_id, {"raw": 1, "template": 2}, rater="b")
    assert len(encoded) == 2  # the hash is kept on the row: later raters pay nothing
    rows = tiny_services.store.records(comparison_id=res.comparison_id)
    by_method = {o.method: image_sha256(o.image) for o in res.outputs}
    assert {r.image_hash for r in rows} == set(by_method.values()) and len(rows) == 4
    kept = [r for r in rows if r.image_path]
    assert len(kept) == 2 and all(Path(r.image_path).stem == r.image_hash for r in kept)


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
def test_bad_ratings_are_refused_with_a_reason(
    tiny_services, group_path, make_request, kwargs, match
):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 1)
    )
    ratings = kwargs.pop("ratings")
    with pytest.raises(RatingError, match=match):
        RatingService(tiny_services.store, tiny_services.comparison.recent).submit(
            res.comparison_id, ratings, **kwargs
        )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(3.5, "3.5"), (True, "True"), ("five", "'five'"), (0, "0"), (6, "6"), ([4], r"\[4\]")],
)
def test_ratings_that_are_not_whole_1_to_5_are_refused_not_rounded(
    tiny_services, group_path, make_request, value, shown
):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 2)
    )
    with pytest.raises(RatingError, match=rf"rating for 'template' is {shown}: .*1 to 5"):
        tiny_services.ratings.submit(res.comparison_id, {"raw": 4, "template": value}, rater="x")
    assert tiny_services.store.records(comparison_id=res.comparison_id) == []  # nothing stored


def test_whole_number_ratings_from_the_radios_are_kept(tiny_services, group_path, make_request):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 3)
    )
    tiny_services.ratings.submit(
        res.comparison_id, {"raw": "4", "template": 5.0}, rater="radio", best="raw"
    )
    stored = tiny_services.store.records(comparison_id=res.comparison_id)
    rows = {r.method: r.rating for r in stored}
    assert rows == {"raw": 4, "template": 5}
