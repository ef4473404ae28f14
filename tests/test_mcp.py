"""Become Lab as an MCP server: the app launched as app.py launches it (mcp_server on), listed
and called through the MCP protocol (streamable HTTP) by the `mcp` client an assistant uses."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mcp import ClientSession  # gradio[mcp] (requirements.txt)
from mcp.client.streamable_http import streamablehttp_client


@pytest.fixture(scope="module")
def mcp_app(tiny_services):
    from conftest import served

    assert tiny_services.settings.mcp_server  # on by default (BECOME_MCP_SERVER)
    with served(tiny_services, mcp_server=tiny_services.settings.mcp_server) as demo:
        yield demo


def _session(url: str, work: Any) -> Any:
    async def run() -> Any:
        async with streamablehttp_client(url) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    # in a thread of its own: the browser tests' Playwright keeps an event loop running in
    # this one, where asyncio.run refuses to start another
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_mcp_lists_compare_rate_leaderboard_with_their_docstrings(mcp_app):
    url = mcp_app.local_url.rstrip("/") + "/gradio_api/mcp/"

    async def list_tools(session: ClientSession) -> Any:
        return (await session.list_tools()).tools

    tools = {t.name: t for t in _session(url, list_tools)}
    assert set(tools) == {"compare", "rate", "leaderboard"}
    # descriptions and parameters come from the endpoints' docstrings (demo/api.py)
    assert tools["compare"].description.startswith("Render one selfie in one style")
    props = tools["compare"].inputSchema["properties"]
    assert {"selfie", "style", "prompt", "methods", "seed"} <= set(props)
    assert "base prompt" in props["prompt"]["description"]
    assert "on a person's behalf" in tools["rate"].description
    assert "ISO 8601" in tools["leaderboard"].inputSchema["properties"]["since"]["description"]

    # every staff action is an event of the page: none is reachable as a tool
    staff = [
        fn
        for fn in mcp_app.fns.values()
        if fn.fn is not None and fn.api_visibility != "public" and fn.api_name
    ]
    assert staff, "the page's own events (staff tab included) are expected to be private"
    tool_fns = {fn.fn for fn in mcp_app.fns.values() if fn.api_name in tools}
    assert not tool_fns & {fn.fn for fn in staff}
    names = " ".join(tools).lower()
    for word in ("staff", "retrain", "export", "deck", "session", "password", "reference"):
        assert word not in names


def _value(text: str) -> Any:
    """A tool's text output: Gradio writes a returned value as its Python repr (not JSON)."""
    import ast
    import re

    return ast.literal_eval(re.sub(r"\bnan\b", "None", text))


def test_mcp_reads_the_leaderboard(mcp_app, tiny_services, make_request, group_path):
    url = mcp_app.local_url.rstrip("/") + "/gradio_api/mcp/"
    res = tiny_services.comparison.compare(
        group_path, make_request("watercolor", "a person", ["raw", "template"], 7)
    )
    tiny_services.ratings.submit(
        res.comparison_id, {"raw": 2, "template": 5}, rater="mcp-test", session_tag="mcp-board"
    )

    async def call(session: ClientSession) -> Any:
        args = {"style": "watercolor", "session_tag": "mcp-board", "votes": "all"}
        return await session.call_tool("leaderboard", args)

    result = _session(url, call)
    assert not result.isError, result.content
    rows = _value(result.content[0].text)
    assert {(r["style"], r["method"], r["ratings"]) for r in rows} == {
        ("watercolor", "raw", 1),
        ("watercolor", "template", 1),
    }
    assert next(r for r in rows if r["method"] == "template")["rank"] == 1

    async def bad(session: ClientSession) -> Any:
        return await session.call_tool("leaderboard", {"votes": "sometimes"})

    refused = _session(url, bad)
    assert refused.isError and "votes='sometimes' is not allowed" in refused.content[0].text


def _outputs(value: Any) -> tuple[list[tuple[Any, str]], dict[str, Any]]:
    """(gallery, meta) from the compare tool's outputs, however deep Gradio nested them."""
    while len(value) == 1:
        value = value[0]
    gallery, meta = value
    return [(item["image"], item["caption"]) for item in gallery], meta


