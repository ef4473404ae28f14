"""Ratings under a comparison row: 1–5 per output, a best pick, a comment, one submit.

In blind mode the methods stay hidden until the rater submits a rating for every output of
the row; a partial submit is saved and reveals nothing. During a blind session the page's
"Blind mode" box is ticked and locked: the facilitator decides.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from demo.compare_tab import CompareTab, Slot
from demo.errors import user_errors
from demo.formatting import caption_md, trace_md
from demo.rows import ShownRow, slot_label
from pipelines.feedback.ratings import SubmitRatings
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.voters import Voter, VoterIds

RATINGS = ["1", "2", "3", "4", "5"]


@dataclass(frozen=True)
class FeedbackCallbacks:
    """What the panel needs from the app."""

    submit: SubmitRatings
    session: Callable[[], SessionConfig]  # the live facilitator session
    # keeps what the browser stores readable after a restart (settings). Gradio hands it to the
    # page, which encrypts with it: it hides nothing from the page's user, and guards nothing
    browser_secret: str = ""
    # the voter a token the browser kept names when the server signed it, else a new one
    # (unset: a key of this process alone, for tests)
    vouch: Callable[[str | None], Voter] = field(
        default_factory=lambda: VoterIds(secrets.token_hex(32)).vouch
    )


@dataclass(frozen=True)
class PageLoad:
    """A function the page runs when it opens (the layout registers it with ``demo.load``)."""

    fn: Callable[..., Any]
    inputs: list[Any]
    outputs: list[Any]
    next_row: Any = None  # "Show my next row" beside Submit, shown while a deck is rated


@dataclass
class RatingPanel:
    """The panel's components: a 1–5 radio in each output card, the rest under the row."""

    votes: list[gr.Radio]  # one per slot
    group: gr.Group  # shown once a row is on the page
    best: gr.Radio
    comment: gr.Textbox
    rater: gr.Textbox
    tag: gr.Textbox
    consent: gr.Checkbox
    submit: gr.Button
    next_row: gr.Button  # a deck's next row, right where the rater just submitted
    status: gr.Markdown
    remembered: gr.BrowserState  # [rater name, session tag], kept by the browser
    # this browser's voter token, issued and signed by the server (pipelines.feedback.voters);
    # the voter is its id and the typed name together
    voter: gr.BrowserState


def create_feedback_panel(cb: FeedbackCallbacks, tab: CompareTab) -> PageLoad:
    """1–5 under each output, best pick, comment, rater name; returns the page-load hook."""
    # right under the cards (not below the tall controls column): no long scroll to rate
    with tab.results or contextlib.nullcontext():
        panel = _layout(tab.slots, cb.browser_secret)
    handlers = FeedbackHandlers(cb, len(tab.slots))
    _wire(panel, tab, handlers)
    return PageLoad(
        handlers.page_load,
        [panel.remembered, panel.voter],
        [panel.rater, panel.tag, tab.blind, panel.voter, panel.consent, panel.next_row],
        next_row=panel.next_row,
    )


# ----------------------------------------------------------------------------- layout


