"""Errors of the feedback package: one base, :class:`FeedbackError`, for every bad input."""

from __future__ import annotations

from pipelines.core.errors import InputError


class FeedbackError(InputError):
    """Bad input to the feedback store or its statistics; the message says what is allowed."""


class RatingError(FeedbackError):
    """A submitted rating is invalid."""


class FilterError(FeedbackError):
    """A query filter (date, blind flag, ...) is invalid."""


class SchemaError(FeedbackError):
    """The database was written by a newer version of the app."""
