"""Device, dtype and batch-size choice, and the ZeroGPU decorator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

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


def gpu_decorator(duration: int = 120) -> Callable[[F], F]:
    """``spaces.GPU(duration=...)`` on Hugging Face ZeroGPU Spaces, else the identity."""
    try:
        import spaces  # only installed on HF Spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


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
    denoiser; returns what applies (``sdpa``, ``channels_last``, ``compile``) for the record.

    Half precision is the dtype choice (:func:`pick_dtype`); the caller warms a compiled
    denoiser up so that the first request does not pay for compilation.
    """
    applied = {"sdpa": uses_sdpa(modules[denoiser]), "channels_last": False, "compile": False}
    if options.channels_last and device.type == "cuda":
        for module in modules.values():
            # convolutions run NHWC kernels on tensor cores; a transformer has none to convert
            if any(isinstance(m, torch.nn.Conv2d) for m in module.modules()):
                module.to(memory_format=torch.channels_last)
                applied["channels_last"] = True
    if options.compile:
        modules[denoiser].compile(fullgraph=False, dynamic=False)
        applied["compile"] = True
        log.info("compiling %s on first use (warm-up at load)", denoiser)
    return applied
