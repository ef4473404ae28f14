"""The learned scorer, its modifier search and its CLI, on small synthetic data."""

from __future__ import annotations

import csv
import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from pipelines.augment.__main__ import main
from pipelines.augment.base import AugmentContext, AugmentMethod, MethodUnavailable
from pipelines.augment.learned.data import DataError, ScoredPrompts, read_scored
from pipelines.augment.learned.features import FeatureConfig, words
from pipelines.augment.learned.kernel import KernelConfig, KernelHead
from pipelines.augment.learned.model import (
    BUNDLED_MODEL,
    FORMAT_VERSION,
    LearnedScorer,
    ModelFileError,
    NoModelError,
    ScorerHolder,
    TrainConfig,
    default_model_path,
)
from pipelines.augment.learned.search import LearnedMethod
from pipelines.augment.tokens import TokenBudget
from pipelines.core.settings import PROJECT_ROOT, Settings
from pipelines.styles.catalog import Style, StyleCatalog, load_catalog
from pipelines.styles.modifiers import Modifier, conflicts

PLANTED = "magic glow"  # helps style "alpha", hurts style "beta"


BUNDLED_PATH = PROJECT_ROOT / "assets" / "learned" / BUNDLED_MODEL


def _mod(text: str, group: str | None = None, source: str = "global") -> Modifier:
    return Modifier(text=text, category="detail", group=group, effects={}, source=source)


GLOBAL_BANK = (
    _mod(PLANTED),
    _mod("soft lighting", "light"),
    _mod("harsh lighting", "light"),
    _mod("sharp focus"),
    _mod("highly detailed"),
    _mod("film grain"),
    _mod("blurry photo"),
    _mod("bokeh background"),
    _mod("vivid colors", "color"),
    _mod("black and white", "color"),
    _mod("cinematic composition"),
    _mod("dramatic shadows"),
)


def _style(sid: str, template: str, bank: tuple[str, ...]) -> Style:
    return Style(
        id=sid,
        name=sid.title(),
        description=f"{sid} test style",
        template=template,
        negative_prompt="ugly",
        identity_strength=1.0,
        modifiers=tuple(_mod(t, source=sid) for t in bank),
        preview={"recipe": ()},
        reference_dir=Path("/nonexistent"),
    )


@pytest.fixture(scope="module")
def catalog() -> StyleCatalog:
    styles = {
        "alpha": _style("alpha", "watercolor painting of {prompt}", ("paper texture", "wet edges")),
        "beta": _style("beta", "3d render of {prompt}", ("clay material", "octane render")),
    }
    return StyleCatalog(styles, GLOBAL_BANK)


def _synthetic(catalog: StyleCatalog, n: int = 900, seed: int = 0) -> ScoredPrompts:
    """Ratings where PLANTED is +1.2 for alpha and -1.2 for beta, "sharp focus" +0.5 for both,
    "blurry photo" -0.8 for both, and the rest is noise."""
    rng = random.Random(seed)
    subjects = ["a portrait of a person", "a woman smiling", "a man with a hat", "a child"]
    texts, scores, styles = [], [], []
    for _ in range(n):
        style = catalog.get(rng.choice(["alpha", "beta"]))
        bank = [m.text for m in catalog.modifiers_for(style)]
        mods = rng.sample(bank, rng.randint(0, 4))
        y = 3.0 + rng.gauss(0, 0.3)
        y += (1.2 if style.id == "alpha" else -1.2) * (PLANTED in mods)
        y += 0.5 * ("sharp focus" in mods) - 0.8 * ("blurry photo" in mods)
        texts.append(", ".join([style.apply(rng.choice(subjects)), *mods]))
        scores.append(min(5.0, max(1.0, y)))
        styles.append(style.id)
    return ScoredPrompts("synthetic.csv", texts, scores, styles, "prompt", "score", "style")


@pytest.fixture(scope="module")
def scorer(catalog: StyleCatalog) -> LearnedScorer:
    return LearnedScorer.train([_synthetic(catalog)], TrainConfig(alpha=1.0))


