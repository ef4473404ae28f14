"""PortraitPipeline on tiny models (CPU): N prompts, one face, one seed; runtime choices."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest
import torch

from pipelines.models import runtime
from pipelines.models.sd15_faceid import (
    PortraitInputError,
    PortraitPipeline,
    PortraitPipelineOutput,
)
from pipelines.tiny.sd15_faceid import TinyModelPaths, ensure_tiny_models

PROMPTS = ["a watercolor portrait", "an anime portrait, soft lighting", "3d cartoon person"]
FAST = {"num_inference_steps": 2, "height": 64, "width": 64}


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def px(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> TinyModelPaths:
    return ensure_tiny_models(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def pipe(paths: TinyModelPaths) -> PortraitPipeline:
    return PortraitPipeline.from_pretrained(
        paths.sd_dir, paths.adapter_dir, paths.adapter_weight, device="cpu", local_files_only=True
    )


@pytest.fixture(scope="module")
def reference(pipe: PortraitPipeline) -> PortraitPipelineOutput:
    return pipe(PROMPTS, face_embedding=unit(0), seed=7, batch_size=1, **FAST)


# ----------------------------------------------------------------------------- loading


def test_loads_with_sdpa_and_faceid_processors(pipe: PortraitPipeline, paths) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0

    procs = pipe.pipe.unet.attn_processors
    for name, proc in procs.items():
        expected = (
            IPAdapterAttnProcessor2_0 if name.endswith("attn2.processor") else AttnProcessor2_0
        )
        assert type(proc) is expected, name
    assert pipe.pipe.safety_checker is None
    assert pipe.model_ids == {
        "base": str(paths.sd_dir),
        "adapter": f"{paths.adapter_dir}/{paths.adapter_weight}",
    }
    assert (pipe.device.type, pipe.dtype, pipe.default_batch_size) == ("cpu", torch.float32, 1)


def test_from_components_takes_an_in_memory_adapter(paths) -> None:
    from diffusers import StableDiffusionPipeline

    from pipelines.tiny.sd15_faceid import faceid_adapter_state_dict

    sd = StableDiffusionPipeline.from_pretrained(paths.sd_dir, local_files_only=True)
    with pytest.raises(PortraitInputError, match="no IP-Adapter"):
        PortraitPipeline.from_components(sd, device="cpu")
    adapter = faceid_adapter_state_dict(sd.unet.config, seed=3, mult=1)
    pp = PortraitPipeline.from_components(sd, adapter, device="cpu", model_ids={"base": "x"})
    out = pp("a portrait", face_embedding=unit(0), **FAST)
    assert len(out.images) == 1 and out.model_ids == {"base": "x"}


# ----------------------------------------------------------------------------- outputs


def test_n_prompts_give_n_images_with_provenance(reference: PortraitPipelineOutput) -> None:
    assert len(reference.images) == len(PROMPTS)
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in reference.images)
    assert reference.prompts == PROMPTS
    assert reference.negative_prompts == [""] * len(PROMPTS)
    assert reference.seeds == [7] * len(PROMPTS)
    assert set(reference.timings) == {"encode", "denoise", "decode", "total"}
    parts = sum(reference.timings[k] for k in ("encode", "denoise", "decode"))
    assert 0 < parts <= reference.timings["total"]


def test_same_seed_same_pixels_other_seed_other_pixels(pipe, reference) -> None:
    again = pipe(PROMPTS, face_embedding=unit(0), seed=7, batch_size=1, **FAST)
    for a, b in zip(reference.images, again.images, strict=True):
        assert np.array_equal(px(a), px(b))
    other = pipe(PROMPTS[0], face_embedding=unit(0), seed=8, **FAST)
    assert np.abs(px(other.images[0]) - px(reference.images[0])).mean() > 1


def test_output_depends_only_on_its_prompt(pipe, reference) -> None:
    # the same prompt at another position, next to other prompts, gives the same image
    out = pipe(["anything else", PROMPTS[0]], face_embedding=unit(0), seed=7, **FAST)
    assert np.array_equal(px(out.images[1]), px(reference.images[0]))
    # and different prompts with the same seed and face give different images
    a, b = px(reference.images[0]), px(reference.images[1])
    assert np.abs(a - b).mean() > 1


@pytest.mark.parametrize("batch_size", [2, 3])
def test_batching_does_not_change_pixels(pipe, reference, batch_size: int) -> None:
    out = pipe(PROMPTS, face_embedding=unit(0), seed=7, batch_size=batch_size, **FAST)
    for a, b in zip(reference.images, out.images, strict=True):
        diff = np.abs(px(a) - px(b))
        # exact in practice; oneDNN may pick another kernel per batch shape -> 1/255 rounding
        assert diff.max() <= 1 and diff.mean() < 0.01


def test_identity_strength_and_face_matter(pipe) -> None:
    def render(scale: float, face: int) -> np.ndarray:
        out = pipe(PROMPTS[0], face_embedding=unit(face), ip_adapter_scale=scale, seed=1, **FAST)
        return px(out.images[0])

    assert np.abs(render(0.0, 0) - render(1.0, 0)).mean() > 1
    assert np.abs(render(1.0, 0) - render(1.0, 1)).mean() > 1  # another face, another image
    assert np.array_equal(render(0.0, 0), render(0.0, 1))  # scale 0 ignores the face


def test_negative_prompt_and_guidance(pipe, reference) -> None:
    neg = pipe(PROMPTS, ["blurry", "", "ugly"], face_embedding=unit(0), seed=7, **FAST)
    assert neg.negative_prompts == ["blurry", "", "ugly"]
    assert np.array_equal(px(neg.images[1]), px(reference.images[1]))  # "" is the default
    assert np.abs(px(neg.images[0]) - px(reference.images[0])).mean() > 0.5
    no_cfg = pipe(PROMPTS[0], face_embedding=unit(0), guidance_scale=1.0, seed=7, **FAST)
    assert np.abs(px(no_cfg.images[0]) - px(reference.images[0])).mean() > 0.5


def test_face_embedding_as_tensor_or_row(pipe, reference) -> None:
    face = torch.from_numpy(unit(0))[None]  # (1, 512)
    out = pipe(PROMPTS[0], face_embedding=face, seed=7, **FAST)
    assert np.array_equal(px(out.images[0]), px(reference.images[0]))


def test_callback_counts_steps_across_batches(pipe) -> None:
    calls: list[tuple[float, str]] = []
    pipe(
        PROMPTS,
        face_embedding=unit(0),
        batch_size=2,
        callback=lambda fraction, message: calls.append((fraction, message)),
        **FAST,
    )
    # 3 prompts in batches of 2 -> 2 batches; PNDM runs one UNet step more than asked
    per_batch = len(pipe.pipe.scheduler.timesteps)
    assert per_batch == FAST["num_inference_steps"] + 1
    total = 2 * per_batch
    assert calls == [(i / total, f"Rendering step {i}/{total}") for i in range(1, total + 1)]


def test_concurrent_requests_do_not_mix_state(pipe) -> None:
    def render(scale: float) -> np.ndarray:
        return px(
            pipe(PROMPTS[:2], face_embedding=unit(0), ip_adapter_scale=scale, **FAST).images[1]
        )

    expected = {s: render(s) for s in (0.0, 1.5)}
    got: dict[float, list[np.ndarray]] = {0.0: [], 1.5: []}

    def worker(scale: float) -> None:
        for _ in range(2):
            got[scale].append(render(scale))

    threads = [threading.Thread(target=worker, args=(s,)) for s in (0.0, 1.5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for scale, images in got.items():
        assert len(images) == 2 and all(np.array_equal(im, expected[scale]) for im in images)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": []}, "prompt=\\[\\] is empty"),
        ({"prompt": ["a", 3]}, "list of strings"),
        ({"negative_prompt": ["x"]}, "negative_prompt has 1 entries but prompt has 3"),
        ({"negative_prompt": 5}, "negative_prompt=5"),
        ({"face_embedding": np.ones(128, np.float32) / np.sqrt(128)}, r"shape \(128,\)"),
        ({"face_embedding": np.ones((2, 512), np.float32)}, r"shape \(2, 512\)"),
        ({"face_embedding": unit(0) * 20}, "L2 norm 20.000"),
        ({"face_embedding": np.full(512, np.nan, np.float32)}, "NaN"),
        ({"face_embedding": [0.1] * 512}, "type list"),
        ({"height": 100}, "height=100 is not a multiple of 8"),
        ({"width": 32}, "width=32 is out of range"),
        ({"num_inference_steps": 0}, "num_inference_steps=0 is out of range"),
        ({"num_inference_steps": 2.5}, "num_inference_steps=2.5 must be an integer"),
        ({"ip_adapter_scale": 2.5}, "ip_adapter_scale=2.5 is out of range"),
        ({"ip_adapter_scale": float("nan")}, "ip_adapter_scale=nan must be a finite"),
        ({"guidance_scale": -1.0}, "guidance_scale=-1.0 is out of range"),
        ({"seed": -1}, "seed=-1 is out of range"),
        ({"batch_size": 0}, "batch_size=0 is out of range"),
        ({"callback": "print"}, "callback='print' is not callable"),
    ],
)
def test_bad_inputs_raise_typed_errors(pipe, kwargs: dict, message: str) -> None:
    args = {"prompt": PROMPTS, "face_embedding": unit(0), **FAST, **kwargs}
    with pytest.raises(PortraitInputError, match=message) as info:
        pipe(**args)
    assert isinstance(info.value, ValueError)


def test_adapter_dir_without_weight_name_is_rejected(paths) -> None:
    from diffusers import StableDiffusionPipeline

    sd = StableDiffusionPipeline.from_pretrained(paths.sd_dir, local_files_only=True)
    with pytest.raises(PortraitInputError, match="needs adapter_weight"):
        PortraitPipeline.from_components(sd, paths.adapter_dir, device="cpu")


# ----------------------------------------------------------------------------- runtime


def test_pick_device_and_dtype_on_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.pick_device() == torch.device("cpu")
    assert runtime.pick_dtype("cpu") == torch.float32
    assert runtime.pick_dtype("cpu", "bfloat16") == torch.bfloat16
    with pytest.raises(runtime.RuntimeChoiceError, match="device='cuda' is not available"):
        runtime.pick_device("cuda")
    with pytest.raises(ValueError, match="device='tpu' is unknown: use one of auto, cuda"):
        runtime.pick_device("tpu")
    with pytest.raises(ValueError, match="dtype='fp8' is unknown: use one of auto, float32"):
        runtime.pick_dtype("cpu", "fp8")
    with pytest.raises(ValueError, match="dtype='float16' is not usable on cpu"):
        runtime.pick_dtype("cpu", "float16")


def test_pick_device_and_dtype_with_gpus(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.pick_device() == torch.device("cuda")  # cuda before mps
    assert runtime.pick_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.pick_dtype("cuda") == torch.bfloat16  # Ampere and newer
    # a T4 (a common Space GPU) runs bf16 only emulated, many times slower than its fp16
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert runtime.pick_dtype("cuda") == torch.float16
    assert runtime.pick_dtype("mps") == torch.float16
    assert runtime.pick_dtype("cuda", "float32") == torch.float32
    assert (runtime.default_batch_size("cpu"), runtime.default_batch_size("cuda")) == (1, 8)


def test_gpu_decorator_uses_spaces_when_present(monkeypatch) -> None:
    def fn() -> int:
        return 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # import fails -> identity
    assert runtime.gpu_decorator()(fn) is fn
    seen = {}

    def gpu(duration: int):
        seen["duration"] = duration
        return lambda f: ("wrapped", f)

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    assert runtime.gpu_decorator(60)(fn) == ("wrapped", fn)
    assert seen == {"duration": 60}


def test_each_output_can_have_its_own_face_and_seed(pipe) -> None:
    # several people's rows in one call: output i depends only on prompt, face and seed i
    both = pipe(
        [PROMPTS[0], PROMPTS[1]],
        face_embedding=np.stack([unit(0), unit(1)]),
        seed=[7, 8],
        batch_size=2,
        **FAST,
    )
    first = pipe(PROMPTS[0], face_embedding=unit(0), seed=7, **FAST)
    second = pipe(PROMPTS[1], face_embedding=unit(1), seed=8, **FAST)
    assert np.abs(px(both.images[0]) - px(first.images[0])).max() <= 1
    assert np.abs(px(both.images[1]) - px(second.images[0])).max() <= 1
    assert both.seeds == [7, 8]
    with pytest.raises(PortraitInputError, match="seed has 3 entries but prompt has 2"):
        pipe(PROMPTS[:2], face_embedding=unit(0), seed=[1, 2, 3], **FAST)
