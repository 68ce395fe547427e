"""Timing: adaptive samples of per-call times, the machine's GEMM rate."""
import contextlib
import gc
import math
import statistics
import time

import numpy as np

# A sample groups calls until it lasts about this long (timer overhead is ~0.1 us a call).
SAMPLE_TARGET = 1e-3
MAX_SAMPLES = 2000


class Timing:
    """Per-call times (seconds) of the samples of one measurement."""

    __slots__ = ("times", "number")

    def __init__(self, times, number):
        self.times, self.number = list(times), number

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def min(self):
        return min(self.times)

    @property
    def quartiles(self):
        if len(self.times) < 2:
            return self.times[0], self.times[0]
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def iqr(self):
        q1, q3 = self.quartiles
        return q3 - q1


def measure(fn, *, repeat=5, min_time=0.2, budget=None, context=contextlib.nullcontext,
            sample_target=SAMPLE_TARGET, max_samples=MAX_SAMPLES):
    """Time ``fn()``: adaptive repeats, per-call times of each sample.

    Calls are grouped into samples of ``number`` calls, ``number`` doubling (from a first
    timed call, which also warms up) until a sample lasts ``sample_target`` seconds.  Then
    samples are taken until there are at least ``repeat`` of them and they total at least
    ``min_time`` seconds; ``budget`` (seconds) caps that total for slow callables (at least
    one sample).  The garbage collector is off while timing, as in ``timeit``.

    Returns
    -------
    Timing
    """
    clock = time.perf_counter
    with context():
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            number = 1
            while True:
                t0 = clock()
                for _ in range(number):
                    fn()
                dt = clock() - t0
                if dt >= sample_target or number >= 1 << 20:
                    break
                number = max(2 * number, int(number * sample_target / max(dt, 1e-9)))
            n = max(repeat, math.ceil(min_time / dt))
            if budget is not None:
                n = min(n, max(1, int(budget // dt)))
            n = max(1, min(n, max_samples))
            times = []
            for _ in range(n):
                t0 = clock()
                for _ in range(number):
                    fn()
                times.append((clock() - t0) / number)
        finally:
            if gc_was_enabled:
                gc.enable()
    return Timing(times, number)


def torch_gemm_rate(torch, dtype, n, repeat=5):
    """PyTorch's own matmul rate (GFLOP/s, its bundled BLAS: MKL on x86 wheels), for
    comparison with :func:`gemm_rate`: median of ``repeat`` n x n x n ``torch.mm`` calls."""
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(n, n, generator=gen, dtype=tdtype)
    b = torch.randn(n, n, generator=gen, dtype=tdtype)
    c = torch.empty(n, n, dtype=tdtype)
    with torch.inference_mode():
        torch.mm(a, b, out=c)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def gemm_rate(dtype, n, repeat=5):
    """The machine's GEMM rate (GFLOP/s): median of ``repeat`` n x n x n ``?gemm`` calls
    through ``scipy.linalg.blas`` (the BLAS fastrnn's kernels use)."""
    from scipy.linalg import blas

    rng = np.random.default_rng(1)
    a = np.asfortranarray(rng.standard_normal((n, n)), dtype=dtype)
    b = np.asfortranarray(rng.standard_normal((n, n)), dtype=dtype)
    c = np.zeros((n, n), dtype=dtype, order="F")
    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)   # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9
