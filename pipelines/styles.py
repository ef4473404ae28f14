"""Style catalog and modifier banks, loaded and validated from ``assets/``.

Layout::

    assets/modifiers.json        {"modifiers": {category: [modifier, ...]}}  the global bank
    assets/styles/<id>.json      one style: template, negative prompt, its own bank, preview recipe
    assets/references/<id>/      optional reference images (targets for the inversion method)

A modifier is ``"text"`` or ``{"text": ..., "group": ..., "excludes": [...], "effects": {...}}``;
``excludes`` names other groups it contradicts. ``group`` marks
mutually exclusive modifiers ("black and white" vs "vibrant colors"); ``effects`` are what the
weight-free preview engine does when the modifier appears in a prompt. The effect and recipe-op
vocabulary lives here so that a typo in an asset fails at load time, not mid-render.

A style's own ``excludes`` lists the global groups and modifiers its template already decides
("monochrome" where the template asks for vibrant colours). A modifier containing a phrase of the
style's negative prompt ("dslr photo" against "photo") contradicts it too. The bank a method may
draw from (``StyleCatalog.modifiers_for``) leaves both out.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from pipelines.errors import InputError

MIN_STYLE_MODIFIERS = 15
MIN_GLOBAL_MODIFIERS = 150
IDENTITY_STRENGTH_RANGE = (0.0, 1.5)
MAX_MODIFIER_CHARS = 60
DEFAULT_SUBJECT = "a person"  # what Style.apply uses for an empty prompt
_PORTRAIT_LEAD = re.compile(r"^(?:an? )?portrait of ", re.IGNORECASE)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_WORD = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # categories, groups
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")

# Preview effects a modifier may carry: name -> allowed (low, high). Values of all modifiers
# found in a prompt are summed, then clipped to this range.
EFFECTS: dict[str, tuple[float, float]] = {
    "warmth": (-1.0, 1.0),  # + orange, - blue
    "tint": (-1.0, 1.0),  # + magenta, - green
    "brightness": (-1.0, 1.0),
    "contrast": (-1.0, 1.0),
    "saturation": (-1.0, 1.0),  # -1 = grey
    "hue": (-180.0, 180.0),  # degrees
    "monochrome": (0.0, 1.0),
    "sepia": (0.0, 1.0),
    "pastel": (0.0, 1.0),  # desaturate and lift toward white
    "fade": (0.0, 1.0),  # lifted blacks, matte look
    "vignette": (0.0, 1.0),
    "glow": (0.0, 1.0),  # bloom of the highlights
    "grain": (0.0, 1.0),
    "texture": (0.0, 1.0),  # paper / canvas relief
    "blur": (0.0, 1.0),
    "sharpen": (0.0, 1.0),
    "posterize": (0.0, 1.0),
    "edges": (0.0, 1.0),  # dark ink outlines
    "focus": (0.0, 1.0),  # shallow depth of field: blur away from the face
    "zoom": (-1.0, 1.0),  # + tighter crop on the face, - wider
}


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

# Preview recipe ops: name -> parameters (all optional; pipelines.preview_ops holds the defaults).
# Spatial parameters are in pixels of a 512 px output; pipelines.preview_ops rescales them.
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


class UnknownStyleError(InputError):
    """A style id that is not in the catalog."""

    def __init__(self, style_id: object, known: list[str]) -> None:
        self.style_id, self.known = style_id, known
        super().__init__(f"unknown style {style_id!r}: use one of {', '.join(known)}")


@dataclass(frozen=True)
class Modifier:
    """One prompt modifier from a bank."""

    text: str  # as it appears in a prompt, e.g. "golden hour lighting"
    category: str  # "lighting", "camera", "medium", "color", "mood", "detail", "composition", ...
    group: str | None  # mutually-exclusive group: at most one modifier of a group per prompt
    effects: Mapping[str, float] = field(hash=False)  # preview effects, e.g. {"warmth": 0.3}
    source: str = "global"  # "global" or the style id
    excludes: tuple[str, ...] = ()  # other groups it contradicts ("starry night sky": time_of_day)


@dataclass(frozen=True)
class Style:
    """A portrait style: how to wrap a prompt, what to avoid, and how to preview it."""

    id: str
    name: str
    description: str
    template: str  # contains "{prompt}"
    negative_prompt: str
    identity_strength: float  # FaceID adapter scale; stylised styles use less
    modifiers: tuple[Modifier, ...]
    preview: Mapping[str, Any] = field(hash=False)  # {"recipe": ({"op": ..., **params}, ...)}
    reference_dir: Path = Path()  # assets/references/<id>/ (may be empty or missing)
    excludes: tuple[str, ...] = ()  # global groups and modifier texts (lowercase) it rules out

    def apply(self, prompt: str) -> str:
        """The template around ``prompt``; braces in ``prompt`` are kept literally."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        subject = " ".join(prompt.split()) or DEFAULT_SUBJECT
        if "portrait of {prompt}" in self.template:  # not "portrait of a portrait of a person"
            subject = _PORTRAIT_LEAD.sub("", subject) or subject
        # str.format does not re-parse substituted values, so "{" in the prompt is safe
        return self.template.format(prompt=subject)

    def rules_out(self, modifier: Modifier) -> str | None:
        """Why ``modifier`` contradicts this style, or None: it contains all the words of a
        negative-prompt phrase, or (for a global modifier) the style excludes its group or text."""
        words = _words(modifier.text)
        for phrase in self.negative_prompt.split(","):
            needed = _words(phrase)
            if needed and needed <= words:
                return f"the negative prompt has {phrase.strip()!r}"
        if modifier.source == "global":
            if modifier.group is not None and modifier.group in self.excludes:
                return f"the style excludes the {modifier.group!r} group"
            if modifier.text.lower() in self.excludes:
                return f"the style excludes {modifier.text!r}"
        return None

    def reference_images(self) -> list[Path]:
        """Image files in ``reference_dir``, sorted by name; empty when there are none."""
        if not self.reference_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.reference_dir.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )


