"""A deck spec: which selfies, styles, methods, prompts and seeds to render ahead, and how.

A small YAML or JSON file; paths are relative to the file::

    deck: staff-2026-11            # deck id: letters, digits, "-", "_", "."; at most 40
    selfies: selfies/              # a folder of PNG/JPEG/WebP selfies of staff who agreed,
                                   # or a list of folders and files; "package:insightface/data/
                                   # images/t1.jpg" is a file inside an installed package
    styles: [watercolor, anime]
    methods: [raw, template, learned]
    prompts: ["a portrait of a person"]
    seeds: [1, 2]
    engine: tiny                   # optional: auto|diffusers|tiny|preview; else BECOME_ENGINE
    generation:                    # optional, CompareRequest's names; unset = the settings'
      num_inference_steps: 30
      guidance_scale: 6.0
      height: 512
      width: 512
      ip_adapter_scale: null       # null = each style's own identity strength

:func:`load_spec` checks everything it can before a single row renders, and every message
names the file and the field. A row is one (selfie, style, prompt, seed); its outputs are the
methods, rendered in one batched call.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.errors import InputError
from pipelines.core.settings import ENGINES, Settings

SELFIE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PACKAGE_PREFIX = "package:"  # a selfie path inside an installed Python package
GENERATION_FIELDS = (
    "num_inference_steps",
    "guidance_scale",
    "height",
    "width",
    "ip_adapter_scale",
)
FIELDS = ("deck", "selfies", "styles", "methods", "prompts", "seeds", "engine", "generation")
MAX_DECK_ID = 40  # deck id + "/" + row id fit a rating's 100-character comparison id
MAX_SELFIE_ID = 20
_DECK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DeckSpecError(InputError):
    """A deck spec the app cannot render; the message names the file and the field."""


@dataclass(frozen=True)
class Selfie:
    """One selfie of the deck: a short id (from the file name) and its file."""

    id: str
    path: Path


@dataclass(frozen=True)
class RowSpec:
    """One row to render: a selfie, a style, a base prompt and a seed; all methods at once."""

    row_id: str
    selfie: Selfie
    style: str
    prompt: str
    seed: int


@dataclass(frozen=True)
class DeckSpec:
    """A validated deck spec. Build it with :func:`load_spec` or :func:`parse_spec`."""

    deck: str
    selfies: tuple[Selfie, ...]
    styles: tuple[str, ...]
    methods: tuple[str, ...]
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    engine: str | None = None
    generation: Mapping[str, Any] = field(default_factory=dict)
    source: Path = Path()  # the spec file, for messages

    def rows(self) -> list[RowSpec]:
        """Every row, in a fixed order: selfie, style, prompt, seed."""
        return [
            RowSpec(row_id(s.id, style, prompt, seed), s, style, prompt, seed)
            for s in self.selfies
            for style in self.styles
            for prompt in self.prompts
            for seed in self.seeds
        ]

    def settings(self, base: Settings) -> Settings:
        """``base`` with the spec's engine, when it names one."""
        from dataclasses import replace

        return replace(base, engine=self.engine) if self.engine else base

    def fingerprint(self) -> dict[str, Any]:
        """What every row of one deck folder must share: id, engine, methods, generation."""
        return {
            "deck": self.deck,
            "engine": self.engine,
            "methods": list(self.methods),
            "generation": dict(self.generation),
        }

    def to_json(self) -> dict[str, Any]:
        """The spec as rendered, for the deck folder's ``deck.json``."""
        return {
            **self.fingerprint(),
            "selfies": [s.id for s in self.selfies],
            "styles": list(self.styles),
            "prompts": list(self.prompts),
            "seeds": list(self.seeds),
        }


def row_id(selfie_id: str, style: str, prompt: str, seed: int) -> str:
    """A row's stable id: readable parts and a short hash of the prompt."""
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:6]
    return f"{selfie_id}.{style}.{digest}.{seed}"