def test_mcp_runs_a_comparison(mcp_app, portrait_path):
    import base64

    url = mcp_app.local_url.rstrip("/") + "/gradio_api/mcp/"
    selfie = "data:image/png;base64," + base64.b64encode(portrait_path.read_bytes()).decode()
    args = {
        "selfie": selfie,
        "style": "anime",
        "prompt": "a portrait of a person",
        "methods": ["raw", "template"],
        "seed": 3,
    }

    async def call(session: ClientSession) -> Any:
        return await session.call_tool("compare", args)

    result = _session(url, call)
    assert not result.isError, result.content
    # Gradio hands the outputs (gallery, comparison JSON) back as one text: their Python repr
    (text,) = [c.text for c in result.content if c.type == "text"]
    gallery, meta = _outputs(_value(text))
    assert [caption for _, caption in gallery] == ["raw", "template"]
    assert meta["seed"] == 3 and meta["engine"] == "tiny"
    assert [o["method"] for o in meta["outputs"]] == ["raw", "template"]
    assert all(o["measures"]["identity"]["judge"] for o in meta["outputs"])


def test_an_mcp_selfie_leaves_no_file_behind(mcp_app, portrait_path, tmp_path):
    """Gradio's MCP layer writes a base64 image to its folder, then uploads it: both go."""
    import base64

    from tests.test_transient import a_new_photo, copies_left

    data = a_new_photo(portrait_path, tmp_path, 1).read_bytes()
    url = mcp_app.local_url.rstrip("/") + "/gradio_api/mcp/"
    args = {
        "selfie": "data:image/png;base64," + base64.b64encode(data).decode(),
        "style": "anime",
        "prompt": "a portrait of a person",
        "methods": ["raw"],
        "seed": 5,
    }

    async def call(session: ClientSession) -> Any:
        return await session.call_tool("compare", args)

    result = _session(url, call)
    assert not result.isError, result.content
    assert copies_left(data) == []


@pytest.mark.parametrize("address", ["http://127.0.0.1:9/selfie.jpg", "http://10.0.0.7/me.png"])
def test_an_mcp_selfie_url_that_is_not_fetched_says_why(mcp_app, address):
    url = mcp_app.local_url.rstrip("/") + "/gradio_api/mcp/"
    args = {"selfie": address, "style": "anime", "prompt": "p", "methods": ["raw"], "seed": 1}

    async def call(session: ClientSession) -> Any:
        return await session.call_tool("compare", args)

    result = _session(url, call)
    assert result.isError
    (text,) = [c.text for c in result.content if c.type == "text"]
    assert "is not a public address" in text and "base64" in text
    assert "upstream Gradio app" not in text


# ----------------------------------------------------------------------------- voters


@pytest.fixture(scope="module")
def mcp_behind_proxy(tiny_services):
    """The MCP app as a Space serves it: behind one proxy, whose X-Forwarded-For is trusted."""
    from dataclasses import replace

    from conftest import served

    settings = replace(tiny_services.settings, trusted_proxies=1)
    with served(replace(tiny_services, settings=settings), mcp_server=True) as demo:
        yield demo


def _rate_as(url: str, address: str, args: dict[str, Any]) -> Any:
    async def run() -> Any:
        headers = {"X-Forwarded-For": address}
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await session.call_tool("rate", args)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_two_mcp_users_with_one_name_keep_their_own_votes(
    mcp_behind_proxy, tiny_services, make_request, group_path
):
    """#41 item 9: Gradio relays every MCP call through one shared client (one session), so all
    MCP users were one voter and the second "alex" overwrote the first. An MCP caller is now its
    address, and its votes are stored as MCP votes."""
    url = mcp_behind_proxy.local_url.rstrip("/") + "/gradio_api/mcp/"
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 11)
    )
    cid = res.comparison_id
    for address, rating in (("198.51.100.1", 2), ("198.51.100.2", 5)):
        out = _rate_as(
            url, address, {"comparison_id": cid, "ratings": {"raw": rating}, "rater": "alex"}
        )
        assert not out.isError, out.content
    again = _rate_as(
        url, "198.51.100.1", {"comparison_id": cid, "ratings": {"raw": 3}, "rater": "alex"}
    )
    assert not again.isError and _value(again.content[0].text)["replaced_earlier"] is True
    rows = tiny_services.store.records(comparison_id=cid)
    first, second = (tiny_services.voters.pseudonym(f"198.51.100.{i}") for i in (1, 2))
    assert {(r.voter, r.rating, r.source) for r in rows} == {
        (f"mcp:{first}/alex", 3, "mcp"),
        (f"mcp:{second}/alex", 5, "mcp"),
    }
    assert not any("198.51.100" in r.voter for r in rows)  # an address is never stored