class StyleCatalog:
    """All styles (in display order) and the global modifier bank."""

    def __init__(self, styles: dict[str, Style], global_modifiers: tuple[Modifier, ...]) -> None:
        self.styles = styles
        self.global_modifiers = global_modifiers
        self._banks: dict[str, tuple[Modifier, ...]] = {}
        self._full_banks: dict[str, tuple[Modifier, ...]] = {}
        self._patterns: dict[str, tuple[re.Pattern[str], dict[str, Modifier]]] = {}

    def get(self, style_id: str) -> Style:
        try:
            return self.styles[style_id]
        except (KeyError, TypeError):
            raise UnknownStyleError(style_id, self.ids()) from None

    def ids(self) -> list[str]:
        return list(self.styles)

    def modifiers_for(self, style: Style | str) -> tuple[Modifier, ...]:
        """The modifiers a method may add for ``style``: its bank, then the global bank,
        deduplicated by text (the style's wins), less those the style rules out."""
        st = self._resolve(style)
        if st.id not in self._banks:
            self._banks[st.id] = tuple(m for m in self._full_bank(st) if st.rules_out(m) is None)
        return self._banks[st.id]

    def _full_bank(self, st: Style) -> tuple[Modifier, ...]:
        if st.id not in self._full_banks:
            seen: set[str] = set()
            bank = []
            for m in (*st.modifiers, *self.global_modifiers):
                if m.text.lower() not in seen:
                    seen.add(m.text.lower())
                    bank.append(m)
            self._full_banks[st.id] = tuple(bank)
        return self._full_banks[st.id]

    def find_modifiers(self, prompt: str, style: Style | str) -> list[Modifier]:
        """Bank modifiers occurring in ``prompt`` as whole words, case-insensitive, in order.

        Longer modifiers win over ones they contain ("golden hour lighting" over "golden hour"),
        and each occurrence counts once. Modifiers the style rules out are found too: a user may
        still type them, and their groups and preview effects still apply.
        """
        st = self._resolve(style)
        if st.id not in self._patterns:
            by_text = {m.text.lower(): m for m in self._full_bank(st)}
            # alternation tries left to right, so longest first gives the longest match
            alts = sorted(by_text, key=len, reverse=True)
            body = "|".join(re.escape(t) for t in alts)
            pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)
            self._patterns[st.id] = (pattern, by_text)
        pattern, by_text = self._patterns[st.id]
        found: list[Modifier] = []
        for match in pattern.finditer(" ".join(prompt.split())):
            m = by_text[match.group(0).lower()]
            if m not in found:
                found.append(m)
        return found

    def _resolve(self, style: Style | str) -> Style:
        return style if isinstance(style, Style) else self.get(style)


def conflicts(a: Modifier, b: Modifier) -> bool:
    """True when ``a`` and ``b`` should not both be in one prompt."""
    same_text = a.text.lower() == b.text.lower()
    same_group = a.group is not None and a.group == b.group
    return same_text or same_group or a.group in b.excludes or b.group in a.excludes


def _words(text: str) -> frozenset[str]:
    """Lowercase words, a plural "s" dropped, so "vibrant colors" contains "color"."""
    return frozenset(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        for w in _WORD.findall(text.lower())
    )


