"""One comparison row as the page shows it: the page's state (:class:`ShownRow`), the values
that fill the output cards, and the row a refreshed page gets back."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from demo.formatting import caption_md, measure_legend, plain_md, trace_md
from pipelines.core.errors import UserError
from pipelines.core.recent import UnknownComparisonError
from pipelines.core.results import ComparisonResult


def slot_label(i: int) -> str:
    """The blind name of the ``i``-th output: "Output A", "Output B", ..."""
    return f"Output {chr(ord('A') + i)}"


@dataclass(frozen=True, eq=False)  # hashed by identity: Gradio hashes state to see changes
class ShownRow:
    """The row a page shows (its state): the result without images, in the order shown."""

    result: ComparisonResult
    order: tuple[str, ...]  # methods, left to right
    blind: bool

    def labels(self) -> list[str]:
        """What the page calls each output: letters in blind mode, else the method."""
        return [slot_label(i) for i in range(len(self.order))] if self.blind else list(self.order)

    def key(self) -> str:
        """What the browser keeps to show this row again after a refresh (no images, no face)."""
        return json.dumps(
            {"id": self.result.comparison_id, "order": self.order, "blind": self.blind}
        )


def shown_row(recent: Callable[[str], ComparisonResult], key: str) -> ShownRow | None:
    """The row a key names, if this server still has it in memory."""
    try:
        data = json.loads(key or "")
        result = recent(str(data["id"]))
        return ShownRow(result.without_images(), tuple(data["order"]), bool(data["blind"]))
    except (ValueError, KeyError, TypeError, UnknownComparisonError):
        return None


def shown_row_of(res: ComparisonResult, values: Sequence[Any]) -> ShownRow:
    """The page state for a row that :func:`row_values` just laid out (its key is values[3])."""
    data = json.loads(values[3])
    return ShownRow(res.without_images(), tuple(data["order"]), bool(data["blind"]))


def restore_row(
    recent: Callable[[str], ComparisonResult], key: str, n_slots: int
) -> tuple[ShownRow | None, list[Any]]:
    """A refreshed page gets its last row back (not the selfie), if the server still has it."""
    row = shown_row(recent, key)
    if row is None:
        return None, [gr.update()] * (ROW_VALUES + SLOT_VALUES * n_slots)
    full = recent(row.result.comparison_id)
    values = row_values(full, row.blind, n_slots, order=row.order)
    values[0] = "Your last row, as you left it. " + values[0]
    values[1] = gr.update()  # the selfie's face crop is never kept
    values[2] = full.face_notice  # so no "Centre crop" caption names a crop that is not shown
    return row, values


WAIT_WORTH_SAYING_S = 2.0  # a shorter wait is the click's own checks, not a line


def row_status(res: ComparisonResult, waited: float = 0.0) -> str:
    """The row's line in plain words: how long it took and its seed. The engine, model family
    and each stage's time are for staff (the banner's details, the API's ``timings``)."""
    t = res.timings
    total = max(waited, t.get("total", 0.0))
    wait = max(total - t.get("total", 0.0), 0.0)
    status = f"Ready in {total:.1f} s"
    if wait >= WAIT_WORTH_SAYING_S:
        status += f" ({wait:.0f} s of it waiting in line)"
    others = int(t.get("render.rows", 1)) - 1
    if others == 1:
        status += ", made together with one other person's"
    elif others > 1:
        status += f", made together with {others} other people's"
    return status + f" · seed {res.request.seed}"


ROW_VALUES = 4  # status, face crop, face info, row key
SLOT_VALUES = 8  # per card: Slot.components()


def cleared_row(status: str, n_slots: int) -> list[Any]:
    """Values for [status, face, face info, row key] + :data:`SLOT_VALUES` per slot: ``status``,
    and no row (no face crop, no cards, no key)."""
    values: list[Any] = [status, gr.update(value=None), "", ""]
    for _ in range(n_slots):
        values += _empty_slot()
    return values


def _empty_slot() -> list[Any]:
    hidden = gr.update(visible=False)
    return [hidden, None, "", "", hidden, "", hidden, None]


def face_beside(face: Image.Image | None, out: Image.Image | None) -> tuple[Any, Any]:
    """(accordion update, slider value): the face crop scaled to the output's size beside the
    output (a slider needs two images of one size), or hidden where either is missing (a deck
    row or a row read back after a restart keeps no face)."""
    if face is None or out is None:
        return gr.update(visible=False), None
    return gr.update(visible=True), (face.convert("RGB").resize(out.size), out)


def row_values(
    res: ComparisonResult | UserError | None,
    blind: bool,
    n_slots: int,
    waited: float = 0.0,
    order: Sequence[str] | None = None,
    shuffle_key: str | None = None,
) -> list[Any]:
    """Values for [status, face, face info, row key] + :data:`SLOT_VALUES` per slot. An error
    leaves no row.

    Blind rows are shuffled by ``shuffle_key`` (default: the comparison id, so one row reads the
    same on every page; a deck shuffles per rater so no position favours a method).
    """
    if not isinstance(res, ComparisonResult):  # no old row stays on screen to be rated
        message = str(res) if res is not None else "This row was not rendered."
        return cleared_row(f"⚠️ {plain_md(message)}", n_slots)
    skipped = [o.method for o in res.outputs if not o.rendered]
    if order is not None:  # as the page showed it before
        shown = [res.output(m) for m in order]
    elif blind:  # unrendered methods would give themselves away: leave them out of the row
        shown = [o for o in res.outputs if o.rendered]
        random.Random(shuffle_key or res.comparison_id).shuffle(shown)
    else:
        shown = list(res.outputs)
    row = ShownRow(res.without_images(), tuple(o.method for o in shown), blind)
    status = row_status(res, waited)
    if blind:
        status += " · **blind mode**: methods are revealed once you rate every output and submit"
        if skipped:
            status += f" · not available here: {', '.join(skipped)}"
    elif legend := measure_legend(o.measures for o in shown):
        status += f"  \n<small>{legend}</small>"
    # a stand-in's crop is the centre of the photo: do not label it as detected. The name goes
    # in the text beside the crop: the image's toolbar cut its own label to "Centre cr…"
    face_label = "Centre crop" if res.face_stand_in else "Detected face"
    face = gr.update(value=res.face_crop, label=face_label, show_label=False)
    face_info = f"**{face_label}**" + (f"  \n{res.face_notice}" if res.face_notice else "")
    values: list[Any] = [status, face, face_info, row.key()]
    for slot in range(n_slots):
        if slot >= len(shown):
            values += _empty_slot()
            continue
        out = shown[slot]
        values += [
            gr.update(visible=True),
            # named by the caption under it: the image's label was cut by its toolbar
            gr.update(
                value=out.image, label=slot_label(slot) if blind else out.method, show_label=False
            ),
            caption_md(out, None if blind else out.method, slot_label(slot) if blind else None),
            gr.update(value="" if blind else (out.prompt or ""), visible=not blind),
            gr.update(visible=not blind),
            "" if blind else trace_md(out, res.token_limit),
            *face_beside(res.face_crop, out.image),
        ]
    return values
