"""Tiny random-weight models built in code: the real code paths without downloading weights.

Everything here is written with the same classes and file layouts as the real models
(``CLIPTokenizer``, ``CLIPModel``, ``StableDiffusionPipeline``, an IP-Adapter FaceID state
dict), so the app, the tests and the benchmarks load them exactly like hub ids. Outputs
are noise; only shapes, code paths and determinism are meaningful.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel, CLIPTokenizer

TINY_VERSION = 1  # bump when any tiny model changes, so caches are rebuilt
CLIP_MAX_LENGTH = 77
FACE_EMBED_DIM = 512  # ArcFace (insightface buffalo_l) identity embedding size
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"
FACEID_NUM_TOKENS = 4  # IP-Adapter FaceID projects one embedding to 4 context tokens

# Words that must be single tokens, so PEZ inversion over this vocabulary reads as words.
_PORTRAIT_TEXT = """
    a an the of and or with in on at by for from to as is are be it its this that these those
    no not very more most less than into over under above below near behind between through
    up down out off new old one two three four five six seven eight nine ten many few some all
    portrait person face head headshot selfie man woman boy girl child adult people young elderly
    smiling smile serious calm happy sad angry looking camera eyes eye nose mouth lips hair beard
    skin cheeks forehead ears shoulders neck hands expression pose profile closeup close view
    front side full body upper bust half shot frame framing centered composition background
    watercolor oil acrylic pencil charcoal ink sketch drawing painting illustration render
    cartoon anime manga comic pixar disney studio ghibli chibi cel shaded shading toon 3d 2d
    digital art artwork artist artstation concept fantasy realistic photorealistic photo
    photograph photography cinematic film analog vintage retro modern minimalist abstract
    surreal pop impressionist expressionist cubist baroque renaissance classical gothic
    noir cyberpunk steampunk futuristic sci fi neon vaporwave synthwave pastel vibrant muted
    color colors colorful monochrome black white gray grey red orange yellow green blue purple
    pink brown gold golden silver teal cyan magenta warm cool dark light bright soft hard
    lighting light lit rim backlight backlit studio natural sunlight sunset sunrise dusk dawn
    night day moonlight candlelight volumetric dramatic moody ambient glow glowing shadow
    shadows contrast high low key exposure bokeh depth field focus sharp blurry blur detailed
    detail details intricate fine texture textured smooth clean lines line bold thin outline
    brush brushstrokes strokes stroke paint paper canvas wash bleed splash splatter wet dry
    layered layers flat gradient glossy matte subsurface scattering specular reflection
    rendered octane unreal engine blender cgi volumetric ray tracing global illumination
    quality best masterpiece award winning trending professional beautiful stunning elegant
    gorgeous cute lovely charming handsome pretty ugly deformed disfigured distorted bad poor
    worst jpeg artifacts artifact noise noisy grainy grain watermark signature text logo
    cropped crop extra missing fingers limbs duplicate mutated mutation lowres resolution
    resolutions 4k 8k hd uhd hdr sharpness clarity vivid rich deep saturated desaturated
    style styled stylized inspired by in the style of like similar tone tones toned palette
    hue hues shade tint vignette film grain lens mm 35mm 50mm 85mm f1.4 dslr canon nikon
    wide angle telephoto macro portraiture editorial fashion magazine cover vogue glamour
    character design sheet model figure figurine toy doll clay claymation plastic vinyl
    wood stone marble bronze metal glass crystal paper origami mosaic stained fabric
    flowers flower floral leaves garden forest trees sky clouds cloud sea ocean beach city
    street urban rural mountain mountains snow rain fog mist smoke fire water waves
    dress shirt suit jacket hat glasses scarf jewelry earrings necklace crown armor
    hero heroine knight warrior wizard witch princess prince king queen robot android elf
    whimsical dreamy ethereal magical mystical serene peaceful joyful playful friendly
    loose tight delicate gentle subtle strong heavy dynamic energetic expressive emotional
    trending on featured hyper ultra super highly extremely slightly
"""
PORTRAIT_WORDS: tuple[str, ...] = tuple(dict.fromkeys(_PORTRAIT_TEXT.split()))


# ----------------------------------------------------------------------------- tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode char table (the alphabet of byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _learn_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Classic BPE training until every word is one symbol (ties broken by first seen).

    Training on the words themselves guarantees that CLIP's encoder (lowest-rank merge
    first) rebuilds each word as one token, and shared pieces ("ing</w>") come out as
    tokens of their own, so unseen words split into readable parts.
    """
    byte_char = _bytes_to_unicode()
    seqs = []
    for w in dict.fromkeys(words):  # dedupe, keep order
        chars = [byte_char[b] for b in w.encode("utf-8")]
        chars[-1] += END_OF_WORD
        if len(chars) > 1:
            seqs.append(chars)
    merges: list[tuple[str, str]] = []
    while seqs:
        pairs: Counter[tuple[str, str]] = Counter()
        for s in seqs:
            pairs.update(itertools.pairwise(s))
        best = max(pairs, key=pairs.__getitem__)  # max() keeps the first of equal counts
        merges.append(best)
        merged = best[0] + best[1]
        next_seqs = []
        for s in seqs:
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            if len(out) > 1:
                next_seqs.append(out)
        seqs = next_seqs
    return merges


