"""The named API endpoints, driven with gradio_client against the app on the tiny engine."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_api_lists_the_named_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/compare", "/rate", "/leaderboard"} <= names


def test_compare_rate_leaderboard_round_trip(client, group_path):
    images, meta = client.predict(
        handle_file(str(group_path)),
        "watercolor",
        "a portrait of a person",
        ["raw", "template", "learned"],
        42,
        api_name="/compare",
    )
    assert [img["caption"] for img in images] == ["raw", "template", "learned"]
    assert meta["seed"] == 42 and meta["engine"] == "tiny"
    prompts = {o["method"]: o["prompt"] for o in meta["outputs"]}
    assert prompts["raw"] == "a portrait of a person"
    assert prompts["learned"].startswith(prompts["template"])

    saved = client.predict(
        meta["comparison_id"],
        {"raw": 2, "template": 4, "learned": 5},
        "api-rater",
        "learned",
        "api-session",
        "",
        False,
        False,
        api_name="/rate",
    )
    assert saved["saved"] == 3

    rows = client.predict("watercolor", "api-session", "", "", "open", api_name="/leaderboard")
    by_method = {r["method"]: r for r in rows}
    assert by_method["learned"]["ratings"] == 1 and by_method["learned"]["mean"] == 5


def test_compare_errors_are_human_messages(client, group_path):
    with pytest.raises(AppError, match="Unknown method 'magic'"):
        client.predict(
            handle_file(str(group_path)), "anime", "a person", ["magic"], 1, api_name="/compare"
        )
    with pytest.raises(AppError, match="vaporwave"):
        client.predict(
            handle_file(str(group_path)), "vaporwave", "a person", ["raw"], 1, api_name="/compare"
        )


def test_rate_unknown_comparison_is_refused(client):
    with pytest.raises(AppError, match="not in memory"):
        client.predict("nope", {"raw": 3}, "x", "", "", "", False, False, api_name="/rate")


def test_thirty_raters_at_once_lose_no_vote(client, app_url, group_path, tiny_services):
    """A 30-person session: concurrent /rate calls on one row all land in the store."""
    from concurrent.futures import ThreadPoolExecutor

    _, meta = client.predict(
        handle_file(str(group_path)),
        "anime",
        "a person",
        ["raw", "template"],
        3,
        api_name="/compare",
    )
    cid = meta["comparison_id"]

    def rate(i: int) -> int:
        # 30 clients connecting at once on two shared cores can exceed httpx's 5 s default
        own = Client(app_url, verbose=False, httpx_kwargs={"timeout": 120})
        out = own.predict(
            cid,
            {"raw": 1 + i % 5, "template": 5 - i % 5},
            f"rater-{i}",
            "raw",
            "load-test",
            "",
            True,
            False,
            api_name="/rate",
        )
        return out["saved"]

    with ThreadPoolExecutor(max_workers=30) as pool:
        saved = list(pool.map(rate, range(30)))
    assert saved == [2] * 30
    rows = tiny_services.store.records(comparison_id=cid)
    assert len(rows) == 60 and len({r.rater for r in rows}) == 30


def test_two_clients_with_the_same_name_keep_their_own_votes(app_url, group_path, tiny_services):
    """A voter is a client (a browser), not a typed name: nobody overwrites anybody."""
    first, second = Client(app_url, verbose=False), Client(app_url, verbose=False)
    _, meta = first.predict(
        handle_file(str(group_path)), "anime", "a person", ["raw"], 8, api_name="/compare"
    )
    cid = meta["comparison_id"]
    for client, rating in ((first, 2), (second, 5)):
        client.predict(cid, {"raw": rating}, "alice", "", "", "", False, False, api_name="/rate")
    first.predict(cid, {"raw": 3}, "alice", "", "", "", False, False, api_name="/rate")  # re-vote
    rows = tiny_services.store.records(comparison_id=cid)
    assert sorted(r.rating for r in rows) == [3, 5]  # the first's vote replaced, the second kept
    assert len({r.voter for r in rows}) == 2 and {r.rater for r in rows} == {"alice"}


def test_an_api_selfie_leaves_no_file_behind(client, portrait_path, tmp_path):
    from tests.test_transient import a_new_photo, copies_left

    photo = a_new_photo(portrait_path, tmp_path, 2)
    client.predict(handle_file(str(photo)), "anime", "a person", ["raw"], 4, api_name="/compare")
    assert copies_left(photo.read_bytes()) == []


def test_an_unreadable_api_selfie_is_refused_and_leaves_no_file(client, tmp_path):
    from tests.test_transient import copies_left

    pdf = tmp_path / "selfie.jpg"
    pdf.write_bytes(b"%PDF-1.7\n" + b"api" * 50)
    with pytest.raises(Exception, match="PDF"):
        client.predict(handle_file(str(pdf)), "anime", "a person", ["raw"], 4, api_name="/compare")
    assert copies_left(pdf.read_bytes()) == []


def test_api_votes_are_marked_and_a_board_can_leave_them_out(client, group_path, tiny_services):
    """#41 item 9: every REST call is a new voter and every name another, so a script can
    stuff votes; they are stored as API votes, and `source="page"` leaves them out."""
    _, meta = client.predict(
        handle_file(str(group_path)),
        "anime",
        "a person",
        ["raw", "template"],
        31,
        api_name="/compare",
    )
    cid, tag = meta["comparison_id"], "source-filter"
    tiny_services.ratings.submit(
        cid, {"raw": 5, "template": 1}, rater="on-the-page", session_tag=tag
    )
    for i in range(3):  # a script's votes, each under a name of its own
        own = Client(client.src, verbose=False)
        own.predict(cid, {"raw": 1, "template": 5}, f"bot-{i}", "", tag, api_name="/rate")
    rows = tiny_services.store.records(comparison_id=cid)
    assert {(r.rater, r.source) for r in rows if r.method == "raw"} == {
        ("on-the-page", "page"),
        *((f"bot-{i}", "api") for i in range(3)),
    }

    def board(source: str) -> dict[str, int]:
        rows = client.predict("anime", tag, "", "", "all", "", source, api_name="/leaderboard")
        return {r["method"]: r["ratings"] for r in rows}

    assert board("all") == {"raw": 4, "template": 4}
    assert board("page") == {"raw": 1, "template": 1}
    assert board("api") == {"raw": 3, "template": 3}
    with pytest.raises(AppError, match="source='bots' is not allowed"):
        board("bots")