@pytest.fixture()
def context(catalog: StyleCatalog) -> AugmentContext:
    return AugmentContext(catalog=catalog, budget=TokenBudget())


def _write_csv(path: Path, data: ScoredPrompts, score_name: str = "score") -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", score_name, "style", "rater"])
        for t, s, st in zip(data.texts, data.scores, data.styles, strict=True):
            w.writerow([t, s, st, "x"])
    return path


# -- scorer -------------------------------------------------------------------------------------


def test_scorer_learns_and_reports_metadata(scorer: LearnedScorer, catalog: StyleCatalog) -> None:
    held_out = _synthetic(catalog, n=300, seed=1)
    metrics = scorer.evaluate(held_out)
    assert metrics["pearson"] > 0.7, metrics
    assert set(metrics) == {"pearson", "kendall", "spearman", "n", "stage"}
    assert metrics["stage"] == "fast scorer only"  # this model has no contextual stage
    md = scorer.metadata
    assert md["format_version"] == FORMAT_VERSION
    assert md["wordvec"]["words"] > 1000 and md["features"]["wordvec_dim"] == 64
    assert md["sources"][0]["name"] == "synthetic.csv" and md["sources"][0]["rows"] == 900
    assert md["styles"] == ["alpha", "beta"]
    # the time it took is recorded with the model; how long training takes is bench_learned's
    assert isinstance(md["train_seconds"], float) and md["train_seconds"] >= 0


def test_scores_are_normalised_per_source(catalog: StyleCatalog) -> None:
    data = _synthetic(catalog, n=400)
    shifted = ScoredPrompts(
        "other.csv", data.texts, [10 * s - 100 for s in data.scores], data.styles, "p", "s", None
    )
    a = LearnedScorer.train([data], TrainConfig(alpha=1.0))
    b = LearnedScorer.train([shifted], TrainConfig(alpha=1.0))
    # The same ranking signal on another scale trains the same model after z-scoring.
    probe = data.texts[:20]
    np.testing.assert_allclose(a.score(probe, "alpha"), b.score(probe, "alpha"), atol=1e-3)
    assert b.metadata["sources"][0]["score_std"] == pytest.approx(
        10 * a.metadata["sources"][0]["score_std"], rel=1e-3
    )


