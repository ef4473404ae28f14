"""Shared fixtures: the photos insightface ships, and the app on the tiny engine."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from pipelines.core.settings import Settings


def _insightface_image(name: str) -> Path:
    import insightface

    path = Path(insightface.__file__).parent / "data" / "images" / name
    assert path.exists(), f"insightface no longer ships {name}"
    return path


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    """A real portrait bundled with insightface (112 px, greyscale)."""
    return _insightface_image("Tom_Hanks_54745.png")


@pytest.fixture(scope="session")
def group_path() -> Path:
    """A real colour group photo bundled with insightface (1280x886)."""
    return _insightface_image("t1.jpg")


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("become-data")
    return Settings.from_env(
        {
            "BECOME_ENGINE": "tiny",
            "BECOME_DATA_DIR": str(data),
            "BECOME_STEPS": "2",
            "BECOME_SIZE": "64",
            # every test client rates from 127.0.0.1, far more often than a person: the
            # per-address limit has tests of its own (tests/test_flood.py)
            "BECOME_API_VOTES_PER_MINUTE": "0",
        }
    )


@pytest.fixture(scope="session")
def tiny_services(tiny_settings: Settings):
    from pipelines.app.bootstrap import build_services

    return build_services(tiny_settings)


@contextlib.contextmanager
def served(services, **launch):
    """The real app (demo.layout.build_demo) over ``services``, queued and served on a free
    local port with the page's CSS and theme, as app.py: tests look at what people see. Yields
    the demo."""
    from demo import CSS, THEME, build_demo
    from demo.serving import queue_demo

    demo = build_demo(services)
    queue_demo(demo, services.settings, default_concurrency_limit=4)  # its lines, as app.py
    demo.launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=None,
        quiet=True,
        css=CSS,
        theme=THEME,
        **launch,
    )
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_url(tiny_services):
    """The real app served on a free local port, tiny engine."""
    with served(tiny_services) as demo:
        yield demo.local_url


@pytest.fixture(scope="session")
def make_request(tiny_settings: Settings):
    """``make_request(style, prompt, methods, seed, **fields)``: a CompareRequest with the tiny
    settings' defaults, as the UI and the API build it."""
    from pipelines.core.request import CompareRequest

    def build(style: str, prompt: str, methods: list[str], seed: int | None = None, **fields):
        return CompareRequest.from_settings(
            tiny_settings, style=style, prompt=prompt, methods=methods, seed=seed, **fields
        )

    return build


class OneProcess:
    """accelerate's PartialState for one process, without its process-wide singleton."""

    is_main_process = True
    process_index = 0
    num_processes = 1

    def wait_for_everyone(self) -> None:
        pass

    def split_between_processes(self, items):
        from contextlib import nullcontext

        return nullcontext(items)


@pytest.fixture(scope="session")
def small_deck(tmp_path_factory, portrait_path, tiny_settings, tiny_services) -> Path:
    """A rendered 2-row deck (one insightface portrait, anime, raw + template, seeds 1 and 2)."""
    from PIL import Image

    from pipelines.app.bootstrap import deck_comparison
    from pipelines.decks.render import render_deck
    from pipelines.decks.spec import parse_spec

    folder = tmp_path_factory.mktemp("small-deck")
    (folder / "selfies").mkdir()
    Image.open(portrait_path).save(folder / "selfies" / "hanks.png")
    raw = {
        "deck": "small",
        "selfies": "selfies",
        "styles": ["anime"],
        "methods": ["raw", "template"],
        "prompts": ["a portrait of a person"],
        "seeds": [1, 2],
    }
    spec = parse_spec(raw, folder / "deck.yaml", tiny_settings)
    out = folder / "deck"
    render_deck(
        spec,
        out,
        tiny_settings,
        deck_comparison(tiny_services).compare,
        state=OneProcess(),
        progress=False,
    )
    return out


CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium under Playwright (never a downloaded browser). Tests that use
    it skip where Chromium is absent, unless CI is set: in CI a missing browser fails the run."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI is set but Chromium is missing: .ci/run installs it from Debian")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
