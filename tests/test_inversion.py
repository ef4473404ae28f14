"""Inversion method: CLIP backend, PEZ, decoding, fast mode, cache, availability (tiny CLIP)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.augment.base import AugmentContext, AugmentMethod, MethodUnavailable
from pipelines.augment.clip_backend import ClipInputError, ClipUnavailable, LazyClip, load_clip
from pipelines.augment.inversion import method as inversion
from pipelines.augment.inversion.args import InversionInputError
from pipelines.augment.inversion.interrogate import interrogate, join_prompt
from pipelines.augment.inversion.method import InversionMethod, PezConfig
from pipelines.augment.inversion.pez import decode_clean, pez_invert, readable_token_mask
from pipelines.augment.tokens import TokenBudget
from pipelines.styles.catalog import load_catalog
from pipelines.styles.modifiers import Modifier, conflicts
from pipelines.tiny.sd15_faceid import write_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=0)


@pytest.fixture(scope="module")
def clip(clip_dir: Path):
    return load_clip(str(clip_dir), local_files_only=True, device="cpu", allow_unverified=True)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _images(seed: int, n: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def refs() -> list[Image.Image]:
    return _images(0, 3)


@pytest.fixture(scope="module")
def targets(clip, refs) -> torch.Tensor:
    return clip.image_features(refs)  # (3, d)


def _sim(clip, targets: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean cosine of the prompt <bos> ids <eos> to the targets, via the embedding path."""
    tok = clip.tokenizer
    full = torch.cat([torch.tensor([tok.bos_token_id]), ids, torch.tensor([tok.eos_token_id])])
    with torch.no_grad():
        f = clip.text_features_from_embeds(
            clip.token_embedding[full][None], torch.tensor([len(ids) + 1])
        )
    return float((targets @ f.T).mean())


# ----------------------------------------------------------------------------- CLIP backend


def test_embedding_forward_matches_the_text_tower(clip):
    texts = ["watercolor portrait of a smiling woman", "neon city at night"]
    ref = clip.text_features(texts)
    for i, text in enumerate(texts):
        ids = clip.tokenizer(text, return_tensors="pt")["input_ids"][0]  # (T,)
        got = clip.text_features_from_embeds(
            clip.token_embedding[ids][None], torch.tensor([len(ids) - 1])
        )
        torch.testing.assert_close(got[0], ref[i], atol=1e-5, rtol=1e-5)


def test_features_are_normalised_and_typed_errors(clip, refs):
    img = clip.image_features(refs)
    txt = clip.text_features(["a", "portrait of a person"])
    assert img.shape == (3, clip.embed_dim) and txt.shape == (2, clip.embed_dim)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    with pytest.raises(ClipInputError, match="at least one image"):
        clip.image_features([])
    with pytest.raises(ClipInputError, match="non-empty list"):
        clip.text_features("a bare string")


def test_text_features_are_memoised_per_text(clip, monkeypatch):
    texts = ["soft light", "a person, golden hour", "soft light"]
    first = clip.text_features(texts)
    torch.testing.assert_close(first[0], first[2])
    encoded: list[list[str]] = []
    real = clip._encode_texts
    monkeypatch.setattr(clip, "_encode_texts", lambda t: encoded.append(t) or real(t))
    again = clip.text_features(["a person, golden hour", "new text", "soft light"])
    assert encoded == [["new text"]]  # only the unseen text ran through the model
    torch.testing.assert_close(again[0], first[1])
    torch.testing.assert_close(again[1], real(["new text"])[0])


def test_load_clip_is_memoised(clip_dir, clip):
    assert (
        load_clip(str(clip_dir), local_files_only=True, device="cpu", allow_unverified=True) is clip
    )


