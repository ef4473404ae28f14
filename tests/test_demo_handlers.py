"""The Staff tab's and the rating panel's handlers called as plain functions, without a Gradio
event: the password guards every staff action, the form follows the live session, votes are
refused in plain words, and a blind row is revealed once rated."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest

from demo.feedback_panel import (
    FeedbackCallbacks,
    FeedbackHandlers,
    clear_after,
    clear_for_another_name,
    cleared,
    reset_values,
    reveal_values,
)
from demo.rows import ShownRow
from demo.staff_tab import SERVER_LOCKED, StaffCallbacks, StaffHandlers
from pipelines.feedback.ratings import Receipt
from pipelines.feedback.sessions import SessionConfig


class FakeSessions:
    def __init__(self) -> None:
        self.config = SessionConfig()

    def start(self, tag: str, styles: list[str], methods: list[str], blind: bool) -> SessionConfig:
        self.config = SessionConfig(tag, tuple(styles), tuple(methods), blind)
        return self.config

    def end(self) -> SessionConfig:
        self.config = SessionConfig()
        return self.config


def exported(fmt: str) -> Path:
    """A new export file, as pipelines.feedback.export.export_to_temp writes one."""
    out = Path(tempfile.mkdtemp(prefix="become-export-")) / f"ratings.{fmt}"
    out.write_text('{"rater": "ana"}\n')
    return out


def staff(sessions: FakeSessions, served: list[str]) -> StaffHandlers:
    def unused(*args: object) -> None:
        pytest.fail("not part of this test")

    cb = StaffCallbacks(
        check_password=lambda pw, client: pw == "s3cret",
        password_required=True,
        session=lambda: sessions.config,
        start_session=sessions.start,
        end_session=sessions.end,
        export=lambda fmt: served.append(fmt) or exported(fmt),
        retrain=unused,
        use_model=unused,
        model_versions=list,
        model_in_use=lambda: "bundled",
        model_summary=lambda: "the stand-in model",
        availability=lambda: {"raw": None, "inversion": "CLIP is not installed"},
        server_details=lambda: ["Engine **tiny**: asked for"],
        add_references=unused,
        clear_references=unused,
        reference_counts=lambda: {"anime": 2},
        styles=[("Anime", "anime"), ("Watercolor", "watercolor")],
        methods=["raw", "template"],
        load_deck=unused,
        unload_deck=unused,
        deck_coverage=lambda: None,
    )
    return StaffHandlers(cb)


def test_every_staff_action_checks_the_password_first():
    sessions, served = FakeSessions(), []
    h = staff(sessions, served)
    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.start("guess", "workshop", True, [], ["raw"])
    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.export("guess", "csv")
    assert sessions.config == SessionConfig() and served == []  # nothing happened


def test_the_staff_form_follows_the_live_session():
    sessions, served = FakeSessions(), []
    h = staff(sessions, served)
    status, summary, tag, blind, styles, methods = h.start(
        "s3cret", "workshop", True, ["anime"], ["raw"]
    )
    assert "workshop" in status and "workshop" in summary and "Anime" in summary
    assert (tag, blind, styles, methods) == ("workshop", True, ["anime"], ["raw"])
    payload, said = h.export("s3cret", "jsonl")
    assert json.loads(payload)["text"] == '{"rater": "ana"}\n' and "No copy" in said
    *form, server, refs, model, deck = h.open()
    assert form[1:] == ["workshop", True, ["anime"], ["raw"]]
    # the server's details and the model's figures wait for the password (#28, item 12)
    assert server == SERVER_LOCKED and "inversion" not in server and "stand-in" not in model
    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.server("guess")
    server, model = h.server("s3cret")
    assert "**inversion**: cannot run: CLIP is not installed" in server
    assert refs == "Uploaded: Anime 2" and model.endswith("the stand-in model")
    assert deck.startswith("No deck loaded")
    assert h.end("s3cret")[0] == "Session ended: new pages open untagged."


def test_opening_the_staff_tab_leaves_alone_what_already_shows_the_live_session():
    # the tab's answer can land after a person started typing: a field already showing the
    # live value is not set again, so what they typed stays
    sessions, served = FakeSessions(), []
    h = staff(sessions, served)
    sessions.start("workshop", ["anime"], ["raw", "template"], False)
    summary, tag, blind, styles, methods = h.refresh("", False, [], ["raw"])
    assert "workshop" in summary and tag == "workshop" and styles == ["anime"]
    assert blind == {"__type__": "update"}  # unchanged: not sent
    assert methods == ["raw", "template"]
    _, *fields = h.refresh("workshop", False, ["anime"], ["template", "raw"])
    assert fields == [{"__type__": "update"}] * 4
    assert len({id(f) for f in fields}) == 4  # never one update object for several outputs


# ----------------------------------------------------------------------------- ratings


@pytest.fixture(scope="module")
def rendered(tiny_services, make_request, group_path):
    return tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 3)
    )


def test_votes_are_refused_in_plain_words_before_anything_is_saved(rendered):
    saved = []
    h = FeedbackHandlers(
        FeedbackCallbacks(submit=lambda *a, **k: saved.append(a), session=SessionConfig), 3
    )
    row = ShownRow(rendered.without_images(), ("raw", "template"), blind=True)
    with pytest.raises(gr.Error, match="Generate a comparison first"):
        h.submit(None, None, "", "ann", "", False, "v1", "4", None)
    with pytest.raises(gr.Error, match="Type your name"):
        h.submit(row, None, "", "  ", "", False, "v1", "4", None)
    with pytest.raises(gr.Error, match="Rate at least one output"):
        h.submit(row, None, "", "ann", "", False, "v1", None, None)
    assert saved == []


def test_a_blind_row_is_labelled_by_letter_then_revealed(rendered):
    row = ShownRow(rendered.without_images(), ("template", "raw"), blind=True)
    panel, best, status, *votes = reset_values(row, 3)
    assert panel["visible"] and best["choices"] == ["Output A", "Output B"] and status == ""
    assert [v["visible"] for v in votes] == [True, True, False]  # two outputs in three slots
    best, *cards = reveal_values(row, "Output B", 3)
    assert best["choices"] == [("Output A = template", "Output A"), ("Output B = raw", "Output B")]
    assert cards[0]["label"] == "Output A = template"  # image label of the first card
    # the rating buttons name the method too (they said "Rate Output A" after the reveal)
    assert cards[-3]["label"] == "Rate Output A = template: 1 poor … 5 great"
    assert cards[-2]["label"] == "Rate Output B = raw: 1 poor … 5 great"
    assert reveal_values(replace(row, blind=False), None, 3) == [gr.update()] * 19


def test_a_partial_blind_submit_is_saved_and_reveals_nothing(rendered):
    sent = []

    def submit(cid, ratings, **kw):
        sent.append((ratings, kw["blind"]))
        unrated = sum(v is None for v in ratings.values())
        return Receipt(
            saved=len(ratings) - unrated,
            replaced_earlier=False,
            revealed=not unrated,
            unrated=unrated,
        )

    h = FeedbackHandlers(FeedbackCallbacks(submit=submit, session=SessionConfig), 3)
    row = ShownRow(rendered.without_images(), ("template", "raw"), blind=True)
    status, remembered, shown, left_by, token = h.submit(
        row, None, "", "ann", "", False, "v1", "4", None, None
    )
    assert token != "v1" and token.count(".") == 1  # "v1" was never signed: a new voter
    assert "1 output still unrated" in status and "Revealed" not in status
    assert remembered == ["ann", ""] and left_by == "ann"  # ann's ratings wait for her
    # at a kiosk the next person types another name: ann's ratings leave the screen
    assert clear_for_another_name("ann", left_by, 3) == [*[gr.update()] * 5, "ann"]
    assert clear_for_another_name("bo", left_by, 3) == [*cleared(3), ""]
    assert shown is False and h.reveal(row, None, shown) == [gr.update()] * 19  # no card changes
    assert sent == [({"template": 4, "raw": None}, True)]
    status, _, shown, left_by, again = h.submit(
        row, None, "", "ann", "", False, token, "4", "2", None
    )
    assert again == token  # a signed token is kept
    best, *cards = h.reveal(row, None, shown)
    assert "**Revealed:** Output A = template, Output B = raw" in status
    assert "cleared for the next person" in status and left_by == ""
    assert clear_after(shown, 3) == cleared(3)  # saved whole: nothing left for the next person
    assert clear_after(False, 3) == [gr.update()] * 5
    assert best["choices"][0] == ("Output A = template", "Output A")
    assert cards[0]["show_label"] is False and "Output A = template" in cards[1]


def test_a_blind_session_ticks_and_locks_blind_mode():
    blind = SessionConfig("workshop", (), ("raw",), True)
    h = FeedbackHandlers(FeedbackCallbacks(submit=None, session=lambda: blind), 3)  # type: ignore[arg-type]
    name, tag, box, voter, consent, next_row = h.page_load(["ann", ""], "")
    assert name == "ann" and voter
    # the facilitator's tag: shown read-only during the session
    assert tag["value"] == "workshop" and tag["visible"] and tag["interactive"] is False
    assert consent["visible"] and next_row["visible"] is False  # live renders, no deck
    assert box["value"] is True and box["interactive"] is False
    h = FeedbackHandlers(FeedbackCallbacks(submit=None, session=SessionConfig), 3)  # type: ignore[arg-type]
    _, tag, box, *_ = h.page_load(["ann", "old-tag"], "v1")
    assert box["value"] is False and box["interactive"] is True
    assert tag["visible"] is False and tag["value"] == ""  # no session: no tag, none kept
    deck = SessionConfig("", (), ("raw",), True, deck_id="small", deck_dir="/x")
    h = FeedbackHandlers(FeedbackCallbacks(submit=None, session=lambda: deck), 3)  # type: ignore[arg-type]
    _, tag, _, _, consent, next_row = h.page_load(None, "v1")
    assert consent["visible"] is False and next_row["visible"] and tag["visible"] is False


def test_each_card_puts_the_face_beside_its_output_and_hides_it_without_a_face(rendered):
    from demo.rows import ROW_VALUES, SLOT_VALUES, row_values

    values = row_values(rendered, blind=False, n_slots=3)
    for slot, out in enumerate(rendered.outputs):
        beside, pair = values[ROW_VALUES + SLOT_VALUES * slot + 6 :][:2]
        assert beside["visible"] is True
        face, shown = pair
        assert shown is out.image and face.size == out.image.size  # a slider needs equal sizes
    empty = values[ROW_VALUES + SLOT_VALUES * 2 :]
    assert empty[0]["visible"] is False and empty[6]["visible"] is False and empty[7] is None
    # a row read back after a restart has no face crop (it is never kept): no slider
    restored = row_values(rendered.without_images(), blind=False, n_slots=3)
    assert restored[ROW_VALUES + 6]["visible"] is False and restored[ROW_VALUES + 7] is None


def test_the_candidate_report_gives_each_stage_and_what_using_it_changes(tmp_path):
    from demo.staff_tab import candidate_md
    from pipelines.feedback.retrain import RetrainReport

    stages = {"fast": (0.21, 0.25), "two-stage": (0.3, 0.35)}
    report = RetrainReport(
        10,
        ("ratings",),
        1.0,
        tmp_path / "m.npz",
        40,
        0.3,
        0.35,
        stages=stages,
        version="20260301-142530-a1b2",
        replaces="bundled",
        passed=True,
        verdict="at least as good",
    )
    md = candidate_md(report, "trained 2026-12-05 on train.csv (6000 rows)")
    assert "Pearson 0.30 for the model in use (`bundled`) → **0.35** for the candidate" in md
    assert "By stage: fast 0\\.210 → 0\\.250; two\\-stage 0\\.300 → 0\\.350" in md
    assert "**Use this model** replaces `bundled` (trained 2026\\-12\\-05 on train\\.csv" in md
    failed = candidate_md(replace(report, passed=False, verdict="it does worse"), "x")
    assert "⚠️ **Not put in use**: it does worse. The model in use (`bundled`) stays" in failed
    assert "kept as version `20260301-142530-a1b2`" in failed and "Use this model" not in failed
    assert "By stage" not in candidate_md(replace(report, stages={}), "x")


def test_a_refused_staff_click_is_said_beside_its_button():
    sessions, served = FakeSessions(), []
    h = staff(sessions, served)

    class Page:  # what Gradio passes as the request
        session_hash, client = "kim", None

    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.check("guess", Page())
    said = h.refused(Page())
    assert said.startswith("⚠️ Wrong staff password") and "box at the top" in said
    assert h.refused(Page()) == (
        "⚠️ That staff action was refused. Type the staff password in the box at the top of "
        "this tab."
    )  # said once