def _normalise_words(words: Iterable[str]) -> list[str]:
    """Lower-cased words as CLIP's pre-tokenizer would see them (letters-only runs)."""
    out = []
    for w in words:
        # CLIP splits "f1.4" into "f", "1", ".", "4": only letter runs can be whole tokens
        out.extend(re.findall(r"[^\W\d_]+", w.lower()))
    return out


def write_tiny_clip_tokenizer(directory: Path, extra_words: Iterable[str] = ()) -> Path:
    """Write a small CLIP BPE tokenizer (vocab.json, merges.txt) loadable by ``CLIPTokenizer``.

    Every byte has a token with and without ``</w>``, so any text tokenizes; the words of
    :data:`PORTRAIT_WORDS` and ``extra_words`` are single tokens. Ids follow CLIP's layout:
    bytes, bytes + ``</w>``, merges, then ``<|startoftext|>`` and ``<|endoftext|>`` last.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = list(_bytes_to_unicode().values())
    merges = _learn_merges(_normalise_words([*PORTRAIT_WORDS, *extra_words]))
    tokens = alphabet + [c + END_OF_WORD for c in alphabet] + ["".join(m) for m in merges]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    merge_lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(merge_lines) + "\n", "utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (directory / "special_tokens_map.json").write_text(json.dumps(special), "utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CLIP_MAX_LENGTH,
        "do_lower_case": True,
        **special,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")
    return directory


def _load_tokenizer(directory: Path) -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(directory))


# ----------------------------------------------------------------------------- tiny CLIP

TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4}  # fmt: skip
TINY_VISION = {**TINY_TEXT, "image_size": 32, "patch_size": 8}


@dataclass
class TinyClip:
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
    directory: Path, unet_config: Mapping[str, Any], seed: int = 0
) -> tuple[Path, str]:
    """Write a FaceID adapter for ``unet_config`` as flattened ``.safetensors``.

    Returns ``(directory, weight_name)`` for
    ``pipe.load_ip_adapter(str(directory), subfolder="", weight_name=weight_name,
    image_encoder_folder=None)``.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nested = faceid_adapter_state_dict(unet_config, seed=seed, mult=1)
    flat = {f"{group}.{k}": v.contiguous() for group, sd in nested.items() for k, v in sd.items()}
    name = "ip-adapter-faceid_tiny.safetensors"
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


_MANIFEST = "manifest.json"


def _paths_from(root: Path) -> TinyModelPaths:
    m = json.loads((root / _MANIFEST).read_text("utf-8"))
    return TinyModelPaths(
        root=root,
        sd_dir=root / m["sd"],
        adapter_dir=root / m["adapter"],
        adapter_weight=m["adapter_weight"],
        clip_dir=root / m["clip"],
        face_pack_dir=root / m["face_pack"],
    )


def _build_all(root: Path) -> None:
    from diffusers import UNet2DConditionModel

    from pipelines.tiny_face import write_tiny_face_pack  # written by the face module's owner

    sd = write_tiny_sd_pipeline(root / "sd")
    unet_config = UNet2DConditionModel.load_config(sd / "unet")
    adapter_dir, weight = write_tiny_faceid_adapter(root / "faceid", unet_config)
    clip = write_tiny_clip(root / "clip")
    face = Path(write_tiny_face_pack(root / "face"))
    manifest = {
        "version": TINY_VERSION,
        "sd": sd.relative_to(root).as_posix(),
        "adapter": adapter_dir.relative_to(root).as_posix(),
        "adapter_weight": weight,
        "clip": clip.relative_to(root).as_posix(),
        "face_pack": face.relative_to(root).as_posix(),
    }
    # written last: its presence marks a complete build
    (root / _MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")


def ensure_tiny_models(cache_dir: Path) -> TinyModelPaths:
    """Build every tiny model once into ``cache_dir/tiny-v<N>/`` and return their paths.

    Builds in a temporary sibling folder and renames it into place, so concurrent processes
    never see a half-written folder; the first rename wins and the others reuse it.
    """
    cache_dir = Path(cache_dir)
    final = cache_dir / f"tiny-v{TINY_VERSION}"
    if (final / _MANIFEST).is_file():
        return _paths_from(final)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache_dir))
    try:
        _build_all(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _MANIFEST).is_file():
                raise  # not a lost race: a real failure
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _paths_from(final)
