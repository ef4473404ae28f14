"""The one interface every augmentation method implements, and the registry that lists them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipelines.core.errors import InputError, UnavailableError
from pipelines.core.trace import Candidate, TraceStep

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.augment.tokens import TokenBudget
    from pipelines.styles.catalog import Style, StyleCatalog


@dataclass
class AugmentContext:
    """What a method may use besides (base prompt, style)."""

    catalog: StyleCatalog
    budget: TokenBudget
    reference_images: Sequence[Image.Image] = ()  # uploaded in the UI or top-rated outputs
    progress: Callable[[float, str], None] | None = None  # fraction done, message
    seed: int = 0
    # candidates other methods already proposed for this same request, by method name: the
    # ensemble pools these instead of running those methods a second time
    computed: Mapping[str, Sequence[Candidate]] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)  # ... or why they proposed none


class MethodUnavailable(UnavailableError):
    """A method cannot run here; the message says why in words a user understands."""


@runtime_checkable
class AugmentMethod(Protocol):
    """A prompt-augmentation method. It declares what it needs, so the service never has to
    know methods by name."""

    name: str
    description: str
    summary: str  # a few plain words for the method picker
    uses_references: bool  # wants style reference images (uploaded and top-rated) as targets
    pools: tuple[str, ...]  # methods whose candidates it reuses: it runs after them

    def unavailable_reason(self) -> str | None:
        """None when the method can run here, else a short human reason."""

    def augment(self, base_prompt: str, style: Style, context: AugmentContext) -> list[Candidate]:
        """Ranked candidates, best first. Raises MethodUnavailable when it cannot run."""


class UnknownMethodError(InputError, KeyError):
    """A method name the registry does not have; the message lists the ones it has."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown method {name!r}: use one of {', '.join(known)}")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class MethodRegistry:
    """Ordered name -> method mapping; the UI shows methods in registration order."""

    def __init__(self, methods: Iterable[AugmentMethod] = ()) -> None:
        self._methods: dict[str, AugmentMethod] = {}
        for m in methods:
            self.register(m)

    def register(self, method: AugmentMethod) -> None:
        """Add ``method`` under its name (a later one with the same name replaces it)."""
        self._methods[method.name] = method

    def get(self, name: str) -> AugmentMethod:
        """The method called ``name``; raises :class:`UnknownMethodError` listing the known ones."""
        try:
            return self._methods[name]
        except KeyError:
            raise UnknownMethodError(name, self._methods) from None

    def names(self) -> list[str]:
        """Method names in registration order (the order the UI shows)."""
        return list(self._methods)

    def availability(self) -> dict[str, str | None]:
        """name -> None if available, else the reason it is not."""
        return {n: m.unavailable_reason() for n, m in self._methods.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._methods


class RawMethod:
    """The user's prompt, untouched: the baseline every method is compared to."""

    name = "raw"
    summary = "your prompt exactly as typed"
    uses_references = False
    pools: tuple[str, ...] = ()
    description = "Your prompt exactly as typed, no style and no negative prompt."

    def unavailable_reason(self) -> str | None:
        """Always available: it needs nothing."""
        return None

    def augment(self, base_prompt: str, style: Style, context: AugmentContext) -> list[Candidate]:
        """The base prompt, cut to the token budget, with no negative prompt."""
        prompt = context.budget.truncate(base_prompt)
        return [
            Candidate(
                prompt=prompt,
                method=self.name,
                negative_prompt="",
                trace=(TraceStep(prompt, "user", "the base prompt as typed"),),
            )
        ]


class TemplateMethod:
    """The style's hand-written template around the user's prompt."""

    name = "template"
    summary = "the style's hand-written template"
    uses_references = False
    pools: tuple[str, ...] = ()
    description = "The style's template applied to your prompt, with its negative prompt."

    def unavailable_reason(self) -> str | None:
        """Always available: it needs nothing."""
        return None

    def augment(self, base_prompt: str, style: Style, context: AugmentContext) -> list[Candidate]:
        """The style's template around the base prompt; the style's negative prompt."""
        prompt = context.budget.truncate(style.apply(base_prompt))
        return [
            Candidate(
                prompt=prompt,
                method=self.name,
                trace=(TraceStep(style.template, "template", f"the {style.name} style template"),),
            )
        ]
