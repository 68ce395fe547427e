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
    def max(self):
        return max(self.times)

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


@contextlib.contextmanager
def _gc_off():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _calibrate(fn, sample_target, clock=time.perf_counter):
    """Calls per sample so that a sample lasts ``sample_target`` seconds (at least one)."""
    number = 1
    while True:
        t0 = clock()
        for _ in range(number):
            fn()
        dt = clock() - t0
        if dt >= sample_target or number >= 1 << 20:
            return number
        number = max(2 * number, int(number * sample_target / max(dt, 1e-9)))


def measure_interleaved(fns, *, rounds=7, sample_target=SAMPLE_TARGET):
    """Time several callables in interleaved rounds, for paired ratios.

    Each callable gets a number of calls per sample calibrated so that a sample lasts about
    ``sample_target`` seconds; then ``rounds`` rounds each take one sample of every callable
    (in an order rotated from round to round), so that the samples of a round saw the same
    machine load: the ratio of two callables' times within a round is paired, and the spread
    of those ratios over the rounds is their noise.

    Parameters
    ----------
    fns : dict
        name -> ``(fn, context)`` or ``(fn, context, budget)``: ``fn()`` is timed inside
        ``context()`` (entered once per sample, outside the timed calls); a callable with
        a ``budget`` (seconds, calibration included) leaves the rounds once it has spent
        it, after at least one sample: its samples pair with the first rounds of the others.

    Returns
    -------
    dict
        name -> :class:`Timing`, ``times[r]`` the per-call time of round ``r``.
    """
    clock = time.perf_counter
    names = list(fns)
    number, spent = {}, {}
    with _gc_off():
        for name in names:
            fn, context = fns[name][:2]
            t0 = clock()
            with context():
                number[name] = _calibrate(fn, sample_target)
            spent[name] = clock() - t0
        times = {name: [] for name in names}
        for r in range(max(1, rounds)):
            shift = r % len(names) if names else 0
            for name in names[shift:] + names[:shift]:
                fn, context = fns[name][:2]
                budget = fns[name][2] if len(fns[name]) > 2 else None
                if times[name] and budget is not None and spent[name] >= budget:
                    continue
                with context():
                    t0 = clock()
                    for _ in range(number[name]):
                        fn()
                    dt = clock() - t0
                times[name].append(dt / number[name])
                spent[name] += dt
    return {name: Timing(times[name], number[name]) for name in names}


def ratio_stats(num, den, paired=True):
    """This time / other time, from two :class:`Timing`: ``{"median", "min", "max"}``.

    Paired (samples taken in the same rounds, :func:`measure_interleaved`): the median and
    extremes of the per-round ratios over the rounds both took part in.  Unpaired: median /
    median, and the widest ratio the samples allow (min / max, max / min).
    """
    if paired:
        ratios = [a / b for a, b in zip(num.times, den.times)]
        return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return {"median": num.median / den.median, "min": num.min / den.max,
            "max": num.max / den.min}


def read_floor(dtype, rows, cols, *, repeat=9, sample_target=2e-3):
    """The time (seconds) of one vectorised read of a ``(rows, cols)`` block held in cache.

    The floor of one small-batch recurrent step, which must read the ``(G n_a, n_a)``
    recurrent block once.  Two vectorised reads of a block of that size, each repeated on
    the same block (so it stays in whatever cache level it fits): numpy's SIMD
    max-reduction over its bits (an integer view: no NaN handling), run over the block
    several times per call with a zero-stride view so Python's call overhead is amortised;
    and BLAS ``gemv`` of the block with one vector (2 flops per element read).  The floor is
    the faster of the two, each the fastest of ``repeat`` samples (a floor: what the
    machine can do when nothing interferes).
    """
    from numpy.lib.stride_tricks import as_strided
    from scipy.linalg import blas

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(3)
    block = np.asfortranarray(rng.standard_normal((rows, cols)).astype(dtype))
    flat = block.reshape(-1, order="A").view(np.int32 if dtype.itemsize == 4 else np.int64)
    copies = max(1, (1 << 22) // max(1, block.nbytes))   # about 4 MiB of reads per call
    many = as_strided(flat, (copies,) + flat.shape, (0,) + flat.strides, writeable=False)
    vec = np.ones(cols, dtype)
    gemv = blas.sgemv if dtype == np.float32 else blas.dgemv

    def reduce_max():
        np.maximum.reduce(many, axis=None)

    def matvec():
        gemv(1.0, block, vec)
    best = math.inf
    for fn, per_call in ((reduce_max, copies), (matvec, 1)):
        timing = measure(fn, repeat=repeat, min_time=0.0, sample_target=sample_target)
        best = min(best, timing.min / per_call)
    return best


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


def madd_peak(dtype, repeat=5, sample_target=0.02):
    """One core's peak multiply-add rate (GFLOP/s, 2 per multiply-add) for ``dtype`` at
    fastrnn's active SIMD level: independent multiply-adds held in registers, no memory
    traffic (``fastrnn._kernels._core.madd_rounds``), the fastest of ``repeat`` samples of
    about ``sample_target`` seconds.  No product of that dtype can run faster on one core."""
    from fastrnn._kernels import _core

    if repeat < 1:
        raise ValueError(f"madd_peak needs repeat >= 1, got {repeat}")
    rounds = 1000
    t0 = time.perf_counter()
    _core.madd_rounds(dtype, rounds)
    per_round = max(time.perf_counter() - t0, 1e-9) / rounds
    rounds = max(1000, int(sample_target / per_round))
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        madds = _core.madd_rounds(dtype, rounds)
        best = max(best, 2.0 * madds / max(time.perf_counter() - t0, 1e-9) / 1e9)
    return best


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
