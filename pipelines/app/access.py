"""Who may use the Staff tools: one shared password, compared in constant time, with a lock-out.

Each wrong password costs its sender a short delay; :data:`MAX_FAILURES` wrong passwords from
one client within :data:`WINDOW_S` lock that client out for :data:`LOCKOUT_S`. A client is
whatever key the caller passes (the UI uses the browser's address and session). Time and
sleeping are injectable so tests run in no time.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.core.errors import InputError

MAX_FAILURES = 5
WINDOW_S = 60.0
LOCKOUT_S = 60.0
DELAY_S = 1.0  # per wrong password: guessing stays slow even for a client that changes its key
MAX_CLIENTS = 10_000  # clients remembered at once; the oldest are forgotten first


class StaffLockedError(InputError):
    """Too many wrong staff passwords from one client: refused until the lock-out ends."""


@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)  # times of recent wrong passwords
    locked_until: float = 0.0


class StaffGate:
    """Checks the staff password; with none set, the Staff tools are open."""

    def __init__(
        self,
        password: str,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        lockout_s: float = LOCKOUT_S,
        delay_s: float = DELAY_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures={max_failures} is not allowed: use 1 or more")
        self._password = password
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.delay_s = delay_s
        self._clock = clock
        self._sleep = sleep
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        """Whether a password is set."""
        return bool(self._password)

    def check(self, password: str, client: str = "") -> bool:
        """True for the right password (or always when none is set), False for a wrong one.

        Raises :class:`StaffLockedError` while ``client`` is locked out, and on the wrong
        password that locks it; a locked client is refused even with the right password.
        """
        if not self._password:
            return True
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is not None and entry.locked_until > now:
                raise StaffLockedError(
                    f"Too many wrong staff passwords: {_locked(entry.locked_until - now)}"
                )
        if hmac.compare_digest((password or "").encode(), self._password.encode()):
            with self._lock:
                self._clients.pop(client, None)
            return True
        locked = self._fail(client, now)
        self._sleep(self.delay_s)  # outside the lock: other clients are not held up
        if locked:
            raise StaffLockedError(
                f"Wrong staff password, {self.max_failures} times within "
                f"{self.window_s:.0f} s: {_locked(self.lockout_s)}"
            )
        return False

    def _fail(self, client: str, now: float) -> bool:
        """Record a wrong password; True when it locks ``client`` out."""
        with self._lock:
            entry = self._clients.pop(client, None) or _Client()
            self._clients[client] = entry  # re-inserted: the dict's order is recency
            while len(self._clients) > MAX_CLIENTS:
                del self._clients[next(iter(self._clients))]
            entry.failures.append(now)
            while entry.failures and entry.failures[0] <= now - self.window_s:
                entry.failures.popleft()
            if len(entry.failures) < self.max_failures:
                return False
            entry.failures.clear()
            entry.locked_until = now + self.lockout_s
            return True


def _locked(seconds: float) -> str:
    return f"the Staff tools are locked for this browser; try again in {max(1, round(seconds))} s."