def load_spec(path: Path | str, settings: Settings) -> DeckSpec:
    """Read and validate a YAML or JSON deck spec; raises :class:`DeckSpecError`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DeckSpecError(f"deck spec {path} was not found: pass a .yaml or .json file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as exc:  # json and yaml errors share no base; both say where
        raise DeckSpecError(f"{path}: not valid {path.suffix[1:] or 'YAML'} ({exc})") from None
    return parse_spec(raw, path, settings)


def parse_spec(raw: Any, path: Path, settings: Settings) -> DeckSpec:
    """Validate a spec already read into Python values (``path`` locates relative folders)."""

    def fail(name: str, problem: str) -> DeckSpecError:
        return DeckSpecError(f"{path}: field {name!r} {problem}")

    if not isinstance(raw, dict):
        raise DeckSpecError(f"{path}: the spec must be a mapping of fields ({', '.join(FIELDS)})")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise fail(unknown[0], f"is not a deck field: use {', '.join(FIELDS)}")
    for name in ("deck", "selfies", "styles", "methods", "prompts", "seeds"):
        if raw.get(name) in (None, "", []):
            raise fail(name, "is missing or empty")

    deck = raw["deck"]
    if not isinstance(deck, str) or not _DECK_ID.match(deck) or len(deck) > MAX_DECK_ID:
        raise fail(
            "deck",
            f"is {deck!r}: use letters, digits, '-', '_' and '.', at most {MAX_DECK_ID} chars",
        )
    styles = _names(raw["styles"], "styles", fail)
    methods = _names(raw["methods"], "methods", fail)
    _check_known(styles, _catalog_ids(settings), "styles", "style", fail)
    from pipelines.augment.registry import METHOD_NAMES

    _check_known(methods, METHOD_NAMES, "methods", "method", fail)
    prompts = _names(raw["prompts"], "prompts", fail, normalise=True)
    seeds = _seeds(raw["seeds"], fail)
    engine = raw.get("engine")
    if engine is not None and engine not in ENGINES:
        raise fail("engine", f"is {engine!r}: use one of {', '.join(ENGINES)}")
    generation = _generation(raw.get("generation") or {}, fail)
    selfies = _selfies(raw["selfies"], path, fail)
    spec = DeckSpec(deck, selfies, styles, methods, prompts, seeds, engine, generation, source=path)
    _check_requests(spec, settings, fail)
    return spec


def _names(value: Any, name: str, fail: Any, normalise: bool = False) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise fail(name, f"is {value!r}: use a list of non-empty strings")
    clean = [" ".join(v.split()) if normalise else v.strip() for v in items]
    dupes = sorted({v for v in clean if clean.count(v) > 1})
    if dupes:
        raise fail(name, f"lists {dupes[0]!r} twice")
    return tuple(clean)


def _check_known(
    given: Sequence[str], known: Sequence[str], name: str, kind: str, fail: Any
) -> None:
    for value in given:
        if value not in known:
            raise fail(name, f"names an unknown {kind} {value!r}: use one of {', '.join(known)}")


def _catalog_ids(settings: Settings) -> list[str]:
    from pipelines.styles.catalog import load_catalog

    return load_catalog(settings.assets_dir).ids()


def _seeds(value: Any, fail: Any) -> tuple[int, ...]:
    from pipelines.core.settings import MAX_SEED

    items = value if isinstance(value, list) else [value]
    ok = all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in items)
    if not ok:
        raise fail("seeds", f"is {value!r}: use a list of whole numbers from 0 to {MAX_SEED}")
    if len(set(items)) != len(items):
        raise fail("seeds", "lists a seed twice")
    return tuple(items)


def _generation(value: Any, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("generation", f"is {value!r}: use a mapping of {', '.join(GENERATION_FIELDS)}")
    unknown = sorted(set(value) - set(GENERATION_FIELDS))
    if unknown:
        raise fail(f"generation.{unknown[0]}", f"is unknown: use {', '.join(GENERATION_FIELDS)}")
    return dict(value)


def _selfies(value: Any, path: Path, fail: Any) -> tuple[Selfie, ...]:
    from pipelines.faces.photo import UnreadableImageError, load_image

    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(v, str) and v for v in entries):
        raise fail(
            "selfies",
            f"is {value!r}: use the path of a folder of selfies, or a list of folders and files",
        )
    files: list[Path] = []
    for entry in entries:
        where = _selfie_path(entry, path, fail)
        if where.is_dir():
            found = sorted(p for p in where.iterdir() if p.suffix.lower() in SELFIE_SUFFIXES)
            if not found:
                raise fail(
                    "selfies", f"names {where}, which holds no {'/'.join(SELFIE_SUFFIXES)} files"
                )
            files += found
        elif where.is_file() and where.suffix.lower() in SELFIE_SUFFIXES:
            files.append(where)
        elif where.is_file():
            raise fail("selfies", f"names {where}: use {'/'.join(SELFIE_SUFFIXES)} files")
        else:
            raise fail("selfies", f"names {where}, which is not a folder")
    seen: dict[str, Path] = {}
    unreadable = []
    for p in files:
        sid = re.sub(r"[^a-z0-9]+", "_", p.stem.lower()).strip("_")[:MAX_SELFIE_ID] or "selfie"
        if sid in seen:
            raise fail("selfies", f"has {seen[sid].name} and {p.name}, which share the id {sid!r}")
        seen[sid] = p
        try:
            load_image(p)
        except UnreadableImageError as exc:
            unreadable.append(f"{p.name} ({exc})")
    if unreadable:  # all of them at once: one round of fixes, not one per run
        raise fail("selfies", "holds unreadable images: " + "; ".join(unreadable))
    return tuple(Selfie(sid, p) for sid, p in seen.items())


def _selfie_path(entry: str, path: Path, fail: Any) -> Path:
    """A selfies entry as a path: relative to the spec file, or ``package:<package>/<path>``
    inside an installed package (photos a package ships, so a spec needs no copies)."""
    if not entry.startswith(PACKAGE_PREFIX):
        return (path.parent / entry).expanduser()
    import importlib.util

    package, _, inner = entry[len(PACKAGE_PREFIX) :].strip("/").partition("/")
    try:
        found = importlib.util.find_spec(package) if package else None
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise fail("selfies", f"names {entry!r}: {package!r} is not an installed package")
    return Path(next(iter(found.submodule_search_locations))) / inner


def _check_requests(spec: DeckSpec, settings: Settings, fail: Any) -> None:
    """Build each distinct request once, so a bad generation value fails before any render."""
    from pipelines.core.request import CompareRequest

    for prompt in spec.prompts:
        try:
            CompareRequest.from_settings(
                spec.settings(settings),
                style=spec.styles[0],
                prompt=prompt,
                methods=spec.methods,
                seed=spec.seeds[0],
                **spec.generation,
            )
        except InputError as exc:
            where = next((f"generation.{f}" for f in GENERATION_FIELDS if f in str(exc)), None)
            raise fail(where or "prompts", f"is not usable: {exc}") from None