def test_missing_clip_raises_a_typed_human_reason(tmp_path):
    missing = tmp_path / "no-such-clip"
    with pytest.raises(ClipUnavailable, match="does not exist"):
        load_clip(str(missing), local_files_only=True)
    with pytest.raises(ClipInputError, match="device='gpu0'"):
        load_clip(str(missing), device="gpu0")
    with pytest.raises(ClipUnavailable) as e:
        load_clip("openai/clip-vit-large-patch14-not-cached", local_files_only=True)
    msg = str(e.value)
    assert "openai/clip-vit-large-patch14-not-cached" in msg and "BECOME_CLIP_MODEL" in msg
    assert isinstance(e.value, MethodUnavailable)


# ----------------------------------------------------------------------------- vocabulary


def test_readable_mask_excludes_specials_and_fragments(clip):
    tok = clip.tokenizer
    mask = readable_token_mask(tok, clip.token_embedding.shape[0] + 5)  # padded matrix
    assert mask.shape == (clip.token_embedding.shape[0] + 5,) and not mask[-5:].any()
    assert not mask[tok.bos_token_id] and not mask[tok.eos_token_id]
    words = tok.convert_ids_to_tokens(mask.nonzero().squeeze(1).tolist())
    assert all(w.endswith("</w>") and w[:-4].isascii() and w[:-4].isalpha() for w in words)
    assert mask[tok.convert_tokens_to_ids("watercolor</w>")]
    assert not mask[tok.convert_tokens_to_ids(",</w>")]
    assert not mask[tok.convert_tokens_to_ids("water")]  # word start: glues onto the next


def test_decode_clean_removes_specials_and_fragments(clip):
    tok = clip.tokenizer
    ids = tok("portrait, café x 3d watercolor watercolor soft!! 42")["input_ids"]
    raw = tok.decode(ids)
    assert "<|startoftext|>" in raw and "café" in raw  # what cleaning has to undo
    assert decode_clean(tok, ids) == "portrait watercolor soft"  # CLIP splits digits: "3", "d"
    # a special token in the middle ends a word; a trailing word-start piece is kept whole
    mid = [
        tok.convert_tokens_to_ids("soft</w>"),
        tok.eos_token_id,
        tok.convert_tokens_to_ids("water"),
    ]
    assert decode_clean(tok, mid) == "soft water"
    assert decode_clean(tok, [tok.bos_token_id, tok.eos_token_id]) == ""


# ----------------------------------------------------------------------------- PEZ


def test_pez_beats_its_start_and_random_prompts(clip, targets):
    res = pez_invert(clip, targets, prompt_len=8, steps=80, seed=0)
    assert len(res.token_ids) == 8 and res.steps == 80 and len(res.history) == 80
    assert res.similarity == pytest.approx(max(res.history))
    assert res.similarity > res.initial_similarity + 0.2
    assert res.similarity == pytest.approx(
        _sim(clip, targets, torch.tensor(res.token_ids)), abs=1e-5
    )
    mask = readable_token_mask(clip.tokenizer, clip.token_embedding.shape[0])
    assert all(mask[i] for i in res.token_ids)
    assert res.text == decode_clean(clip.tokenizer, res.token_ids) and res.text
    allowed = mask.nonzero().squeeze(1)
    gen = torch.Generator().manual_seed(123)
    randoms = [
        _sim(clip, targets, allowed[torch.randint(len(allowed), (8,), generator=gen)])
        for _ in range(20)
    ]
    assert res.similarity > max(randoms) + 0.1


def test_pez_is_deterministic_per_seed(clip, targets):
    a = pez_invert(clip, targets, prompt_len=6, steps=25, seed=7, batch_size=2)
    b = pez_invert(clip, targets, prompt_len=6, steps=25, seed=7, batch_size=2)
    c = pez_invert(clip, targets, prompt_len=6, steps=25, seed=8, batch_size=2)
    assert a.token_ids == b.token_ids and a.history == b.history
    assert a.token_ids != c.token_ids