def test_save_load_round_trip_keeps_predictions(scorer: LearnedScorer, tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    scorer.save(path)
    loaded = LearnedScorer.load(path)
    probe = ["watercolor painting of a child, magic glow", "3d render of a man, sharp focus"]
    for style in ("alpha", "beta", None):
        np.testing.assert_allclose(
            loaded.score(probe, style), scorer.score(probe, style), atol=1e-5
        )
    assert loaded.metadata == scorer.metadata
    assert path.stat().st_size < 2_000_000


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        LearnedScorer.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"junk\.npz"):
        LearnedScorer.load(junk)
    bundled = (PROJECT_ROOT / "assets" / "learned" / BUNDLED_MODEL).read_bytes()
    cut = tmp_path / "cut.npz"  # e.g. an upload interrupted half way
    cut.write_bytes(bundled[: len(bundled) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.npz"):
        LearnedScorer.load(cut)


def test_load_rejects_an_older_format(scorer: LearnedScorer, tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    scorer.save(path)
    with np.load(path) as z:
        arrays = dict(z)
    md = json.loads(arrays["metadata"].tobytes())
    md["format_version"] = 1
    arrays["metadata"] = np.frombuffer(json.dumps(md).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=r"format_version 1.*retrain"):
        LearnedScorer.load(path)


def test_load_rejects_a_kernel_head_that_does_not_fit(
    scorer: LearnedScorer, tmp_path: Path
) -> None:
    path = tmp_path / "odd.npz"
    scorer.save(path)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["k_dual"] = arrays["k_dual"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=r"kernel head.*retrain"):
        LearnedScorer.load(path)


def test_version_2_files_load_as_the_linear_part(catalog: StyleCatalog, tmp_path: Path) -> None:
    linear = LearnedScorer.train(
        [_synthetic(catalog, n=300)], TrainConfig(kernel=KernelConfig(weight=0.0))
    )
    assert linear.kernel is None and linear.metadata["kernel"] is None
    path = tmp_path / "v2.npz"
    linear.save(path)
    with np.load(path) as z:
        arrays = dict(z)
    assert not any(k.startswith("k_") for k in arrays)
    md = json.loads(arrays["metadata"].tobytes())
    md["format_version"] = 2  # what a model retrained before the kernel head looks like
    arrays["metadata"] = np.frombuffer(json.dumps(md).encode(), np.uint8)
    np.savez(path, **arrays)
    loaded = LearnedScorer.load(path)
    probe = ["a watercolor of a dog", "a person, sharp focus"]
    np.testing.assert_allclose(loaded.score(probe, "alpha"), linear.score(probe, "alpha"))


def test_kernel_head_fits_what_a_linear_model_cannot() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((600, 8))
    z /= np.linalg.norm(z, axis=1, keepdims=True)  # like the word-vector means
    y = np.sign(z[:, 0] * z[:, 1])  # XOR of two directions: no linear signal at all
    head = KernelHead.fit(z[:500], y[:500], KernelConfig(gamma=3.0, alpha=0.1))
    pred = head.predict(z[500:])  # (100,)
    assert pred.shape == (100,)
    assert np.corrcoef(pred, y[500:])[0, 1] > 0.6
    w = np.linalg.lstsq(z[:500], y[:500], rcond=None)[0]
    assert abs(np.corrcoef(z[500:] @ w, y[500:])[0, 1]) < 0.3
    small = KernelHead.fit(z, y, KernelConfig(max_rows=50))
    assert small.support.shape == (50, 8)  # a capped, deterministic subset
    np.testing.assert_array_equal(
        small.support, KernelHead.fit(z, y, KernelConfig(max_rows=50)).support
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight": 1.5}, "weight=1.5"),
        ({"gamma": 0}, "gamma=0"),
        ({"alpha": -1}, "alpha=-1"),
        ({"max_rows": 1}, "max_rows=1"),
    ],
)
def test_kernel_config_names_the_bad_value(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        KernelConfig(**kwargs)


def test_scorer_blends_the_kernel_head_and_cross_validates_it(catalog: StyleCatalog) -> None:
    data = _synthetic(catalog, n=400)
    cfg = TrainConfig(alpha=1.0, cv_folds=3)
    blended = LearnedScorer.train([data], cfg)
    linear = LearnedScorer.train(
        [data], TrainConfig(alpha=1.0, cv_folds=3, kernel=KernelConfig(weight=0))
    )
    assert blended.metadata["kernel"]["support_rows"] == 400
    assert blended.metadata["kernel"]["weight"] == KernelConfig().weight
    probe = data.texts[:10]
    head = blended.kernel.predict(
        np.stack([blended.featurizer.wordvec.mean(words(t)) for t in probe])
    )
    w = blended.kernel_weight
    lin = linear.score(probe, "alpha")
    np.testing.assert_allclose(blended.score(probe, "alpha"), (1 - w) * lin + w * head, atol=1e-6)
    assert blended.metadata["cv"] != linear.metadata["cv"]  # the head is refitted per fold


def test_word_vectors_generalise_to_unseen_synonyms(tmp_path: Path) -> None:
    # "puppy" and "motorcycle" never occur in training: char n-grams carry a little signal to
    # them, the MiniLM word vectors ("puppy" ~ "dog") roughly double it.
    animals, vehicles = ["dog", "cat", "horse", "cow", "sheep"], ["car", "truck", "bus", "train"]
    rng = random.Random(0)
    texts, scores = [], []
    for _ in range(300):
        good = rng.random() < 0.5
        texts.append(f"a {rng.choice(animals if good else vehicles)} in a field")
        scores.append((1.0 if good else 0.0) + rng.gauss(0, 0.1))
    data = ScoredPrompts("syn.csv", texts, scores, [None] * 300, "prompt", "score", None)
    probe = ["a puppy in a field", "a motorcycle in a field"]
    with_wv = LearnedScorer.train([data], TrainConfig(alpha=1.0))
    without = LearnedScorer.train(
        [data], TrainConfig(alpha=1.0, features=FeatureConfig(wordvec_dim=0))
    )
    gap_wv, gap_ngram = (-np.diff(m.score(probe))[0] for m in (with_wv, without))
    assert gap_wv > 0.6 and gap_wv > 1.5 * gap_ngram, (gap_wv, gap_ngram)
    assert without.metadata["wordvec"] is None
    # The n-gram-only model still round-trips without a table.
    without.save(tmp_path / "nowv.npz")
    np.testing.assert_allclose(
        LearnedScorer.load(tmp_path / "nowv.npz").score(probe), without.score(probe), atol=1e-6
    )


def test_missing_word_vector_table_is_a_clear_error(tmp_path: Path) -> None:
    data = ScoredPrompts(
        "s.csv", ["a b", "c d", "e f", "g h", "i j"], [1, 2, 3, 4, 5], [None] * 5, "p", "s", None
    )
    with pytest.raises(ModelFileError, match=r"nowhere\.npz.*wordvec_dim=0"):
        LearnedScorer.train([data], TrainConfig(wordvec_path=tmp_path / "nowhere.npz"))


def test_style_interaction_is_learned(scorer: LearnedScorer) -> None:
    base_a, base_b = "watercolor painting of a person", "3d render of a person"
    gain_a = scorer.gains(base_a, [PLANTED], "alpha")[0]
    gain_b = scorer.gains(base_b, [PLANTED], "beta")[0]
    assert gain_a > 0.2 and gain_b < -0.2, (gain_a, gain_b)


def test_holder_swaps_thread_safely(scorer: LearnedScorer, catalog: StyleCatalog) -> None:
    empty = ScorerHolder(reason="not trained yet")
    assert not empty.loaded and empty.reason == "not trained yet"
    with pytest.raises(NoModelError, match="not trained yet"):
        empty.get()
    other = LearnedScorer.train([_synthetic(catalog, n=200, seed=3)], TrainConfig())
    holder = ScorerHolder(scorer)
    seen: list[LearnedScorer] = []

    def reader() -> None:
        for _ in range(200):
            seen.append(holder.get())

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    holder.swap(other)
    for t in threads:
        t.join()
    assert holder.get() is other and holder.version == 2
    assert {id(s) for s in seen} <= {id(scorer), id(other)}
    with pytest.raises(TypeError):
        holder.swap("not a scorer")  # type: ignore[arg-type]


# -- search -------------------------------------------------------------------------------------


def test_planted_modifier_chosen_for_one_style_only(
    scorer: LearnedScorer, catalog: StyleCatalog, context: AugmentContext
) -> None:
    method = LearnedMethod(ScorerHolder(scorer))
    assert isinstance(method, AugmentMethod) and method.unavailable_reason() is None
    best_a = method.augment("a portrait of a person", catalog.get("alpha"), context)[0]
    best_b = method.augment("a portrait of a person", catalog.get("beta"), context)[0]
    assert PLANTED in best_a.meta["modifiers"]
    assert PLANTED not in best_b.meta["modifiers"]
    assert "sharp focus" in best_a.meta["modifiers"] and "sharp focus" in best_b.meta["modifiers"]
    assert "blurry photo" not in best_a.prompt and "blurry photo" not in best_b.prompt
    assert best_a.prompt.startswith("watercolor painting of a portrait of a person, ")
    # The trace names every added modifier with its contribution, then how it was ranked.
    traced = [s.part for s in best_a.trace[1:-1]]
    assert traced == best_a.meta["modifiers"]
    assert all("raises predicted score by +" in s.reason for s in best_a.trace[1:-1])
    assert best_a.trace[-1].reason.startswith("fast scorer only")
    assert best_a.score == pytest.approx(scorer.score([best_a.prompt], "alpha")[0])
    assert best_a.score > best_a.meta["base_score"]


def test_candidates_ranked_within_budget_without_conflicts(
    scorer: LearnedScorer, catalog: StyleCatalog, context: AugmentContext
) -> None:
    method = LearnedMethod(ScorerHolder(scorer))
    long_prompt = "a portrait of a person " + "with a very long description " * 6
    for prompt in ("a portrait of a person", long_prompt):
        cands = method.augment(prompt, catalog.get("alpha"), context)
        assert 1 <= len(cands) <= 3
        scores = [c.score for c in cands]
        assert scores == sorted(scores, reverse=True)
        for c in cands:
            assert context.budget.fits(c.prompt), c.prompt
            mods = [m for m in catalog.modifiers_for("alpha") if m.text in c.meta["modifiers"]]
            assert len(mods) == len(c.meta["modifiers"]) == len(set(c.meta["modifiers"]))
            assert not any(conflicts(a, b) for i, a in enumerate(mods) for b in mods[i + 1 :])


def test_bundled_model_adds_nothing_that_contradicts_the_style() -> None:
    # The PQPP model likes scene and colour words: unfiltered, it gave the 3D, anime and oil
    # styles "black and white" and the oil painting its own negative "flat colors".
    catalog = load_catalog()
    method = LearnedMethod(ScorerHolder(LearnedScorer.load(BUNDLED_PATH)))
    ctx = AugmentContext(catalog=catalog, budget=TokenBudget())
    for sid in catalog.ids():
        style = catalog.get(sid)
        by_text = {m.text: m for m in (*style.modifiers, *catalog.global_modifiers)}
        in_template = catalog.find_modifiers(style.apply("a woman smiling"), style)
        for cand in method.augment("a woman smiling", style, ctx):
            mods = [by_text[t] for t in cand.meta["modifiers"]]
            assert mods, sid
            assert [(m.text, style.rules_out(m)) for m in mods if style.rules_out(m)] == [], sid
            mods += in_template
            assert not any(conflicts(a, b) for i, a in enumerate(mods) for b in mods[i + 1 :]), sid


def test_tight_budget_and_present_modifiers(scorer: LearnedScorer, catalog: StyleCatalog) -> None:
    tight = AugmentContext(catalog=catalog, budget=TokenBudget(max_tokens=16))
    method = LearnedMethod(ScorerHolder(scorer))
    for c in method.augment("a person", catalog.get("alpha"), tight):
        assert tight.budget.fits(c.prompt)
    # A modifier already in the prompt (and its group) is not added again.
    ctx = AugmentContext(catalog=catalog, budget=TokenBudget())
    best = method.augment("a person, sharp focus, harsh lighting", catalog.get("alpha"), ctx)[0]
    assert best.prompt.count("sharp focus") == 1
    assert "soft lighting" not in best.meta["modifiers"]


def _copy(s: LearnedScorer) -> LearnedScorer:
    return LearnedScorer(s.featurizer, s.weights, s.bias, {}, s.kernel, s.kernel_weight)


def test_search_is_deterministic(
    scorer: LearnedScorer, catalog: StyleCatalog, context: AugmentContext
) -> None:
    method = LearnedMethod(ScorerHolder(scorer))
    first = method.augment("a child", catalog.get("beta"), context)
    again = LearnedMethod(
        ScorerHolder(_copy(scorer))  # a fresh instance: no cache shared with the first
    )
    second = again.augment("a child", catalog.get("beta"), context)
    assert [c.prompt for c in first] == [c.prompt for c in second]


def test_warm_up_fills_the_gain_cache(scorer: LearnedScorer, catalog: StyleCatalog) -> None:
    fresh = _copy(scorer)
    LearnedMethod(ScorerHolder(fresh)).warm_up(catalog)
    assert len(fresh._gain_cache) == len(catalog.ids())


def test_unavailable_without_model(catalog: StyleCatalog, context: AugmentContext) -> None:
    method = LearnedMethod(ScorerHolder(reason="model file 'x.npz' does not exist"))
    assert "x.npz" in (method.unavailable_reason() or "")
    with pytest.raises(MethodUnavailable, match=r"x\.npz"):
        method.augment("a person", catalog.get("alpha"), context)


# -- data files ---------------------------------------------------------------------------------


def test_read_scored_autodetects_and_rejects(tmp_path: Path, catalog: StyleCatalog) -> None:
    path = _write_csv(tmp_path / "r.csv", _synthetic(catalog, n=20), score_name="rating")
    data = read_scored(path)
    assert (data.text_col, data.score_col, data.style_col) == ("prompt", "rating", "style")
    assert len(data) == 20 and data.styles[0] in ("alpha", "beta")
    jl = tmp_path / "r.jsonl"
    jl.write_text('{"text": "a cat", "avg_generative_score": 1.5}\n{"text": "a dog"}\n')
    assert read_scored(jl).texts == ["a cat"]
    with pytest.raises(DataError, match=r"'nope'.*columns are \['prompt', 'rating'"):
        read_scored(path, text_col="nope")
    with pytest.raises(DataError, match="does not exist"):
        read_scored(tmp_path / "missing.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="suffix"):
        read_scored(tmp_path / "x.txt")


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_train_evaluate(tmp_path: Path, catalog: StyleCatalog, capsys) -> None:
    train = _write_csv(tmp_path / "train.csv", _synthetic(catalog, n=400))
    val = _write_csv(tmp_path / "val.csv", _synthetic(catalog, n=100, seed=5))
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(train), "--val", str(val), "--out", str(model)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["sources"][0]["rows"] == 400 and meta["validation"]["val.csv"]["pearson"] > 0.5
    assert main(["evaluate", "--model", str(model), "--data", str(val)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"pearson", "kendall", "spearman", "n"} <= set(out) and out["n"] == 100


def test_cli_bad_input_exits_2(tmp_path: Path, catalog: StyleCatalog, capsys) -> None:
    train = _write_csv(tmp_path / "train.csv", _synthetic(catalog, n=50))
    out = str(tmp_path / "m.npz")
    assert main(["train", "--data", str(train), "--score-col", "stars", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "'stars'" in err and "prompt" in err and "Traceback" not in err
    assert main(["train", "--data", str(tmp_path / "none.csv"), "--out", out]) == 2
    assert main(["evaluate", "--model", str(tmp_path / "no.npz"), "--data", str(train)]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- bundled model ------------------------------------------------------------------------------


def test_default_model_path(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    bundled = settings.assets_dir / "learned" / BUNDLED_MODEL
    assert default_model_path(settings) == bundled
    current = tmp_path / "learned" / "current.npz"
    current.parent.mkdir()
    current.write_bytes(b"")
    assert default_model_path(settings) == current
    explicit = tmp_path / "mine.npz"
    assert default_model_path(Settings(data_dir=tmp_path, learned_model=explicit)) == explicit


def test_bundled_model_loads_and_reports_pqpp_validation() -> None:
    path = BUNDLED_PATH
    assert path.stat().st_size < 20_000_000  # small enough for the repository
    scorer = LearnedScorer.load(path)
    md = scorer.metadata
    assert [s["name"] for s in md["sources"]] == ["train.csv"]
    assert md["sources"][0]["rows"] > 5000 and md["kernel"]["support_rows"] > 5000
    # both stages, each with its validation figure (the encoder loads from the Hub or a package)
    assert [e["model_id"] for e in md["context"]["encoders"]] == [
        "sentence-transformers/all-mpnet-base-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
    ]
    assert md["context"]["support_rows"] > 5000
    val = md["validation"]["validation.csv"]
    assert val["stage"] == "two-stage" and val["pearson"] > val["fast"]["pearson"] > 0.5
    # PQPP signal: GLIDE could not draw people and both models fail at counts and text.
    easy, hard = scorer.score(
        ["A white horse stands on a grassy hill.", "Three men holding a sign that reads STOP."]
    )
    assert easy > hard
