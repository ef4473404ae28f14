"""The one request type from the page to the pipeline, and the one progress signature.

The UI, the API, the CLI and the benchmarks all build a :class:`CompareRequest`; the service and
the renderers take it. Its generation fields carry diffusers' argument names, so a value such as
``guidance_scale`` is called the same from the slider to ``StableDiffusionPipeline.__call__``.
It is validated once, when built, against :data:`pipelines.core.limits.LIMITS` with its model
family's size limit (``ModelFamily.limits``): the one place where the values a person sends are
checked. A value its family does not read (``ip_adapter_scale`` without a FaceID adapter) is left
out (``None``), so the family's records never show a setting that changed nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import InputError
from pipelines.core.families import DEFAULT_FAMILY, FAMILIES, ModelFamily
from pipelines.core.limits import LIMITS, MAX_SEED, Limit

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.core.settings import Settings

# the identity strength when neither the caller nor a style sets one: the pipelines' default and
# where the page's slider starts (each style has its own, ``Style.identity_strength``)
DEFAULT_IP_ADAPTER_SCALE = 0.8

# progress(fraction done 0..1, what is happening now): the one signature from the page's progress
# bar down to the pipeline's denoising loop
Progress = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that reports nowhere."""


def sub_progress(progress: Progress, start: float, end: float, prefix: str = "") -> Progress:
    """``progress`` for one stage: the stage's 0..1 maps onto ``start..end`` of the whole."""

    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), prefix + message)

    return report


class CompareInputError(InputError):
    """A request field the app cannot use; the message names the field and what it allows."""


@dataclass(frozen=True)
class CompareRequest:
    """One side-by-side row: a base prompt in a style, augmented by each method, rendered with
    one selfie and one seed so that the outputs differ only by prompt.

    Build it with :meth:`from_settings` to fill unset generation values from the settings.
    """

    style: str  # style id, e.g. "watercolor"
    prompt: str  # the base prompt as typed; whitespace is normalised
    methods: tuple[str, ...]  # in the order shown; repeats dropped
    seed: int
    num_inference_steps: int
    guidance_scale: float
    height: int
    width: int
    # identity strength; None = the style's own, and always None for a family without FaceID
    ip_adapter_scale: float | None = None
    model_family: str = DEFAULT_FAMILY  # the generator it is for: its limits apply
    # style targets for inversion and ensemble (uploaded in the UI); never stored
    reference_images: tuple[Image.Image, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # frozen: normalised values are set once, here, before anyone can see the object
        set_ = object.__setattr__
        if self.model_family not in FAMILIES:
            raise CompareInputError(
                f"model_family={self.model_family!r} is unknown: use one of {', '.join(FAMILIES)}."
            )
        limits = self.family.limits
        set_(self, "style", _text("style", self.style).strip())
        set_(self, "prompt", " ".join(_text("prompt", self.prompt).split()))
        if not self.prompt:
            raise CompareInputError("The base prompt is empty: type what the portrait should show.")
        if len(self.prompt) > LIMITS["prompt"].high:
            raise CompareInputError(
                f"The base prompt has {len(self.prompt)} characters: keep it under "
                f"{int(LIMITS['prompt'].high)} (the {self.family.text_encoder} reads "
                f"{self.family.token_limit} tokens)."
            )
        methods = [self.methods] if isinstance(self.methods, str) else self.methods
        methods = tuple(dict.fromkeys(_text("methods", m).strip() for m in methods or ()))
        if not methods:
            raise CompareInputError("No method chosen: tick at least one method to compare.")
        set_(self, "methods", methods)
        for name in ("seed", "num_inference_steps", "height", "width"):
            set_(self, name, _checked(limits, name, _whole(name, getattr(self, name))))
        if not self.family.reads_guidance:  # distilled: the family's fixed value is what runs
            set_(self, "guidance_scale", self.family.guidance_scale)
        else:
            value = _number(self.guidance_scale)
            set_(self, "guidance_scale", _checked(limits, "guidance_scale", value))
        if not self.family.uses_faceid:  # nothing reads it: not checked, not recorded
            set_(self, "ip_adapter_scale", None)
        elif self.ip_adapter_scale is not None:
            value = _number(self.ip_adapter_scale, "ip_adapter_scale")
            set_(self, "ip_adapter_scale", _checked(limits, "ip_adapter_scale", value))
        set_(self, "reference_images", tuple(self.reference_images or ()))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        style: str,
        prompt: str,
        methods: Iterable[str],
        seed: int | None = None,
        **fields: Any,
    ) -> CompareRequest:
        """A request whose unset generation values (and model family) are the settings'.

        ``seed=None`` draws a random seed, so the request always says which seed rendered it.
        """
        defaults = {
            "num_inference_steps": settings.num_inference_steps,
            "guidance_scale": settings.guidance_scale,
            "height": settings.size,
            "width": settings.size,
            "model_family": settings.model_family,
        }
        given = {k: v for k, v in fields.items() if v is not None}
        return cls(
            style=style,
            prompt=prompt,
            methods=tuple(methods or ()),
            seed=random.randint(0, MAX_SEED) if seed is None else seed,
            **{**defaults, **given},
        )

    @property
    def family(self) -> ModelFamily:
        """The model family this request is for."""
        return FAMILIES[self.model_family]

    def with_identity(self, default_scale: float) -> CompareRequest:
        """This request with ``ip_adapter_scale`` set (to ``default_scale``, the style's, when it
        is unset); unchanged for a family without FaceID, which reads no identity strength."""
        if self.ip_adapter_scale is not None or not self.family.uses_faceid:
            return self
        return replace(self, ip_adapter_scale=default_scale)

    def generation_params(self) -> dict[str, Any]:
        """The values that shape the pixels, by their diffusers names (for JSON and records)."""
        return {
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "ip_adapter_scale": self.ip_adapter_scale,
            "height": self.height,
            "width": self.width,
        }


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise CompareInputError(f"{name}={value!r} must be text.")
    return value


def _whole(name: str, value: Any) -> int:
    """``value`` as an int: ints, whole floats ("7.0" from a number box) and digit strings."""
    if isinstance(value, bool):
        raise CompareInputError(f"{name}={value!r} must be a whole number, not true/false.")
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CompareInputError(f"{name}={value!r} is not a whole number.") from None
    if not math.isfinite(number) or number != int(number):
        raise CompareInputError(f"{name}={value!r} is not a whole number.")
    return int(number)


def _number(value: Any, name: str = "guidance_scale") -> float:
    if isinstance(value, bool):
        raise CompareInputError(f"{name}={value!r} must be a number, not true/false.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CompareInputError(f"{name}={value!r} is not a number.") from None
    if not math.isfinite(number):
        raise CompareInputError(f"{name}={value!r} is not a finite number.")
    return number


def _checked(limits: Mapping[str, Limit], name: str, value: float) -> Any:
    problem = limits[name].problem(name, value)
    if problem:
        raise CompareInputError(problem)
    return value
