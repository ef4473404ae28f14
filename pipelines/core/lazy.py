"""A value built on first use, once, by whichever thread asks first."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class Lazy(Generic[T]):
    """Builds its value with ``build()`` on the first :meth:`get`; concurrent callers wait for
    that one build. A failed build is not remembered: the next call tries again."""

    def __init__(self, build: Callable[[], T], name: str) -> None:
        self._build = build
        self.name = name
        self._value: T | None = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the value has been built."""
        return self._ready

    def get(self) -> T:
        """The value, built now if this is the first call."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    t0 = time.perf_counter()
                    self._value = self._build()
                    self._ready = True
                    log.info("%s loaded in %.1fs", self.name, time.perf_counter() - t0)
        return self._value  # type: ignore[return-value]
