"""Tiny models: tokenizer coverage, CLIP, SD pipeline, FaceID adapter layout, cache."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.tiny import sd15_faceid as tm
from pipelines.tiny import tokenizer as tt


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tm.TinyModelPaths:
    return tm.ensure_tiny_models(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import CLIPTokenizer

    directory = tt.write_tiny_clip_tokenizer(
        tmp_path_factory.mktemp("tok"), extra_words=["becomelab", "Zyxwine"]
    )
    return CLIPTokenizer.from_pretrained(directory)


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_is_the_real_clip_class_with_clip_layout(tokenizer) -> None:
    from transformers import CLIPTokenizer

    assert type(tokenizer) is CLIPTokenizer
    assert tokenizer.model_max_length == 77
    assert 1_000 <= len(tokenizer) <= 3_000
    # CLIP's id layout: specials last, end-of-text is the highest id (pooling relies on it)
    assert tokenizer.eos_token_id == len(tokenizer) - 1
    assert tokenizer.bos_token_id == len(tokenizer) - 2
    assert tokenizer.pad_token_id == tokenizer.eos_token_id


@pytest.mark.parametrize(
    "text",
    [
        "A watercolor portrait of a person, soft lighting",
        "Ünïcödé façade — naïve café 🙂 日本語 Ελληνικά",
        "zzqx qwfp 12345 $%^&*()[]{}<>~`|\\ \t new\nline",
        "f/1.4 85mm, 8K UHD!!!",
    ],
)
def test_tokenizer_encodes_any_text_losslessly(tokenizer, text: str) -> None:
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    # no unknown tokens (CLIP's unk is end-of-text) inside the text
    assert tokenizer.eos_token_id not in ids[1:-1]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    # CLIP lower-cases, collapses whitespace and decodes "</w>" as a space
    assert decoded.replace(" ", "") == re.sub(r"\s+", "", text.lower())


def test_portrait_and_extra_words_are_single_tokens(tokenizer) -> None:
    words = tt._normalise_words([*tt.PORTRAIT_WORDS, "becomelab", "Zyxwine"])
    assert len(words) > 300
    multi = [w for w in words if len(tokenizer(w, add_special_tokens=False)["input_ids"]) != 1]
    assert multi == []
    token = tokenizer.convert_ids_to_tokens(tokenizer("watercolor")["input_ids"][1])
    assert token == "watercolor</w>"


def test_unknown_words_split_into_pieces(tokenizer) -> None:
    ids = tokenizer("portraitures", add_special_tokens=False)["input_ids"]
    assert 1 < len(ids) < len("portraitures")  # learned sub-words, not single bytes


def test_tokenizer_files_are_deterministic(tmp_path) -> None:
    a = tt.write_tiny_clip_tokenizer(tmp_path / "a")
    b = tt.write_tiny_clip_tokenizer(tmp_path / "b")
    for name in ("vocab.json", "merges.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


# ----------------------------------------------------------------------------- tiny CLIP


def test_tiny_clip_roundtrips_through_from_pretrained(paths: tm.TinyModelPaths) -> None:
    from transformers import AutoImageProcessor, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(paths.clip_dir).eval()
    tok = CLIPTokenizer.from_pretrained(paths.clip_dir)
    proc = AutoImageProcessor.from_pretrained(paths.clip_dir)
    assert model.config.text_config.vocab_size == len(tok)

    built = tm.build_tiny_clip_model(paths.clip_dir, seed=0).model
    for (name, p), q in zip(built.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name

    pixels = proc(images=Image.new("RGB", (50, 40), "red"), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, 32, 32)
    text = tok(["a watercolor portrait", "anime"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**text, pixel_values=pixels)
    assert tuple(out.text_embeds.shape) == (2, 32)
    assert tuple(out.image_embeds.shape) == (1, 32)


def test_tiny_clip_is_deterministic_per_seed(paths: tm.TinyModelPaths) -> None:
    a = tm.build_tiny_clip_model(paths.clip_dir, seed=1).model.state_dict()
    b = tm.build_tiny_clip_model(paths.clip_dir, seed=1).model.state_dict()
    c = tm.build_tiny_clip_model(paths.clip_dir, seed=2).model.state_dict()
    key = "text_model.embeddings.token_embedding.weight"
    assert torch.equal(a[key], b[key])
    assert not torch.equal(a[key], c[key])


# ----------------------------------------------------------------------------- SD + FaceID


def test_sd_pipeline_loads_like_a_hub_id(paths: tm.TinyModelPaths) -> None:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    pipe = StableDiffusionPipeline.from_pretrained(paths.sd_dir, local_files_only=True)
    assert pipe.safety_checker is None
    assert type(pipe.tokenizer) is CLIPTokenizer
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer)
    assert pipe.vae_scale_factor == 8  # same latent grid as SD-1.5
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size


def test_faceid_adapter_loads_through_diffusers(paths: tm.TinyModelPaths) -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0
    from diffusers.models.embeddings import IPAdapterFaceIDImageProjection
    from safetensors.torch import load_file

    pipe = StableDiffusionPipeline.from_pretrained(paths.sd_dir, local_files_only=True)
    pipe.load_ip_adapter(
        str(paths.adapter_dir),
        subfolder="",
        weight_name=paths.adapter_weight,
        image_encoder_folder=None,
    )
    procs = pipe.unet.attn_processors
    cross = [n for n in procs if n.endswith("attn2.processor")]
    assert cross and all(isinstance(procs[n], IPAdapterAttnProcessor2_0) for n in cross)
    assert all(isinstance(p, AttnProcessor2_0) for n, p in procs.items() if n not in cross)
    (proj,) = pipe.unet.encoder_hid_proj.image_projection_layers
    assert isinstance(proj, IPAdapterFaceIDImageProjection)
    assert proj.num_tokens == tm.FACEID_NUM_TOKENS

    saved = load_file(paths.adapter_dir / paths.adapter_weight)
    for i, name in enumerate(cross):  # the i-th attn2 reads key 2i+1, as in the h94 file
        assert torch.equal(
            procs[name].to_k_ip[0].weight, saved[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"]
        )
    assert torch.equal(proj.ff.net[0].proj.weight, saved["image_proj.proj.0.weight"])


def test_full_size_adapter_layout_matches_h94_faceid_sd15() -> None:
    sd = tm.faceid_adapter_state_dict(tm.SD15_UNET, seed=0, mult=2)
    proj = {k: tuple(v.shape) for k, v in sd["image_proj"].items()}
    assert proj == {
        "proj.0.weight": (1024, 512),
        "proj.0.bias": (1024,),
        "proj.2.weight": (3072, 1024),
        "proj.2.bias": (3072,),
        "norm.weight": (768,),
        "norm.bias": (768,),
    }
    ids = sorted({int(k.split(".")[0]) for k in sd["ip_adapter"]})
    assert ids == list(range(1, 32, 2))  # 16 cross-attention layers of SD-1.5
    assert tuple(sd["ip_adapter"]["1.to_k_ip.weight"].shape) == (320, 768)  # down_blocks.0
    assert tuple(sd["ip_adapter"]["31.to_v_ip.weight"].shape) == (1280, 768)  # mid_block


# ----------------------------------------------------------------------------- cache


def test_ensure_tiny_models_is_idempotent(paths: tm.TinyModelPaths) -> None:
    manifest = paths.root / "manifest.json"
    before = manifest.stat().st_mtime_ns
    again = tm.ensure_tiny_models(paths.root.parent)
    assert again == paths
    assert manifest.stat().st_mtime_ns == before  # reused, not rebuilt
    assert json.loads(manifest.read_text())["version"] == tm.TINY_VERSION
    assert [p.name for p in paths.root.parent.iterdir()] == [paths.root.name]  # no temp dirs
    for p in (paths.sd_dir / "model_index.json", paths.adapter_dir / paths.adapter_weight):
        assert p.is_file()
    assert paths.clip_dir.is_dir() and any(paths.face_pack_dir.glob("*.onnx"))


def test_ensure_tiny_models_loses_a_race_cleanly(tmp_path, monkeypatch) -> None:
    final = tmp_path / f"tiny-v{tm.TINY_VERSION}"

    def build_while_another_process_wins(root):
        for d in (root, final):
            (d / "m").mkdir(parents=True)
            manifest = {"sd": "m", "adapter": "m", "adapter_weight": "w", "clip": "m"}
            (d / "manifest.json").write_text(json.dumps({**manifest, "face_pack": "m"}))

    monkeypatch.setattr(tm, "_build_all", build_while_another_process_wins)
    got = tm.ensure_tiny_models(tmp_path)
    assert got.root == final
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_ensure_tiny_models_leaves_nothing_when_the_build_fails(tmp_path, monkeypatch) -> None:
    def broken(root):
        (root / "half").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tm, "_build_all", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        tm.ensure_tiny_models(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tiny_sd_weights_are_deterministic(paths: tm.TinyModelPaths, tmp_path) -> None:
    from safetensors.torch import load_file

    other = tm.write_tiny_sd_pipeline(tmp_path / "sd", seed=0)
    for sub in ("unet", "vae"):
        (a,) = (paths.sd_dir / sub).glob("*.safetensors")
        (b,) = (other / sub).glob("*.safetensors")
        wa, wb = load_file(a), load_file(b)
        assert wa.keys() == wb.keys()
        assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)
