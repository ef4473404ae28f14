"""Tiny and full-size random SDXL + IP-Adapter FaceID SDXL, built in code.

The tiny pipeline is a real ``StableDiffusionXLPipeline`` (two CLIP text encoders, the second
with a projection for the pooled embedding, a text-time conditioned UNet, an /8 VAE) saved in
diffusers layout, with a FaceID adapter in the key layout of h94's ``ip-adapter-faceid_sdxl.bin``:
the app, the tests and the benchmarks load them exactly like hub ids. Outputs are noise.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.tiny.cache import build_once
from pipelines.tiny.sd15_faceid import (
    CLIP_L_TEXT,
    CLIP_L_VOCAB,
    SD15_VAE,
    TINY_TEXT,
    TINY_VAE,
    _load_tokenizer,
    _text_config,
    faceid_adapter_state_dict,
    write_tiny_faceid_adapter,
)
from pipelines.tiny.tokenizer import write_tiny_clip_tokenizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

TINY_SDXL_VERSION = 1  # bump when the tiny SDXL changes, so caches are rebuilt
FACEID_SDXL_MULT = 2  # ip-adapter-faceid_sdxl.bin: proj.0 maps 512 -> 1024

# SDXL's layout at toy widths: text-time added conditioning, linear-projection transformers,
# cross-attention over both encoders' hidden states concatenated (32 + 32)
TINY_SDXL_UNET = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 6 * 8 + 32,  # 6 time ids x 8 + pooled text (32)
    "cross_attention_dim": 2 * TINY_TEXT["hidden_size"],
    "norm_num_groups": 8,
}
SDXL_VAE_EXTRA = {"scaling_factor": 0.13025, "force_upcast": True}
# stabilityai/stable-diffusion-xl-base-1.0's scheduler_config.json (Euler, leading spacing)
SDXL_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}

# Configs of stable-diffusion-xl-base-1.0 (unet/, text_encoder/, text_encoder_2/ config.json)
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "cross_attention_dim": 2048,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
OPENCLIP_BIGG_TEXT = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


def _assemble_sdxl(
    unet_config: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    text_sizes: tuple[Mapping[str, Any], Mapping[str, Any]],
    tokenizer: CLIPTokenizer,
    seed: int,
    vocab_size: int | None = None,
) -> StableDiffusionXLPipeline:
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    configs = []
    for sizes in text_sizes:
        config = CLIPTextConfig(**_text_config(tokenizer, **sizes))
        if vocab_size is not None:
            config.vocab_size = vocab_size
        configs.append(config)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**{**vae_config, **SDXL_VAE_EXTRA})
        text_encoder = CLIPTextModel(configs[0])
        text_encoder_2 = CLIPTextModelWithProjection(configs[1])
    return StableDiffusionXLPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,  # SDXL's two tokenizers share CLIP's BPE vocabulary
        unet=unet.eval(),
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        add_watermarker=False,
    )


def _tiny_tokenizer() -> CLIPTokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        return _load_tokenizer(write_tiny_clip_tokenizer(Path(tmp)))


def write_tiny_sdxl_pipeline(directory: Path, seed: int = 0) -> Path:
    """Write a tiny ``StableDiffusionXLPipeline`` loadable with ``from_pretrained(directory)``."""
    second = {**TINY_TEXT, "projection_dim": TINY_TEXT["hidden_size"]}
    pipe = _assemble_sdxl(TINY_SDXL_UNET, TINY_VAE, (TINY_TEXT, second), _tiny_tokenizer(), seed)
    pipe.save_pretrained(Path(directory), safe_serialization=True)
    return Path(directory)


@dataclass(frozen=True)
class TinySDXLPaths:
    """Where :func:`ensure_tiny_sdxl` put the tiny SDXL and its FaceID adapter."""

    sdxl_dir: Path
    adapter_dir: Path
    adapter_weight: str


def ensure_tiny_sdxl(cache_dir: Path) -> TinySDXLPaths:
    """Build the tiny SDXL and its FaceID SDXL adapter once into ``cache_dir/tiny-sdxl-v<N>/``."""

    def build(root: Path) -> dict[str, Any]:
        write_tiny_sdxl_pipeline(root / "sdxl")
        _, weight = write_tiny_faceid_adapter(
            root / "faceid",
            TINY_SDXL_UNET,
            mult=FACEID_SDXL_MULT,
            name="ip-adapter-faceid_sdxl_tiny.safetensors",
        )
        return {
            "version": TINY_SDXL_VERSION,
            "sdxl": "sdxl",
            "adapter": "faceid",
            "adapter_weight": weight,
        }

    final = Path(cache_dir) / f"tiny-sdxl-v{TINY_SDXL_VERSION}"
    m = build_once(final, build)
    return TinySDXLPaths(final / m["sdxl"], final / m["adapter"], m["adapter_weight"])


def tiny_sdxl_weights(cache_dir: Path) -> tuple[Path, Path | None, str | None]:
    """The tiny SDXL and its FaceID SDXL adapter: (base folder, adapter folder, weight name)."""
    paths = ensure_tiny_sdxl(cache_dir)
    return paths.sdxl_dir, paths.adapter_dir, paths.adapter_weight


@dataclass
class RandomSDXL:
    """Full-size SDXL architecture with random weights, plus a matching FaceID SDXL adapter."""

    pipe: StableDiffusionXLPipeline
    adapter_state_dict: dict[str, dict[str, torch.Tensor]]


def build_random_sdxl(
    seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> RandomSDXL:
    """SDXL UNet/VAE/CLIP-L/OpenCLIP-bigG at full size, random init, in memory (benchmarks).

    Built directly on ``device`` (3.5 B parameters: ~14 GB in float32). The tokenizer is the
    tiny one; its ids index the first rows of the 49408-row embeddings.
    """
    with torch.device(device):
        pipe = _assemble_sdxl(
            SDXL_UNET,
            {**SD15_VAE, "sample_size": 1024},
            (CLIP_L_TEXT, OPENCLIP_BIGG_TEXT),
            _tiny_tokenizer(),
            seed,
            CLIP_L_VOCAB,
        )
    pipe.to(dtype=dtype)
    adapter = faceid_adapter_state_dict(SDXL_UNET, seed=seed, mult=FACEID_SDXL_MULT, dtype=dtype)
    return RandomSDXL(pipe=pipe, adapter_state_dict=adapter)
