"""Voter ids the server issues and verifies: a browser cannot choose whose votes it changes.

A page gets its id when it opens (:meth:`VoterIds.vouch`): a random 128-bit id and its HMAC-SHA256
under a key that never leaves the server, ``"<id>.<signature>"``, which the browser keeps. Every
vote presents it again; a token that does not verify (none, made up, another id with a copied
or altered signature) gets a new id, so it can only ever start a voter of its own.
A caller known only by its address (an MCP client) is stored under :meth:`VoterIds.pseudonym`,
a keyed hash, never the address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from pipelines.core.errors import InputError

MIN_KEY_CHARS = 16
ID_BYTES = 16  # 128 random bits: never guessed, never repeated
SIGNATURE_CHARS = 64  # the whole HMAC-SHA256, hex


@dataclass(frozen=True)
class Voter:
    """A browser's voter: ``token`` is what it keeps and presents, ``id`` what ratings store."""

    token: str
    id: str
    new: bool = False  # issued by this call: the token presented (if any) did not verify


class VoterIds:
    """Issues and verifies signed voter ids with one server-side key."""

    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_CHARS:
            # never shows the key: it may be a real one that is too short
            raise InputError(
                f"the voter key has {len(key)} characters: use at least {MIN_KEY_CHARS}"
            )
        self._key = key.encode()

    def _sign(self, voter: str) -> str:
        return hmac.new(self._key, f"become-voter:{voter}".encode(), hashlib.sha256).hexdigest()

    def issue(self) -> Voter:
        """A new voter."""
        voter = secrets.token_hex(ID_BYTES)
        return Voter(f"{voter}.{self._sign(voter)}", voter, new=True)

    def verify(self, token: object) -> Voter | None:
        """The voter ``token`` names, or None when it is not one this server signed."""
        if not isinstance(token, str) or token.count(".") != 1:
            return None
        voter, signature = token.split(".")
        if len(voter) != 2 * ID_BYTES or len(signature) != SIGNATURE_CHARS:
            return None
        if not hmac.compare_digest(signature, self._sign(voter)):
            return None
        return Voter(token, voter)

    def vouch(self, token: object) -> Voter:
        """The voter ``token`` names when it verifies, else a new one."""
        return self.verify(token) or self.issue()

    def pseudonym(self, address: str) -> str:
        """A stable stand-in for a caller's network address (an MCP voter): the same address
        gives the same 16 hex digits, and the address itself is never stored or synced."""
        digest = hmac.new(self._key, f"become-address:{address}".encode(), hashlib.sha256)
        return digest.hexdigest()[:16]
