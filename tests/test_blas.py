"""pipelines/core/blas.py: NumPy's BLAS runs on one thread inside the blocks (so its spinning
workers leave the cores to PyTorch) and gets its threads back after the last one ends."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from pipelines.core.blas import on_one_blas_thread, one_blas_thread


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    np.ones((2, 2)) @ np.ones((2, 2))  # the BLAS library is loaded
    if not _blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can limit")
    with threadpool_limits(limits=2, user_api="blas"):
        yield


def test_one_thread_inside_and_restored_after(two_blas_threads) -> None:
    assert _blas_threads() == {2}
    with one_blas_thread():
        assert _blas_threads() == {1}
        with one_blas_thread():  # nested
            assert _blas_threads() == {1}
        assert _blas_threads() == {1}  # the inner block does not restore under the outer one
    assert _blas_threads() == {2}


def _in_thread(fn) -> list:
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    return out


def test_a_worker_thread_still_limits_after_the_main_thread_did(two_blas_threads) -> None:
    # threadpoolctl lets one "controlling" thread change OpenBLAS: without handing control
    # back, a Gradio worker's block after the main thread's would silently keep two threads
    with one_blas_thread():
        pass

    def block() -> set[int]:
        with one_blas_thread():
            return _blas_threads()

    assert _in_thread(block) == [{1}]
    assert _in_thread(block) == [{1}]  # and again from another thread
    assert _blas_threads() == {2}


def test_overlapping_blocks_restore_when_the_last_ends_on_another_thread(two_blas_threads) -> None:
    # A enters, B enters, A leaves (B still needs one thread), B leaves (two again)
    a_in, a_may_leave, a_left, b_may_leave = (threading.Event() for _ in range(4))
    seen: dict[str, set[int]] = {}

    def a() -> None:
        with one_blas_thread():
            a_in.set()
            assert a_may_leave.wait(10)
        a_left.set()

    def b() -> None:
        assert a_in.wait(10)
        with one_blas_thread():
            a_may_leave.set()
            assert a_left.wait(10)
            seen["b after a left"] = _blas_threads()
            assert b_may_leave.wait(10)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    assert a_left.wait(10)
    b_may_leave.set()
    for t in threads:
        t.join(10)
    assert seen == {"b after a left": {1}}
    assert _blas_threads() == {2}


def test_decorated_function_runs_on_one_thread_and_keeps_its_result(two_blas_threads) -> None:
    @on_one_blas_thread
    def inside(x: int) -> tuple[int, set[int]]:
        """Doc kept."""
        return x + 1, _blas_threads()

    assert inside(1) == (2, {1})
    assert inside.__doc__ == "Doc kept."
    assert _blas_threads() == {2}
    with pytest.raises(ZeroDivisionError):  # an error inside still restores
        on_one_blas_thread(lambda: 1 / 0)()
    assert _blas_threads() == {2}