def _layout(slots: Sequence[Slot], secret: str = "") -> RatingPanel:
    votes: list[gr.Radio] = []
    for i, slot in enumerate(slots):
        with slot.column:  # inside the output's card, right under its image and caption
            votes.append(
                gr.Radio(
                    RATINGS,
                    label=f"Rate {slot_label(i)}: 1 poor … 5 great",
                    elem_id=f"rate-{i}",
                    value=None,
                    # shown once the row is the page's (reset_values): a rating clicked on
                    # pictures that are not yet the row would be cleared when it becomes one
                    visible=False,
                )
            )
    with gr.Group(visible=False) as group:
        gr.Markdown("### Rate this row")
        with gr.Row():
            best = gr.Radio([], label="Best of this row", elem_id="best-pick")
            comment = gr.Textbox(label="Comment (optional)", lines=1, elem_id="comment")
        with gr.Row():
            rater = gr.Textbox(
                label="Your name or nickname (required)",
                placeholder="so your votes can be told apart",
                elem_id="rater",
                max_length=80,
            )
            # the facilitator's, read-only; shown only while a session has one (page load)
            tag = gr.Textbox(
                label="Session",
                elem_id="session-tag",
                max_length=80,
                interactive=False,
                visible=False,
            )
            consent = gr.Checkbox(
                value=False,
                label=(
                    "Keep these generated images with my ratings; top-rated ones may guide the "
                    "inversion method for this style (your selfie is never kept)"
                ),
                elem_id="consent",
            )
        with gr.Row():
            submit = gr.Button("Submit ratings", variant="primary", elem_id="submit-ratings")
            next_row = gr.Button("Show my next row", visible=False, elem_id="deck-next-below")
        status = gr.Markdown(elem_id="rating-status")
    return RatingPanel(
        votes=votes,
        group=group,
        best=best,
        comment=comment,
        rater=rater,
        tag=tag,
        consent=consent,
        submit=submit,
        next_row=next_row,
        status=status,
        remembered=gr.BrowserState(["", ""], storage_key="become-lab-rater", secret=secret or None),
        voter=gr.BrowserState("", storage_key="become-lab-voter", secret=secret or None),
    )


# ----------------------------------------------------------------------------- handlers


def reset_values(row: ShownRow | None, n: int) -> list[Any]:
    """A new row (or none): [panel, best pick, status, one vote per slot], laid out for it.
    The values a person enters are cleared in the browser the moment the row arrives
    (:func:`clear_entered_js`), not here: this answer comes a round trip later, and a rating
    clicked meanwhile would be wiped."""
    if row is None:
        hidden = [gr.update(value=None, visible=False) for _ in range(n)]
        return [gr.update(visible=False), gr.update(choices=[], value=None), "", *hidden]
    rendered = [row.result.output(m).rendered for m in row.order]
    names = row.labels()
    labels = [lbl for lbl, ok in zip(names, rendered, strict=True) if ok]
    votes = [
        gr.update(
            visible=i < len(rendered) and rendered[i],
            label=f"Rate {names[i]}: 1 poor … 5 great" if i < len(names) else None,
        )
        for i in range(n)
    ]
    return [gr.update(visible=True), gr.update(choices=labels), "", *votes]


def reveal_values(row: ShownRow | None, best_label: str | None, n: int) -> list[Any]:
    """After a blind vote that rated every output: names, prompts and reasons on every card.

    Values for [best pick] + (image, caption, prompt, why, trace) per slot + one rating per
    slot (its label names the method now)."""
    if row is None or not row.blind:
        return [gr.update() for _ in range(1 + 6 * n)]
    named = [f"{slot_label(i)} = {m}" for i, m in enumerate(row.order)]
    rendered = [row.result.output(m).rendered for m in row.order]
    choices = [(lbl, old) for lbl, old, ok in zip(named, row.labels(), rendered, strict=True) if ok]
    values: list[Any] = [gr.update(choices=choices, value=best_label)]
    for i in range(n):
        if i >= len(row.order):
            values += [gr.update()] * 5
            continue
        out = row.result.output(row.order[i])
        values += [
            gr.update(label=named[i], show_label=False),  # the caption names it whole
            caption_md(out, out.method, slot_label(i)),
            gr.update(value=out.prompt or "", visible=True),
            gr.update(visible=True),
            trace_md(out, row.result.token_limit),
        ]
    values += [
        gr.update(label=f"Rate {named[i]}: 1 poor … 5 great") if i < len(named) else gr.update()
        for i in range(n)
    ]
    return values


def cleared(n: int) -> list[Any]:
    """[best pick, comment, one vote per slot], emptied: what one person entered never waits
    on a shared screen for the next (a kiosk)."""
    # one update object per output: Gradio consumes each as it applies it
    return [gr.update(value=None), gr.update(value=""), *(gr.update(value=None) for _ in range(n))]


