"""Every model family on its tiny random components (CPU, offline): the same guarantees.

Per family: one call with 3 prompts renders 3 images; the same seed gives the same pixels;
batch sizes 1 and 3 agree to 1/255; the final prompt fits the family's text encoder; an
over-long instruction is cut exactly as the page shows it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.core.errors import InputError
from pipelines.core.families import FAMILIES, ModelFamily
from pipelines.models.base import PortraitInputError, PortraitPipelineOutput
from pipelines.models.registry import pipeline_class
from pipelines.tiny import TINY_WEIGHTS

PROMPTS = ["a watercolor portrait", "an anime portrait, soft lighting", "3d cartoon person"]
FAST = {"num_inference_steps": 2, "height": 64, "width": 64}
IDS = list(FAMILIES)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def selfie() -> Image.Image:
    """A structured reference (a gradient with a disc), so editing it is not trivial."""
    y, x = np.mgrid[0:96, 0:96]
    rgb = np.stack([x * 2, y * 2, ((x - 48) ** 2 + (y - 40) ** 2 < 400) * 200], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def identity(family: ModelFamily) -> dict:
    """The identity argument each family's pipeline takes."""
    return {"face_embedding": unit(0)} if family.uses_faceid else {"image": selfie()}


@pytest.fixture(scope="module")
def cache(tiny_settings):
    return tiny_settings.cache_dir / "tiny"  # where the tiny engine builds them: built once


@pytest.fixture(scope="module", params=IDS)
def family(request) -> ModelFamily:
    return FAMILIES[request.param]


@pytest.fixture(scope="module")
def pipe(family: ModelFamily, cache):
    base, adapter, weight = TINY_WEIGHTS[family.id](cache)
    return pipeline_class(family.id).from_pretrained(
        base, adapter, weight, device="cpu", local_files_only=True
    )


@pytest.fixture(scope="module")
def reference(pipe, family: ModelFamily) -> PortraitPipelineOutput:
    return pipe(PROMPTS, seed=7, batch_size=1, **identity(family), **FAST)


# ----------------------------------------------------------------------------- pipelines


def test_three_prompts_in_one_call_render_three_images(reference, pipe, family) -> None:
    assert len(reference.images) == 3
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in reference.images)
    assert reference.prompts == PROMPTS and reference.seeds == [7] * len(PROMPTS)
    assert set(reference.timings) == {"encode", "denoise", "decode", "total"}
    assert ("adapter" in reference.model_ids) == family.uses_faceid
    assert pipe.family is family and pipe.speed["sdpa"]  # SDPA attention everywhere
    # different prompts with the same identity and seed give different images (the tiny
    # FLUX.2 attends over 512 mostly-padding text tokens: its prompts move pixels less)
    assert np.abs(px(reference.images[0]) - px(reference.images[1])).mean() > 0.2


def test_same_seed_same_pixels_other_seed_other_pixels(pipe, reference, family) -> None:
    again = pipe(PROMPTS, seed=7, batch_size=1, **identity(family), **FAST)
    for a, b in zip(reference.images, again.images, strict=True):
        assert np.array_equal(px(a), px(b))
    other = pipe(PROMPTS[0], seed=8, **identity(family), **FAST)
    assert np.abs(px(other.images[0]) - px(reference.images[0])).mean() > 1


def test_batch_sizes_1_and_3_agree_within_1_in_255(pipe, reference, family) -> None:
    out = pipe(PROMPTS, seed=7, batch_size=3, **identity(family), **FAST)
    for a, b in zip(reference.images, out.images, strict=True):
        assert np.abs(px(a) - px(b)).max() <= 1
    # and an output does not depend on its neighbours: prompt 0 at position 1
    moved = pipe(["something else", PROMPTS[0]], seed=7, **identity(family), **FAST)
    assert np.abs(px(moved.images[1]) - px(reference.images[0])).max() <= 1