def test_pez_reports_progress_and_optimises_several_prompts(clip, targets):
    calls: list[tuple[float, str]] = []
    res = pez_invert(
        clip,
        targets,
        prompt_len=4,
        steps=10,
        num_prompts=3,
        print_every=5,
        progress=lambda f, m: calls.append((f, m)),
    )
    assert [f for f, _ in calls] == [0.5, 1.0] and "PEZ step 10/10" in calls[-1][1]
    assert len(res.token_ids) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt_len": 0}, "prompt_len=0"),
        ({"prompt_len": 76}, "prompt_len=76"),
        ({"steps": 0}, "steps=0"),
        ({"lr": -0.1}, "lr=-0.1"),
        ({"weight_decay": float("nan")}, "weight_decay=nan"),
        ({"batch_size": 0}, "batch_size=0"),
    ],
)
def test_pez_rejects_bad_arguments(clip, targets, kwargs, match):
    with pytest.raises(InversionInputError, match=match):
        pez_invert(clip, targets, **kwargs)


def test_pez_rejects_targets_of_the_wrong_shape(clip):
    with pytest.raises(InversionInputError, match=r"\(n >= 1, 32\)"):
        pez_invert(clip, torch.zeros(2, 7))
    with pytest.raises(InversionInputError, match="tensor"):
        pez_invert(clip, torch.zeros(32))


# ----------------------------------------------------------------------------- fast mode


def test_interrogate_respects_conflicts_and_budget(clip, targets, catalog):
    bank = catalog.modifiers_for("watercolor")
    budget = TokenBudget(clip.tokenizer, max_tokens=24)
    # every modifier in one group: at most one may be chosen
    grouped = [dataclasses.replace(m, group="only_one") for m in bank[:40]]
    one = interrogate(clip, targets, grouped, budget, max_modifiers=8, base_prompt="a person")
    assert len(one.chosen) == 1
    res = interrogate(clip, targets, bank, budget, max_modifiers=8, base_prompt="a person")
    assert budget.fits(res.prompt) and res.prompt.startswith("a person, ")
    chosen = [next(m for m in bank if m.text == c.text) for c in res.chosen]
    assert len(chosen) >= 2
    assert not any(conflicts(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1 :])
    sims = [c.similarity for c in res.chosen]
    assert all(c.gain > 0 for c in res.chosen) and sims == sorted(sims)
    assert res.similarity == pytest.approx(
        float((targets @ clip.text_features([res.prompt]).T).mean()), abs=1e-5
    )


def test_interrogate_beats_random_modifier_selections(clip, targets, catalog):
    bank = list(catalog.modifiers_for("watercolor"))
    budget = TokenBudget(clip.tokenizer)
    res = interrogate(clip, targets, bank, budget, max_modifiers=6, base_prompt="a person")
    k = len(res.chosen)
    rng = np.random.default_rng(0)
    randoms = []
    for _ in range(15):
        picked: list[Modifier] = []
        for i in rng.permutation(len(bank)):
            if len(picked) < k and not any(conflicts(bank[i], p) for p in picked):
                picked.append(bank[i])
        prompt = budget.truncate(join_prompt("a person", ", ".join(m.text for m in picked)))
        randoms.append(float((targets @ clip.text_features([prompt]).T).mean()))
    assert res.similarity > max(randoms)
    assert res.base_similarity is not None and res.similarity > res.base_similarity


def test_interrogate_skips_modifiers_already_in_or_conflicting_with_the_base(clip, targets):
    mods = [
        Modifier("black and white", "color", "palette", {}, "global"),
        Modifier("vibrant colors", "color", "palette", {}, "global"),
        Modifier("soft light", "lighting", None, {}, "global"),
        Modifier("golden hour", "lighting", None, {}, "global"),
    ]
    res = interrogate(
        clip, targets, mods, TokenBudget(clip.tokenizer), base_prompt="a Black and White photo"
    )
    assert {c.text for c in res.chosen} <= {"soft light", "golden hour"}


