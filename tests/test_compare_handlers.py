"""The Compare tab's handlers called as plain functions (no Gradio event), and the controls each
model family shows: one request per click, identity strength only where a family reads it."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest
from PIL import Image

from demo.compare_handlers import (
    Click,
    CompareCallbacks,
    CompareHandlers,
    PendingClicks,
)
from demo.compare_tab import create_compare_tab
from pipelines.core.errors import UserError
from pipelines.core.limits import LIMITS
from pipelines.core.request import DEFAULT_IP_ADAPTER_SCALE, CompareRequest

FLUX = "flux2-klein-edit"
METHODS = ["raw", "template", "learned"]


class FakeApp:
    """compare_many that records what it was asked and renders nothing."""

    def __init__(self) -> None:
        self.asked: list[list[tuple[Any, CompareRequest]]] = []

    def compare_many(self, rows, progress) -> list[UserError]:
        self.asked.append(list(rows))
        return [UserError("not rendered in this test") for _ in rows]


def callbacks(settings, app: FakeApp | None = None) -> CompareCallbacks:
    app = app or FakeApp()
    return CompareCallbacks(
        compare_many=app.compare_many,
        recent=lambda comparison_id: pytest.fail("no row is looked up here"),
        styles=[("Watercolor", "watercolor"), ("Anime", "anime")],
        methods=METHODS,
        summaries={},
        examples=[],
        default_prompt="a portrait of a person",
        default_methods=["raw", "template"],
        settings=settings,
    )


def fields(**changes: Any) -> dict[str, Any]:
    """The controls' values as the page sends them on a click."""
    sent = {
        "style": "watercolor",
        "prompt": "a portrait of a person",
        "methods": ["template", "raw"],  # click order; the request keeps the page's order
        "seed": 42,
        "num_inference_steps": 2,
        "guidance_scale": 6.0,
        "use_style_strength": True,
        "ip_adapter_scale": DEFAULT_IP_ADAPTER_SCALE,
        "size": 64,
        "reference": None,
    }
    return {**sent, **changes}


def no_progress(fraction: float, desc: str = "") -> None:
    pass


def test_a_click_builds_its_request_once_and_the_render_gets_that_request(
    tiny_settings, portrait_path
):
    app = FakeApp()
    handlers = CompareHandlers(callbacks(tiny_settings, app))
    built: list[CompareRequest] = []
    request = handlers.request
    handlers.request = lambda *a: built.append(request(*a)) or built[-1]  # type: ignore[method-assign]

    checked = handlers.check(str(portrait_path), **fields(seed=None))  # a random seed, once
    columns = handlers.run([False], [checked.ticket], progress=no_progress)

    assert len(built) == 1
    [[(photo, asked)]] = app.asked
    assert asked is built[0]  # that very request, its seed too
    assert photo.size == Image.open(portrait_path).size  # the photo decoded at the click
    assert checked.shown() == (None, None)  # not an upload: the page's value stays
    assert built[0].methods == ("raw", "template")
    assert columns[0] == ["⚠️ not rendered in this test"]  # one status per person in the batch
    assert len(handlers.pending) == 0  # taken once


def test_a_render_without_a_checked_click_asks_for_a_new_click(tiny_settings, portrait_path):
    app = FakeApp()
    handlers = CompareHandlers(callbacks(tiny_settings, app))
    columns = handlers.run([False], ["no-such-ticket"], progress=no_progress)
    assert app.asked == []  # nothing to render
    assert "press Generate again" in columns[0][0]


def test_check_refuses_what_the_page_can_tell_at_once(tiny_settings, portrait_path):
    handlers = CompareHandlers(callbacks(tiny_settings))
    with pytest.raises(gr.Error, match="Upload a selfie"):
        handlers.check(None, **fields())
    with pytest.raises(gr.Error, match="Tick at least one method"):
        handlers.check(str(portrait_path), **fields(methods=[]))
    with pytest.raises(gr.Error, match="seed='abc' is not a whole number"):
        handlers.check(str(portrait_path), **fields(seed="abc"))
    assert len(handlers.pending) == 0  # a refused click waits for nothing


