"""Who may do what, and how often: the staff password, per-address limits, a caller's address.

The staff password is compared in constant time. Guessing is limited by address, never by page
session (a reload or a new session per guess changes nothing): :data:`MAX_FAILURES` wrong
passwords from one address within :data:`WINDOW_S` lock that address out for :data:`LOCKOUT_S`;
and :data:`GLOBAL_FAILURES` wrong passwords from all addresses together within :data:`WINDOW_S`
lock every address out for a back-off that doubles each time it comes back (:data:`BACKOFF_S` up
to :data:`MAX_BACKOFF_S`), against guesses spread over many addresses. A refusal is immediate:
nothing sleeps, so a guess never holds a worker that a vote or a render needs.

Addresses come from :func:`client_address`; time is injectable so tests run in no time.
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
GLOBAL_FAILURES = 20  # wrong passwords from every address together, within WINDOW_S
BACKOFF_S = 30.0  # the first global back-off; each next within MAX_BACKOFF_S of the last doubles
MAX_BACKOFF_S = 900.0
MAX_CLIENTS = 10_000  # addresses remembered at once; the least recently seen are forgotten first


class StaffLockedError(InputError):
    """Too many wrong staff passwords: refused until the lock-out (or back-off) ends."""


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
class _Backoff:
    """Every address's recent wrong passwords, and the back-off they set."""

    failures: deque[float] = field(default_factory=deque)
    until: float = float("-inf")  # every check is refused before this time
    next_s: float = BACKOFF_S  # the next back-off's length


class StaffGate:
    """Checks the staff password; with none set, the Staff tools are open."""

    def __init__(
        self,
        password: str,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        lockout_s: float = LOCKOUT_S,
        global_failures: int = GLOBAL_FAILURES,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("max_failures", max_failures), ("global_failures", global_failures)):
            if value < 1:
                raise ValueError(f"{name}={value} is not allowed: use 1 or more")
        self._password = password
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self.global_failures = global_failures
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._clock = clock
        self._failures = _Recent(window_s)  # per address
        self._locked: OrderedDict[str, float] = OrderedDict()  # address -> locked until
        self._all = _Backoff(next_s=backoff_s)
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        """Whether a password is set."""
        return bool(self._password)

    def check(self, password: str, address: str = "") -> bool:
        """True for the right password (or always when none is set), False for a wrong one.

        Raises :class:`StaffLockedError`, at once and without comparing, while ``address`` is
        locked out or every address is backed off, and on the wrong password that locks or
        backs off; a locked-out caller is refused even with the right password.
        """
        if not self._password:
            return True
        now = self._clock()
        with self._lock:
            self._refuse_if_locked(address, now)
        if hmac.compare_digest((password or "").encode(), self._password.encode()):
            with self._lock:
                self._failures.forget(address)
            return True
        with self._lock:
            self._fail(address, now)
            self._refuse_if_locked(address, now)  # this guess locked it: say so now
        return False

    def _refuse_if_locked(self, address: str, now: float) -> None:
        until = self._locked.get(address, float("-inf"))
        if until > now:
            raise StaffLockedError(
                f"Too many wrong staff passwords from this address: {_locked(until - now)}"
            )
        self._locked.pop(address, None)
        if self._all.until > now:
            raise StaffLockedError(
                "Too many wrong staff passwords on this server, from several addresses: "
                f"{_locked(self._all.until - now)}"
            )

    def _fail(self, address: str, now: float) -> None:
        """Record a wrong password; lock ``address`` or back every address off when due."""
        times = self._failures.times(address, now)
        times.append(now)
        if len(times) >= self.max_failures:
            times.clear()
            self._locked[address] = now + self.lockout_s
            self._locked.move_to_end(address)
            while len(self._locked) > MAX_CLIENTS:
                self._locked.popitem(last=False)
        every = self._all
        every.failures.append(now)
        while every.failures and every.failures[0] <= now - self.window_s:
            every.failures.popleft()
        if len(every.failures) >= self.global_failures:
            if now - every.until > self.max_backoff_s:  # quiet since the last: start over
                every.next_s = self.backoff_s
            every.failures.clear()
            every.until = now + every.next_s
            every.next_s = min(every.next_s * 2, self.max_backoff_s)


def _locked(seconds: float) -> str:
    return f"the Staff tools are locked; try again in {max(1, round(seconds))} s."