# ----------------------------------------------------------------------------- the method


def _method(clip, tmp_path: Path, **kw) -> InversionMethod:
    return InversionMethod(LazyClip(lambda: clip), tmp_path / "cache", **kw)


def _ctx(catalog, clip, refs=(), progress=None, seed=0) -> AugmentContext:
    return AugmentContext(
        catalog,
        TokenBudget(clip.tokenizer),
        reference_images=list(refs),
        progress=progress,
        seed=seed,
    )


def test_method_implements_the_protocol_and_validates(clip, tmp_path):
    assert isinstance(_method(clip, tmp_path), AugmentMethod)
    with pytest.raises(InversionInputError, match=r"mode='slow'.*fast, pez"):
        _method(clip, tmp_path, mode="slow")
    with pytest.raises(InversionInputError, match="pez_steps=0"):
        _method(clip, tmp_path, pez_steps=0)


def test_without_references_the_description_is_the_target(clip, catalog, tmp_path):
    style = catalog.get("watercolor")
    (cand,) = _method(clip, tmp_path).augment("a person", style, _ctx(catalog, clip))
    assert cand.meta["target"] == "style description" and cand.meta["references"] == 0
    assert cand.trace[1].source == "CLIP target" and "description" in cand.trace[1].part
    bare = dataclasses.replace(style, description="")
    with pytest.raises(MethodUnavailable, match="no reference images and no description"):
        _method(clip, tmp_path).augment("a person", bare, _ctx(catalog, clip))


def test_missing_clip_reason_is_memoised(tmp_path):
    calls = []

    def loader():
        calls.append(1)
        return load_clip(str(tmp_path / "absent"), local_files_only=True)

    m = InversionMethod(LazyClip(loader), tmp_path / "cache")
    reason = m.unavailable_reason()
    assert reason is not None and "does not exist" in reason and str(tmp_path / "absent") in reason
    assert m.unavailable_reason() == reason and len(calls) == 1
    with pytest.raises(ClipUnavailable):
        LazyClip(loader).get()
    broken = LazyClip(lambda: {}["missing"])  # a loader bug disables the method only
    assert broken.reason() == "CLIP could not be loaded: KeyError: 'missing'"


def test_fast_candidate_fits_budget_and_traces_modifiers(clip, catalog, refs, tmp_path):
    seen: list[float] = []
    ctx = _ctx(catalog, clip, refs, progress=lambda f, m: seen.append(f))
    (cand,) = _method(clip, tmp_path).augment("a person", catalog.get("watercolor"), ctx)
    assert cand.method == "inversion" and cand.prompt.startswith("a person, ")
    assert ctx.budget.fits(cand.prompt) and seen[-1] == 1.0
    feats = clip.image_features(refs)
    assert cand.score == pytest.approx(
        float((feats @ clip.text_features([cand.prompt]).T).mean()), abs=1e-5
    )
    mods = cand.meta["modifiers"]
    assert mods and [t.part for t in cand.trace[1:]] == mods
    assert all(
        t.source in ("style bank", "global bank") and "CLIP similarity" in t.reason
        for t in cand.trace[1:]
    )


def test_cache_hit_does_no_optimisation(clip, catalog, refs, tmp_path, monkeypatch):
    calls = []
    real = interrogate
    monkeypatch.setattr(inversion, "interrogate", lambda *a, **k: calls.append(1) or real(*a, **k))
    style = catalog.get("watercolor")
    m = _method(clip, tmp_path)
    a = m.augment("a person", style, _ctx(catalog, clip, refs))[0]
    b = _method(clip, tmp_path).augment("a person", style, _ctx(catalog, clip, refs))[
        0
    ]  # new process
    assert len(calls) == 1 and (a.prompt, a.score) == (b.prompt, b.score)
    assert a.meta["cached"] is False and b.meta["cached"] is True
    m.augment("a person", style, _ctx(catalog, clip, _images(1, 1)))  # other pixels: a miss
    assert len(calls) == 2
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 2 and all(f.suffix == ".json" for f in files)
    for f in files:  # recovered text and numbers only: no image, no embedding
        record = json.loads(f.read_text())
        assert set(record) >= {"mode", "recovered", "similarity"} and f.stat().st_size < 4000