def clear_entered_js(n: int) -> str:
    """The browser-side twin of :func:`cleared`: [best pick, comment, one vote per slot]."""
    return "() => [null, '', " + ", ".join(["null"] * n) + "]"


def clear_after(revealed: bool, n: int) -> list[Any]:
    """After a saved submit: the panel cleared once the row was saved whole (revealed), as it
    was after a partial blind submit (the rater finishes it)."""
    return cleared(n) if revealed else [gr.update() for _ in range(2 + n)]


def clear_for_another_name(name: str, left_by: str, n: int) -> list[Any]:
    """When the name changes from the one whose partial submit left ratings on screen: the
    panel cleared (and no one's ratings left behind); else nothing changes. [..., left by]"""
    if left_by and " ".join((name or "").split()) != left_by:
        return [*cleared(n), ""]
    return [*(gr.update() for _ in range(2 + n)), left_by]


class FeedbackHandlers:
    """The panel's handlers that reach the app: submitting votes, and the page's first values."""

    def __init__(self, cb: FeedbackCallbacks, n_slots: int) -> None:
        self.cb, self.n_slots = cb, n_slots

    def submit(
        self,
        row: ShownRow | None,
        best_label: str | None,
        comment_text: str,
        rater_name: str,
        session_tag: str,
        keep_images: bool,
        voter_token: str | None,
        *votes: str | None,
    ) -> list[Any]:
        """Save the row's votes; [status line, remembered name and tag, revealed, left by,
        voter token]. Refusals raise.

        The vote is this browser's only when its token is one the server signed; a token that
        is not (none, made up, copied from another id) is replaced by a new voter, given back
        for the browser to keep, so it never reaches another voter's ratings.

        ``revealed`` is the server's word: a blind row is revealed only once every output is
        rated (:meth:`reveal` then fills the cards); a partial submit is saved, reveals nothing.
        A saved submit that revealed clears the ratings, best pick and comment for the next
        person at a shared screen (:func:`cleared`); a partial blind one leaves them for the
        rater to finish, and ``left by`` names that rater: another name clears them."""
        # only the status line is an output here: a refused submit never touches the row (an
        # error marks every output of its event with an "Error" badge)
        if row is None:
            raise gr.Error("Generate a comparison first, then rate it.")
        if not (rater_name or "").strip():
            raise gr.Error("Type your name so your votes can be told apart, then submit again.")
        if not any(votes[: len(row.order)]):
            raise gr.Error("Rate at least one output from 1 to 5, then submit.")
        labels = row.labels()
        by_method = {m: (int(v) if v else None) for m, v in zip(row.order, votes, strict=False)}
        best_method = row.order[labels.index(best_label)] if best_label in labels else None
        voter = self.cb.vouch(voter_token)
        with user_errors("Saving your ratings"):
            receipt = self.cb.submit(
                row.result.comparison_id,
                by_method,
                rater=rater_name,
                voter=voter.id,
                source="page",
                best=best_method,
                session_tag=session_tag,
                comment=comment_text,
                blind=row.blind,
                consent_images=bool(keep_images),
            )
        verb = "Updated" if receipt.replaced_earlier else "Saved"
        msg = f"✅ {verb} {receipt.saved} rating(s)."
        remembered = [rater_name, session_tag]
        if row.blind and not receipt.revealed:
            left = receipt.unrated
            msg += (
                f" {left} output{'s' if left != 1 else ''} still unrated: the methods stay "
                "hidden until you rate every output and submit again."
            )
            return [msg, remembered, False, " ".join(rater_name.split()), voter.token]
        msg += (
            " Your ratings are cleared for the next person; to change one, rate that picture "
            "again and submit."
        )
        if self.cb.session().deck_id:  # a deck hands rows one at a time: say how to go on
            msg += " Next: press **Show my next row** (beside Submit)."
        if row.blind:
            shown = ", ".join(f"{slot_label(i)} = {m}" for i, m in enumerate(row.order))
            msg += (
                f"  \n**Revealed:** {shown}. A rating you change now counts as a labelled "
                "(not blind) vote."
            )
        return [msg, remembered, receipt.revealed, "", voter.token]

    def reveal(self, row: ShownRow | None, best_label: str | None, revealed: bool) -> list[Any]:
        """After a saved submit: the cards' names, prompts and reasons, if the server revealed."""
        if not revealed:
            return [gr.update() for _ in range(1 + 6 * self.n_slots)]
        return reveal_values(row, best_label, self.n_slots)

    def page_load(self, saved: list[str] | None, voter_token: str | None) -> list[Any]:
        """[rater name, session tag, blind mode, voter token, consent, next row] for a page that
        just opened. The browser keeps its voter token when the server signed it; one seen for
        the first time (or whose token does not verify) gets a new one now.

        A blind session ticks "Blind mode" and locks it (the facilitator decides); otherwise
        the box is the participant's, unticked. The session tag is the facilitator's: shown
        read-only during a tagged session, hidden outside one. A deck's rows are pre-rendered,
        so its raters get no "keep these images" box, and "Show my next row" beside Submit."""
        session = self.cb.session()
        name = ([*(saved or []), ""])[0]
        voter = self.cb.vouch(voter_token)
        blind = gr.update(
            value=session.blind,
            interactive=not session.blind,
            info="Set by the facilitator for this session" if session.blind else None,
        )
        tag = gr.update(
            value=session.session_tag,
            visible=bool(session.session_tag) and not session.deck_id,
            interactive=False,
        )
        deck = bool(session.deck_id)
        consent = gr.update(visible=not deck, value=False)
        return [name, tag, blind, voter.token, consent, gr.update(visible=deck)]


