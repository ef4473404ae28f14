"""Tiny and full-size random FLUX.2 [klein], built in code.

The tiny pipeline is a real ``Flux2KleinPipeline``: a ``Flux2Transformer2DModel`` and an
``AutoencoderKLFlux2`` from diffusers configs at toy widths, a ``Qwen3ForCausalLM`` text encoder
from a transformers config, and a local Qwen2-class tokenizer with Qwen3's chat template, saved
in diffusers layout so the app, the tests and the benchmarks load it exactly like the hub id.
The encoder keeps 28 layers (of width 16) because the pipeline reads hidden states 9, 18 and 27,
as it does from Qwen3-4B. Outputs are noise.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.tiny.cache import build_once
from pipelines.tiny.tokenizer import write_tiny_qwen_tokenizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from diffusers import Flux2KleinPipeline

TINY_FLUX2_VERSION = 1  # bump when the tiny FLUX.2 changes, so caches are rebuilt

TINY_QWEN3 = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 28,  # the pipeline stacks hidden states 9, 18 and 27
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 8,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}
TINY_FLUX2_VAE = {
    "block_out_channels": (8, 16, 32, 32),  # 4 levels -> the /8 latent grid
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
}
TINY_FLUX2_TRANSFORMER = {
    "patch_size": 1,
    "in_channels": 4 * TINY_FLUX2_VAE["latent_channels"],  # 2x2-patched latents
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 3 * TINY_QWEN3["hidden_size"],  # three stacked encoder layers
    "timestep_guidance_channels": 32,
    "axes_dims_rope": (4, 4, 4, 4),  # sums to attention_head_dim
    "guidance_embeds": False,  # klein is step-distilled, not guidance-distilled
}
# FLUX.2 [klein]'s scheduler: flow matching with resolution-dependent shift (mu)
FLUX2_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}

# FLUX.2 [klein] 4B at full size, for benchmarks. From the published transformer config as we
# recall it (5 double-stream + 20 single-stream blocks, 24 heads of 128, Qwen3-4B's 3 x 2560
# joint dim); nothing could be downloaded to check it here, so treat latency from it as an
# estimate of the real model's.
KLEIN_4B_TRANSFORMER = {
    "patch_size": 1,
    "in_channels": 128,
    "num_layers": 5,
    "num_single_layers": 20,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 7680,
    "timestep_guidance_channels": 256,
    "axes_dims_rope": (32, 32, 32, 32),
    "guidance_embeds": False,
}
KLEIN_4B_VAE: dict[str, Any] = {}  # AutoencoderKLFlux2's defaults are FLUX.2's VAE
QWEN3_4B = {
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rope_theta": 1_000_000,
    "tie_word_embeddings": True,
    "vocab_size": 151_936,
}


def _assemble_flux2(
    transformer_config: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    text_config: Mapping[str, Any],
    tokenizer_dir: Path,
    seed: int,
) -> Flux2KleinPipeline:
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = Qwen3Config(
        **{"vocab_size": len(tokenizer), **text_config}, pad_token_id=tokenizer.pad_token_id
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        transformer = Flux2Transformer2DModel(**transformer_config)
        vae = AutoencoderKLFlux2(**vae_config)
        text_encoder = Qwen3ForCausalLM(config)
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX2_SCHEDULER),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer.eval(),
        is_distilled=True,
    )


def write_tiny_flux2_pipeline(directory: Path, seed: int = 0) -> Path:
    """Write a tiny ``Flux2KleinPipeline`` loadable with ``from_pretrained(directory)``."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_dir = write_tiny_qwen_tokenizer(Path(tmp))
        pipe = _assemble_flux2(
            TINY_FLUX2_TRANSFORMER, TINY_FLUX2_VAE, TINY_QWEN3, tokenizer_dir, seed
        )
    pipe.save_pretrained(Path(directory), safe_serialization=True)
    return Path(directory)


def ensure_tiny_flux2(cache_dir: Path) -> Path:
    """Build the tiny FLUX.2 [klein] once into ``cache_dir/tiny-flux2-v<N>/``; its folder."""

    def build(root: Path) -> dict[str, Any]:
        write_tiny_flux2_pipeline(root / "flux2")
        return {"version": TINY_FLUX2_VERSION, "flux2": "flux2"}

    final = Path(cache_dir) / f"tiny-flux2-v{TINY_FLUX2_VERSION}"
    return final / build_once(final, build)["flux2"]


def tiny_flux2_weights(cache_dir: Path) -> tuple[Path, Path | None, str | None]:
    """The tiny FLUX.2 [klein]: (base folder, None, None); it has no face adapter."""
    return ensure_tiny_flux2(cache_dir), None, None


@dataclass
class RandomFlux2:
    """FLUX.2 [klein] 4B-sized pipeline with random weights."""

    pipe: Flux2KleinPipeline


def build_random_flux2_klein(
    seed: int = 0, dtype: torch.dtype = torch.bfloat16, device: str = "cpu"
) -> RandomFlux2:
    """Transformer, VAE and Qwen3-4B text encoder at full size, random init (benchmarks).

    Built directly on ``device`` (about 8 B parameters: ~32 GB in float32, so build on the GPU).
    The tokenizer is the tiny one; its ids index the first rows of the 151,936-row embedding.
    """
    with tempfile.TemporaryDirectory() as tmp, torch.device(device):
        tokenizer_dir = write_tiny_qwen_tokenizer(Path(tmp))
        pipe = _assemble_flux2(KLEIN_4B_TRANSFORMER, KLEIN_4B_VAE, QWEN3_4B, tokenizer_dir, seed)
    pipe.to(dtype=dtype)
    return RandomFlux2(pipe=pipe)
