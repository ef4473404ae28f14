"""Device, dtype and batch-size choice, the ZeroGPU decorator and how the denoiser is compiled.

On a Hugging Face ZeroGPU Space (``SPACES_ZERO_GPU`` set) a ``@spaces.GPU`` function runs in a
forked worker that holds the GPU for that call only: whatever it builds dies with it, and
``torch.compile`` (which compiles on first use, inside the worker) is not supported. So there
every model is built at start, outside the GPU calls, and the denoiser is compiled ahead of time
with the ``spaces`` AoT helpers (:func:`aot_compile`); elsewhere ``torch.compile`` is kept.
"""

from __future__ import annotations

import copyreg
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import torch
from torch.utils._pytree import tree_map_only

from pipelines.core.errors import InputError
from pipelines.core.settings import DEVICES

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how to run: device, dtype, UNet batch size (0 = by device), speed options."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 0
    compile: bool = False  # torch.compile the denoiser once at load, then warm it up
    channels_last: bool = True  # channels-last conv weights on CUDA


class RuntimeChoiceError(InputError):
    """A device or dtype preference that is unknown or unusable on this machine."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: cuda > mps > cpu. An explicit device must exist here."""
    if preference not in DEVICES:
        raise RuntimeChoiceError(
            f"device={preference!r} is unknown: use one of {', '.join(DEVICES)}"
        )
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if not available[preference]:
        usable = [d for d in DEVICES if d == "auto" or available.get(d)]
        raise RuntimeChoiceError(
            f"device={preference!r} is not available here: use one of {', '.join(usable)}"
        )
    return torch.device(preference)


def pick_dtype(device: torch.device | str, preference: str = "auto") -> torch.dtype:
    """``auto``: cuda bf16 (fp16 without bf16 support), mps fp16, cpu fp32."""
    device = torch.device(device)
    if preference == "auto":
        if device.type == "cuda":
            # native bf16 only: torch counts a T4's slow emulated bf16 as supported by default
            native = torch.cuda.is_bf16_supported(including_emulation=False)
            return torch.bfloat16 if native else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if preference not in DTYPES:
        raise RuntimeChoiceError(
            f"dtype={preference!r} is unknown: use one of auto, {', '.join(DTYPES)}"
        )
    if device.type == "cpu" and preference == "float16":
        # CPU half kernels are missing or many times slower than float32
        raise RuntimeChoiceError("dtype='float16' is not usable on cpu: use float32 or bfloat16")
    return DTYPES[preference]


def default_batch_size(device: torch.device | str) -> int:
    """Prompts per UNet call.

    CPU: 1. bench/bench_generation.py on 2 cores, SD-1.5 fp32 at 512 px: batch 4 took 55.7
    s/image vs 51.2 s/image one at a time (x1.09); batching only pays below that size (256 px:
    x0.67), and one at a time also shows the first image sooner. GPU: 8, enough to fill an
    SD-1.5 UNet at 512 px with classifier-free guidance (16 rows per call).
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return 8
    if kind == "mps":
        return 4  # unified memory is shared with the OS; kept lower than CUDA (unmeasured)
    return 1


def on_zero_gpu() -> bool:
    """Whether this process runs on a ZeroGPU Space (``SPACES_ZERO_GPU``, read as ``spaces``
    reads it): the GPU exists only inside ``@spaces.GPU`` calls."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}


def gpu_decorator(duration: int | Callable[..., int] = 120) -> Callable[[F], F]:
    """``spaces.GPU(duration=...)`` where the ``spaces`` package is installed (a no-op unless on
    ZeroGPU), else the identity. ``duration`` may be a function of the call's arguments that
    returns the seconds to reserve (ZeroGPU's dynamic duration)."""
    try:
        import spaces  # installed from requirements.txt; a no-op decorator off ZeroGPU
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def _rebuild_mappingproxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