# ----------------------------------------------------------------------------- wiring


def _wire(panel: RatingPanel, tab: CompareTab, h: FeedbackHandlers) -> None:
    """A new row clears the panel; submit saves, and reveals a blind row once fully rated."""
    n = len(tab.slots)
    tab.result.change(
        lambda row: reset_values(row, n),
        inputs=[tab.result],
        outputs=[panel.group, panel.best, panel.status, *panel.votes],
        api_name=False,
    )
    entered = [panel.best, panel.comment, *panel.votes]
    # a new row: what was entered for the last one is cleared in the browser, at once
    tab.result.change(None, None, entered, js=clear_entered_js(n), api_name=False)
    revealed = gr.State(False)  # the last submit's receipt: did the server reveal the row?
    left_by = gr.State("")  # the rater whose partial blind submit left ratings on screen
    reveal_outputs: list[Any] = [panel.best]
    for slot in tab.slots:
        reveal_outputs += [slot.image, slot.caption, slot.prompt, slot.why, slot.trace]
    reveal_outputs += panel.votes
    panel.submit.click(
        h.submit,
        inputs=[
            tab.result,
            panel.best,
            panel.comment,
            panel.rater,
            panel.tag,
            panel.consent,
            panel.voter,
            *panel.votes,
        ],
        outputs=[panel.status, panel.remembered, revealed, left_by, panel.voter],
        api_name=False,
        concurrency_id="ratings",
        concurrency_limit=None,  # SQLite serialises writers; many raters submit at once
    ).success(
        h.reveal,
        [tab.result, panel.best, revealed],
        reveal_outputs,
        api_name=False,
        show_progress="hidden",
    ).success(
        lambda done: clear_after(done, n),
        [revealed],
        entered,
        api_name=False,
        show_progress="hidden",
    ).then(None, js=SHOW_SAVED)
    panel.rater.change(
        lambda name, by: clear_for_another_name(name, by, n),
        [panel.rater, left_by],
        [*entered, left_by],
        api_name=False,
        show_progress="hidden",
    )


# "Saved" where the person just pressed Submit: after a blind reveal redrew the cards (or on a
# phone, below the fold) it landed off-screen
SHOW_SAVED = """() => {
  const said = document.querySelector('#rating-status');
  if (said && said.innerText.trim()) {
    requestAnimationFrame(() => said.scrollIntoView({block: 'nearest'}));
  }
}"""
