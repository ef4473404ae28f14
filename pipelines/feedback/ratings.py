"""From a rendered comparison to stored ratings.

The comparison's prompts, seed, images and measures are taken from the server's own results
(the recent live comparisons, or the rows of the loaded deck), never from the client, so a
rating always describes exactly what was rendered.

Blind votes cannot be peeked: a blind submission reveals the methods only once it rates every
rendered output of the row; the store then keeps any later change by that voter as not blind.
During a blind session a vote that is not blind is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.feedback.errors import RatingError
from pipelines.feedback.records import SOURCES, RatingRecord, png_bytes, voter_id
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.store import FeedbackStore

if TYPE_CHECKING:
    from pipelines.core.recent import RecentComparisons
    from pipelines.core.results import ComparisonResult


@dataclass(frozen=True)
class DeckRowRef:
    """A pre-rendered deck row the server holds: its result, and which deck row it is."""

    result: ComparisonResult
    deck_id: str
    row_id: str


# comparison id -> the loaded deck's row, or None when it is not a deck row
DeckRows = Callable[[str], DeckRowRef | None]


@dataclass(frozen=True)
class Receipt:
    """What a submission stored, and the row's methods and prompts once they may be shown."""

    saved: int
    replaced_earlier: bool
    outputs: tuple[dict[str, Any], ...] = field(default=())  # revealed methods and prompts
    revealed: bool = True  # False: a blind row with outputs still unrated; outputs is empty
    unrated: int = 0  # rendered outputs this submission left unrated


class SubmitRatings(Protocol):
    """The signature of :meth:`RatingService.submit`, for the UI and the API."""

    def __call__(
        self,
        comparison_id: str,
        ratings: Mapping[str, int | str | None],
        *,
        rater: str,
        best: str | None = None,
        session_tag: str = "",
        comment: str = "",
        blind: bool = False,
        consent_images: bool = False,
        voter: str = "",
        source: str = "page",
    ) -> Receipt:
        """Store one rater's votes for one comparison row."""
        ...


