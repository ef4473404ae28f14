"""The example deck a newcomer renders on a fresh clone (decks/example.yaml: insightface's own
photos, tiny engine), "package:" selfie paths, and the report chart's font."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pipelines.core.settings import PROJECT_ROOT
from pipelines.decks.spec import DeckSpecError, load_spec, parse_spec

EXAMPLE = PROJECT_ROOT / "decks" / "example.yaml"


def test_example_deck_renders_and_reports(tiny_services, tiny_settings, tmp_path):
    from conftest import OneProcess

    from pipelines.app.bootstrap import deck_comparison
    from pipelines.decks.__main__ import main
    from pipelines.decks.render import render_deck

    spec = load_spec(EXAMPLE, tiny_settings)
    assert spec.engine == "tiny"
    assert [s.path.parent.name for s in spec.selfies] == ["images", "images"]
    assert all("insightface" in s.path.parts for s in spec.selfies)  # no photo in the repo
    out = tmp_path / "example-out"
    summary = render_deck(
        spec,
        out,
        spec.settings(tiny_settings),
        deck_comparison(tiny_services).compare,
        state=OneProcess(),
        progress=False,
    )
    rows = len(spec.rows())
    assert summary.rendered == rows and summary.skipped == 0
    assert summary.images == rows * len(spec.methods)
    # the report command, as the README gives it (no ratings database)
    assert main(["report", str(out), "--db", str(tmp_path / "none.sqlite3")]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "# Deck `example`" in md
    for style in spec.styles:
        for method in spec.methods:
            assert f"| {style} | {method} | 2 |" in md
    with Image.open(out / "report.png") as png:
        assert png.width > 300 and png.height > 300


def test_example_output_folder_is_ignored_by_git():
    ignored = (PROJECT_ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "/decks/example-out/" in ignored


def test_package_selfies_resolve_inside_the_installed_package(tiny_settings, tmp_path):
    import insightface

    raw = {
        "deck": "pkg",
        "selfies": ["package:insightface/data/images/t1.jpg", "local"],
        "styles": ["anime"],
        "methods": ["raw"],
        "prompts": ["a portrait of a person"],
        "seeds": [1],
    }
    (tmp_path / "local").mkdir()
    Image.new("RGB", (64, 64), (90, 80, 70)).save(tmp_path / "local" / "me.png")
    spec = parse_spec(raw, tmp_path / "deck.yaml", tiny_settings)
    shipped = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    assert [(s.id, s.path) for s in spec.selfies] == [
        ("t1", shipped),
        ("me", tmp_path / "local" / "me.png"),
    ]
    with pytest.raises(DeckSpecError, match=r"'no_such_pkg_xyz' is not an installed package"):
        parse_spec(
            {**raw, "selfies": "package:no_such_pkg_xyz/x.png"}, tmp_path / "d.yaml", tiny_settings
        )
    with pytest.raises(DeckSpecError, match=r"field 'selfies' names .*missing\.png, which is not"):
        parse_spec({**raw, "selfies": ["local/missing.png"]}, tmp_path / "d.yaml", tiny_settings)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DeckSpecError, match=r"notes\.txt: use \.png"):
        parse_spec({**raw, "selfies": ["notes.txt"]}, tmp_path / "d.yaml", tiny_settings)
    with pytest.raises(DeckSpecError, match=r"field 'selfies' is 3"):
        parse_spec({**raw, "selfies": 3}, tmp_path / "d.yaml", replace(tiny_settings))


@pytest.mark.parametrize("installed", [True, False])
def test_chart_draws_the_en_dash_of_bradley_terry(installed, monkeypatch):
    from pipelines.decks import chart
    from pipelines.decks.chart import chart_font, draw_chart, has_glyph

    if not installed:  # no system font: Pillow's default, which has no en dash
        monkeypatch.setattr(chart, "FONTS", ("no-such-font.ttf",))
    chart_font.cache_clear()

    title = "Bradley–Terry strength"
    chart = draw_chart([(title, [("anime · raw", 0.4, 0.1, 0.7)])])
    font = chart_font()
    assert has_glyph(font, "·") and not has_glyph(font, "\uffff")

    def drawn(text: str) -> bytes:
        img = Image.new("RGB", chart.size, "white")
        ImageDraw.Draw(img).text((14, 14), text, fill="black", font=font)
        return img.crop((0, 0, chart.width, 30)).tobytes()

    title_strip = chart.crop((0, 0, chart.width, 30)).tobytes()
    assert title_strip != drawn(title.replace("–", "\uffff"))  # no missing-glyph box
    assert title_strip in (drawn(title), drawn(title.replace("–", "-")))
    chart_font.cache_clear()  # the next chart finds the system's font again
