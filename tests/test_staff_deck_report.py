"""The Staff tab shows the loaded deck's report (report.md, report.png, its leaderboard filter)
written with the ratings so far, so a facilitator never needs the command line."""

from __future__ import annotations

import shutil
from dataclasses import replace

import gradio as gr
import pytest

from demo.staff_tab import StaffHandlers, create_staff_tab, loaded_deck_report
from pipelines.core.recent import RecentComparisons
from pipelines.decks.board import DeckBoard
from pipelines.feedback.ratings import RatingService
from pipelines.feedback.store import FeedbackStore


@pytest.fixture
def board(tmp_path, small_deck):
    store = FeedbackStore(tmp_path / "ratings.sqlite3")
    deck = shutil.copytree(small_deck, tmp_path / "deck")  # the report is written into it
    board = DeckBoard(store, tmp_path / "decks")
    return board, deck


@pytest.fixture
def callbacks(tiny_services, board):
    from demo.layout import staff_callbacks

    decks, _ = board
    return replace(
        staff_callbacks(tiny_services),
        check_password=lambda pw, key: pw == "staff-pw",
        password_required=True,
        deck_report=loaded_deck_report(decks, n_boot=20),
    )


def test_staff_sees_the_loaded_decks_report_with_its_ratings(callbacks, board):
    decks, folder = board
    h = StaffHandlers(callbacks)
    text, chart = h.deck_report("staff-pw", None)
    assert text.startswith("No deck is loaded") and chart["visible"] is False

    deck = decks.load_folder(folder)
    ratings = RatingService(decks.store, RecentComparisons(capacity=0), decks.find)
    turn = decks.next_row("ana", "browser-1")
    ratings.submit(turn.comparison_id, {"raw": 2, "template": 5}, rater="ana", best="template")

    text, chart = h.deck_report("staff-pw", None)
    assert "Leaderboard** tab → Deck: `small`" in text  # the leaderboard filter for this deck
    assert "# Deck `small`" in text and "0 ratings" not in text
    assert "## Ratings: rank and Bradley–Terry strength" in text
    assert "| labelled | anime |" in text or "| blind | anime |" in text
    assert chart["visible"] is True and chart["value"].size[0] > 300
    assert (deck.folder / "report.md").is_file() and (deck.folder / "report.png").is_file()
    # the text shown is report.md's (which also links the chart)
    assert (deck.folder / "report.md").read_text(encoding="utf-8").startswith("# Deck `small`")

    with pytest.raises(gr.Error, match="Wrong staff password"):
        h.deck_report("guess", None)


def test_report_panel_is_on_the_staff_tab_only_when_the_app_gives_reports(callbacks):
    def elem_ids(cb) -> set[str]:
        with gr.Blocks() as demo:
            with gr.Tab("Staff") as tab:
                create_staff_tab(cb, tab)
        return {c.get("props", {}).get("elem_id") for c in demo.config["components"]}

    shown = elem_ids(callbacks)
    assert {"deck-report", "deck-report-md", "deck-report-png"} <= shown
    assert "deck-report" not in elem_ids(replace(callbacks, deck_report=None))


def test_the_app_gives_the_staff_tab_its_deck_reports(tiny_services):
    from demo.layout import staff_callbacks

    report = staff_callbacks(tiny_services).deck_report
    assert report is not None and report() is None  # wired; no deck loaded, so no report
