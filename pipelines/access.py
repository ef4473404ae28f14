"""Who may use the Staff tools: one shared password, compared in constant time."""

from __future__ import annotations

import hmac


class StaffGate:
    """Checks the staff password; with none set, the Staff tools are open."""

    def __init__(self, password: str) -> None:
        self._password = password

    @property
    def required(self) -> bool:
        """Whether a password is set."""
        return bool(self._password)

    def check(self, password: str) -> bool:
        """True for the right password, or always when none is set."""
        if not self._password:
            return True
        return hmac.compare_digest((password or "").encode(), self._password.encode())
