"""Tiny random-weight models built in code: the real code paths without downloading weights.

Everything here is written with the same classes and file layouts as the real models
(``CLIPTokenizer``, ``CLIPModel``, ``StableDiffusionPipeline``, an IP-Adapter FaceID state
dict), so the app, the tests and the benchmarks load them exactly like hub ids. Outputs
are noise; only shapes, code paths and determinism are meaningful. The tokenizer they all
share is written by :mod:`pipelines.tiny.tokenizer`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.tiny.cache import build_once
from pipelines.tiny.tokenizer import CLIP_MAX_LENGTH, write_tiny_clip_tokenizer

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel, CLIPTokenizer

TINY_VERSION = 1  # bump when any tiny model changes, so caches are rebuilt
FACE_EMBED_DIM = 512  # ArcFace (insightface buffalo_l) identity embedding size
FACEID_NUM_TOKENS = 4  # IP-Adapter FaceID projects one embedding to 4 context tokens


# ----------------------------------------------------------------------------- tokenizer


def _load_tokenizer(directory: Path) -> CLIPTokenizer:
    """The tokenizer a :func:`write_tiny_clip_tokenizer` folder holds."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(directory))


# ----------------------------------------------------------------------------- tiny CLIP

TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4}  # fmt: skip
TINY_VISION = {**TINY_TEXT, "image_size": 32, "patch_size": 8}


@dataclass
class TinyClip:
    """A tiny CLIP model with its tokenizer and input image size."""

    model: CLIPModel
    tokenizer: CLIPTokenizer
    image_size: int


def _text_config(tokenizer: CLIPTokenizer, **sizes: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": CLIP_MAX_LENGTH,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **sizes,
    }


def build_tiny_clip_model(tokenizer_dir: Path, seed: int = 0) -> TinyClip:
    """A tiny random ``CLIPModel`` (text + vision, 32-d) whose text vocab matches the tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer = _load_tokenizer(tokenizer_dir)
    config = CLIPConfig(
        text_config=_text_config(tokenizer, **TINY_TEXT),
        vision_config=dict(TINY_VISION),
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    return TinyClip(model=model, tokenizer=tokenizer, image_size=TINY_VISION["image_size"])


def write_tiny_clip(directory: Path, seed: int = 0) -> Path:
    """Write a tiny CLIP (model, tokenizer, image processor) loadable like a hub id."""
    from transformers import CLIPImageProcessorPil  # the class transformers 5 uses w/o torchvision

    directory = write_tiny_clip_tokenizer(Path(directory))
    clip = build_tiny_clip_model(directory, seed=seed)
    clip.model.save_pretrained(directory)
    size = clip.image_size
    CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(directory)
    return directory


# ----------------------------------------------------------------------------- tiny SD pipeline

TINY_UNET = {
    "sample_size": 16,  # 128 px / 8
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": TINY_TEXT["hidden_size"],
    "attention_head_dim": 4,  # diffusers' name for the number of heads
    "norm_num_groups": 8,
}
TINY_VAE = {
    "sample_size": 128,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (8, 16, 32, 32),  # 4 levels -> the same /8 latent grid as SD
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
}
# SD-1.5's scheduler (PNDM, scaled-linear betas), as in its scheduler_config.json
SD15_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}


def _assemble_sd(
    unet_config: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    text_sizes: Mapping[str, Any],
    tokenizer: CLIPTokenizer,
    seed: int,
    vocab_size: int | None = None,
) -> StableDiffusionPipeline:
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    text_config = CLIPTextConfig(**_text_config(tokenizer, **text_sizes))
    if vocab_size is not None:
        text_config.vocab_size = vocab_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
        text_encoder = CLIPTextModel(text_config)
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler(**SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def write_tiny_sd_pipeline(directory: Path, seed: int = 0) -> Path:
    """Write a tiny ``StableDiffusionPipeline`` loadable with ``from_pretrained(directory)``."""
    directory = Path(directory)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _load_tokenizer(write_tiny_clip_tokenizer(Path(tmp)))
    pipe = _assemble_sd(TINY_UNET, TINY_VAE, TINY_TEXT, tokenizer, seed)
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory


# ----------------------------------------------------------------------------- FaceID adapter


def _cross_attention_layers(unet_config: Mapping[str, Any]) -> list[int]:
    """Hidden size of every cross-attention (attn2) layer, in diffusers' loading order."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # only the module tree is needed, not weights
        unet = UNet2DConditionModel.from_config(dict(unet_config))
    sizes = []
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            sizes.append(unet.get_submodule(name.removesuffix(".processor")).query_dim)
    return sizes


