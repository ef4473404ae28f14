"""What one rating is: :class:`RatingRecord`, its validation, time stamps and image hashing.

A submission is checked by :func:`validate` before the store writes it; ``created_at`` times are
normalised by :func:`to_utc_iso` so that text order is time order. :func:`image_sha256` hashes
the PNG bytes of :func:`png_bytes`, which is what the store keeps for consented outputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from pipelines.core.results import LEARNED_MODEL
from pipelines.feedback.errors import FilterError, RatingError

if TYPE_CHECKING:
    from PIL import Image

MAX_TEXT = 4000  # prompts, comments: generous, but a bound keeps a pasted novel out of the db
MAX_NAME = 100  # rater, session tag, style, method, ids
# where a vote came from: the app's page, the API (gradio_client, REST) or an MCP client
SOURCES = ("page", "api", "mcp")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RatingRecord:
    """One rater's rating of one output in one comparison row."""

    rater: str
    comparison_id: str  # one row of outputs: same face, style, seed
    style: str
    method: str
    final_prompt: str  # exactly what was rendered
    seed: int
    rating: int  # 1..5
    is_best: bool = False  # the rater's "best of this row" pick
    base_prompt: str = ""
    negative_prompt: str = ""
    engine: str = ""
    model_id: str = ""
    image_hash: str = ""  # sha256 of the output image, see image_sha256(); "" if unknown
    latency_s: float = 0.0
    comment: str = ""
    blind: bool = False  # rated with outputs shuffled and unlabelled
    session_tag: str = ""  # groups a facilitated meeting
    created_at: str = ""  # UTC ISO 8601; "" = stamped at submission
    image_path: str | None = None  # set by the store when the image was stored (consent)
    measures: str = ""  # the output's automatic measures as JSON (Measures.to_json); "" = none
    deck_id: str = ""  # the deck the rated row came from; "" = a live comparison
    row_id: str = ""  # the row within that deck
    # who voted: voter_id(client, rater), the browser's remembered id (or an API client's
    # session) and the typed name together; "" = the rater name. Two people who type the same
    # name on two browsers, or two names on one shared browser, are two voters: neither
    # replaces the other's votes.
    voter: str = ""
    source: str = "page"  # one of SOURCES: the page, the API or an MCP client

    @property
    def learned_model(self) -> str:
        """The learned model's version that ranked the rated row's prompts, from ``model_id``
        (the row's model ids as JSON); "" for older rows, which did not record it."""
        try:
            ids = json.loads(self.model_id) if self.model_id else {}
        except ValueError:
            return ""
        value = ids.get(LEARNED_MODEL, "") if isinstance(ids, dict) else ""
        return value if isinstance(value, str) else ""

    @property
    def voter_key(self) -> str:
        """The identity a re-submission replaces: the voter, else (older rows) the name."""
        return self.voter or self.rater


def voter_id(client: str, rater: str) -> str:
    """Who votes: ``client`` (a browser's server-issued id, an API client's session, an MCP
    caller's address) and the typed name (whitespace collapsed) together, ``"<client>/<name>"``;
    the name alone without a client.

    A kiosk's browser shared by two people who type two names holds two voters; two browsers
    whose people type one name hold two voters too. A ``/`` in the client (and in a name that
    stands alone) is escaped, so the first ``/`` always ends the client: no client and name can
    spell another voter (a name ``"<id>/carol"`` is never the voter ``carol`` of client ``id``).
    """
    name = " ".join((rater or "").split())
    client = (client or "").strip()
    if not client:
        return name.replace("/", "%2F")  # a name alone never holds the "/" of a client's voter
    return f"{client.replace('%', '%25').replace('/', '%2F')}/{name}"


def legacy_source(voter: str) -> str:
    """The source of a rating stored before votes carried one: the API's voters were
    ``"api:<session>/<name>"`` (MCP calls among them), every other vote came from the page."""
    return "api" if (voter or "").startswith("api:") else "page"


BOOL_COLUMNS = ("is_best", "blind")  # RatingRecord's bool fields, 0/1 in SQLite


def image_sha256(image: Image.Image) -> str:
    """sha256 of the image's PNG bytes, as stored: ``images/<hash>.png`` hashes to its own name."""
    return hashlib.sha256(png_bytes(image)).hexdigest()