def load_catalog(assets_dir: Path | None = None) -> StyleCatalog:
    """Load and validate ``assets_dir`` (default: the bundled assets); raises StyleFileError."""
    if assets_dir is None:
        from pipelines.settings import ASSETS_DIR

        assets_dir = ASSETS_DIR
    assets_dir = Path(assets_dir)
    display_root = assets_dir.parent

    def show(path: Path) -> str:
        try:
            return path.relative_to(display_root).as_posix()
        except ValueError:
            return str(path)

    bank_path = assets_dir / "modifiers.json"
    doc = _read_json(bank_path, show(bank_path))
    v = _Validator(show(bank_path))
    v.only_keys(doc, "", {"modifiers"}, {"description"})
    global_bank = v.bank(doc["modifiers"], "modifiers", "global", MIN_GLOBAL_MODIFIERS)

    style_dir = assets_dir / "styles"
    files = sorted(style_dir.glob("*.json")) if style_dir.is_dir() else []
    if not files:
        raise StyleFileError(show(style_dir), None, "no style files (*.json) found")
    loaded: list[tuple[int, Style]] = []
    seen_ids: dict[str, str] = {}  # id -> file that defines it
    references = assets_dir / "references"
    for path in files:
        loaded.append(_load_style(path, show(path), references, seen_ids, global_bank))
    loaded.sort(key=lambda pair: (pair[0], pair[1].id))
    return StyleCatalog({s.id: s for _, s in loaded}, global_bank)


_STYLE_KEYS = {
    "id",
    "name",
    "description",
    "template",
    "negative_prompt",
    "identity_strength",
    "modifiers",
    "preview",
}


def _load_style(
    path: Path,
    shown: str,
    references: Path,
    seen_ids: dict[str, str],
    global_bank: tuple[Modifier, ...],
) -> tuple[int, Style]:
    doc = _read_json(path, shown)
    v = _Validator(shown)
    v.only_keys(doc, "", _STYLE_KEYS, {"order", "excludes"})
    style_id = v.text(doc["id"], "id")
    if not _ID.match(style_id):
        v.fail("id", f"{style_id!r} is not allowed: use lowercase letters, digits and '_'")
    # before the file-name check: a copied file that kept its id is the common mistake
    if style_id in seen_ids:
        v.fail("id", f"duplicate id {style_id!r} (also in {seen_ids[style_id]})")
    seen_ids[style_id] = shown
    if style_id != path.stem:
        v.fail("id", f"{style_id!r} does not match the file name: rename one to {path.stem!r}")
    low, high = IDENTITY_STRENGTH_RANGE
    strength = v.number(doc["identity_strength"], "identity_strength", low, high)
    order = doc.get("order", 100)
    if not isinstance(order, int) or isinstance(order, bool):
        v.fail("order", f"must be an integer, got {order!r}")
    style = Style(
        id=style_id,
        name=v.text(doc["name"], "name"),
        description=v.text(doc["description"], "description"),
        template=v.template(doc["template"], "template"),
        negative_prompt=v.text(doc["negative_prompt"], "negative_prompt", allow_empty=True),
        identity_strength=strength,
        modifiers=v.bank(doc["modifiers"], "modifiers", style_id, MIN_STYLE_MODIFIERS),
        preview=v.preview(doc["preview"], "preview"),
        reference_dir=references / style_id,
        excludes=v.style_excludes(doc.get("excludes", []), "excludes", global_bank),
    )
    for m in style.modifiers:
        # its own bank is curated for it: a clash with its negative prompt is a mistake
        reason = style.rules_out(m)
        if reason is not None:
            v.fail("modifiers", f"{m.text!r} contradicts the style: {reason}")
    return order, style


def _read_json(path: Path, shown: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StyleFileError(shown, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StyleFileError(shown, None, f"cannot read: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        reason = f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        raise StyleFileError(shown, None, reason) from None
    if not isinstance(doc, dict):
        raise StyleFileError(shown, None, f"must hold a JSON object, got {type(doc).__name__}")
    return doc


class _Validator:
    """Type and range checks that raise StyleFileError for one file."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> NoReturn:
        raise StyleFileError(self.file, key, reason)

    def only_keys(
        self, obj: object, key: str, required: set[str], optional: set[str] = frozenset()
    ) -> None:
        if not isinstance(obj, dict):
            self.fail(key or "<root>", f"must be an object, got {type(obj).__name__}")
        for name in sorted(required - obj.keys()):
            self.fail(_join(key, name), "missing")
        for name in sorted(obj.keys() - required - optional):
            allowed = ", ".join(sorted(required | optional))
            self.fail(_join(key, name), f"unknown key: allowed keys are {allowed}")

    def text(self, value: object, key: str, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            self.fail(key, "must not be empty")
        return value.strip()

    def number(self, value: object, key: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number, got {type(value).__name__}")
        if not low <= value <= high:
            self.fail(key, f"{value} is out of range: use a value from {low} to {high}")
        return float(value)

    def template(self, value: object, key: str) -> str:
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
        if not isinstance(value, dict):
            self.fail(key, f"must be an object of effect -> number, got {type(value).__name__}")
        out = {}
        for name, amount in value.items():
            if name not in EFFECTS:
                self.fail(_join(key, name), f"unknown effect: use one of {', '.join(EFFECTS)}")
            out[name] = self.number(amount, _join(key, name), *EFFECTS[name])
        return MappingProxyType(out)

    def preview(self, value: object, key: str) -> Mapping[str, Any]:
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