def faceid_adapter_state_dict(
    unet_config: Mapping[str, Any],
    seed: int = 0,
    mult: int = 2,
    dtype: torch.dtype = torch.float32,
) -> dict[str, dict[str, torch.Tensor]]:
    """Random IP-Adapter FaceID weights in the layout of h94's ``ip-adapter-faceid_sd15.bin``.

    ``image_proj``: MLPProjModel (proj.0: 512 -> 512*mult, GELU, proj.2 -> 4 tokens of
    cross_attention_dim, LayerNorm ``norm``). ``ip_adapter``: ``{k}.to_k_ip/to_v_ip.weight``
    for every attn2, k = 1, 3, 5, ... (the original numbers all attention layers and only the
    odd ones are cross-attention). The original's FaceID LoRA (``to_*_lora``) is left out.
    """
    cross = int(unet_config["cross_attention_dim"])
    inner = FACE_EMBED_DIM * mult
    gen = torch.Generator().manual_seed(seed)

    def linear(out_f: int, in_f: int) -> torch.Tensor:  # (out_f, in_f), var 1/in_f
        return (torch.randn(out_f, in_f, generator=gen) / in_f**0.5).to(dtype)

    image_proj = {
        "proj.0.weight": linear(inner, FACE_EMBED_DIM),
        "proj.0.bias": torch.zeros(inner, dtype=dtype),
        "proj.2.weight": linear(cross * FACEID_NUM_TOKENS, inner),
        "proj.2.bias": torch.zeros(cross * FACEID_NUM_TOKENS, dtype=dtype),
        "norm.weight": torch.ones(cross, dtype=dtype),
        "norm.bias": torch.zeros(cross, dtype=dtype),
    }
    ip_adapter = {}
    for i, hidden in enumerate(_cross_attention_layers(unet_config)):
        ip_adapter[f"{2 * i + 1}.to_k_ip.weight"] = linear(hidden, cross)
        ip_adapter[f"{2 * i + 1}.to_v_ip.weight"] = linear(hidden, cross)
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def write_tiny_faceid_adapter(
    directory: Path,
    unet_config: Mapping[str, Any],
    seed: int = 0,
    *,
    mult: int = 1,
    name: str = "ip-adapter-faceid_tiny.safetensors",
) -> tuple[Path, str]:
    """Write a FaceID adapter for ``unet_config`` as flattened ``.safetensors``.

    Returns ``(directory, weight_name)`` for
    ``pipe.load_ip_adapter(str(directory), subfolder="", weight_name=weight_name,
    image_encoder_folder=None)``.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nested = faceid_adapter_state_dict(unet_config, seed=seed, mult=mult)
    flat = {f"{group}.{k}": v.contiguous() for group, sd in nested.items() for k, v in sd.items()}
    save_file(flat, str(directory / name))
    return directory, name


# ----------------------------------------------------------------------------- full-size SD-1.5

# Configs of stable-diffusion-v1-5 (unet/, vae/ and text_encoder/ config.json), random init.
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "act_fn": "silu",
}
SD15_VAE = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
}
CLIP_L_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "hidden_act": "quick_gelu",
}
CLIP_L_VOCAB = 49408


@dataclass
class RandomSD15:
    """Full-size SD-1.5 architecture with random weights, plus a matching FaceID adapter."""

    pipe: StableDiffusionPipeline
    adapter_state_dict: dict[str, dict[str, torch.Tensor]]


def build_random_sd15(seed: int = 0, dtype: torch.dtype = torch.float32) -> RandomSD15:
    """SD-1.5 UNet/VAE/CLIP-L text encoder at full size, random init, in memory (benchmarks).

    The tokenizer is the tiny one; its ids index the first rows of a 49408-row embedding.
    Takes ~4 GB in float32.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _load_tokenizer(write_tiny_clip_tokenizer(Path(tmp)))
    pipe = _assemble_sd(SD15_UNET, SD15_VAE, CLIP_L_TEXT, tokenizer, seed, CLIP_L_VOCAB)
    pipe.to(dtype=dtype)
    adapter = faceid_adapter_state_dict(SD15_UNET, seed=seed, mult=2, dtype=dtype)
    return RandomSD15(pipe=pipe, adapter_state_dict=adapter)


# ----------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class TinyModelPaths:
    """Where :func:`ensure_tiny_models` put each tiny model."""

    root: Path
    sd_dir: Path  # StableDiffusionPipeline.from_pretrained(sd_dir); tokenizer in sd_dir/"tokenizer"
    adapter_dir: Path
    adapter_weight: str  # file name inside adapter_dir
    clip_dir: Path  # CLIPModel / CLIPTokenizer / CLIPImageProcessor.from_pretrained(clip_dir)
    face_pack_dir: Path  # insightface-style ONNX pack


def _paths_from(root: Path, m: dict[str, Any]) -> TinyModelPaths:
    return TinyModelPaths(
        root=root,
        sd_dir=root / m["sd"],
        adapter_dir=root / m["adapter"],
        adapter_weight=m["adapter_weight"],
        clip_dir=root / m["clip"],
        face_pack_dir=root / m["face_pack"],
    )


def _build_all(root: Path) -> dict[str, Any]:
    from diffusers import UNet2DConditionModel

    from pipelines.tiny.face import write_tiny_face_pack  # written by the face module's owner

    sd = write_tiny_sd_pipeline(root / "sd")
    unet_config = UNet2DConditionModel.load_config(sd / "unet")
    adapter_dir, weight = write_tiny_faceid_adapter(root / "faceid", unet_config)
    clip = write_tiny_clip(root / "clip")
    face = Path(write_tiny_face_pack(root / "face"))
    return {
        "version": TINY_VERSION,
        "sd": sd.relative_to(root).as_posix(),
        "adapter": adapter_dir.relative_to(root).as_posix(),
        "adapter_weight": weight,
        "clip": clip.relative_to(root).as_posix(),
        "face_pack": face.relative_to(root).as_posix(),
    }


def ensure_tiny_models(cache_dir: Path) -> TinyModelPaths:
    """Build every tiny model once into ``cache_dir/tiny-v<N>/`` and return their paths.

    Concurrent processes never see a half-written folder (see :func:`build_once`).
    """
    final = Path(cache_dir) / f"tiny-v{TINY_VERSION}"
    return _paths_from(final, build_once(final, lambda root: _build_all(root)))


def tiny_sd15_weights(cache_dir: Path) -> tuple[Path, Path | None, str | None]:
    """The tiny SD-1.5 and its FaceID adapter: (base folder, adapter folder, weight name)."""
    paths = ensure_tiny_models(cache_dir)
    return paths.sd_dir, paths.adapter_dir, paths.adapter_weight
