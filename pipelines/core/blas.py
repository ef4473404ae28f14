"""NumPy's BLAS on one thread around small inference work that alternates with PyTorch.

After a multi-threaded call, OpenBLAS's worker threads spin for a while waiting for more work;
on a machine with few cores they take the cores from PyTorch's next forward pass. On the 2-core
CPU a warm learned augmentation (a few small NumPy products around an MPNet pass) took 157 ms
p50 with them spinning and 92 ms without (bench_learned). Products of a few rows lose nothing on
one thread. Training's fits run outside these blocks and keep every thread; the scorer's own
evaluation of thousands of rows runs inside (PQPP validation, 2,000 rows with encodings cached:
0.49 s vs 0.37 s on every thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _OneThread:
    """Process-wide and nested across threads: the first block entered sets one BLAS thread, the
    last one left restores the count from before. OpenBLAS's thread count is process-wide, and
    threadpoolctl lets only one "controlling" Python thread change it (others silently do
    nothing), so control is handed back after each change: the thread that ends last, in a
    Gradio worker pool, is often not the one that began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter: Any = None
        self._blas: Any = None  # found once: scanning the loaded libraries takes ~1 ms

    def _release_control(self) -> None:
        from threadpoolctl import OpenBLASController

        OpenBLASController.clear_controlling_thread(force=True)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                if self._blas is None:
                    from threadpoolctl import ThreadpoolController

                    self._blas = ThreadpoolController().select(user_api="blas")
                self._release_control()
                self._limiter = self._blas.limit(limits=1)
                self._release_control()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._limiter.restore_original_limits()
                    self._release_control()
                    self._limiter = None


one_blas_thread = _OneThread()


def on_one_blas_thread(fn: F) -> F:
    """Decorator: ``fn`` runs inside :data:`one_blas_thread`."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
