"""Load-time checks of the asset files: types, ranges, modifier banks and preview recipes.

The recipe-op vocabulary (:data:`PREVIEW_OPS`) lives here, next to the checks, so that a typo in
an asset fails at load time, not mid-render. :class:`FileChecks` leaves raising to a subclass:
:mod:`pipelines.styles.catalog` raises its ``StyleFileError``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from pipelines.core.errors import InputError
from pipelines.styles.modifiers import EFFECTS, Modifier

MAX_MODIFIER_CHARS = 60

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # categories, groups
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a preview recipe op."""

    kind: str  # "float" | "int" | "color" ("#rrggbb") | "colors" (list of >= 2 colours)
    low: float = 0.0
    high: float = 0.0


def _f(low: float, high: float) -> ParamSpec:
    return ParamSpec("float", low, high)


def _i(low: int, high: int) -> ParamSpec:
    return ParamSpec("int", low, high)


_COLOR, _COLORS = ParamSpec("color"), ParamSpec("colors")
_SCALE = _f(0.25, 1.0)  # work resolution of slow filters, as a fraction of the output size

# Preview recipe ops: name -> parameters (all optional; pipelines.preview.ops holds the defaults).
# Spatial parameters are in pixels of a 512 px output; pipelines.preview.ops rescales them.
PREVIEW_OPS: dict[str, dict[str, ParamSpec]] = {
    "smooth": {"sigma_s": _f(1, 200), "sigma_r": _f(0.01, 1), "scale": _SCALE},
    "bilateral": {"diameter": _i(3, 15), "sigma": _f(1, 200), "passes": _i(1, 6), "scale": _SCALE},
    "kuwahara": {"radius": _i(1, 10), "scale": _SCALE},
    "detail": {"radius": _f(0.5, 30), "amount": _f(0, 3)},
    "pencil": {"blur": _f(1, 40), "darkness": _f(0.5, 4), "hatching": _f(0, 1)},
    "quantize": {"colors": _i(2, 64)},
    "posterize": {"levels": _i(2, 16)},
    "outline": {"block": _i(3, 51), "offset": _f(0, 30), "thickness": _i(1, 5), "color": _COLOR},
    "color_bleed": {"sigma": _f(0.5, 30), "amount": _f(0, 1)},
    "wet_edges": {"strength": _f(0, 1), "width": _f(0.5, 8)},
    "paper": {"strength": _f(0, 1), "scale": _f(1, 32), "tone": _COLOR},
    "canvas": {"strength": _f(0, 1), "period": _i(2, 16)},
    "halftone": {"cell": _i(3, 32), "strength": _f(0, 1), "angle": _f(0, 90)},
    "palette": {"colors": _COLORS, "mix": _f(0, 1)},
    "gradient_map": {"colors": _COLORS, "mix": _f(0, 1)},
    "neon_edges": {"colors": _COLORS, "width": _i(1, 8), "glow": _f(1, 40), "strength": _f(0, 3)},
    "relight": {"angle": _f(0, 360), "strength": _f(0, 1)},
    "mosaic": {"cells": _i(16, 4000), "border": _i(0, 6), "color": _COLOR},
    # zoom acts on the crop, before any op runs, so a recipe cannot use it
    "adjust": {name: _f(lo, hi) for name, (lo, hi) in EFFECTS.items() if name != "zoom"},
}