def test_identity_input_reaches_the_denoiser(pipe, family, monkeypatch) -> None:
    """FaceID: another face, another image. Editing: the selfie's latents are in the
    transformer's input sequence next to the noise, and another selfie changes them."""
    if family.uses_faceid:
        a = pipe(PROMPTS[0], seed=3, face_embedding=unit(0), **FAST).images[0]
        b = pipe(PROMPTS[0], seed=3, face_embedding=unit(1), **FAST).images[0]
        assert np.abs(px(a) - px(b)).mean() > 0.5
        return
    seen = []
    transformer = pipe.pipe.transformer
    forward = transformer.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["hidden_states"].clone())
        return forward(*args, **kwargs)

    monkeypatch.setattr(transformer, "forward", spy)
    a = pipe(PROMPTS[0], seed=3, image=selfie(), **FAST).images[0]
    b = pipe(PROMPTS[0], seed=3, image=selfie().transpose(Image.Transpose.ROTATE_90), **FAST)
    tokens = (64 // 16) ** 2  # a 64 px output: 4 x 4 packed latents
    assert seen[0].shape[1] == tokens + (96 // 16) ** 2  # the noise's, then the 96 px selfie's
    steps = FAST["num_inference_steps"]
    assert torch.equal(seen[0][:, :tokens], seen[steps][:, :tokens])  # same seed, same noise
    assert not torch.allclose(seen[0][:, tokens:], seen[steps][:, tokens:])  # other selfie
    assert not np.array_equal(px(a), px(b.images[0]))


def test_progress_counts_every_step_across_batches(pipe, family) -> None:
    calls: list[float] = []
    report = lambda f, m: calls.append(f)  # noqa: E731
    pipe(PROMPTS, seed=1, batch_size=2, callback=report, **identity(family), **FAST)
    assert calls[-1] == 1.0 and len(calls) >= 2 * FAST["num_inference_steps"]
    assert calls == sorted(calls)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": []}, r"prompt=\[\] is empty"),
        ({"height": 72}, "height=72 is not a multiple of"),
        ({"width": 4096}, "width=4096 is out of range"),
        ({"num_inference_steps": 0}, "num_inference_steps=0 is out of range"),
        ({"seed": -1}, "seed=-1 is out of range"),
        ({"negative_prompt": ["x"]}, "negative_prompt has 1 entries but prompt has 3"),
    ],
)
def test_bad_inputs_name_the_value(pipe, family, kwargs, message) -> None:
    if "height" in kwargs and family.size_limit.multiple_of == 8:
        kwargs = {"height": 100}  # 72 is a multiple of 8
        message = "height=100 is not a multiple of 8"
    args = {"prompt": PROMPTS, **identity(family), **FAST, **kwargs}
    with pytest.raises(PortraitInputError, match=message):
        pipe(**args)


def test_missing_identity_input_is_named(pipe, family) -> None:
    if family.uses_faceid:
        with pytest.raises(PortraitInputError, match="face_embedding has shape"):
            pipe(PROMPTS, face_embedding=np.ones(3, np.float32), **FAST)
    else:
        with pytest.raises(PortraitInputError, match="image of type ndarray"):
            pipe(PROMPTS, image=np.zeros((64, 64, 3)), **FAST)


# ----------------------------------------------------------------------------- service


@pytest.fixture(scope="module")
def service(family: ModelFamily, tiny_settings, tiny_services):
    """The app's comparison service on ``family``'s tiny engine (shared catalog and methods)."""
    from pipelines.app.engines import build_engine
    from pipelines.app.service import ComparisonService

    engine = build_engine(tiny_settings.with_family(family.id), tiny_services.catalog)
    return ComparisonService(engine, tiny_services.catalog, tiny_services.registry)


def request_for(family: ModelFamily, tiny_settings, prompt: str, methods: list[str]):
    from pipelines.core.request import CompareRequest

    settings = tiny_settings.with_family(family.id)
    return CompareRequest.from_settings(
        settings, style="watercolor", prompt=prompt, methods=methods, seed=2
    )


