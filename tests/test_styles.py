"""Style catalog: the bundled assets, the loader's validation, modifier search and conflicts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipelines.core.settings import ASSETS_DIR
from pipelines.styles.catalog import (
    MIN_GLOBAL_MODIFIERS,
    MIN_STYLE_MODIFIERS,
    Style,
    StyleCatalog,
    UnknownStyleError,
    load_catalog,
)
from pipelines.styles.checks import StyleFileError
from pipelines.styles.modifiers import EFFECTS, Modifier, conflicts

REQUIRED_STYLES = (
    "watercolor",
    "3d_animated",
    "anime",
    "oil_painting",
    "pencil_sketch",
    "pop_art",
    "neon_cyberpunk",
    "ukiyo_e",
)


@pytest.fixture(scope="module")
def catalog() -> StyleCatalog:
    return load_catalog()


# ----------------------------------------------------------------------------- bundled assets


def test_bundled_catalog_has_the_styles_and_banks(catalog: StyleCatalog) -> None:
    assert len(catalog.ids()) >= 8
    assert set(REQUIRED_STYLES) <= set(catalog.ids())
    assert len(catalog.global_modifiers) >= MIN_GLOBAL_MODIFIERS >= 150
    for style in catalog.styles.values():
        assert len(style.modifiers) >= MIN_STYLE_MODIFIERS >= 15, style.id
        assert all(m.source == style.id for m in style.modifiers)
        assert "{prompt}" in style.template
        assert 0.0 <= style.identity_strength <= 1.5
        assert style.preview["recipe"], style.id
        assert style.reference_dir == ASSETS_DIR / "references" / style.id
        assert style.reference_dir.is_dir(), f"missing {style.reference_dir}"


def test_no_duplicate_texts_within_a_bank(catalog: StyleCatalog) -> None:
    banks = [catalog.global_modifiers] + [s.modifiers for s in catalog.styles.values()]
    for bank in banks:
        texts = [m.text.lower() for m in bank]
        assert len(texts) == len(set(texts))


def test_global_bank_covers_the_categories_with_groups_and_effects(catalog: StyleCatalog) -> None:
    cats = {m.category for m in catalog.global_modifiers}
    assert {"lighting", "camera", "medium", "color", "mood", "detail", "composition"} <= cats
    with_effects = [m for m in catalog.global_modifiers if m.effects]
    assert len(with_effects) >= 100
    groups = {m.group for m in catalog.global_modifiers} - {None}
    assert {"time_of_day", "palette", "lens", "shot"} <= groups
    assert all(name in EFFECTS for m in with_effects for name in m.effects)


def test_stylised_styles_use_less_identity_than_painterly_ones(catalog: StyleCatalog) -> None:
    strength = {s.id: s.identity_strength for s in catalog.styles.values()}
    assert strength["anime"] < strength["oil_painting"]
    assert strength["ukiyo_e"] < strength["watercolor"]


def test_no_artist_names_in_prompts(catalog: StyleCatalog) -> None:
    texts = [m.text for m in catalog.global_modifiers]
    for s in catalog.styles.values():
        texts += [s.template, s.negative_prompt, *(m.text for m in s.modifiers)]
    joined = " ".join(texts).lower()
    for phrase in ("in the style of", "by artist", "greg rutkowski", "artgerm", "mucha", "ghibli"):
        assert phrase not in joined


# ----------------------------------------------------------------------------- Style / catalog


def test_apply_keeps_braces_in_the_prompt(catalog: StyleCatalog) -> None:
    style = catalog.get("anime")
    out = style.apply("a man {wearing} a {0} hat {prompt} }{")
    assert "a man {wearing} a {0} hat {prompt} }{" in out
    assert out.startswith(style.template.split("{prompt}")[0])


def test_apply_tidies_whitespace_and_fills_an_empty_prompt(catalog: StyleCatalog) -> None:
    style = catalog.get("watercolor")
    assert "of a person," in style.apply("   ")
    assert "of a woman smiling," in style.apply("  a woman\n smiling ")
    with pytest.raises(TypeError, match="str"):
        style.apply(None)  # type: ignore[arg-type]


def test_get_unknown_style_names_it_and_the_choices(catalog: StyleCatalog) -> None:
    with pytest.raises(UnknownStyleError) as err:
        catalog.get("vaporwave")
    assert isinstance(err.value, ValueError)
    assert "'vaporwave'" in str(err.value)
    assert "watercolor" in str(err.value) and "anime" in str(err.value)


def test_modifiers_for_joins_banks_and_style_wins(catalog: StyleCatalog) -> None:
    anime = catalog.get("anime")
    bank = catalog.modifiers_for("anime")
    assert bank[: len(anime.modifiers)] == anime.modifiers
    assert len({m.text.lower() for m in bank}) == len(bank)
    usable = [m for m in catalog.global_modifiers if anime.rules_out(m) is None]
    assert bank[len(anime.modifiers) :] == tuple(usable)  # no overlap
    assert len(usable) < len(catalog.global_modifiers)  # anime rules some out
    assert catalog.modifiers_for(anime) is bank  # cached


def test_bundled_styles_rule_out_what_contradicts_them(catalog: StyleCatalog) -> None:
    texts = {sid: {m.text for m in catalog.modifiers_for(sid)} for sid in catalog.ids()}
    # negative prompt: oil painting avoids "flat colors", every painted style avoids "photo"
    assert "flat colors" not in texts["oil_painting"] and "flat colors" in texts["pop_art"]
    assert not {"dslr photo", "polaroid photo"} & texts["watercolor"]
    assert "dslr photo" in texts["neon_cyberpunk"]  # its negative prompt allows photos
    # excludes: the vivid styles take no black and white, the monochrome one no colour
    assert "black and white" not in texts["3d_animated"] and "black and white" not in texts["anime"]
    assert not {"vibrant colors", "warm color palette"} & texts["pencil_sketch"]
    assert "charcoal drawing" not in texts["watercolor"]  # another medium
    # each style's own bank is kept whole
    for sid in catalog.ids():
        assert {m.text for m in catalog.get(sid).modifiers} <= texts[sid], sid


def test_rules_out_says_why(catalog: StyleCatalog) -> None:
    by_text = {m.text: m for m in catalog.global_modifiers}
    oil, pencil = catalog.get("oil_painting"), catalog.get("pencil_sketch")
    assert oil.rules_out(by_text["flat colors"]) == "the negative prompt has 'flat colors'"
    # plural-insensitive: "color" in the negative prompt rules out "vibrant colors"
    assert pencil.rules_out(by_text["vibrant colors"]) == "the negative prompt has 'color'"
    assert oil.rules_out(by_text["charcoal drawing"]) == "the style excludes the 'medium' group"
    assert oil.rules_out(by_text["digital painting"]) == "the style excludes 'digital painting'"
    assert oil.rules_out(by_text["golden hour lighting"]) is None
    # whole words only: "text" in a negative prompt does not rule out "canvas texture"
    assert "text" in [p.strip() for p in oil.negative_prompt.split(",")]
    assert oil.rules_out(by_text["canvas texture"]) is None


def test_find_modifiers_still_sees_ruled_out_modifiers(catalog: StyleCatalog) -> None:
    # a user may type one; its preview effects and its group still apply
    found = catalog.find_modifiers("a portrait, black and white", "anime")
    assert [m.text for m in found] == ["black and white"]
    assert found[0] not in catalog.modifiers_for("anime")


def test_find_modifiers_order_case_and_longest_match(catalog: StyleCatalog) -> None:
    prompt = "Portrait, 85MM LENS, golden hour lighting, black and white, wet-on-wet"
    found = catalog.find_modifiers(prompt, "watercolor")
    assert [m.text for m in found] == [
        "85mm lens",
        "golden hour lighting",
        "black and white",
        "wet-on-wet",
    ]
    assert found[-1].source == "watercolor"
    # the style bank of another style is not searched
    assert "wet-on-wet" not in [m.text for m in catalog.find_modifiers(prompt, "anime")]


def test_find_modifiers_whole_words_only(catalog: StyleCatalog) -> None:
    assert catalog.find_modifiers("moonlights and bokehs", "anime") == []
    assert [m.text for m in catalog.find_modifiers("moonlight, bokeh", "anime")] == [
        "moonlight",
        "bokeh",
    ]


def test_find_modifiers_counts_each_modifier_once(catalog: StyleCatalog) -> None:
    found = catalog.find_modifiers("bokeh, bokeh, Bokeh", "anime")
    assert [m.text for m in found] == ["bokeh"]


def test_conflicts_by_group_and_text(catalog: StyleCatalog) -> None:
    by_text = {m.text: m for m in (*catalog.get("pop_art").modifiers, *catalog.global_modifiers)}
    assert conflicts(by_text["black and white"], by_text["vibrant colors"])
    assert conflicts(by_text["black and white"], by_text["warm color palette"])
    assert conflicts(by_text["golden hour lighting"], by_text["moonlight"])
    assert conflicts(by_text["85mm lens"], by_text["fisheye lens"])
    assert conflicts(by_text["close-up portrait"], by_text["full body shot"])
    # a style's palette excludes the global palettes too
    assert conflicts(by_text["hot pink and yellow"], by_text["pastel colors"])
    assert not conflicts(by_text["golden hour lighting"], by_text["85mm lens"])
    a = Modifier("Rim Lighting", "lighting", None, {}, "global")
    b = Modifier("rim lighting", "lighting", None, {}, "anime")
    assert conflicts(a, b)
    assert not conflicts(a, Modifier("bokeh", "camera", None, {}, "global"))


def test_modifiers_are_hashable_and_immutable(catalog: StyleCatalog) -> None:
    mods = set(catalog.global_modifiers)
    assert len(mods) == len(catalog.global_modifiers)
    m = catalog.global_modifiers[0]
    with pytest.raises((TypeError, AttributeError)):
        m.effects["warmth"] = 1.0  # type: ignore[index]
    style = catalog.get("anime")
    with pytest.raises((TypeError, AttributeError)):
        style.preview["recipe"] = ()  # type: ignore[index]


# ----------------------------------------------------------------------------- loader errors


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    """A writable copy of the bundled assets (without reference images)."""
    dst = tmp_path / "assets"
    shutil.copytree(ASSETS_DIR / "styles", dst / "styles")
    shutil.copy(ASSETS_DIR / "modifiers.json", dst / "modifiers.json")
    return dst


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_copy_of_the_bundled_assets_loads(assets: Path) -> None:
    catalog = load_catalog(assets)
    assert catalog.ids() == load_catalog().ids()
    assert catalog.get("anime").reference_images() == []  # no folder there: empty, no error


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc[key] = value

    return change


def _del(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(key)


def _first_modifier(change: Callable[[dict[str, Any]], None]) -> Callable[[dict], None]:
    def apply(doc: dict[str, Any]) -> None:
        first_cat = next(iter(doc["modifiers"]))
        item = doc["modifiers"][first_cat][0]
        if isinstance(item, str):
            item = doc["modifiers"][first_cat][0] = {"text": item}
        change(item)

    return apply


def _first_step(change: Callable[[dict[str, Any]], None]) -> Callable[[dict], None]:
    return lambda doc: change(doc["preview"]["recipe"][0])


def _keep_modifiers(n: int) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        items = [m for cat in doc["modifiers"].values() for m in cat]
        doc["modifiers"] = {"misc": items[:n]}

    return change


def _duplicate_modifier(doc: dict[str, Any]) -> None:
    cat = next(iter(doc["modifiers"]))
    first = doc["modifiers"][cat][0]
    text = first if isinstance(first, str) else first["text"]
    doc["modifiers"][cat].append(text.upper())


STYLE_CASES = [
    ("missing key", _del("negative_prompt"), "negative_prompt", "missing"),
    ("wrong type", _set("name", 5), "name", "must be a string"),
    ("no placeholder", _set("template", "anime of a cat"), "template", "must contain {prompt}"),
    ("other field", _set("template", "{style} {prompt}"), "template", "{style} is not allowed"),
    ("format spec", _set("template", "{prompt:>9}"), "template", "{prompt:>9} is not allowed"),
    ("lone brace", _set("template", "{prompt} {"), "template", "unbalanced braces"),
    ("empty id", _set("id", " "), "id", "must not be empty"),
    ("bad id", _set("id", "Anime Style"), "id", "lowercase letters"),
    ("id != file", _set("id", "manga"), "id", "does not match the file name"),
    ("strength high", _set("identity_strength", 2.0), "identity_strength", "out of range"),
    ("strength type", _set("identity_strength", "high"), "identity_strength", "must be a number"),
    ("unknown key", _set("colour", "red"), "colour", "unknown key"),
    ("few modifiers", _keep_modifiers(14), "modifiers", "at least 15"),
    ("modifiers type", _set("modifiers", ["a", "b"]), "modifiers", "must be a non-empty object"),
    ("duplicate text", _duplicate_modifier, "modifiers.", "duplicate modifier"),
    (
        "unknown effect",
        _first_modifier(lambda m: m.update(effects={"sparkle": 0.5})),
        "effects.sparkle",
        "unknown effect",
    ),
    (
        "effect range",
        _first_modifier(lambda m: m.update(effects={"warmth": 3})),
        "effects.warmth",
        "out of range",
    ),
    (
        "bad group",
        _first_modifier(lambda m: m.update(group="Time Of Day")),
        ".group",
        "is not allowed",
    ),
    (
        "comma in text",
        _first_modifier(lambda m: m.update(text="soft, warm")),
        ".text",
        "no commas",
    ),
    ("unknown op", _first_step(lambda s: s.update(op="vaporize")), "recipe[0].op", "unknown op"),
    (
        "unknown param",
        _first_step(lambda s: s.update(strength_of_ten=1)),
        "recipe[0].strength_of_ten",
        "unknown parameter",
    ),
    (
        "param range",
        lambda d: d["preview"]["recipe"].append({"op": "posterize", "levels": 99}),
        "levels",
        "out of range",
    ),
    (
        "bad colour",
        lambda d: d["preview"]["recipe"].append({"op": "outline", "color": "black"}),
        "color",
        "is not a colour",
    ),
    ("empty recipe", lambda d: d["preview"].update(recipe=[]), "preview.recipe", "non-empty list"),
]


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [c[1:] for c in STYLE_CASES],
    ids=[c[0] for c in STYLE_CASES],
)
def test_loader_rejects_broken_style_files(
    assets: Path, change: Callable[[dict], None], key: str, reason: str
) -> None:
    _edit(assets / "styles" / "anime.json", change)
    with pytest.raises(StyleFileError) as err:
        load_catalog(assets)
    e = err.value
    assert isinstance(e, ValueError)
    assert e.file == "assets/styles/anime.json"
    assert key in (e.key or "")
    assert reason in e.reason
    assert str(e).startswith(f"assets/styles/anime.json: key '{e.key}': ")


def test_loader_reports_invalid_json_with_line_and_column(assets: Path) -> None:
    path = assets / "styles" / "pop_art.json"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rstrip(",")  # drop a comma between two keys
    path.write_text("\n".join(lines))
    with pytest.raises(StyleFileError, match=r"pop_art\.json: invalid JSON at line 5 column 3"):
        load_catalog(assets)


def test_loader_rejects_a_copied_file_with_a_duplicate_id(assets: Path) -> None:
    shutil.copy(assets / "styles" / "anime.json", assets / "styles" / "anime_v2.json")
    with pytest.raises(StyleFileError) as err:
        load_catalog(assets)
    assert err.value.file == "assets/styles/anime_v2.json"
    assert err.value.key == "id"
    assert "duplicate id 'anime' (also in assets/styles/anime.json)" in err.value.reason


def test_loader_rejects_a_small_global_bank(assets: Path) -> None:
    _edit(assets / "modifiers.json", _keep_modifiers(149))
    with pytest.raises(StyleFileError, match=r"modifiers\.json: key 'modifiers': .*at least 150"):
        load_catalog(assets)


def test_loader_rejects_a_missing_bank_and_no_styles(assets: Path, tmp_path: Path) -> None:
    (assets / "modifiers.json").unlink()
    with pytest.raises(StyleFileError, match=r"assets/modifiers\.json: file not found"):
        load_catalog(assets)
    empty = tmp_path / "empty"
    shutil.copytree(ASSETS_DIR, empty, ignore=shutil.ignore_patterns("styles"))
    with pytest.raises(StyleFileError, match="no style files"):
        load_catalog(empty)


def test_loader_rejects_a_non_object_document(assets: Path) -> None:
    (assets / "styles" / "anime.json").write_text("[1, 2]")
    with pytest.raises(StyleFileError, match="must hold a JSON object, got list"):
        load_catalog(assets)


def test_reference_images_lists_images_only(assets: Path) -> None:
    ref = assets / "references" / "anime"
    ref.mkdir(parents=True)
    for name in ("b.png", "a.JPG", "notes.txt", ".gitkeep"):
        (ref / name).write_bytes(b"x")
    style: Style = load_catalog(assets).get("anime")
    assert [p.name for p in style.reference_images()] == ["a.JPG", "b.png"]


def test_order_key_sets_display_order(assets: Path) -> None:
    _edit(assets / "styles" / "renaissance.json", _set("order", -1))
    assert load_catalog(assets).ids()[0] == "renaissance"


def test_excludes_marks_contradictions_across_groups():
    catalog = load_catalog()
    bank = {m.text: m for m in catalog.global_modifiers}
    night_sky, sunset = bank["starry night sky"], bank["sunset glow"]
    assert night_sky.group != sunset.group
    assert conflicts(night_sky, sunset) and conflicts(sunset, night_sky)
    assert not conflicts(night_sky, bank["cozy"])


def test_loader_rejects_unknown_style_excludes(assets: Path) -> None:
    _edit(assets / "styles" / "anime.json", _set("excludes", ["monochrome", "sepia-ish"]))
    with pytest.raises(StyleFileError, match=r"excludes\[1\].*'sepia-ish' is neither a group"):
        load_catalog(assets)
    _edit(assets / "styles" / "anime.json", _set("excludes", "monochrome"))
    with pytest.raises(StyleFileError, match="excludes"):
        load_catalog(assets)


def test_loader_rejects_a_style_modifier_its_negative_prompt_forbids(assets: Path) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["modifiers"]["linework"].append("sketchy line art")

    _edit(assets / "styles" / "anime.json", add)
    with pytest.raises(StyleFileError, match=r"'sketchy line art'.*'sketchy lines'"):
        load_catalog(assets)


def test_loader_rejects_bad_excludes(tmp_path):
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS_DIR, assets)
    path = assets / "modifiers.json"
    text = path.read_text().replace('"excludes": ["time_of_day"]', '"excludes": "time_of_day"', 1)
    path.write_text(text)
    json.loads(text)
    with pytest.raises(StyleFileError, match="excludes"):
        load_catalog(assets)


def test_good_references_are_added_and_each_bad_one_named(tmp_path):
    from pipelines.faces.photo import load_image
    from pipelines.styles.references import MAX_PER_STYLE, ReferenceStore

    store = ReferenceStore(tmp_path / "refs", ["anime"])
    files = []
    for i in range(MAX_PER_STYLE + 1):
        path = tmp_path / f"ref{i}.png"
        Image.new("RGB", (16, 16), (i * 9, 20, 40)).save(path)
        files.append(path)
    bad = tmp_path / "cv.jpg"
    bad.write_bytes(b"%PDF-1.7\n" + b"x" * 64)
    first = store.add("anime", [files[0], bad, files[0]], load_image)
    assert (first.added, first.already_there) == (1, 1)
    assert [name for name, _ in first.refused] == ["cv.jpg"] and "PDF" in first.refused[0][1]
    rest = store.add("anime", files[1:], load_image)
    assert rest.added == MAX_PER_STYLE - 1 and rest.already_there == 0
    assert [name for name, _ in rest.refused] == [files[-1].name]
    assert "already has" in rest.refused[0][1]