def _reduce_mappingproxy(view: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return _rebuild_mappingproxy, (dict(view),)


def pickle_read_only_mappings() -> None:
    """Let ``pickle`` carry read-only mappings (``MappingProxyType``, as styles and family rows
    hold them): ZeroGPU pickles a GPU call's arguments into its worker. Each crosses as a
    read-only view of a copy. Idempotent."""
    copyreg.pickle(MappingProxyType, _reduce_mappingproxy)


def gpu_seconds(images: int, steps: int, per_image_step: float, overhead: float = 10.0) -> int:
    """Seconds to reserve a ZeroGPU for ``images`` outputs of ``steps`` denoising steps: a
    call that outlives its reservation is killed, one that asks for much more waits longer in
    the quota queue, so this is an upper bound (``per_image_step``: the family's measured or
    estimated seconds per image and step; ``overhead``: text encoding, decoding, safety)."""
    return max(15, min(300, math.ceil(overhead + images * steps * per_image_step)))


def compile_mode(options: RuntimeOptions) -> str | None:
    """How the denoiser is compiled: None (``BECOME_COMPILE`` off), ``"aot"`` on ZeroGPU (ahead
    of time with the ``spaces`` helpers; ``torch.compile`` is unsupported there), else
    ``"torch.compile"``."""
    if not options.compile:
        return None
    return "aot" if on_zero_gpu() else "torch.compile"


def tensor_rows(args: Iterable[Any], kwargs: Mapping[str, Any]) -> int:
    """The batch rows of a denoiser call: dim 0 of its first tensor argument (the latents:
    ``sample`` for a UNet, ``hidden_states`` for a transformer)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ValueError("the denoiser call has no tensor argument to read its batch rows from")


class ShapeDispatch:
    """The denoiser's forward after ahead-of-time compilation: one compiled program per batch
    shape (exported with static shapes, like the ZeroGPU AoT examples' one program per
    resolution), picked by the rows of each call."""

    def __init__(self, programs: Mapping[int, Callable[..., Any]]) -> None:
        self.programs = dict(programs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rows = tensor_rows(args, kwargs)
        program = self.programs.get(rows)
        if program is None:
            raise RuntimeError(
                f"no ahead-of-time program for a denoiser batch of {rows} rows: compiled for "
                f"{sorted(self.programs)}; warm-up must cover every batch shape"
            )
        return program(*args, **kwargs)


def _normal_tensor(t: torch.Tensor) -> torch.Tensor:
    return t.clone() if t.is_inference() else t


def aot_compile(
    module: torch.nn.Module, captures: Mapping[int, Callable[[], Any]], duration: int = 1500
) -> dict[int, Any]:
    """Compile ``module`` ahead of time once per batch shape, then install the programs.

    ``captures[n]`` runs the pipeline on ``n`` dummy prompts; ``spaces.aoti_capture`` stops it
    at the module's first call and keeps that call's arguments, ``torch.export.export`` traces
    the module on them and ``spaces.aoti_compile`` builds the program. Capture and compilation
    run inside one ``@spaces.GPU`` call (they need the GPU); the programs come back to this
    process, where ``spaces.aoti_apply`` swaps them in for ``module.forward`` (and frees its
    eager weights). Returns {batch rows: program}.
    """
    import spaces

    def compile_all() -> dict[int, Any]:
        programs: dict[int, Any] = {}
        for n, run in captures.items():
            with spaces.aoti_capture(module) as call:
                run()
            rows = tensor_rows(call.args, call.kwargs)
            # the pipelines render under inference_mode, whose tensors export cannot trace
            args, kwargs = tree_map_only(
                torch.Tensor, _normal_tensor, (tuple(call.args), dict(call.kwargs))
            )
            with torch.no_grad():
                exported = torch.export.export(module, args=args, kwargs=kwargs)
            programs[rows] = spaces.aoti_compile(exported)
            log.info("ahead-of-time compiled the denoiser for %d prompts (%d rows)", n, rows)
        return programs

    programs = gpu_decorator(duration)(compile_all)()
    spaces.aoti_apply(ShapeDispatch(programs), module)
    return programs


def uses_sdpa(module: torch.nn.Module) -> bool:
    """Whether every attention processor of ``module`` runs torch's scaled_dot_product_attention.

    diffusers picks SDPA processors (``*2_0``; FLUX.2's dispatch to the native backend) by default
    on torch 2; this checks it rather than replacing processors, which would drop IP-Adapter's.
    """
    processors = getattr(module, "attn_processors", {})
    names = {type(p).__name__ for p in processors.values()}
    return bool(names) and all(n.endswith("2_0") or n.startswith("Flux2") for n in names)


def apply_speed_options(
    modules: dict[str, torch.nn.Module],
    denoiser: str,
    options: RuntimeOptions,
    device: torch.device,
) -> dict[str, bool]:
    """Channels-last conv models on CUDA and an optional in-place ``torch.compile`` of the
    denoiser; returns what applies (``sdpa``, ``channels_last``, ``compile``, ``aot``) for the
    record.

    Half precision is the dtype choice (:func:`pick_dtype`); the caller warms a compiled
    denoiser up so that the first request does not pay for compilation. On ZeroGPU nothing is
    compiled here: ``aot`` says the caller compiles ahead of time (:func:`aot_compile`) once
    the pipeline is built.
    """
    applied = {
        "sdpa": uses_sdpa(modules[denoiser]),
        "channels_last": False,
        "compile": False,
        "aot": False,
    }
    if options.channels_last and device.type == "cuda":
        for module in modules.values():
            # convolutions run NHWC kernels on tensor cores; a transformer has none to convert
            if any(isinstance(m, torch.nn.Conv2d) for m in module.modules()):
                module.to(memory_format=torch.channels_last)
                applied["channels_last"] = True
    mode = compile_mode(options)
    if mode == "aot":
        applied["aot"] = True
        log.info("%s will be compiled ahead of time (ZeroGPU)", denoiser)
    elif mode == "torch.compile":
        modules[denoiser].compile(fullgraph=False, dynamic=False)
        applied["compile"] = True
        log.info("compiling %s on first use (warm-up at load)", denoiser)
    return applied
