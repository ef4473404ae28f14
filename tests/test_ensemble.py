"""Ensemble method: normalised fusion on hand-made candidates, pooling, merging, signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.augment.base import AugmentContext, AugmentMethod, MethodUnavailable
from pipelines.augment.clip_backend import LazyClip, load_clip
from pipelines.augment.ensemble import (
    EnsembleMethod,
    FusionInputError,
    fuse,
    merge_parts,
    zscore,
)
from pipelines.augment.learned.model import NoModelError
from pipelines.augment.tokens import TokenBudget
from pipelines.core.trace import Candidate, TraceStep
from pipelines.styles.catalog import load_catalog
from pipelines.styles.modifiers import conflicts
from pipelines.tiny.sd15_faceid import write_tiny_clip


def cand(prompt: str, method: str, score: float | None = None, **meta) -> Candidate:
    trace = (TraceStep(prompt.split(", ")[-1], "style bank", f"made by {method}"),)
    return Candidate(prompt=prompt, method=method, score=score, trace=trace, meta=meta)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    d = write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=0)
    return load_clip(str(d), local_files_only=True, device="cpu", allow_unverified=True)


# ----------------------------------------------------------------------------- fuse


def test_zscore_handles_missing_and_constant_values():
    np.testing.assert_allclose(zscore(np.array([1.0, 2.0, 3.0])), [-1.2247, 0, 1.2247], atol=1e-4)
    np.testing.assert_allclose(zscore(np.array([1.0, np.nan, 3.0])), [-1, 0, 1])
    assert not zscore(np.array([5.0, 5.0])).any() and not zscore(np.array([np.nan])).any()


def test_a_method_with_100x_larger_scores_does_not_dominate():
    pool = [cand(f"big {i}", "big", 100.0 * i) for i in (1, 2, 3)]
    pool += [cand(f"small {i}", "small", 1.0 * i) for i in (1, 2, 3)]
    # naive ranking by raw score would put all three "big" prompts first
    top2 = {c.prompt for c in fuse(pool, {}, {"own": 1.0})[:2]}
    assert top2 == {"big 3", "small 3"}
    # a shared judge that slightly prefers "small 3" now decides between the two bests
    learned = np.array([0.0, 0.0, 0.50, 0.0, 0.0, 0.52])
    ranked = fuse(pool, {"learned": learned}, {"own": 1.0, "learned": 1.0})
    assert ranked[0].prompt == "small 3" and ranked[1].prompt == "big 3"


def test_rescaling_one_signal_does_not_change_the_ranking():
    pool = [cand(f"p{i}", "m") for i in range(6)]
    rng = np.random.default_rng(0)
    learned, clip_sim = rng.normal(size=6), rng.normal(size=6)
    w = {"learned": 1.0, "clip": 1.0}
    base = fuse(pool, {"learned": learned, "clip": clip_sim}, w)
    scaled = fuse(pool, {"learned": 100 * learned + 7, "clip": clip_sim}, w)
    assert [c.prompt for c in base] == [c.prompt for c in scaled]
    np.testing.assert_allclose([c.score for c in base], [c.score for c in scaled])
    # both signals count: the winner is not simply the best of either one alone
    z = (zscore(learned) + zscore(clip_sim)) / 2
    assert base[0].prompt == pool[int(np.argmax(z))].prompt


def test_winner_trace_and_meta():
    pool = [
        cand("a, soft light", "learned", 0.2, modifiers=["soft light"]),
        cand("a, neon", "inversion", 0.9, recovered="neon", mode="fast"),
        cand("a, template", "template"),
    ]
    signals = {"learned": np.array([0.1, 0.3, 0.2]), "clip": np.array([0.2, 0.4, np.nan])}
    ranked = fuse(pool, signals, {"learned": 2.0, "clip": 1.0, "own": 0.0})
    assert [c.prompt for c in ranked] == ["a, neon", "a, template", "a, soft light"]
    win = ranked[0]
    assert win.method == "ensemble" and win.meta["from_method"] == "inversion"
    z_learned, z_clip = zscore(signals["learned"]), zscore(signals["clip"])
    assert win.meta["signals"] == {
        "learned": pytest.approx(z_learned[1], abs=1e-4),
        "clip": pytest.approx(z_clip[1], abs=1e-4),
    }
    assert win.score == pytest.approx((2 * z_learned[1] + z_clip[1]) / 3)
    assert win.meta["raw_signals"]["clip"] == pytest.approx(0.4)
    assert ranked[1].meta["raw_signals"]["clip"] is None  # missing counts as the mean
    assert win.meta["recovered"] == "neon"  # the contributing method's parts are kept
    head, inherited = win.trace[0], win.trace[1]
    assert head.source == "ensemble <- inversion" and "rank 1/3" in head.reason
    assert "learned z=+" in head.reason and "clip z=+" in head.reason
    assert inherited == TraceStep("neon", "inversion: style bank", "made by inversion")
    assert [c.meta["rank"] for c in ranked] == [1, 2, 3]


def test_no_signal_keeps_pool_order():
    pool = [cand("x", "template"), cand("y", "learned")]
    ranked = fuse(pool, {}, {"own": 1.0})
    assert [c.prompt for c in ranked] == ["x", "y"] and ranked[0].score == 0.0
    assert "no signal available" in ranked[0].trace[0].reason


@pytest.mark.parametrize(
    ("signals", "weights", "match"),
    [
        ({"learned": np.zeros(3)}, {"learned": 1.0}, r"shape \(3,\): expected \(2,\)"),
        ({"clip": np.zeros(2)}, {"learned": 1.0}, "signal 'clip' has no weight"),
        ({}, {"learned": -1.0}, "weight learned=-1.0"),
        ({"own": np.zeros(2)}, {"own": 1.0}, "computed from the candidates"),
    ],
)
def test_fuse_rejects_bad_signals(signals, weights, match):
    with pytest.raises(FusionInputError, match=match):
        fuse([cand("x", "a"), cand("y", "b")], signals, weights)


# ----------------------------------------------------------------------------- the method


class FakeMethod:
    """A real AugmentMethod returning fixed candidates (or refusing to run)."""

    def __init__(self, name: str, candidates=(), reason=None, raises=None) -> None:
        self.name, self.description = name, f"fake {name}"
        self._candidates, self._reason, self._raises = list(candidates), reason, raises
        self.calls = 0

    def unavailable_reason(self):
        return self._reason

    def augment(self, base_prompt, style, context):
        self.calls += 1
        if self._raises:
            raise MethodUnavailable(self._raises)
        context.progress(1.0, "done")
        return self._candidates


class LengthScorer:
    """Learned-scorer stand-in: prefers longer prompts."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def score(self, prompts, style=None):
        self.seen.append(style)
        return np.array([len(p.split()) for p in prompts], dtype=float)

    def rerank(self, prompts, style=None):  # no contextual stage: the fast scores, as the app's
        return self.score(prompts, style), False


