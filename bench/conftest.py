"""pytest-benchmark suite settings: pinned threads, checked mode off, machine info.

Run with fastrnn installed (``pip install ".[bench]"``, or ``pip install -e .``)::

    pytest bench --benchmark-only
    pytest bench --benchmark-only -k "mid and lstm"  --benchmark-group-by=group

(``pytest``, not ``python -m pytest``: the latter puts the current directory first on
``sys.path``, so from a source checkout it would import the unbuilt sources.)

BLAS is held at ``FASTRNN_BENCH_THREADS`` threads (default 1) with threadpoolctl, and so is
PyTorch (``torch.set_num_threads``) when it is installed.  Each benchmark's ``extra_info``
holds ``threadpoolctl.threadpool_info()`` (which OpenBLAS kernel runs, with how many
threads), the SIMD level, the variables that change what runs (``FASTRNN_SIMD``,
``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``, ...), the case and its FLOPs.
"""
import os

import pytest

import fastrnn
from fastrnn import _bench
from fastrnn._bench.environment import env_vars

THREADS = int(os.environ.get("FASTRNN_BENCH_THREADS", "1"))


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    """BLAS (and PyTorch) threads pinned, checked mode off, for the whole session."""
    from threadpoolctl import threadpool_limits

    torch = _bench.import_torch()
    old_torch = torch.get_num_threads() if torch is not None else None
    was_checked = fastrnn.is_checked()
    fastrnn.set_checked(False)
    with threadpool_limits(THREADS):
        if torch is not None:
            torch.set_num_threads(THREADS)
        try:
            yield THREADS
        finally:
            if torch is not None:
                torch.set_num_threads(old_torch)
            fastrnn.set_checked(was_checked)


@pytest.fixture
def blas_extra_info(benchmark, pinned_threads):
    """Record the BLAS libraries (as pinned), the OpenBLAS env vars and the SIMD level."""
    from fastrnn._kernels import _core

    benchmark.extra_info["threadpool_info"] = _bench.blas_info()
    benchmark.extra_info["threads"] = pinned_threads
    benchmark.extra_info["simd_level"] = _core.simd_level()
    benchmark.extra_info.update(env_vars())
    return benchmark


def pytest_benchmark_update_machine_info(config, machine_info):
    from fastrnn._kernels import _core

    machine_info["fastrnn_simd_level"] = _core.simd_level()
    machine_info["threadpool_info"] = _bench.blas_info()
    machine_info["env"] = env_vars()
