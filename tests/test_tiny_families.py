"""The tiny SDXL, FLUX.2 [klein] and safety checker built in code: real classes, real layouts;
the token budget counts what each encoder reads; the CUDA speed options' wiring."""

from __future__ import annotations

import pytest
import torch

from pipelines.augment.tokens import TokenBudget
from pipelines.core.families import FAMILIES
from pipelines.tiny import flux2_klein as tiny_flux2
from pipelines.tiny import sdxl_faceid as tiny_sdxl
from pipelines.tiny.safety import ensure_tiny_safety_checker
from pipelines.tiny.sd15_faceid import faceid_adapter_state_dict


@pytest.fixture(scope="module")
def cache(tiny_settings):
    return tiny_settings.cache_dir / "tiny"  # shared with the tiny engine: built once


# ----------------------------------------------------------------------------- SDXL


def test_tiny_sdxl_loads_like_a_hub_id_with_its_faceid_adapter(cache) -> None:
    from diffusers import StableDiffusionXLPipeline
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    from diffusers.models.embeddings import IPAdapterFaceIDImageProjection

    paths = tiny_sdxl.ensure_tiny_sdxl(cache)
    pipe = StableDiffusionXLPipeline.from_pretrained(
        paths.sdxl_dir, local_files_only=True, add_watermarker=False
    )
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert pipe.unet.config.addition_embed_type == "text_time"
    hidden = pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert pipe.unet.config.cross_attention_dim == hidden  # both encoders' states, concatenated
    pipe.load_ip_adapter(
        str(paths.adapter_dir),
        subfolder="",
        weight_name=paths.adapter_weight,
        image_encoder_folder=None,
    )
    cross = [p for n, p in pipe.unet.attn_processors.items() if n.endswith("attn2.processor")]
    assert cross and all(isinstance(p, IPAdapterAttnProcessor2_0) for p in cross)
    (proj,) = pipe.unet.encoder_hid_proj.image_projection_layers
    assert isinstance(proj, IPAdapterFaceIDImageProjection) and proj.num_tokens == 4
    assert proj.ff.net[0].proj.weight.shape == (1024, 512)  # mult 2, as in the SDXL file


def test_full_size_adapter_layout_matches_h94_faceid_sdxl() -> None:
    sd = faceid_adapter_state_dict(tiny_sdxl.SDXL_UNET, mult=tiny_sdxl.FACEID_SDXL_MULT)
    proj = {k: tuple(v.shape) for k, v in sd["image_proj"].items()}
    assert proj == {
        "proj.0.weight": (1024, 512),
        "proj.0.bias": (1024,),
        "proj.2.weight": (8192, 1024),  # 4 tokens x 2048
        "proj.2.bias": (8192,),
        "norm.weight": (2048,),
        "norm.bias": (2048,),
    }
    ids = sorted({int(k.split(".")[0]) for k in sd["ip_adapter"]})
    assert ids == list(range(1, 140, 2))  # SDXL's 70 cross-attention layers
    assert tuple(sd["ip_adapter"]["1.to_k_ip.weight"].shape) == (640, 2048)  # down_blocks.1
    assert tuple(sd["ip_adapter"]["139.to_v_ip.weight"].shape) == (1280, 2048)  # mid_block


# ----------------------------------------------------------------------------- FLUX.2


