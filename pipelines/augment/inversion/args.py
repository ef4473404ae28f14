"""Argument checks shared by the inversion modes and method, and the error they raise."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from pipelines.core.errors import InputError

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import ClipBackend

Progress = Callable[[float, str], None]  # (fraction done, message)


class InversionInputError(InputError):
    """A bad argument to the inversion functions or method; names the value and what is allowed."""


def _check_targets(clip: ClipBackend, target_features: torch.Tensor) -> torch.Tensor:
    if not isinstance(target_features, torch.Tensor) or target_features.dim() != 2:
        shape = getattr(target_features, "shape", type(target_features).__name__)
        raise InversionInputError(
            f"target_features must be a (n, {clip.embed_dim}) tensor, got {shape}"
        )
    if target_features.shape[0] == 0 or target_features.shape[1] != clip.embed_dim:
        raise InversionInputError(
            f"target_features must be (n >= 1, {clip.embed_dim}), "
            f"got {tuple(target_features.shape)}"
        )
    t = target_features.to(clip.device, torch.float32)
    return t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (n, d)


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InversionInputError(f"{name}={value!r} is not allowed: use an integer {low}..{high}")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InversionInputError(f"{name}={value!r} is not allowed: use a finite number {bound}")