def test_pending_clicks_forget_the_oldest_and_the_stale(tiny_settings):
    request = CompareRequest.from_settings(
        tiny_settings, style="anime", prompt="a person", methods=["raw"], seed=1
    )
    now = [1000.0]
    pending = PendingClicks(limit=2, max_age=60.0, clock=lambda: now[0])
    photo = Image.new("RGB", (8, 8))
    first, second, third = (pending.put(Click(photo, request, now[0])) for _ in range(3))
    assert pending.take(first) is None  # beyond the limit
    assert pending.take(second).request is request
    assert pending.take(second) is None  # each click is taken once
    now[0] += 61.0
    pending.put(Click(photo, request, now[0]))
    assert pending.take(third) is None  # older than max_age


# ----------------------------------------------------------------------------- identity strength


def test_identity_strength_is_the_style_s_unless_the_page_sets_one(tiny_settings):
    handlers = CompareHandlers(callbacks(tiny_settings))
    assert handlers.request(**fields(ip_adapter_scale=1.2)).ip_adapter_scale is None
    chosen = handlers.request(**fields(use_style_strength=False, ip_adapter_scale=1.2))
    assert chosen.ip_adapter_scale == 1.2


@pytest.mark.parametrize("sent", [1.2, 0.0, 3.0, "abc"])
def test_a_family_without_faceid_gets_no_identity_strength_whatever_was_sent(tiny_settings, sent):
    handlers = CompareHandlers(callbacks(tiny_settings.with_family(FLUX)))
    request = handlers.request(**fields(use_style_strength=False, ip_adapter_scale=sent, size=64))
    assert request.ip_adapter_scale is None  # nothing reads it: not refused, not recorded
    assert request.generation_params()["ip_adapter_scale"] is None  # result and deck JSON
    assert request.with_identity(0.6).ip_adapter_scale is None  # the style's is not filled in


def test_a_bad_identity_strength_gets_the_limits_table_s_one_message(tiny_settings, portrait_path):
    handlers = CompareHandlers(callbacks(tiny_settings))
    with pytest.raises(gr.Error) as caught:
        handlers.check(str(portrait_path), **fields(use_style_strength=False, ip_adapter_scale=3))
    assert caught.value.message == LIMITS["ip_adapter_scale"].problem("ip_adapter_scale", 3.0)


def identity_controls(settings) -> dict[str, Any]:
    """The Compare tab built for ``settings``: its identity controls by elem_id."""
    with gr.Blocks() as demo:
        create_compare_tab(callbacks(settings))
    wanted = {"ip-adapter-scale", "use-style-strength", "guidance-scale"}
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None) in wanted}


def test_the_identity_slider_shows_only_for_faceid_families(tiny_settings):
    faceid = identity_controls(tiny_settings)
    limit = LIMITS["ip_adapter_scale"]
    slider = faceid["ip-adapter-scale"]
    assert slider.visible and faceid["use-style-strength"].visible
    assert (slider.minimum, slider.maximum) == (limit.low, limit.high)
    assert slider.value == DEFAULT_IP_ADAPTER_SCALE
    flux = identity_controls(tiny_settings.with_family(FLUX))
    assert not flux["ip-adapter-scale"].visible
    assert not flux["use-style-strength"].visible


def test_guidance_shows_only_for_families_that_read_it(tiny_settings):
    """FLUX.2 klein is step-distilled: guidance is fixed, so its slider is hidden and whatever a
    client sends, the request (and so every record) holds the value that actually ran."""
    assert identity_controls(tiny_settings)["guidance-scale"].visible
    flux_settings = tiny_settings.with_family(FLUX)
    assert not identity_controls(flux_settings)["guidance-scale"].visible
    family = flux_settings.family
    request = CompareRequest.from_settings(
        flux_settings, style="anime", prompt="a person", methods=["raw"], guidance_scale=7.5
    )
    assert request.guidance_scale == family.guidance_scale == 1.0
    assert request.generation_params()["guidance_scale"] == 1.0


def test_a_tick_the_page_no_longer_offers_is_dropped_not_refused(tiny_settings):
    """A page narrows its methods after it opens (a session's); a click sent before the browser
    applied that still carried the old tick, and Gradio refused the whole click."""
    with gr.Blocks() as demo:
        create_compare_tab(callbacks(tiny_settings))
    [methods] = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "methods"]
    assert type(methods).__name__ == "CheckboxGroup"  # drawn by Gradio's own frontend
    methods.choices = [("raw", "raw"), ("template", "template")]  # the session's, now
    assert methods.preprocess(["raw", "learned"]) == ["raw"]
    assert methods.preprocess(None) == []