def utc_now() -> str:
    """The current UTC time as ISO 8601 with microseconds, the store's ``created_at`` format."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def to_utc_iso(value: str | datetime | date, what: str = "created_at") -> str:
    """Normalise a time to ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` so that text order is time order.

    Naive times and plain dates are taken as UTC.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FilterError(
                f"{what}={value!r} is not a date: use ISO 8601, e.g. 2025-03-01 or "
                "2025-03-01T14:30:00+00:00"
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise FilterError(f"{what}={value!r} is not a date: use a datetime or an ISO 8601 string")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def validate(records: Sequence[RatingRecord]) -> list[RatingRecord]:
    """Check a submission and return it with text fields stripped; raises :class:`RatingError`."""
    if isinstance(records, RatingRecord) or not isinstance(records, Sequence):
        raise RatingError(f"records={records!r} is not allowed: pass a list of RatingRecord")
    if not records:
        raise RatingError("empty submission: rate at least one output")
    out = [_check_record(r) for r in records]
    rows: dict[tuple[str, str], list[RatingRecord]] = {}
    for r in out:
        rows.setdefault((r.comparison_id, r.voter_key), []).append(r)
    for (cid, _voter), group in rows.items():
        where = f"comparison {cid!r} rated by {group[0].rater!r}"
        methods = [r.method for r in group]
        dupes = sorted({m for m in methods if methods.count(m) > 1})
        if dupes:
            raise RatingError(f"{where} rates method(s) {', '.join(dupes)} twice: one rating each")
        best = [r.method for r in group if r.is_best]
        if len(best) > 1:
            raise RatingError(
                f"{where} picks {len(best)} bests ({', '.join(best)}): pick at most one per row"
            )
        for column in ("style", "blind"):
            values = sorted({str(getattr(r, column)) for r in group})
            if len(values) > 1:
                raise RatingError(f"{where} mixes {column} values {values}: one row has one")
    return out


def _check_record(r: RatingRecord) -> RatingRecord:
    if not isinstance(r, RatingRecord):
        raise RatingError(f"{r!r} is not a RatingRecord")
    texts = {f.name: getattr(r, f.name) for f in fields(r) if f.type in ("str", str)}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise RatingError(f"{name}={value!r} is not allowed: use a string")
    r = replace(r, **{k: v.strip() for k, v in texts.items()})
    for name in ("rater", "comparison_id", "style", "method"):
        value = getattr(r, name)
        if not value:
            hint = " (your name or the session tag)" if name == "rater" else ""
            raise RatingError(f"{name} is empty: give a non-empty {name}{hint}")
        if len(value) > MAX_NAME:
            raise RatingError(f"{name}={value[:20]!r}… is {len(value)} characters: max {MAX_NAME}")
    for name in ("session_tag", "deck_id", "row_id"):
        if len(getattr(r, name)) > MAX_NAME:
            raise RatingError(f"{name} is {len(getattr(r, name))} characters: max {MAX_NAME}")
    if bool(r.deck_id) != bool(r.row_id):
        raise RatingError(
            f"deck_id={r.deck_id!r} and row_id={r.row_id!r}: a deck rating names both, "
            "a live one neither"
        )
    if r.measures:
        _check_measures(r.measures)
    for name in ("final_prompt", "base_prompt", "negative_prompt", "comment", "model_id"):
        if len(getattr(r, name)) > MAX_TEXT:
            raise RatingError(f"{name} is {len(getattr(r, name))} characters: max {MAX_TEXT}")
    if isinstance(r.rating, bool) or not isinstance(r.rating, int) or not 1 <= r.rating <= 5:
        raise RatingError(
            f"rating={r.rating!r} for method {r.method!r} is not allowed: use an integer 1 to 5"
        )
    if r.source not in SOURCES:
        raise RatingError(f"source={r.source!r} is not allowed: use one of {', '.join(SOURCES)}")
    for name in BOOL_COLUMNS:
        if not isinstance(getattr(r, name), bool):
            raise RatingError(f"{name}={getattr(r, name)!r} is not allowed: use True or False")
    if isinstance(r.seed, bool) or not isinstance(r.seed, int) or r.seed < 0:
        raise RatingError(f"seed={r.seed!r} is not allowed: use an integer >= 0")
    lat = r.latency_s
    if isinstance(lat, bool) or not isinstance(lat, (int, float)) or not math.isfinite(lat):
        raise RatingError(f"latency_s={lat!r} is not allowed: use a finite number of seconds >= 0")
    if lat < 0:
        raise RatingError(f"latency_s={lat!r} is not allowed: use a finite number of seconds >= 0")
    if r.image_hash and not _HEX64.match(r.image_hash):
        raise RatingError(
            f"image_hash={r.image_hash[:20]!r} is not allowed: use 64 lowercase hex digits "
            "(image_sha256) or an empty string"
        )
    if r.image_path is not None:
        raise RatingError(
            f"image_path={r.image_path!r} is set by the store: pass the image in submit(images=...)"
        )
    try:
        created = to_utc_iso(r.created_at) if r.created_at else ""
    except FilterError as e:
        raise RatingError(str(e)) from None
    # stored with its voter: a record without one votes under its name, as before voters
    return replace(r, created_at=created, latency_s=float(lat), voter=r.voter_key)


def _check_measures(text: str) -> None:
    if len(text) > MAX_TEXT:
        raise RatingError(f"measures is {len(text)} characters: max {MAX_TEXT}")
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise RatingError(
            f"measures={text[:40]!r} is not allowed: use a JSON object (Measures.to_json) or ''"
        )


def png_bytes(image: Image.Image) -> bytes:
    """The PNG encoding that :func:`image_sha256` hashes and the store writes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
