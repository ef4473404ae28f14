"""Style catalog and modifier banks, loaded and validated from ``assets/``.

Layout::

    assets/modifiers.json        {"modifiers": {category: [modifier, ...]}}  the global bank
    assets/styles/<id>.json      one style: template, negative prompt, its own bank, preview recipe
    assets/references/<id>/      optional reference images (targets for the inversion method)

A modifier (text, group, excludes, preview effects) is described in
:mod:`pipelines.styles.modifiers`.
The checks that run at load time and the recipe-op vocabulary live in
:mod:`pipelines.styles.checks`, so that a typo in an asset fails at load time, not mid-render.

A style's own ``excludes`` lists the global groups and modifiers its template already decides
("monochrome" where the template asks for vibrant colours). A modifier containing a phrase of the
style's negative prompt ("dslr photo" against "photo") contradicts it too. The bank a method may
draw from (``StyleCatalog.modifiers_for``) leaves both out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.errors import InputError
from pipelines.core.settings import LIMITS
from pipelines.styles.checks import FileChecks, StyleFileError
from pipelines.styles.modifiers import Modifier

MIN_STYLE_MODIFIERS = 15
MIN_GLOBAL_MODIFIERS = 150
DEFAULT_SUBJECT = "a person"  # what Style.apply uses for an empty prompt
_PORTRAIT_LEAD = re.compile(r"^(?:an? )?portrait of ", re.IGNORECASE)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_WORD = re.compile(r"[a-z0-9]+")


class UnknownStyleError(InputError):
    """A style id that is not in the catalog."""

    def __init__(self, style_id: object, known: list[str]) -> None:
        self.style_id, self.known = style_id, known
        super().__init__(f"unknown style {style_id!r}: use one of {', '.join(known)}")


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
        """The style ``style_id``; raises UnknownStyleError."""
        try:
            return self.styles[style_id]
        except (KeyError, TypeError):
            raise UnknownStyleError(style_id, self.ids()) from None

    def ids(self) -> list[str]:
        """Style ids in display order."""
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


def _words(text: str) -> frozenset[str]:
    """Lowercase words, a plural "s" dropped, so "vibrant colors" contains "color"."""
    return frozenset(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        for w in _WORD.findall(text.lower())
    )


def load_catalog(assets_dir: Path | None = None) -> StyleCatalog:
    """Load and validate ``assets_dir`` (default: the bundled assets); raises StyleFileError."""
    if assets_dir is None:
        from pipelines.core.settings import ASSETS_DIR

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
    v = FileChecks(show(bank_path))
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
    v = FileChecks(shown)
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
    low, high = LIMITS["ip_adapter_scale"].low, LIMITS["ip_adapter_scale"].high
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
