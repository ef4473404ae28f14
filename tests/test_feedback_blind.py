"""Blind votes cannot be peeked: the reveal waits for every output, a later change is not blind,
and a blind session takes only blind votes (issue #17, section 3). No browser here."""

from __future__ import annotations

import pytest

from pipelines.feedback.errors import RatingError
from pipelines.feedback.leaderboard import leaderboard
from pipelines.feedback.ratings import RatingService
from pipelines.feedback.records import RatingRecord, voter_id
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.store import FeedbackStore


def row(ratings: dict[str, int], best: str | None = None, blind: bool = True) -> list[RatingRecord]:
    return [
        RatingRecord(
            rater="ann",
            voter="v1",
            comparison_id="c1",
            style="anime",
            method=m,
            final_prompt=m,
            seed=1,
            rating=r,
            is_best=m == best,
            blind=blind,
        )
        for m, r in ratings.items()
    ]


def flags(store: FeedbackStore) -> dict[str, tuple[int, bool]]:
    return {r.method: (r.rating, r.blind) for r in store.records(comparison_id="c1")}


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "ratings.sqlite3")


def test_before_the_reveal_every_blind_rating_stays_blind(store):
    store.submit(row({"raw": 2}))
    store.submit(row({"raw": 3, "template": 4}))  # changed and added, still unrevealed
    assert not store.revealed("c1", "v1")
    assert flags(store) == {"raw": (3, True), "template": (4, True)}


def test_after_the_reveal_a_changed_or_new_rating_is_not_blind(store):
    store.submit(row({"raw": 2, "template": 4}, best="template"), reveal=True)
    assert store.revealed("c1", "v1") and not store.revealed("c1", "someone-else")
    # raw changed, template as it was, learned new: the client still claims blind
    store.submit(row({"raw": 5, "template": 4, "learned": 1}, best="template"))
    assert flags(store) == {"raw": (5, False), "template": (4, True), "learned": (1, False)}
    # a moved best pick is a change too, for the output that loses it and the one that gets it
    store.submit(row({"raw": 5, "template": 4, "learned": 1}, best="raw"))
    assert flags(store) == {"raw": (5, False), "template": (4, False), "learned": (1, False)}
    # changing it back does not make a peeked rating blind again
    store.submit(row({"raw": 2, "template": 4}, best="template"))
    assert flags(store) == {"raw": (2, False), "template": (4, False)}


def test_the_leaderboards_blind_series_holds_only_ratings_given_blind(store):
    store.submit(row({"raw": 2, "template": 4}), reveal=True)
    store.submit(row({"raw": 5, "template": 4}))  # raw changed after seeing the methods
    blind = leaderboard(store.records(), blind=True, n_boot=0)
    assert {(r.method, r.ratings, r.mean) for r in blind} == {("template", 1, 4.0)}
    open_ = leaderboard(store.records(), blind=False, n_boot=0)
    assert {(r.method, r.ratings, r.mean) for r in open_} == {("raw", 1, 5.0)}


@pytest.fixture(scope="module")
def rendered(tiny_services, group_path, make_request):
    return tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template", "learned"], 5)
    )


def test_a_partial_blind_submit_reveals_nothing_and_a_full_one_reveals(
    tmp_path, tiny_services, rendered
):
    store = FeedbackStore(tmp_path / "r.sqlite3")
    service = RatingService(store, tiny_services.ratings.recent)
    cid = rendered.comparison_id
    first = service.submit(cid, {"raw": 4}, rater="ann", voter="v1", blind=True)
    assert not first.revealed and first.unrated == 2 and first.outputs == ()
    ann = voter_id("v1", "ann")  # the stored voter: this browser and this name
    assert not store.revealed(cid, ann)
    full = service.submit(
        cid, {"raw": 4, "template": 2, "learned": 3}, rater="ann", voter="v1", blind=True
    )
    assert full.revealed and full.unrated == 0
    # revealed to ann only: someone else typing their name on the same browser sees nothing
    assert store.revealed(cid, ann) and not store.revealed(cid, voter_id("v1", "bo"))
    assert [o["method"] for o in full.outputs] == ["raw", "template", "learned"]
    assert all(r.blind for r in store.records(comparison_id=cid))
    after = service.submit(
        cid, {"raw": 1, "template": 2, "learned": 3}, rater="ann", voter="v1", blind=True
    )
    assert after.revealed  # once seen, the row stays revealed for this voter
    stored = {r.method: r.blind for r in store.records(comparison_id=cid)}
    assert stored == {"raw": False, "template": True, "learned": True}


def test_after_a_reveal_the_next_person_on_the_same_browser_is_not_blind(
    tmp_path, tiny_services, rendered
):
    """A kiosk: ann's full submit reveals the methods on the shared screen; bo then types his
    name there and rates the same row with the methods in view. His votes are not blind; a
    third person on another browser still votes blind."""
    store = FeedbackStore(tmp_path / "r.sqlite3")
    service = RatingService(store, tiny_services.ratings.recent)
    cid = rendered.comparison_id
    all3 = {"raw": 4, "template": 2, "learned": 3}
    assert service.submit(cid, all3, rater="ann", voter="kiosk", blind=True).revealed
    service.submit(cid, {"raw": 5, "template": 1}, rater="bo", voter="kiosk", blind=True)
    service.submit(cid, {"raw": 2}, rater="cy", voter="laptop", blind=True)
    stored = {(r.rater, r.method): r.blind for r in store.records(comparison_id=cid)}
    assert stored == {
        **{("ann", m): True for m in all3},  # given before the reveal
        ("bo", "raw"): False,
        ("bo", "template"): False,
        ("cy", "raw"): True,
    }


