"""The one table of request limits, and the type of one limit.

Kept apart from :mod:`pipelines.core.settings` so that the model families (which narrow the size
limits) and the settings (which read the families) can both import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Limit:
    """The allowed range of one request value, with the words a person reads it by."""

    low: float
    high: float
    label: str  # what the UI calls it
    multiple_of: int = 1

    def problem(self, name: str, value: float) -> str | None:
        """None when ``value`` is allowed, else a sentence naming ``name`` and the allowed range."""
        if not self.low <= value <= self.high:
            return f"{name}={value!r} is out of range: {self.label} must be {self.allowed}."
        if self.multiple_of > 1 and value % self.multiple_of:
            return (
                f"{name}={value!r} is not a multiple of {self.multiple_of}: {self.label} must be "
                f"{self.allowed}."
            )
        return None

    @property
    def allowed(self) -> str:
        """The allowed values in words: "a multiple of 8 from 64 to 1024"."""
        step = f"a multiple of {self.multiple_of} " if self.multiple_of > 1 else "a value "
        return f"{step}from {self.low} to {self.high}"


# The one table of request limits: the request, the settings, the pipelines, the style files and
# the UI widgets all read these. Keys are the request's (and diffusers') argument names. Height
# and width here are SD-1.5's; each model family declares its own size limit
# (``pipelines.core.families.ModelFamily.size_limit``) and ``ModelFamily.limits`` is this table with
# that one limit in place of these two.
LIMITS: Mapping[str, Limit] = MappingProxyType(
    {
        "num_inference_steps": Limit(1, 150, "steps"),
        "guidance_scale": Limit(0.0, 30.0, "guidance"),
        "ip_adapter_scale": Limit(0.0, 1.5, "identity strength"),
        "height": Limit(64, 1024, "height in px", multiple_of=8),  # the VAE works on /8 latents
        "width": Limit(64, 1024, "width in px", multiple_of=8),
        "seed": Limit(0, 2**32 - 1, "seed"),
        "prompt": Limit(1, 500, "characters in the base prompt"),  # the encoder reads few tokens
        "batch_size": Limit(1, 64, "prompts per UNet call"),
    }
)
MAX_SEED = int(LIMITS["seed"].high)
