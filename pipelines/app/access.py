"""Who may do what, and how often: the staff password, a per-address limit, a caller's address.

The staff password is compared in constant time. Each wrong password costs its sender a short
delay; :data:`MAX_FAILURES` wrong passwords from one client within :data:`WINDOW_S` lock that
client out for :data:`LOCKOUT_S`. A client is whatever key the caller passes (the UI uses the
browser's address and session). :class:`AddressLimit` counts calls per address; addresses come
from :func:`client_address`. Time and sleeping are injectable so tests run in no time.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipelines.core.errors import InputError

MAX_FAILURES = 5
WINDOW_S = 60.0
LOCKOUT_S = 60.0
DELAY_S = 1.0  # per wrong password: guessing stays slow even for a client that changes its key
MAX_CLIENTS = 10_000  # clients remembered at once; the oldest are forgotten first


class StaffLockedError(InputError):
    """Too many wrong staff passwords from one client: refused until the lock-out ends."""


class RateLimitedError(InputError):
    """An address made more calls than its limit allows: refused until the window has room."""


def client_address(peer: str, forwarded_for: Iterable[str] = (), trusted_proxies: int = 0) -> str:
    """The caller's address: the connection's (``peer``), or behind ``trusted_proxies`` proxies
    the ``X-Forwarded-For`` entry the outermost of them wrote (the N-th from the right: what a
    client writes there itself stays to its left). An IPv6 address counts as its /64 network, the
    block one household or server gets, so an address limit is not dodged by changing the rest.

    Trust proxies only when the app cannot be reached but through them: a client that reaches
    it directly writes its own ``X-Forwarded-For``.
    """
    address = (peer or "").strip()
    if trusted_proxies > 0:
        hops = [h.strip() for line in forwarded_for for h in line.split(",") if h.strip()]
        if hops:  # fewer entries than proxies: the farthest one any proxy saw
            address = hops[-trusted_proxies] if len(hops) >= trusted_proxies else hops[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a test client's name, a unix socket: a key like any other
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 caller seen through an IPv6 socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _Recent:
    """Per key, the times of its recent events, the least recently used keys forgotten first."""

    def __init__(self, window_s: float, max_keys: int = MAX_CLIENTS) -> None:
        self.window_s, self.max_keys = window_s, max_keys
        self._keys: OrderedDict[str, deque[float]] = OrderedDict()

    def times(self, key: str, now: float) -> deque[float]:
        """``key``'s event times within the window (the caller holds the lock)."""
        times = self._keys.pop(key, None) or deque()
        self._keys[key] = times  # re-inserted: the dict's order is recency
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def forget(self, key: str) -> None:
        self._keys.pop(key, None)


class AddressLimit:
    """At most ``limit`` calls per address within ``window_s``; ``limit`` 0 = no limit."""

    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        *,
        what: str = "calls",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit={limit} is not allowed: use 0 (no limit) or more")
        self.limit, self.window_s, self.what = limit, window_s, what
        self._clock = clock
        self._recent = _Recent(window_s)
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Count one call from ``address``; raises :class:`RateLimitedError` (not counted) when
        it already made ``limit`` within the window."""
        if not self.limit:
            return
        now = self._clock()
        with self._lock:
            times = self._recent.times(address, now)
            if len(times) >= self.limit:
                wait = times[0] + self.window_s - now
                raise RateLimitedError(
                    f"Too many {self.what} from this address: at most {self.limit} per "
                    f"{self.window_s:.0f} s. Try again in {max(1, round(wait))} s."
                )
            times.append(now)


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