def _ctx(catalog, budget=None, refs=(), progress=None) -> AugmentContext:
    return AugmentContext(
        catalog, budget or TokenBudget(), reference_images=list(refs), progress=progress
    )


def test_unavailable_methods_are_skipped_with_their_reason(catalog):
    style = catalog.get("watercolor")
    ok = FakeMethod("learned", [cand(style.apply("a person") + ", dry brush", "learned", 1.0)])
    off = FakeMethod("inversion", reason="CLIP weights are not available locally")
    refuses = FakeMethod("other", raises="add a reference image for Watercolor")
    scorer = LengthScorer()
    ens = EnsembleMethod([ok, off, refuses], scorer=lambda: scorer, clip=None)
    assert isinstance(ens, AugmentMethod) and ens.unavailable_reason() is None
    progress: list[float] = []
    out = ens.augment("a person", style, _ctx(catalog, progress=lambda f, m: progress.append(f)))
    assert off.calls == 0 and refuses.calls == 1
    win = out[0]
    assert win.meta["skipped"] == {
        "inversion": "CLIP weights are not available locally",
        "other": "add a reference image for Watercolor",
    }
    assert "clip" in win.meta["signals_missing"]
    notes = {t.part: t.reason for t in win.trace if t.source == "ensemble"}
    assert notes["inversion"].startswith("skipped: CLIP weights")
    assert win.meta["from_method"] == "learned" and scorer.seen == ["watercolor"]
    assert {c.meta["from_method"] for c in out} == {"learned", "template"}
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_candidates_already_computed_for_the_request_are_reused(catalog):
    style = catalog.get("watercolor")
    fresh = FakeMethod("learned", [cand(style.apply("a person") + ", fresh", "learned", 1.0)])
    reused = [cand(style.apply("a person") + ", from the row", "learned", 2.0)]
    ens = EnsembleMethod([fresh], scorer=None, clip=None)
    ctx = _ctx(catalog)
    ctx.computed = {"learned": reused}
    out = ens.augment("a person", style, ctx)
    assert fresh.calls == 0
    assert {c.prompt for c in out} == {
        reused[0].prompt,
        TokenBudget().truncate(style.apply("a person")),
    }


