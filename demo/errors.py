"""The one place where errors become messages on the page."""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from pipelines.core.errors import UserError

log = logging.getLogger(__name__)


@contextmanager
def user_errors(action: str, passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Show a :class:`UserError`'s message as it is; log anything else with an id to find it.

    ``action`` names what failed in the generic message, e.g. "The comparison"; exceptions in
    ``passthrough`` are signals for the caller and pass unchanged.
    """
    try:
        yield
    except (gr.Error, *passthrough):
        raise
    except UserError as exc:
        # the page shows error toasts as HTML, and messages quote what the user typed
        raise gr.Error(html.escape(str(exc), quote=False)) from None
    except Exception:
        error_id = uuid.uuid4().hex[:8]
        log.exception("%s failed [error id %s]", action, error_id)
        raise gr.Error(
            f"{action} failed unexpectedly. Please try again; if it keeps failing, tell the "
            f"organisers the error id {error_id}."
        ) from None