def test_a_labelled_vote_counts_as_a_reveal(tmp_path, tiny_services, rendered):
    store = FeedbackStore(tmp_path / "r.sqlite3")
    service = RatingService(store, tiny_services.ratings.recent)
    cid = rendered.comparison_id
    assert service.submit(cid, {"raw": 4}, rater="bo", voter="v2").revealed
    service.submit(cid, {"raw": 2}, rater="bo", voter="v2", blind=True)
    assert [r.blind for r in store.records(comparison_id=cid)] == [False]


def test_a_blind_session_refuses_a_vote_that_is_not_blind(tmp_path, tiny_services, rendered):
    store = FeedbackStore(tmp_path / "r.sqlite3")
    session_blind = [True]
    service = RatingService(
        store, tiny_services.ratings.recent, blind_session=lambda: session_blind[0]
    )
    cid = rendered.comparison_id
    with pytest.raises(RatingError, match="this session is blind"):
        service.submit(cid, {"raw": 4}, rater="cy", voter="v3", blind=False)
    with pytest.raises(RatingError, match="blind='yes' is not allowed"):
        service.submit(cid, {"raw": 4}, rater="cy", voter="v3", blind="yes")  # type: ignore[arg-type]
    assert store.count() == 0
    service.submit(cid, {"raw": 4}, rater="cy", voter="v3", blind=True)
    session_blind[0] = False  # the session ended: labelled votes are taken again
    service.submit(cid, {"raw": 4}, rater="cy", voter="v3", blind=False)
    assert [r.blind for r in store.records(comparison_id=cid)] == [False]


def test_votes_under_a_live_session_tag_are_held_to_its_styles_and_methods(
    tmp_path, tiny_services, rendered
):
    # #28 item 4: a participant ticked methods the session left out; its votes were stored
    store = FeedbackStore(tmp_path / "r.sqlite3")
    live = [SessionConfig("workshop", methods=("raw", "template"))]
    service = RatingService(store, tiny_services.ratings.recent, live_session=lambda: live[0])
    cid = rendered.comparison_id  # anime; raw, template, learned
    with pytest.raises(RatingError, match=r"'learned' is not part of session 'workshop'"):
        service.submit(cid, {"raw": 4, "learned": 5}, rater="di", session_tag="workshop")
    live[0] = SessionConfig("workshop", styles=("watercolor",), methods=("raw", "learned"))
    with pytest.raises(RatingError, match=r"style 'anime' is not part of session 'workshop'"):
        service.submit(cid, {"raw": 4}, rater="di", session_tag="workshop")
    assert store.count() == 0
    # another tag, or no session running: the facilitator's limits do not apply
    service.submit(cid, {"learned": 5}, rater="di", session_tag="other")
    live[0] = SessionConfig()
    service.submit(cid, {"learned": 5}, rater="ed", session_tag="workshop")
    assert store.count() == 2


def test_a_tagged_session_offers_only_its_methods_on_the_page():
    from demo.layout import MethodAvailability, session_methods

    five = ["raw", "template", "learned", "inversion", "ensemble"]
    live = [SessionConfig("workshop", methods=("raw", "template", "learned"))]
    methods = MethodAvailability(
        lambda: dict.fromkeys(five),
        five,
        {},
        session_methods=lambda: session_methods(live[0]),
    )
    update, _ = methods.update(["raw", "inversion", "ensemble"])
    offered = [value for _label, value in update["choices"]]
    assert offered == ["raw", "template", "learned"] and update["value"] == ["raw"]
    assert update["info"] == "The facilitator chose these methods for this session."
    live[0] = SessionConfig()  # no session: every method is offered
    update, _ = methods.update(["inversion"])
    assert [v for _l, v in update["choices"]] == five and update["value"] == ["inversion"]


def test_participants_never_see_a_running_blind_sessions_standings(store):
    # #28 item 3: a participant's Leaderboard tab showed which method won the blind session
    from dataclasses import replace

    from pipelines.feedback.leaderboard import (
        BlindSessionHidden,
        filtered_frame,
        participants_frame,
    )
    from pipelines.feedback.store import RecordFilter

    def tagged(ratings: dict[str, int], tag: str, cid: str) -> list[RatingRecord]:
        return [replace(r, session_tag=tag, comparison_id=cid) for r in row(ratings)]

    store.submit(tagged({"raw": 5, "template": 1}, "blind-one", "c1"))
    store.submit(tagged({"raw": 2, "template": 4}, "earlier", "c2"))
    live = [SessionConfig("blind-one", blind=True)]
    board = participants_frame(store, lambda: live[0], RecordFilter())
    assert int(board["ratings"].sum()) == 2  # only the earlier session's two ratings
    with pytest.raises(
        BlindSessionHidden, match="'blind-one' are hidden until the facilitator ends"
    ):
        participants_frame(store, lambda: live[0], RecordFilter(session_tag="blind-one"))
    staff = filtered_frame(store, RecordFilter(session_tag="blind-one"))  # staff: all of it
    assert int(staff["ratings"].sum()) == 2
    live[0] = SessionConfig("blind-one", blind=False)  # labelled votes: nothing to unblind
    assert int(participants_frame(store, lambda: live[0], RecordFilter())["ratings"].sum()) == 4
    live[0] = SessionConfig()  # ended: the whole board
    assert int(participants_frame(store, lambda: live[0], RecordFilter())["ratings"].sum()) == 4