class StyleFileError(InputError):
    """An asset file is broken; names the file, the key (dotted path) and the reason."""

    def __init__(self, file: str, key: str | None, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = f"{file}: key '{key}'" if key else file
        super().__init__(f"{where}: {reason}")


class FileChecks:
    """Type and range checks for one asset file; every failure is a :class:`StyleFileError`."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> NoReturn:
        """Raise :class:`StyleFileError` naming this file, ``key`` and ``reason``."""
        raise StyleFileError(self.file, key, reason)

    def only_keys(
        self, obj: object, key: str, required: set[str], optional: set[str] = frozenset()
    ) -> None:
        """A dict at ``key`` with every ``required`` key and nothing outside ``optional``."""
        if not isinstance(obj, dict):
            self.fail(key or "<root>", f"must be an object, got {type(obj).__name__}")
        for name in sorted(required - obj.keys()):
            self.fail(_join(key, name), "missing")
        for name in sorted(obj.keys() - required - optional):
            allowed = ", ".join(sorted(required | optional))
            self.fail(_join(key, name), f"unknown key: allowed keys are {allowed}")

    def text(self, value: object, key: str, allow_empty: bool = False) -> str:
        """A string, stripped; empty only when ``allow_empty``."""
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            self.fail(key, "must not be empty")
        return value.strip()

    def number(self, value: object, key: str, low: float, high: float) -> float:
        """A number (not a bool) from ``low`` to ``high``, as a float."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number, got {type(value).__name__}")
        if not low <= value <= high:
            self.fail(key, f"{value} is out of range: use a value from {low} to {high}")
        return float(value)

    def template(self, value: object, key: str) -> str:
        """A template whose only placeholder is ``{prompt}``."""
        tpl = self.text(value, key)
        try:
            parts = list(string.Formatter().parse(tpl))
        except ValueError as e:
            self.fail(key, f"unbalanced braces ({e}): write a literal brace as {{{{ or }}}}")
        names = [(name, conv, spec) for _, name, spec, conv in parts if name is not None]
        if not any(name == "prompt" for name, _, _ in names):
            self.fail(key, "must contain {prompt}")
        for name, conv, spec in names:
            if name != "prompt" or conv or spec:
                shown = name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
                self.fail(key, f"{{{shown}}} is not allowed: the only placeholder is {{prompt}}")
        return tpl

    def bank(self, value: object, key: str, source: str, minimum: int) -> tuple[Modifier, ...]:
        """A bank ``{category: [modifier, ...]}`` of at least ``minimum`` distinct modifiers."""
        if not isinstance(value, dict) or not value:
            self.fail(key, "must be a non-empty object mapping category -> list of modifiers")
        out: list[Modifier] = []
        seen: dict[str, str] = {}
        for category, items in value.items():
            ckey = _join(key, category)
            if not _NAME.match(category):
                self.fail(ckey, "category names use lowercase letters, digits and '_'")
            if not isinstance(items, list) or not items:
                self.fail(ckey, "must be a non-empty list of modifiers")
            for i, item in enumerate(items):
                m = self.modifier(item, f"{ckey}[{i}]", category, source)
                if m.text.lower() in seen:
                    other = seen[m.text.lower()]
                    self.fail(f"{ckey}[{i}]", f"duplicate modifier {m.text!r} (also {other})")
                seen[m.text.lower()] = f"{ckey}[{i}]"
                out.append(m)
        if len(out) < minimum:
            self.fail(key, f"has {len(out)} modifiers: at least {minimum} are required")
        return tuple(out)

    def modifier(self, item: object, key: str, category: str, source: str) -> Modifier:
        """One modifier, written as a string or an object."""
        if isinstance(item, str):
            item = {"text": item}
        self.only_keys(item, key, {"text"}, {"group", "effects", "excludes"})
        text = self.text(item["text"], _join(key, "text"))
        if len(text) > MAX_MODIFIER_CHARS or any(c in text for c in ",\n\t"):
            self.fail(
                _join(key, "text"),
                f"{text!r} is not allowed: at most {MAX_MODIFIER_CHARS} characters, no commas",
            )
        group = item.get("group")
        if group is not None and (not isinstance(group, str) or not _NAME.match(group)):
            reason = f"{group!r} is not allowed: use a lowercase name or omit the key"
            self.fail(_join(key, "group"), reason)
        excludes = item.get("excludes", [])
        if not isinstance(excludes, list) or not all(
            isinstance(g, str) and _NAME.match(g) for g in excludes
        ):
            reason = f"{excludes!r} is not allowed: use a list of lowercase group names"
            self.fail(_join(key, "excludes"), reason)
        effects = self.effects(item.get("effects", {}), _join(key, "effects"))
        return Modifier(text, category, group, effects, source, tuple(excludes))

    def style_excludes(
        self, value: object, key: str, global_bank: tuple[Modifier, ...]
    ) -> tuple[str, ...]:
        """A style's ``excludes``: groups or modifier texts of ``global_bank``, lowercased."""
        groups = {m.group for m in global_bank if m.group}
        texts = {m.text.lower() for m in global_bank}
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.fail(key, f"{value!r} is not allowed: use a list of global groups or modifiers")
        for i, name in enumerate(value):
            if name not in groups and name.lower() not in texts:
                self.fail(
                    f"{key}[{i}]",
                    f"{name!r} is neither a group nor a modifier of the global bank",
                )
        return tuple(x.lower() for x in value)

    def effects(self, value: object, key: str) -> Mapping[str, float]:
        """An ``{effect: amount}`` object within the ranges of :data:`EFFECTS`."""
        if not isinstance(value, dict):
            self.fail(key, f"must be an object of effect -> number, got {type(value).__name__}")
        out = {}
        for name, amount in value.items():
            if name not in EFFECTS:
                self.fail(_join(key, name), f"unknown effect: use one of {', '.join(EFFECTS)}")
            out[name] = self.number(amount, _join(key, name), *EFFECTS[name])
        return MappingProxyType(out)

    def preview(self, value: object, key: str) -> Mapping[str, Any]:
        """A ``{"recipe": [op, ...]}`` object of known ops with parameters in range."""
        self.only_keys(value, key, {"recipe"})
        recipe = value["recipe"]
        if not isinstance(recipe, list) or not recipe:
            self.fail(_join(key, "recipe"), "must be a non-empty list of ops")
        ops = []
        for i, step in enumerate(recipe):
            skey = f"{key}.recipe[{i}]"
            if not isinstance(step, dict) or "op" not in step:
                self.fail(skey, 'must be an object with an "op" name')
            op = step["op"]
            if op not in PREVIEW_OPS:
                allowed = ", ".join(PREVIEW_OPS)
                self.fail(_join(skey, "op"), f"unknown op {op!r}: use one of {allowed}")
            params = {"op": op}
            for name, raw in step.items():
                if name == "op":
                    continue
                spec = PREVIEW_OPS[op].get(name)
                if spec is None:
                    allowed = ", ".join(PREVIEW_OPS[op])
                    self.fail(_join(skey, name), f"unknown parameter of {op!r}: use {allowed}")
                params[name] = self.param(raw, _join(skey, name), spec)
            ops.append(MappingProxyType(params))
        return MappingProxyType({"recipe": tuple(ops)})

    def param(self, value: object, key: str, spec: ParamSpec) -> Any:
        """One recipe parameter checked against ``spec``."""
        if spec.kind == "float":
            return self.number(value, key, spec.low, spec.high)
        if spec.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(key, f"must be an integer, got {value!r}")
            return int(self.number(value, key, spec.low, spec.high))
        if spec.kind == "color":
            if not isinstance(value, str) or not _HEX.match(value):
                self.fail(key, f"{value!r} is not a colour: use '#rrggbb'")
            return value.lower()
        if not isinstance(value, list) or len(value) < 2:
            self.fail(key, f"must be a list of at least 2 '#rrggbb' colours, got {value!r}")
        return tuple(self.param(c, f"{key}[{i}]", _COLOR) for i, c in enumerate(value))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
