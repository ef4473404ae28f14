"""Device, dtype and batch-size choice, and the ZeroGPU decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from pipelines.errors import InputError
from pipelines.settings import DEVICES

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

F = TypeVar("F", bound=Callable[..., Any])


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