def test_tiny_flux2_is_a_klein_pipeline_with_a_qwen3_encoder(cache) -> None:
    from diffusers import Flux2KleinPipeline
    from transformers import Qwen3ForCausalLM

    folder = tiny_flux2.ensure_tiny_flux2(cache)
    pipe = Flux2KleinPipeline.from_pretrained(folder, local_files_only=True)
    assert pipe.config.is_distilled
    assert isinstance(pipe.text_encoder, Qwen3ForCausalLM)
    assert pipe.text_encoder.config.num_hidden_layers >= 28  # hidden states 9, 18, 27 are read
    assert type(pipe.tokenizer).__name__ == "Qwen2Tokenizer"
    assert pipe.transformer.config.joint_attention_dim == 3 * pipe.text_encoder.config.hidden_size
    text = pipe.tokenizer.apply_chat_template(
        [{"role": "user", "content": "a watercolor portrait"}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    # Qwen3's rendering of one user turn without thinking
    assert text == (
        "<|im_start|>user\na watercolor portrait<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert len(pipe.tokenizer(" watercolor portrait")["input_ids"]) == 2  # words are tokens


def test_chat_budget_counts_what_the_flux2_encoder_reads(cache) -> None:
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline.from_pretrained(
        tiny_flux2.ensure_tiny_flux2(cache), local_files_only=True
    )
    family = FAMILIES["flux2-klein-edit"]
    budget = TokenBudget.for_family(family, (pipe.tokenizer,))
    prompt = "watercolor portrait of a person, soft wash, déjà vu"
    final = budget.wrap(prompt)
    seen = []
    forward = pipe.text_encoder.forward

    def spy(input_ids, attention_mask, **kwargs):
        seen.append(int(attention_mask.sum()))  # tokens that are not padding
        return forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    pipe.text_encoder.forward = spy
    pipe.encode_prompt(final, max_sequence_length=family.token_limit)
    assert seen == [budget.count(prompt)] and seen[0] < family.token_limit
    assert budget.overhead == budget.count("") > 50  # instruction + chat template


def test_two_tokenizers_count_the_longer_and_estimates_cover_chat_templates() -> None:
    class Fake:
        def __init__(self, per_word: int) -> None:
            self.per_word = per_word

        def __call__(self, text: str, **kwargs) -> dict:
            return {"input_ids": [0] * (2 + self.per_word * len(text.split()))}

    budget = TokenBudget((Fake(1), Fake(2)), max_tokens=10)
    assert budget.count("a b c") == 8 and budget.fits("a b c") and not budget.fits("a b c d e")
    assert budget.truncate("a b c d e") == "a b c d"
    chat = TokenBudget.for_family(FAMILIES["flux2-klein-edit"])  # no tokenizer: estimated
    plain = TokenBudget(None, 512, instruction=FAMILIES["flux2-klein-edit"].instruction)
    assert chat.count("a person") > plain.count("a person")  # the template's tokens count


# ----------------------------------------------------------------------------- safety checker


def test_tiny_safety_checker_loads_like_the_compvis_one(cache) -> None:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from PIL import Image

    from pipelines.models.safety import SafetyChecker

    folder = ensure_tiny_safety_checker(cache)
    assert (folder / "preprocessor_config.json").is_file()
    checker = SafetyChecker.from_pretrained(folder, local_files_only=True, allow_unverified=True)
    assert isinstance(checker.model, StableDiffusionSafetyChecker)
    images = [Image.new("RGB", (40, 40), (i * 60, 30, 90)) for i in range(3)]
    assert checker.flags(images) == [False] * 3  # thresholds above any cosine similarity
    checker.model.concept_embeds_weights.data.fill_(-2.0)
    assert checker.flags(images) == [True] * 3


# ----------------------------------------------------------------------------- speed options


def test_channels_last_applies_to_conv_models_on_cuda_only() -> None:
    from pipelines.models.runtime import RuntimeOptions, apply_speed_options

    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))
    linear = torch.nn.Linear(4, 4)
    modules = {"unet": conv, "text": linear}
    cpu = apply_speed_options(modules, "unet", RuntimeOptions(), torch.device("cpu"))
    assert not cpu["channels_last"] and conv[0].weight.is_contiguous()
    cuda = apply_speed_options(modules, "unet", RuntimeOptions(), torch.device("cuda"))
    assert cuda["channels_last"]
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    off = RuntimeOptions(channels_last=False)
    assert not apply_speed_options(modules, "unet", off, torch.device("cuda"))["channels_last"]


@pytest.mark.parametrize("family_id", list(FAMILIES))
def test_compile_compiles_the_denoiser_once_and_warms_it_up_at_load(
    family_id, cache, monkeypatch
) -> None:
    from pipelines.models.registry import pipeline_class
    from pipelines.models.renderer import DiffusionRenderer, DiffusionWeights
    from pipelines.models.runtime import RuntimeOptions
    from pipelines.tiny import TINY_WEIGHTS

    family = FAMILIES[family_id]
    warmed = []
    monkeypatch.setattr(
        pipeline_class(family.id),
        "warm_up",
        lambda self, h, w, max_prompts: warmed.append((h, w, max_prompts)),
    )
    base, adapter, weight = TINY_WEIGHTS[family.id](cache)
    weights = DiffusionWeights(base, adapter, weight, True, family.id, allow_unverified=True)
    options = RuntimeOptions(device="cpu", compile=True)
    renderer = DiffusionRenderer.from_weights(weights, options, warmup_size=64)
    assert warmed == []  # nothing loads at construction
    pipeline = renderer.pipeline
    # every batch shape batching can produce: 1..the batch size (1 on the CPU, 8 on CUDA)
    assert warmed == [(64, 64, pipeline.largest_batch())] and pipeline.speed["compile"]
    assert pipeline.speed["sdpa"] and not pipeline.speed["aot"]
    denoiser = getattr(pipeline.pipe, type(pipeline).denoiser)
    assert denoiser._compiled_call_impl is not None  # nn.Module.compile, in place
    _ = renderer.pipeline
    assert len(warmed) == 1  # loaded (and compiled) once
