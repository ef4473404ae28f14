"""docs/ray_deck.py: a deck's rows rendered in batches, as Ray's map_batches hands them out, give
the same deck as one process; with `ray` installed, one local Ray worker renders a spec."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from PIL import Image

from pipelines.core.settings import PROJECT_ROOT


def _ray_deck():
    path = PROJECT_ROOT / "docs" / "ray_deck.py"
    spec = importlib.util.spec_from_file_location("ray_deck", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports no ray: only render_on_ray does
    return module


@pytest.fixture
def deck_spec(tmp_path, portrait_path, tiny_settings):
    from pipelines.decks.spec import parse_spec

    (tmp_path / "selfies").mkdir()
    shutil.copy(portrait_path, tmp_path / "selfies" / "hanks.png")
    raw = {
        "deck": "batched",
        "selfies": "selfies",
        "styles": ["anime", "watercolor"],
        "methods": ["raw"],
        "prompts": ["a portrait of a person"],
        "seeds": [1],
        "engine": "tiny",
    }
    return parse_spec(raw, tmp_path / "deck.yaml", tiny_settings)


def _manifest(folder):
    lines = [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]
    return [(x["row_id"], x["method"], x["measures"]["identity"]["value"]) for x in lines]


def test_batches_render_exactly_their_rows_and_merge_to_the_one_process_deck(
    deck_spec, tiny_settings, tiny_services, tmp_path
):
    from conftest import OneProcess

    from pipelines.app.bootstrap import deck_comparison
    from pipelines.decks.manifest import done_rows, merge
    from pipelines.decks.render import prepare_folder, render_deck

    ray_deck = _ray_deck()
    compare = deck_comparison(tiny_services).compare
    rows = [r.row_id for r in deck_spec.rows()]
    out = tmp_path / "batched"
    prepare_folder(deck_spec, out)  # the driver's part
    first = render_deck(
        deck_spec, out, tiny_settings, compare, state=ray_deck.BatchRows(rows[:1]), progress=False
    )
    assert first.rendered == 1 and done_rows(out) == set(rows[:1])
    assert not (out / "manifest.jsonl").exists()  # a worker never merges
    render_deck(
        deck_spec, out, tiny_settings, compare, state=ray_deck.BatchRows(rows[1:]), progress=False
    )
    merge(out, rows)
    whole = tmp_path / "whole"
    render_deck(deck_spec, whole, tiny_settings, compare, state=OneProcess(), progress=False)
    assert _manifest(out) == _manifest(whole)
    for row in rows:
        a = Image.open(out / "images" / row / "raw.png")
        b = Image.open(whole / "images" / row / "raw.png")
        assert a.tobytes() == b.tobytes()


def test_one_local_ray_worker_renders_the_spec(deck_spec, tiny_settings, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="ray is optional: pip install 'ray[data]'")
    import ray

    spec_file = tmp_path / "deck.yaml"
    spec_file.write_text(
        "deck: batched\nselfies: selfies\nstyles: [anime, watercolor]\nmethods: [raw]\n"
        "prompts: ['a portrait of a person']\nseeds: [1]\nengine: tiny\n"
    )
    # the actors read the settings from the environment, as the deck CLI does
    for name, value in {
        "BECOME_ENGINE": "tiny",
        "BECOME_DATA_DIR": str(tiny_settings.data_dir),
        "BECOME_STEPS": "2",
        "BECOME_SIZE": "64",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        lines, skipped = _ray_deck().render_on_ray(spec_file, tmp_path / "ray", workers=1)
    finally:
        ray.shutdown()
    assert (lines, skipped) == (len(deck_spec.rows()), 0)
    assert {r for r, _, _ in _manifest(tmp_path / "ray")} == {r.row_id for r in deck_spec.rows()}
