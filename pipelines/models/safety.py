"""The safety checker every output passes before anyone sees it, and what replaces a flagged one.

diffusers' ``StableDiffusionSafetyChecker`` (a CLIP ViT-L/14 image tower with the concept
embeddings CompVis published) judges any image, whatever generated it, so one checker serves
every model family. A flagged output is replaced by :func:`placeholder` before it leaves the
renderer: the flagged pixels are never returned, shown or stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from pipelines.core.errors import UnavailableError

log = logging.getLogger(__name__)

FLAGGED_MESSAGE = (
    "The safety checker flagged this output: it is hidden and was not kept. "
    "Try another seed or prompt."
)


class SafetyCheckerUnavailable(UnavailableError):
    """The safety checker's weights cannot be loaded; says which setting to change."""


class SafetyChecker:
    """Flags images with diffusers' ``StableDiffusionSafetyChecker``."""

    def __init__(self, model: torch.nn.Module, processor: object, model_id: str) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id

    @classmethod
    def from_pretrained(
        cls,
        model_id: str | Path,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        local_files_only: bool | None = None,
        allow_unverified: bool = False,
    ) -> SafetyChecker:
        """Load the checker and its image processor (hub id or folder, as on the Hub). The
        default checker loads only from files that match its pins (:mod:`pipelines.weights`);
        other weights only with ``allow_unverified``."""
        from diffusers.pipelines.stable_diffusion.safety_checker import (
            StableDiffusionSafetyChecker,
        )
        from transformers import AutoImageProcessor

        from pipelines.core.settings import DEFAULT_SAFETY_MODEL
        from pipelines.weights import WeightsRefused, locate

        try:
            weights = locate(
                str(model_id),
                default=DEFAULT_SAFETY_MODEL,
                allow_unverified=allow_unverified,
                offline=local_files_only,
                what="safety checker (BECOME_SAFETY_MODEL)",
            )
        except WeightsRefused as exc:
            raise SafetyCheckerUnavailable(str(exc)) from None
        source = weights.source
        hub: dict = {} if weights.local_files_only is None else {"local_files_only": True}
        # the pinned file is the PyTorch one: read it, never an unchecked neighbour
        pinned = {"use_safetensors": False} if weights.verified else {}
        try:
            processor = AutoImageProcessor.from_pretrained(source, **hub)
            model = StableDiffusionSafetyChecker.from_pretrained(
                source, dtype=dtype, **hub, **pinned
            )
        except (OSError, ValueError) as exc:
            raise SafetyCheckerUnavailable(
                f"the safety checker {model_id} cannot be loaded ({type(exc).__name__}): set "
                "BECOME_SAFETY_MODEL to a local folder or hub id holding it, or "
                "BECOME_SAFETY_CHECKER=off to render without it"
            ) from exc
        return cls(model.to(device).eval(), processor, str(model_id))

    @torch.inference_mode()
    def flags(self, images: Sequence[Image.Image]) -> list[bool]:
        """For each image, whether the checker flags it."""
        if not images:
            return []
        param = next(self.model.parameters())
        pixels = self.processor(list(images), return_tensors="pt").pixel_values
        dummies = [np.zeros(1) for _ in images]  # the checker blacks these out; we only read flags
        _, flagged = self.model(
            clip_input=pixels.to(device=param.device, dtype=param.dtype), images=dummies
        )
        return [bool(f) for f in flagged]


def placeholder(width: int, height: int) -> Image.Image:
    """A grey image of the output's size saying that the safety checker hid the output."""
    image = Image.new("RGB", (width, height), (90, 90, 96))
    draw = ImageDraw.Draw(image)
    lines = ["Hidden by the", "safety checker"]
    font = ImageFont.load_default(size=max(8, width // 14))
    y = height // 2 - len(lines) * (width // 14) // 2
    for line in lines:
        box = draw.textbbox((0, 0), line, font=font)
        draw.text(((width - (box[2] - box[0])) // 2, y), line, fill=(240, 240, 240), font=font)
        y += box[3] - box[1] + width // 40 + 2
    return image


def screen(
    checker: SafetyChecker | None, images: Sequence[Image.Image]
) -> tuple[tuple[Image.Image, ...], tuple[bool, ...]]:
    """``images`` with every flagged one replaced by a :func:`placeholder`, and the flags."""
    if checker is None:
        return tuple(images), (False,) * len(images)
    flags = checker.flags(images)
    if any(flags):
        log.warning("safety checker flagged %d of %d outputs", sum(flags), len(flags))
    out = tuple(placeholder(*im.size) if f else im for im, f in zip(images, flags, strict=True))
    return out, tuple(flags)
