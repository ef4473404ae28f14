"""A ZeroGPU Space, on the CPU: the real ``spaces`` package (its decorator is a no-op off
ZeroGPU) with ``SPACES_ZERO_GPU`` set, as the Space sets it.

On ZeroGPU every model is built at start outside the GPU call, the GPU call only runs them (and
its arguments cross into the worker by pickle), and ``BECOME_COMPILE`` compiles ahead of time.
"""

from __future__ import annotations

import contextlib
import pickle
import types
from unittest import mock

import numpy as np
import pytest
import spaces  # imported before SPACES_ZERO_GPU is set: the real package, inert off ZeroGPU
import torch

from pipelines.core.lazy import Lazy
from pipelines.core.settings import Settings
from pipelines.models import runtime
from pipelines.models.runtime import RuntimeOptions, compile_mode


class _Captured(Exception):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.call_args, self.call_kwargs = args, kwargs


@contextlib.contextmanager
def aoti_capture(module: torch.nn.Module):
    """spaces.aoti_capture on the CPU: the module's first call stops the run; its arguments
    are kept."""
    call = types.SimpleNamespace(args=(), kwargs={})

    def capture(*args, **kwargs):
        raise _Captured(*args, **kwargs)

    with mock.patch.object(module, "forward", new=capture):
        try:
            yield call
        except _Captured as stop:
            call.args, call.kwargs = stop.call_args, stop.call_kwargs


def aoti_apply(compiled, module: torch.nn.Module) -> None:
    """spaces.aoti_apply on the CPU: the program becomes the forward; eager weights are freed."""
    module.forward = compiled
    # as spaces' drain_module_parameters: new, empty parameters are assigned; the old tensors
    # live on only where the compiled program holds them
    fresh = {n: torch.nn.Parameter(torch.empty_like(t)) for n, t in module.state_dict().items()}
    module.load_state_dict(fresh, assign=True)
    for param in fresh.values():
        param.data = torch.empty(0, dtype=param.dtype, device=param.device)