def rating_value(method: str, value: object) -> int | None:
    """``value`` as a rating 1..5, ``None`` when unrated; 3.5, true, "five", 0 or 6 are refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):  # True is an int to Python
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
    if number is None or not 1 <= number <= 5:
        raise RatingError(
            f"The rating for {method!r} is {value!r}: rate each output with a whole number "
            "from 1 to 5."
        )
    return number


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RatingError(f"{name}={value!r} is not allowed: it must be text.")
    return value


class RatingService:
    """Validates a row of ratings against the rendered comparison and stores it."""

    def __init__(
        self,
        store: FeedbackStore,
        recent: RecentComparisons,
        deck_rows: DeckRows | None = None,
        blind_session: Callable[[], bool] | None = None,
        live_session: Callable[[], SessionConfig] | None = None,
    ) -> None:
        self.store = store
        self.recent = recent
        self.deck_rows = deck_rows
        # whether the live facilitator session is blind: then only blind votes are taken
        self.blind_session = blind_session
        # the live session: votes under its tag must be for its styles and methods
        self.live_session = live_session

    def _check_session(self, tag: str, style: str, methods: list[str]) -> None:
        """A vote under the live session's tag must be for one of its styles and methods (the
        facilitator chose them; a page only offers those, an API call is held to them too)."""
        live = self.live_session() if self.live_session is not None else None
        if live is None or not live.session_tag or tag != live.session_tag:
            return
        if live.styles and style not in live.styles:
            raise RatingError(
                f"style {style!r} is not part of session {tag!r} (its styles: "
                f"{', '.join(live.styles)}): generate a row in one of those"
            )
        outside = [m for m in methods if m not in live.methods]
        if outside:
            raise RatingError(
                f"method {', '.join(map(repr, outside))} is not part of session {tag!r} (its "
                f"methods: {', '.join(live.methods)}): rate only those"
            )

    def submit(
        self,
        comparison_id: str,
        ratings: Mapping[str, int | str | None],
        *,
        rater: str,
        best: str | None = None,
        session_tag: str = "",
        comment: str = "",
        blind: bool = False,
        consent_images: bool = False,
        voter: str = "",
        source: str = "page",
    ) -> Receipt:
        """Store one rater's votes for one comparison row. Submitting again changes the outputs
        it rates; the voter's other ratings of the row, best pick and comment stay as they were
        unless given anew (the page clears a saved row for the next person at a shared screen,
        so a correction rates just the picture it changes).

        ``voter`` is the client that votes (the browser's server-issued id, an API client's
        session, an MCP caller's address); the stored voter is that client and the typed name
        together (:func:`~pipelines.feedback.records.voter_id`): two people who type the same
        name on two browsers keep their own votes, and so do two people who type two names on one
        shared browser. Without a client (a caller in this process), the name is the voter.
        ``source`` says where the vote came from (``page``, ``api`` or ``mcp``; stored with it,
        so a board can leave scripted votes out).

        A rating is a whole number 1 to 5 (``4``, ``4.0`` or ``"4"`` from the page's radios);
        ``None`` or ``""`` leaves an output unrated. Anything else is refused, never rounded.
        A deck row's ratings carry its deck and row ids; its images are the deck's own files,
        so ``consent_images`` does not copy them. A row read back from disk after a restart has
        no images (they were never written there): its ratings are stored without them.

        A blind submission that leaves rendered outputs unrated is stored (blind) but reveals
        nothing: the receipt has ``revealed=False`` and no outputs. Rating every output reveals
        the methods; after that, ratings this voter gives or changes here, and ratings anyone
        gives this row on the same client under another name, are stored as not blind. While
        the live session is blind, ``blind=False`` is refused.
        """
        if not isinstance(blind, bool):
            raise RatingError(f"blind={blind!r} is not allowed: use true or false")
        if source not in SOURCES:
            raise RatingError(f"source={source!r} is not allowed: use one of {', '.join(SOURCES)}")
        if not blind and self.blind_session is not None and self.blind_session():
            raise RatingError(
                "this session is blind: votes are given with the methods hidden. Submit with "
                "blind mode on (on the page: reload it, generate a new row, then rate it)"
            )
        deck = self.deck_rows(comparison_id) if self.deck_rows is not None else None
        result = deck.result if deck is not None else self.recent.get(comparison_id)
        rendered = {o.method: o for o in result.outputs if o.rendered}
        rater = _text("rater", rater)
        session_tag = _text("session_tag", session_tag)
        comment = _text("comment", comment)
        best = _text("best", best) or None
        rater = " ".join(rater.split())
        if not rater:
            raise RatingError("rater is empty: type your name or a nickname before submitting")
        if not isinstance(ratings, Mapping):
            raise RatingError(
                f"ratings={ratings!r} is not allowed: map each method to 1-5, e.g. {{'raw': 4}}"
            )
        scores = {_text("method", m): rating_value(m, r) for m, r in ratings.items()}
        given = {m: r for m, r in scores.items() if r is not None}
        if not given:
            raise RatingError("no rating given: rate at least one output from 1 to 5")
        for method in given:
            if method not in rendered:
                raise RatingError(
                    f"method {method!r} has no output in this comparison: "
                    f"rate one of {', '.join(rendered)}"
                )
        if deck is None:
            self._check_session(session_tag.strip(), result.request.style, list(given))
        if best is not None and best not in rendered:
            raise RatingError(f"best pick {best!r} is not one of {', '.join(rendered)}")
        client = _text("voter", voter).strip()[:100]
        who = voter_id(client, rater)
        # what this voter gave this row before and does not rate now: kept as it was (a page
        # clears a saved row for the next person; rating one picture again changes that one)
        kept = {
            r.method: r
            for r in self.store.records(comparison_id=comparison_id)
            if r.voter == who and r.method in rendered and r.method not in given
        }
        best = best or next((m for m, r in kept.items() if r.is_best), None)
        if best is not None and best not in given and best not in kept:
            raise RatingError(f"you picked {best!r} as best: rate it too (1 to 5), then submit")
        comment = comment.strip() or next((r.comment for r in kept.values() if r.comment), "")
        n_rendered = max(len(rendered), 1)
        latency = result.timings.get("render", 0.0) / n_rendered
        created = datetime.now(UTC).isoformat(timespec="seconds")
        records, images = [], {}
        for method, rating in given.items():
            out = rendered[method]
            h = out.image_hash  # computed when it was rendered
            if consent_images and deck is None and out.image is not None:
                images[h] = png_bytes(out.image)
            records.append(
                RatingRecord(
                    created_at=created,
                    session_tag=session_tag.strip(),
                    rater=rater,
                    voter=who,
                    comparison_id=comparison_id,
                    style=result.request.style,
                    method=method,
                    base_prompt=result.request.prompt,
                    final_prompt=out.prompt or "",
                    negative_prompt=out.negative_prompt or "",
                    seed=result.request.seed,
                    engine=result.engine,
                    model_id=json.dumps(result.model_ids, sort_keys=True),
                    image_hash=h,
                    latency_s=round(latency, 4),
                    rating=rating,
                    is_best=(method == best),
                    comment=comment.strip(),
                    blind=bool(blind),
                    image_path=None,
                    measures=json.dumps(out.measures.to_json()) if out.measures else "",
                    deck_id=deck.deck_id if deck else "",
                    row_id=deck.row_id if deck else "",
                    source=source,
                )
            )
        saved = len(records)
        records += [  # one submission, one blind value: the store keeps an unchanged one's flag
            replace(r, is_best=r.method == best, comment=comment, blind=bool(blind), source=source)
            for r in kept.values()
        ]
        unrated = len(set(rendered) - set(given) - set(kept))
        # a blind row's methods are shown only once every rendered output is rated
        reveal = not blind or unrated == 0
        replaced = self.store.submit(records, images=images or None, reveal=reveal, screen=client)
        outputs = tuple(
            {"method": o.method, "prompt": o.prompt, "score": o.score} for o in result.outputs
        )
        return Receipt(
            saved=saved,
            replaced_earlier=bool(replaced),
            outputs=outputs if reveal else (),
            revealed=reveal,
            unrated=unrated,
        )
