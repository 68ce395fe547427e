"""Processes started after the parent used the batch-parallel thread pool.

A forked child (``os.fork``, or multiprocessing's "fork" start method, which many process
pools use) inherits the parent's pool object but not its worker threads: before the pool
was reset in the child (``os.register_at_fork``) the child's ``forward(..., n_threads=2)``
waited forever.  Each child must give the parent's result; a child that hangs is killed
after a generous timeout and fails the test (a clock here only bounds a wait).
"""
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

import _forkwork
from fastrnn import _api

TIMEOUT = 120  # seconds; a healthy child takes well under one, also on a loaded machine

# Python >= 3.12 warns that fork in a multi-threaded process may deadlock the child: that is
# the very situation under test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process is multi-threaded:DeprecationWarning")


@pytest.fixture(scope="module")
def expected():
    """The parent's result, computed with two threads so the parent's pool exists."""
    a, y = _forkwork.forward(n_threads=2)
    assert _api._POOL is not None, "the parent's call did not use the thread pool"
    return a, y


def _wait(pid):
    deadline = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child's forward(..., n_threads=2) hung ({TIMEOUT} s)")
        time.sleep(0.02)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_os_fork_child_runs_threaded_forward(expected):
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only, never return into pytest
        code = 1
        try:
            a, y = _forkwork.forward(n_threads=2)
            code = 0 if np.array_equal(a, expected[0]) and np.array_equal(y, expected[1]) else 2
        finally:
            os._exit(code)
    assert _wait(pid) == 0, "the forked child's result differs from the parent's"


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_process_pool_children_run_threaded_forward(expected, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method!r} is not available on this platform")
    ctx = multiprocessing.get_context(method)
    pool = ctx.Pool(1)  # one child, two calls: its pool is made once and reused
    try:
        results = [pool.apply_async(_forkwork.forward) for _ in range(2)]
        for r in results:
            try:
                a, y = r.get(timeout=TIMEOUT)
            except multiprocessing.TimeoutError:
                pytest.fail(f"a {method!r} child's forward(..., n_threads=2) hung "
                            f"({TIMEOUT} s)")
            np.testing.assert_array_equal(a, expected[0])
            np.testing.assert_array_equal(y, expected[1])
    finally:
        pool.terminate()
        pool.join()