def encoded_length(family: ModelFamily, tokenizers, final_prompt: str) -> int:
    """What the family's encoders read, counted independently of TokenBudget."""
    lengths = []
    for tok in tokenizers:
        text = final_prompt
        if family.chat_template:  # as diffusers' Flux2KleinPipeline renders it
            text = tok.apply_chat_template(
                [{"role": "user", "content": final_prompt}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=False,
            )
        lengths.append(len(tok(text, verbose=False)["input_ids"]))
    return max(lengths)


# Every word costs several tokens in the tiny vocabularies ("é" is one token per byte), so 480
# characters overflow even FLUX.2's 512 tokens once the instruction is around them.
LONG_PROMPT = " ".join(["déjà-vécu ébène"] * 40)[:480]


def split_instruction(family: ModelFamily, final_prompt: str) -> str:
    """The method's prompt inside ``final_prompt`` (checks the instruction around it)."""
    lead, tail = family.instruction.split("{prompt}")
    assert final_prompt.startswith(lead) and final_prompt.endswith(tail)
    return final_prompt[len(lead) : len(final_prompt) - len(tail)]


def test_final_prompts_fit_the_family_token_limit(service, family, tiny_settings, group_path):
    request = request_for(family, tiny_settings, "a portrait of a person", ["raw", "template"])
    res = service.compare(group_path, request)
    tokenizers = service.engine.renderer.pipeline.tokenizers
    assert len(tokenizers) == len(family.tokenizer_folders)
    assert res.token_limit == family.token_limit == service.budget.max_tokens
    assert (res.model_family, res.licence) == (family.id, family.licence)
    assert split_instruction(family, res.outputs[0].prompt) == "a portrait of a person"
    for out in res.outputs:
        assert out.image is not None and out.image.size == (64, 64)
        assert encoded_length(family, tokenizers, out.prompt) == out.tokens <= family.token_limit
    # a family whose model reads no negative prompt shows none, since none is rendered
    assert (res.outputs[1].negative_prompt is not None) == family.negative_prompt
    assert (res.request.ip_adapter_scale is not None) == family.uses_faceid


def test_over_long_instruction_is_cut_as_the_page_shows_it(
    service, family, tiny_settings, group_path, monkeypatch
):
    from demo.rows import row_values

    seen = []
    render = service.engine.renderer.render_many

    def spy(jobs, progress):
        seen.extend(list(job.prompt) for job in jobs)
        return render(jobs, progress)

    monkeypatch.setattr(service.engine.renderer, "render_many", spy)
    res = service.compare(group_path, request_for(family, tiny_settings, LONG_PROMPT, ["raw"]))
    (out,) = res.outputs
    assert seen == [[out.prompt]]  # what rendered is what the result says
    inner = split_instruction(family, out.prompt)
    words = LONG_PROMPT.split()
    kept = inner.split()
    assert 0 < len(kept) < len(words) and kept == words[: len(kept)]  # cut at a word
    budget = service.budget
    assert out.tokens <= family.token_limit  # the encoder cuts nothing more
    assert not budget.fits(" ".join(words[: len(kept) + 1]))  # one more word would not fit
    tokenizers = service.engine.renderer.pipeline.tokenizers
    assert encoded_length(family, tokenizers, out.prompt) == out.tokens

    # the page's "Final prompt" box and caption show exactly that
    values = row_values(res, blind=False, n_slots=1)
    shown_prompt, why = values[4 + 3]["value"], values[4 + 5]
    assert shown_prompt == out.prompt == seen[0][0]
    assert f"{out.tokens} of {family.token_limit} text-encoder tokens" in why


def test_every_family_has_one_pipeline_and_one_stand_in() -> None:
    """The family table, the pipeline registry and the stand-ins list the same families, and
    each pipeline class names the family it renders."""
    from pipelines.models.registry import PIPELINES

    assert list(PIPELINES) == list(FAMILIES) == list(TINY_WEIGHTS)
    for family_id, cls in PIPELINES.items():
        assert cls.family_id == family_id and pipeline_class(family_id) is cls
    with pytest.raises(InputError, match="BECOME_MODEL_FAMILY='sd3'"):
        pipeline_class("sd3")