@pytest.fixture
def zero_gpu(monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")


def test_aot_is_chosen_over_torch_compile_on_zerogpu_only(monkeypatch) -> None:
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert compile_mode(RuntimeOptions(compile=True)) == "torch.compile"
    assert compile_mode(RuntimeOptions()) is None
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert runtime.on_zero_gpu()
    assert compile_mode(RuntimeOptions(compile=True)) == "aot"
    assert compile_mode(RuntimeOptions()) is None  # BECOME_COMPILE still decides


def test_gpu_seconds_grow_with_outputs_and_steps_within_zerogpu_bounds() -> None:
    assert runtime.gpu_seconds(4, 20, 0.05) < runtime.gpu_seconds(32, 20, 0.05)
    assert runtime.gpu_seconds(4, 4, 0.5) < runtime.gpu_seconds(4, 8, 0.5)
    assert runtime.gpu_seconds(1, 1, 0.0) == 15  # never less than a call's fixed costs
    assert runtime.gpu_seconds(10_000, 50, 1.0) == 300


def test_models_are_built_at_start_and_the_gpu_call_builds_nothing(
    zero_gpu, tmp_path, group_path, monkeypatch
) -> None:
    from pipelines.app.bootstrap import build_at_start, build_services
    from pipelines.core.request import CompareRequest

    settings = Settings.from_env(
        {
            "BECOME_ENGINE": "tiny",
            "BECOME_DATA_DIR": str(tmp_path),
            "BECOME_STEPS": "2",
            "BECOME_SIZE": "64",
        }
    )
    services = build_services(settings)
    renderer = services.engine.renderer
    assert not renderer._pipeline.loaded  # construction stays cheap

    assert build_at_start(services)
    assert renderer._pipeline.loaded and renderer.safety.loaded  # pipeline, safety checker
    assert services.engine.face.loaded  # face models
    assert services.clip._clip is not None  # CLIP (inversion, ensemble, measures)

    built: list[str] = []
    inside = {"gpu": False}
    get = Lazy.get

    def watch(self: Lazy):
        if inside["gpu"] and not self.loaded:
            built.append(self.name)
        return get(self)

    monkeypatch.setattr(Lazy, "get", watch)
    gpu_call = renderer.gpu_render
    calls = []

    def in_worker(jobs, progress):
        # ZeroGPU pickles the arguments into the GPU worker: they must survive it
        calls.append((len(pickle.dumps(jobs)), renderer.gpu_duration(jobs), progress))
        inside["gpu"] = True
        try:
            return gpu_call(jobs, progress)
        finally:
            inside["gpu"] = False

    monkeypatch.setattr(renderer, "gpu_render", in_worker)
    request = CompareRequest.from_settings(
        settings, style="anime", prompt="a person", methods=["raw", "template"], seed=3
    )
    result = services.comparison.compare(group_path, request)
    assert len(calls) == 1 and built == []
    _, duration, progress = calls[0]
    pickle.dumps(progress)  # the step-progress closure does not cross; a plain function does
    assert 15 <= duration <= 300
    assert all(o.rendered for o in result.outputs) and result.safety_checker


def test_a_lazily_built_renderer_is_built_before_the_gpu_call(zero_gpu, tmp_path) -> None:
    from pipelines.app.bootstrap import build_services

    settings = Settings.from_env(
        {"BECOME_ENGINE": "tiny", "BECOME_DATA_DIR": str(tmp_path), "BECOME_SIZE": "64"}
    )
    renderer = build_services(settings).engine.renderer
    seen = []
    renderer.gpu_render = lambda jobs, progress: seen.append(renderer._pipeline.loaded) or []
    renderer.render_many([], lambda f, m: None)
    assert seen == [True]  # loaded outside the call even when start-up did not build it


def test_aot_compiles_the_denoiser_per_batch_shape_and_renders_the_same(
    zero_gpu, tmp_path, monkeypatch
) -> None:
    """``torch.export`` is the real one. ``spaces``' AoT module imports its CUDA patches and
    cannot load on a CPU build of torch, so its three helpers are replaced by doubles that do
    what spaces 0.51's do on the CPU: capture = patch the module's forward to raise with its
    arguments, apply = swap the forward and free the eager weights; compile runs the exported
    program instead of inductor's C++ build (minutes per shape on two cores). The rendered
    pixels then say the swapped-in forward is the exported UNet."""
    from pipelines.models.registry import pipeline_class
    from pipelines.models.renderer import DiffusionRenderer, DiffusionWeights
    from pipelines.tiny import TINY_WEIGHTS

    exported = []

    def compile_exported(program: torch.export.ExportedProgram):
        exported.append(program)
        return program.module()

    monkeypatch.setattr(spaces, "aoti_capture", aoti_capture)
    monkeypatch.setattr(spaces, "aoti_compile", compile_exported)
    monkeypatch.setattr(spaces, "aoti_apply", aoti_apply)
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(self))

    base, adapter, weight = TINY_WEIGHTS["sd15-faceid"](tmp_path)
    face = np.zeros(512, np.float32)
    face[0] = 1.0
    call = dict(face_embedding=face, num_inference_steps=2, height=64, width=64, seed=5)
    eager = pipeline_class("sd15-faceid").from_pretrained(
        base, adapter, weight, device="cpu", local_files_only=True
    )
    expected = eager(["a", "b"], **call).images

    weights = DiffusionWeights(base, adapter, weight, True, "sd15-faceid", allow_unverified=True)
    options = RuntimeOptions(device="cpu", compile=True)
    pipeline = DiffusionRenderer.from_weights(weights, options, warmup_size=64).pipeline
    assert compiled == []  # no torch.compile on ZeroGPU
    assert pipeline.speed["aot"] and not pipeline.speed["compile"]
    # CPU batches are 1 prompt: one program, for its 2 rows (classifier-free guidance)
    assert len(exported) == 1
    unet = pipeline.pipe.unet
    assert isinstance(unet.forward, runtime.ShapeDispatch)
    assert sorted(unet.forward.programs) == [2]
    assert all(p.numel() == 0 for p in unet.parameters())  # eager weights freed
    got = pipeline(["a", "b"], **call).images
    for a, b in zip(expected, got, strict=True):
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
    with pytest.raises(RuntimeError, match="no ahead-of-time program for a denoiser batch of 4"):
        pipeline(["a", "b"], batch_size=2, **call)


def test_the_safety_checker_downloads_unless_offline_by_configuration(tmp_path, monkeypatch):
    """A Space whose checker weights are not cached yet must not run unchecked: it downloads
    them (even when a probe of the Hub fails now); only HF_HUB_OFFLINE runs without it."""
    from pipelines.app import engines

    base = {"BECOME_DATA_DIR": str(tmp_path / "data"), "BECOME_FACE_ROOT": str(tmp_path / "if")}
    settings = Settings.from_env({**base, "BECOME_SAFETY_MODEL": "some-org/not-cached-checker"})
    diffusers = engines.EngineChoice("diffusers", "BECOME_ENGINE=diffusers")
    monkeypatch.setattr(engines, "hub_reachable", lambda *a, **k: False)  # a flaky network
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    online = engines.resolve_safety(settings, diffusers)
    assert online.on and "downloads" in online.reason and online.local_files_only is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = engines.resolve_safety(settings, diffusers)
    assert not offline.on and "HF_HUB_OFFLINE" in offline.reason
    assert "not checked" in offline.reason