def test_cache_keeps_the_most_recently_used_records(clip, catalog, refs, tmp_path):
    style = catalog.get("watercolor")
    m = _method(clip, tmp_path, max_cache_entries=2)
    images = [refs, _images(1, 1), _images(2, 1)]
    m.augment("a person", style, _ctx(catalog, clip, images[0]))
    m.augment("a person", style, _ctx(catalog, clip, images[1]))
    files = [
        tmp_path / "cache" / f"{m.cache_key(clip.model_id, im, 'a person', style, ctx)}.json"
        for im, ctx in ((im, _ctx(catalog, clip, im)) for im in images[:2])
    ]
    assert sorted(f.name for f in (tmp_path / "cache").glob("*.json")) == sorted(
        f.name for f in files
    )
    for age, f in enumerate(files):  # both old, the first-written one older
        os.utime(f, (1_000 + age, 1_000 + age))
    assert m.augment("a person", style, _ctx(catalog, clip, images[0]))[0].meta["cached"]
    m.augment("a person", style, _ctx(catalog, clip, images[2]))  # a third record: one must go
    left = {f.name for f in (tmp_path / "cache").glob("*.json")}
    assert len(left) == 2 and files[0].name in left and files[1].name not in left
    assert m.augment("a person", style, _ctx(catalog, clip, images[0]))[0].meta["cached"]
    assert not m.augment("a person", style, _ctx(catalog, clip, images[1]))[0].meta["cached"]


def test_cache_size_must_be_positive(clip, tmp_path):
    with pytest.raises(InversionInputError, match="max_cache_entries=0"):
        InversionMethod(LazyClip(lambda: clip), tmp_path, max_cache_entries=0)


def test_pez_mode_candidate_cache_and_seed(clip, catalog, refs, tmp_path, monkeypatch):
    calls = []
    real = pez_invert
    monkeypatch.setattr(
        inversion, "pez_invert", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k)
    )
    m = _method(clip, tmp_path, mode="pez", pez=PezConfig(steps=30, prompt_len=6))
    style = catalog.get("anime")
    (a,) = m.augment("a person", style, _ctx(catalog, clip, refs, seed=3))
    assert a.prompt.startswith("a person, ") and a.prompt.endswith(a.meta["recovered"])
    assert a.meta["similarity"] > a.meta["initial_similarity"]
    assert a.trace[1].source == "pez" and "30 PEZ steps" in a.trace[1].reason
    # the recovered text does not depend on the base prompt: another prompt is a cache hit
    (b,) = m.augment("a smiling child", style, _ctx(catalog, clip, refs, seed=3))
    assert calls == [3] and b.prompt == f"a smiling child, {a.meta['recovered']}"
    m.augment("a person", style, _ctx(catalog, clip, refs, seed=4))
    assert calls == [3, 4]


def test_style_reference_files_are_targets(clip, catalog, refs, tmp_path):
    ref_dir = tmp_path / "refs"
    ref_dir.mkdir()
    refs[0].save(ref_dir / "a.png")
    style = dataclasses.replace(catalog.get("watercolor"), reference_dir=ref_dir)
    (cand,) = _method(clip, tmp_path).augment("a person", style, _ctx(catalog, clip))
    assert cand.meta["references"] == 1
    (ref_dir / "b.png").write_bytes(b"not an image")
    with pytest.raises(InversionInputError, match=r"b\.png cannot be read"):
        _method(clip, tmp_path).augment("a person", style, _ctx(catalog, clip))
