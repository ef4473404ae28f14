"""Who is calling: a request's address, and whether it came over the API or from an MCP client.

Gradio hands an event a ``gr.Request`` (the page, ``gradio_client``, REST) and an MCP tool call
its own HTTP request (Starlette's: for an endpoint off the queue, Gradio's MCP server calls the
function directly with it). Both carry the connection's address, the headers and the URL; only
the first has a page session (``session_hash``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.app.access import client_address

MCP_PATH = "/gradio_api/mcp"  # where Gradio serves MCP (its /http and /sse routes below it)


def address(request: Any, trusted_proxies: int = 0) -> str:
    """The caller's address (see :func:`pipelines.app.access.client_address`); "" without a
    request (a handler called directly, in tests)."""
    if request is None:
        return ""
    client = getattr(request, "client", None)
    peer = getattr(client, "host", "") or ""
    return client_address(peer, _forwarded(getattr(request, "headers", None)), trusted_proxies)


def _forwarded(headers: Any) -> list[str]:
    """Every ``X-Forwarded-For`` line, in order (Gradio may hand the headers as a plain dict)."""
    if hasattr(headers, "getlist"):
        return list(headers.getlist("x-forwarded-for"))
    value = headers.get("x-forwarded-for") if hasattr(headers, "get") else None
    return [value] if isinstance(value, str) and value else []


def is_mcp(request: Any) -> bool:
    """Whether the call is an MCP tool call (the request is the MCP server's own)."""
    url = getattr(request, "url", None) if request is not None else None
    return MCP_PATH in str(getattr(url, "path", url) or "")


def api_caller(
    request: Any, trusted_proxies: int, pseudonym: Callable[[str], str]
) -> tuple[str, str, str]:
    """(voter client, source, address) of an API or MCP call.

    An MCP caller is its address: Gradio's MCP server is stateless (no MCP session id) and
    relays queued calls through one shared client (one page session for everyone), so the
    address is what tells two MCP users apart. A ``gradio_client`` keeps one session, which is
    its voter; a call that names no session is its address too. An address enters a voter only
    as ``pseudonym(address)`` (the app's keyed hash): ratings never hold an address.
    """
    where = address(request, trusted_proxies)
    if is_mcp(request):
        return f"mcp:{pseudonym(where)}", "mcp", where
    session = getattr(request, "session_hash", None) if request is not None else None
    return (f"api:{session}" if session else f"api@{pseudonym(where)}"), "api", where