def test_missing_scorer_is_recorded_not_fatal(catalog):
    style = catalog.get("anime")

    def no_model():
        raise NoModelError("no learned model is loaded")

    ens = EnsembleMethod([FakeMethod("learned", [cand("p, x", "learned", 1.0)])], no_model, None)
    out = ens.augment("a person", style, _ctx(catalog))
    assert out[0].meta["signals_missing"]["learned"] == "no learned model is loaded"
    assert len(out) == 2  # template + the method's candidate


def test_duplicate_prompts_are_pooled_once(catalog):
    style = catalog.get("anime")
    prompt = TokenBudget().truncate(style.apply("a person"))
    template = FakeMethod("template", [Candidate(prompt, "template")])
    ens = EnsembleMethod([template], scorer=None, clip=None)
    (only,) = ens.augment("a person", style, _ctx(catalog))
    assert only.meta["also_from"] == ["template"]


def test_ensemble_cannot_contain_itself():
    with pytest.raises(FusionInputError, match="cannot include itself"):
        EnsembleMethod([FakeMethod("ensemble")], None, None)


def test_merge_interleaves_parts_skips_conflicts_and_fits_budget(catalog, clip):
    style = catalog.get("watercolor")
    bank = catalog.modifiers_for(style)
    palette = [m for m in bank if m.group == "palette"]
    template = style.apply("a person")
    free = [m for m in bank if m.group is None and m.text not in template][:8]
    budget = TokenBudget(clip.tokenizer)  # 77: room for some parts, not all
    best = {
        "learned": cand(
            "l", "learned", 1.0, modifiers=[palette[0].text, *[m.text for m in free[:6]]]
        ),
        "inversion": cand("i", "inversion", 0.3, modifiers=[palette[1].text, free[6].text]),
        "pez": cand("p", "inversion", 0.3, mode="pez", recovered="dreamy splash"),
    }
    merged = merge_parts(best, template, style, _ctx(catalog, budget))
    assert merged is not None and merged.prompt.startswith(template)
    assert budget.fits(merged.prompt)
    assert palette[0].text in merged.prompt and palette[1].text not in merged.prompt
    # round-robin: inversion's second part comes before learned's third
    assert merged.prompt.index(free[6].text) < merged.prompt.index(free[1].text)
    assert not all(m.text in merged.prompt for m in free[:6])  # the budget binds
    sources = [t.source for t in merged.trace]
    assert "learned: style bank" in sources or "learned: global bank" in sources
    assert "pez: pez" in sources and "dreamy splash" in merged.prompt
    mods = [next(m for m in bank if m.text == t) for t in merged.meta["modifiers"]]
    assert not any(conflicts(a, b) for i, a in enumerate(mods) for b in mods[i + 1 :])
    assert merged.meta["merged_from"] == ["learned", "pez", "inversion"]  # first-part order


def test_clip_signal_ranks_by_similarity_to_references(catalog, clip):
    style = catalog.get("watercolor")
    rng = np.random.default_rng(0)
    refs = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))]
    prompts = ["a person, neon city", "a person, soft light", "a person, golden hour"]
    method = FakeMethod("inversion", [cand(p, "inversion") for p in prompts])
    ens = EnsembleMethod([method], scorer=None, clip=LazyClip(lambda: clip), weights={"clip": 1.0})
    budget = TokenBudget(clip.tokenizer)
    out = ens.augment("a person", style, _ctx(catalog, budget, refs))
    feats = clip.image_features(refs)
    texts = [c.prompt for c in out]
    expected = (feats @ clip.text_features(texts).T).mean(0)  # (n,)
    got = torch.tensor([c.meta["raw_signals"]["clip"] for c in out], dtype=torch.float32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got[:-1] >= got[1:]).all()  # ranked by CLIP similarity, best first


def test_clip_unavailable_is_recorded(catalog, tmp_path: Path):
    style = catalog.get("watercolor")
    refs = [Image.new("RGB", (32, 32), "red")]

    def loader():
        return load_clip(str(tmp_path / "absent"), local_files_only=True)

    ens = EnsembleMethod([], scorer=None, clip=LazyClip(loader))
    (only,) = ens.augment("a person", style, _ctx(catalog, refs=refs))
    assert "does not exist" in only.meta["signals_missing"]["clip"]
