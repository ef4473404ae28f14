"""The one base of every error whose message is meant for the person using the app.

The UI and the API show a :class:`UserError`'s message as it is (``demo.errors`` turns it into a
``gr.Error``); any other exception is a bug: it is logged with an id and shown as a generic
failure. Subclasses also derive from the builtin that fits (``ValueError``, ``RuntimeError``,
``KeyError``), so ``except ValueError`` keeps working for library callers.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user gave or asked for cannot be done; the message says why and what to do."""


class InputError(UserError, ValueError):
    """A value given by the user (or a setting, a file) that the app cannot use; names the value."""


class UnavailableError(UserError, RuntimeError):
    """Something cannot run here (weights, models or data missing); says what is missing."""
