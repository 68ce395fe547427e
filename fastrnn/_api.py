"""The drop-in forward passes: validate, pack, allocate, run a kernel, shape the results.

This module is the only caller of ``fastrnn._kernels``.  See ``fastrnn.reference`` for the
specification each function reproduces.
"""
from __future__ import annotations

import contextlib
import functools
import operator
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastrnn import _checked, reference
from fastrnn._kernels import _core
from fastrnn._packing import GATES, all_finite, as_c, flush_subnormal, pack
from fastrnn._pool import empty as _pooled_empty
from fastrnn._validation import validate

__all__ = ["rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward",
           "gru_cell_forward", "gru_forward"]

# Type aliases of the public signatures: results are float32 or float64 arrays.
Array = NDArray[np.floating]
Parameters = Mapping[str, ArrayLike]

# Where the packed-panel GEMM does not run (a single step, SIMD level SSE2, a recurrent block
# above 256 MiB), batches of at most this many examples (per thread) take the small-batch
# kernel for the recurrent product instead of BLAS gemm.  Measured (LSTM, one thread,
# OpenBLAS SkylakeX): the small kernel wins up to m = 4 (e.g. 0.4-0.8x the gemm time at
# n_a = 256..512) and loses from m = 8 on.  Where the panel GEMM runs it takes every batch
# size: measured 0.6-1.0x the small kernel's time at m = 1..8 (n_a = 128..512, AVX-512 and
# AVX2) and 0.6-0.85x BLAS gemm's at m = 16..64 (mid, fastrnns, big).
SMALL_BATCH_MAX_M = 4

_GATE_INDEX = {g: k for k, g in enumerate(GATES)}

# The kernels' recurrent-product paths: the small-batch kernel, the packed-panel GEMM (SIMD
# level AVX2 or AVX-512; the small kernel or BLAS gemm elsewhere), BLAS gemm.
RECURRENT_PATHS = ("small", "panel", "blas")


@contextlib.contextmanager
def recurrent_path(path):
    """Force every recurrent product through one of ``RECURRENT_PATHS`` (for the self-check,
    benchmarks and tests; not thread-safe)."""
    global SMALL_BATCH_MAX_M
    if path not in RECURRENT_PATHS:
        raise ValueError(f"path must be one of {RECURRENT_PATHS}, got {path!r}")
    old_m, old_panel = SMALL_BATCH_MAX_M, _core.set_panel_gemm(path == "panel")
    SMALL_BATCH_MAX_M = 10**6 if path == "small" else 0
    try:
        yield path
    finally:
        SMALL_BATCH_MAX_M = old_m
        _core.set_panel_gemm(old_panel)


# ------------------------------------------------------------------ running the kernels

def _slices(m, n_threads):
    """Split m examples into at most n_threads contiguous, near-equal slices."""
    n = max(1, min(int(n_threads), m))
    bounds = [m * k // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n)]


# More threads than this are taken as this many: a thread per slice of a batch beyond any
# machine's cores only adds threads (and a huge count would not fit the kernels' C ints).
MAX_THREADS = 256
# Workers of the pool of tasks that wait (see _pool): one per call that runs concurrently
# with others (a bidirectional layer's backward direction); made only when needed.
WAITING_WORKERS = 32

_POOL = None
_WAITING_POOL = None
_POOL_LOCK = threading.Lock()


def _pool(n, waiting=False):
    """A process-wide thread pool with at least n workers (made once, grown when needed):
    a new pool per call would cost ~0.2 ms, more than a small forward pass.  A replaced pool
    is not shut down (another thread may be submitting to it); its idle workers exit once
    it is garbage.

    ``waiting``: the pool for tasks that wait for tasks of their own (a bidirectional
    layer's backward direction, which splits its batch over the other pool), kept apart
    from the pool of tasks that never wait (the slices of one kernel call): were they one,
    waiting tasks could hold every worker while the tasks they wait for sit in its queue."""
    global _POOL, _WAITING_POOL
    with _POOL_LOCK:
        pool = _WAITING_POOL if waiting else _POOL
        if pool is None or pool._max_workers < n:
            pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fastrnn")
            if waiting:
                _WAITING_POOL = pool
            else:
                _POOL = pool
        return pool


def _forget_pool_in_child():
    """After fork: the child has the parent's pool objects but none of their worker threads
    (fork copies only the calling thread), so work submitted to them would wait forever; and
    the lock may have been held by another parent thread.  Start from nothing."""
    global _POOL, _WAITING_POOL, _POOL_LOCK
    _POOL, _WAITING_POOL, _POOL_LOCK = None, None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def threads_count(n_threads):
    """``n_threads`` as a positive int (any integer type; not bool, not float), at most
    MAX_THREADS."""
    try:
        if isinstance(n_threads, bool):
            raise TypeError
        n = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"n_threads must be a positive integer, got {n_threads!r}") from None
    if n < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    return min(n, MAX_THREADS)


# Below this many multiply-adds per call a second thread costs more (hand-off latency, tens
# of microseconds) than it saves: such calls run on the calling thread only.
_MIN_THREADED_WORK = 2_000_000


def _run(kernel, args, m, n_threads, work):
    """Run ``kernel(*args, j0, j1, SMALL_BATCH_MAX_M)`` over the batch, split across threads.

    Each slice runs the whole sequence on its own thread (no per-step barrier); the calling
    thread takes the first slice itself.  ``work`` is the call's multiply-add count.
    """
    n_threads = threads_count(n_threads)
    if n_threads == 1:
        kernel(*args, 0, m, SMALL_BATCH_MAX_M)
        return
    slices = _slices(m, n_threads if work >= _MIN_THREADED_WORK else 1)
    small = SMALL_BATCH_MAX_M
    futures = [_pool(len(slices) - 1).submit(kernel, *args, j0, j1, small)
               for j0, j1 in slices[1:]]
    try:
        kernel(*args, *slices[0], small)
    finally:
        for f in futures:
            f.result()


def run_slices(run, n):
    """Call ``run(k)`` for every k in range(n): k = 0 on the calling thread, the others on
    the pool (a kernel's slices of one call, each releasing the GIL)."""
    futures = [_pool(n - 1).submit(run, k) for k in range(1, n)]
    try:
        run(0)
    finally:
        for f in futures:
            f.result()


def run_rnn(packed, x, a0, n_threads=1, nonlinearity="tanh", active=None, reverse=False,
            out=None, z=None, per_call=False):
    """Kernel call for a (n_x, m, T_x) sequence; returns a, y and the state buffer.

    The state buffer z (m, T_x, n_a) holds the hidden states again, time-major.
    ``active``: as for :func:`run_gru`; ``reverse``: run the steps backwards (see
    fastrnn._kernels._core.rnn_forward); ``out``: a C-contiguous (n_a, m, T_x) array for a;
    ``z``: one for the state buffer (a model's work array kept between calls: a fresh large
    array costs a page fault per 4 KiB, in every thread at once); ``per_call``: as for
    :func:`run_lstm`.

    ``x`` and ``a0`` must already be C-contiguous arrays of the packed dtype.
    """
    n_x, m, T = x.shape
    n_y, n_a = packed.wy.shape
    dtype = packed.wy.dtype
    a = _pooled_empty((n_a, m, T), dtype) if out is None else out
    y = _pooled_empty((n_y, m, T), dtype)
    z = _pooled_empty((m, T, n_a), dtype) if z is None else z
    options = {"relu": True} if nonlinearity == "relu" else {}
    if active is not None:
        options["active"] = active
    if reverse:
        options["reverse"] = True
    if per_call:
        options["per_call"] = True
    kernel = functools.partial(_core.rnn_forward, **options) if options else _core.rnn_forward
    _run(kernel, (x, a0, packed.w[0], packed.w[1], packed.b, packed.wy, packed.by,
                  a, y, z), m, n_threads, m * T * n_a * (n_a + n_x + n_y))
    return a, y, z


def run_lstm(packed, x, a0, c0, n_threads=1, active=None, reverse=False, out=None,
             per_call=False):
    """Kernel call for a (n_x, m, T_x) sequence; returns a, y, c, z and s.

    The gate buffer z (m, T_x, 4n_a) holds the activated gates in the order of ``GATES``; the
    state buffer s (m, T_x, 2n_a) holds [a_t, c_t] again, time-major.  ``active`` as for
    :func:`run_gru`; ``reverse`` (without ``active``): the steps backwards, each output at
    its own step; ``out``: a C-contiguous (n_a, m, T_x) array to hold a; ``per_call``: a
    drop-in call's (see fastrnn._kernels._core.lstm_forward).
    """
    n_x, m, T = x.shape
    n_y, n_a = packed.wy.shape
    dtype = packed.wy.dtype
    a = _pooled_empty((n_a, m, T), dtype) if out is None else out
    c = _pooled_empty((n_a, m, T), dtype)
    y = _pooled_empty((n_y, m, T), dtype)
    z = _pooled_empty((m, T, 4 * n_a), dtype)
    s = _pooled_empty((m, T, 2 * n_a), dtype)
    kernel = (_core.lstm_forward if active is None and not reverse and not per_call
              else functools.partial(_core.lstm_forward, active=active, reverse=reverse,
                                     per_call=per_call))
    _run(kernel, (x, a0, c0, packed.w, packed.b, packed.wy, packed.by, a, c, y, z, s), m,
         n_threads, m * T * n_a * (4 * (n_a + n_x) + n_y))
    return a, y, c, z, s


def run_gru(packed, x, a0, n_threads=1, reset_after=True, active=None, z=None, s=None,
            reverse=False, out=None, per_call=False, caches=True):
    """Kernel call for a (n_x, m, T_x) sequence; returns a, y, z and s.

    ``active`` (None or (T_x,) C ints): for a batch sorted by length, longest first, how many
    examples still run at each step (see fastrnn._kernels._core.gru_forward).  ``reverse``,
    ``out`` and ``per_call`` as for :func:`run_lstm`; ``caches`` False: z is work memory,
    not the gates (see gru_forward).

    y has no rows without an output layer.  The gate buffer z (m, T_x, 3n_a) holds the
    activated gates in the order of ``GRU_GATES``; the state buffer s (m, T_x, n_a) the
    hidden states again, time-major.
    """
    n_x, m, T = x.shape
    n_y, n_a = packed.wy.shape
    dtype = packed.wy.dtype
    a = _pooled_empty((n_a, m, T), dtype) if out is None else out
    y = _pooled_empty((n_y, m, T), dtype)
    z = _pooled_empty((m, T, 3 * n_a), dtype) if z is None else z
    s = _pooled_empty((m, T, n_a), dtype) if s is None else s
    wx, wa = packed.w
    bx, ba = packed.b
    kernel = (_core.gru_forward if not reverse and not per_call and caches
              else functools.partial(_core.gru_forward, reverse=reverse, per_call=per_call,
                                     caches=caches))
    _run(kernel, (x, a0, wx, wa, bx, ba, packed.wy, packed.by, a, y, z, s, reset_after,
                  active), m, n_threads, m * T * n_a * (3 * (n_a + n_x) + n_y))
    return a, y, z, s


def gru_gates(z, t):
    """The (n_a, m) activations ``(rt, zt, nt)`` at step t, from the GRU gate buffer z."""
    m, T, G = z.shape
    g = z[:, t, :].reshape(m, 3, G // 3).transpose(1, 2, 0)  # (gate, n_a, m) view
    return g[0], g[1], g[2]


def gates(z, t):
    """The (n_a, m) activations ``(ft, it, cct, ot)`` at step t, from the gate buffer z."""
    m, T, G = z.shape
    g = z[:, t, :].reshape(m, 4, G // 4).transpose(1, 2, 0)  # (gate, n_a, m) view
    return g[_GATE_INDEX["f"]], g[_GATE_INDEX["i"]], g[_GATE_INDEX["c"]], g[_GATE_INDEX["o"]]


def kernel_inputs(arrays, dtype, weights_finite):
    """The inputs and states as C-contiguous arrays of ``dtype``, subnormal values flushed
    where that is safe (see fastrnn._packing.flush_subnormal).  ``weights_finite`` is a bool
    or a callable computing it (only called when there is a subnormal value to flush)."""
    out = [as_c(a, dtype) for a in arrays]
    if any(a.size and _core.count_subnormal(a) for a in out):
        finite = weights_finite() if callable(weights_finite) else weights_finite
        out = [flush_subnormal(a, finite) for a in out]
    return out


# ------------------------------------------------------------------ lazy caches

class StepCaches(Sequence):
    """The list of per-step caches of a sequence call, built only when read.

    Behaves like the reference's list: ``len``, indexing (negative too), slicing (a list),
    iteration, unpacking, pickling (as a list); each item is the spec's tuple.  Items are
    built once, by ``build(caches, t)``, and kept, so ``caches[t][1] is caches[t - 1][0]``, as
    in the reference.  (``build`` gets the caches as an argument rather than closing over
    them: no reference cycle, so dropping the caches frees their buffers at once.)
    """

    __slots__ = ("_n", "_build", "_memo", "source")

    def __init__(self, n, build, source=None):
        self._n = n
        self._build = build
        self._memo = {}
        # What the steps are built from: (z, s, x, a0, c0, parameters), the forward's
        # private buffers (s, c0 None for an RNN), which a backward pass reads directly.
        self.source = source

    def __len__(self):
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        try:
            t = index.__index__()
        except AttributeError:
            raise TypeError(f"cache indices must be integers or slices, not "
                            f"{type(index).__name__}") from None
        if t < 0:
            t += self._n
        if not 0 <= t < self._n:
            raise IndexError(f"cache index {index} out of range for {self._n} steps")
        item = self._memo.get(t)
        if item is None:
            item = self._memo[t] = self._build(self, t)
        return item

    def __eq__(self, other):
        if isinstance(other, (StepCaches, list)):
            return len(self) == len(other) and all(
                _cache_equal(p, q) for p, q in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __reduce__(self):
        # Pickles as the plain list it stands for (the reference's caches pickle too).
        return (list, (list(self),))

    def __repr__(self):
        return f"<fastrnn step caches: {self._n} steps, built on access>"


def _cache_equal(p, q):
    return len(p) == len(q) and all(
        u is v or (isinstance(u, np.ndarray) and np.array_equal(u, v)) for u, v in zip(p, q))


def _rnn_caches(z, x, a0, parameters):
    # The states come from the kernel's private state buffer z, so changing the returned
    # ``a`` in place does not reach the caches (as in the reference, where they are separate).
    # ``x`` is the array the kernel read (an array-like is converted once, by validation).

    def build(caches, t):
        return (z[:, t, :].T, a0 if t == 0 else caches[t - 1][0], x[:, :, t], parameters)

    return StepCaches(z.shape[1], build, (z, None, x, a0, None, parameters))


def _lstm_caches(z, s, x, a0, c0, parameters):
    # Gates and states are views of the kernel's private buffers z and s (see _rnn_caches).
    # c0 None: the zero initial cell state of lstm_forward, made when step 0 is first read.
    m, _, n_a = s.shape
    n_a //= 2

    def build(caches, t):
        if t == 0:
            a_prev, c_prev = a0, np.zeros((n_a, m), dtype=s.dtype) if c0 is None else c0
        else:
            a_prev, c_prev = caches[t - 1][:2]
        return (s[:, t, :n_a].T, s[:, t, n_a:].T, a_prev, c_prev, *gates(z, t), x[:, :, t],
                parameters)

    return StepCaches(s.shape[1], build, (z, s, x, a0, c0, parameters))


def _gru_caches(z, s, x, a0, parameters):
    # Gates and states are views of the kernel's private buffers z and s (see _rnn_caches).
    x = np.asarray(x)

    def build(caches, t):
        return (s[:, t, :].T, a0 if t == 0 else caches[t - 1][0], *gru_gates(z, t),
                x[:, :, t], parameters)

    return StepCaches(s.shape[1], build)


# ------------------------------------------------------------------ checked mode

def _check(function, got, reference_call):
    """In checked mode, run the reference in float64 and compare (see fastrnn._checked)."""
    with np.errstate(all="ignore"):
        want = reference_call()
    dtype = next(iter(got.values())).dtype
    _checked.compare(function, got, want, dtype)


def _f64(arr):
    with np.errstate(all="ignore"):  # long double beyond the float64 range: +-inf, as in as_c
        return np.asarray(arr, dtype=np.float64)


def _f64_params(weights):
    return {k: _f64(v) for k, v in weights.items()}


# ------------------------------------------------------------------ the drop-in functions

def _forward(kind, inputs, parameters, sequence, reset_after=True):
    """One drop-in call: the compiled fast path, or validation, packing and the kernel.

    ``inputs`` is [(name, value)]: the input, then the states (``c_prev`` only for an LSTM
    step; ``lstm_forward`` starts from zero cell state).  Returns the kernel's outputs --
    ``(a, y, z)``, ``(a, y, c, z, s)`` or ``(a, y, z, s)`` (GRU), with a, y (and c) 2-d for a
    single step, y None without an output layer -- and the inputs and weights as validated
    (what checked mode hands the reference).
    """
    values = [v for _, v in inputs]
    if kind == "gru":
        fast = _core.try_gru(*values, parameters, sequence, bool(reset_after),
                             SMALL_BATCH_MAX_M)
    elif kind == "rnn":
        fast = _core.try_rnn(*values, parameters, sequence, SMALL_BATCH_MAX_M)
    elif len(values) > 2 and values[2] is None:
        # c_prev is required: the validated route names it (try_lstm takes None for zeros,
        # as lstm_forward starts)
        fast = None
    else:
        fast = _core.try_lstm(values[0], values[1], values[2] if len(values) > 2 else None,
                              parameters, sequence, SMALL_BATCH_MAX_M)
    if fast is not None:
        return fast, values, parameters
    dims, dtype, arrays, weights = validate(kind, inputs, parameters, sequence=sequence)
    packed = pack(kind, weights, dtype, merge=sequence)  # an LSTM step uses the gates as given
    kernel_args = kernel_inputs(arrays, dtype, lambda: all_finite(packed.w))
    if not sequence:
        kernel_args[0] = kernel_args[0].reshape(dims.n_x, dims.m, 1)
    if kind == "rnn":
        out, n_out = run_rnn(packed, *kernel_args, per_call=True), 2
    elif kind == "gru":
        out, n_out = run_gru(packed, *kernel_args, reset_after=reset_after, per_call=True), 2
    else:
        if len(kernel_args) == 2:
            kernel_args.append(np.zeros((dims.n_a, dims.m), dtype=dtype))
        out, n_out = run_lstm(packed, *kernel_args, per_call=True), 3
    if not sequence:
        out = tuple(o[:, :, 0] for o in out[:n_out]) + out[n_out:]
    if not packed.head:
        out = (out[0], None) + out[2:]
    return out, arrays, weights


def _flag(value, name):
    """A keyword switch: True or False (numpy bools too), else TypeError."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def _outputs(names, values):
    """{name: value} of the outputs to check (a missing prediction is not compared)."""
    return {k: v for k, v in zip(names, values) if v is not None}


def rnn_cell_forward(xt: ArrayLike, a_prev: ArrayLike, parameters: Parameters
                     ) -> tuple[Array, Array, tuple]:
    """One step of the basic RNN (drop-in for the lessons' ``rnn_cell_forward``).

    Parameters
    ----------
    xt : array_like (n_x, m)
        Input at this step, one example per column.
    a_prev : array_like (n_a, m)
        Hidden state of the previous step.
    parameters : mapping
        ``Wax`` (n_a, n_x), ``Waa`` (n_a, n_a), ``Wya`` (n_y, n_a), ``ba`` (n_a, 1),
        ``by`` (n_y, 1); without ``Wya`` and ``by``, no output layer.

    Returns
    -------
    a_next : ndarray (n_a, m)
        ``tanh(Waa @ a_prev + Wax @ xt + ba)``
    yt_pred : ndarray (n_y, m) or None
        ``softmax(Wya @ a_next + by)``, column-wise; None without an output layer.
    cache : tuple
        ``(a_next, a_prev, xt, parameters)``; ``a_prev``, ``xt`` and ``parameters`` are the
        objects passed in.
    """
    (a_next, yt_pred, _), (x_in, a_in), weights = _forward(
        "rnn", [("xt", xt), ("a_prev", a_prev)], parameters, sequence=False)
    if _checked.is_checked():
        _check("rnn_cell_forward", _outputs(("a_next", "yt_pred"), (a_next, yt_pred)),
               lambda: _outputs(("a_next", "yt_pred"), reference.rnn_cell_forward(
                   _f64(x_in), _f64(a_in), _f64_params(weights))[:2]))
    return a_next, yt_pred, (a_next, a_prev, xt, parameters)


def rnn_forward(x: ArrayLike, a0: ArrayLike, parameters: Parameters
                ) -> tuple[Array, Array, tuple[Sequence[tuple], ArrayLike]]:
    """The basic RNN over a sequence (drop-in for the lessons' ``rnn_forward``).

    Parameters
    ----------
    x : array_like (n_x, m, T_x)
        Inputs, time on the last axis.
    a0 : array_like (n_a, m)
        Initial hidden state.
    parameters : mapping
        As for :func:`rnn_cell_forward`.

    Returns
    -------
    a : ndarray (n_a, m, T_x)
        Hidden states.
    y_pred : ndarray (n_y, m, T_x)
        Predictions.
    caches : tuple
        ``(list of the T_x cell caches, x)``.  The list is built lazily, only when read.
    """
    (a, y, z), (x_in, a_in), weights = _forward(
        "rnn", [("x", x), ("a0", a0)], parameters, sequence=True)
    if _checked.is_checked():
        _check("rnn_forward", _outputs(("a", "y_pred"), (a, y)),
               lambda: _outputs(("a", "y_pred"), reference.rnn_forward(
                   _f64(x_in), _f64(a_in), _f64_params(weights))[:2]))
    return a, y, (_rnn_caches(z, x_in, a0, parameters), x)


def lstm_cell_forward(xt: ArrayLike, a_prev: ArrayLike, c_prev: ArrayLike,
                      parameters: Parameters) -> tuple[Array, Array, Array, tuple]:
    """One step of the LSTM (drop-in for the lessons' ``lstm_cell_forward``).

    Parameters
    ----------
    xt : array_like (n_x, m)
    a_prev, c_prev : array_like (n_a, m)
        Hidden and cell state of the previous step.
    parameters : mapping
        ``Wf``, ``Wi``, ``Wc``, ``Wo`` (n_a, n_a + n_x) acting on ``[a_prev; xt]``;
        ``bf``, ``bi``, ``bc``, ``bo`` (n_a, 1); ``Wy`` (n_y, n_a); ``by`` (n_y, 1).

    Returns
    -------
    a_next, c_next : ndarray (n_a, m)
    yt_pred : ndarray (n_y, m)
    cache : tuple
        ``(a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)``.
    """
    (a_next, yt_pred, c_next, z, _), (x_in, a_in, c_in), weights = _forward(
        "lstm", [("xt", xt), ("a_prev", a_prev), ("c_prev", c_prev)], parameters,
        sequence=False)
    if _checked.is_checked():
        _check("lstm_cell_forward",
               _outputs(("a_next", "c_next", "yt_pred"), (a_next, c_next, yt_pred)),
               lambda: _outputs(("a_next", "c_next", "yt_pred"), reference.lstm_cell_forward(
                   _f64(x_in), _f64(a_in), _f64(c_in), _f64_params(weights))[:3]))
    cache = (a_next, c_next, a_prev, c_prev, *gates(z, 0), xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_forward(x: ArrayLike, a0: ArrayLike, parameters: Parameters
                 ) -> tuple[Array, Array, Array, tuple[Sequence[tuple], ArrayLike]]:
    """The LSTM over a sequence (drop-in for the lessons' ``lstm_forward``).

    Parameters
    ----------
    x : array_like (n_x, m, T_x)
    a0 : array_like (n_a, m)
        Initial hidden state; the initial cell state is zeros.
    parameters : mapping
        As for :func:`lstm_cell_forward`.

    Returns
    -------
    a : ndarray (n_a, m, T_x)
    y : ndarray (n_y, m, T_x)
    c : ndarray (n_a, m, T_x)
        Note the order: a, y, c.
    caches : tuple
        ``(list of the T_x cell caches, x)``.  The list is built lazily, only when read; its
        gate arrays are views of the call's private gate buffer.
    """
    (a, y, c, z, s), (x_in, a_in), weights = _forward(
        "lstm", [("x", x), ("a0", a0)], parameters, sequence=True)
    if _checked.is_checked():
        _check("lstm_forward", _outputs(("a", "y", "c"), (a, y, c)),
               lambda: _outputs(("a", "y", "c"), reference.lstm_forward(
                   _f64(x_in), _f64(a_in), _f64_params(weights))[:3]))
    return a, y, c, (_lstm_caches(z, s, x_in, a0, None, parameters), x)


def gru_cell_forward(xt, a_prev, parameters, *, reset_after=True):
    """One step of the GRU (PyTorch's and Keras's default formulation).

    Parameters
    ----------
    xt : array_like (n_x, m)
    a_prev : array_like (n_a, m)
    parameters : mapping
        ``Wrx``, ``Wzx``, ``Wnx`` (n_a, n_x) acting on ``xt``; ``Wra``, ``Wza``, ``Wna``
        (n_a, n_a) acting on ``a_prev``; ``brx``, ``bzx``, ``bnx``, ``bra``, ``bza``, ``bna``
        (n_a, 1); ``Wy`` (n_y, n_a) and ``by`` (n_y, 1), or neither (no output layer).
    reset_after : bool
        False: ``nt = tanh(Wnx@xt + bnx + Wna@(rt * a_prev) + bna)`` (Keras's
        ``reset_after=False``, ONNX's ``linear_before_reset=0``).

    Returns
    -------
    a_next : ndarray (n_a, m)
        ``(1 - zt) * nt + zt * a_prev`` with ``rt = sigmoid(Wrx@xt + brx + Wra@a_prev +
        bra)``, ``zt`` likewise, ``nt = tanh(Wnx@xt + bnx + rt * (Wna@a_prev + bna))``.
    yt_pred : ndarray (n_y, m) or None
        ``softmax(Wy @ a_next + by)``; None without an output layer.
    cache : tuple
        ``(a_next, a_prev, rt, zt, nt, xt, parameters)``.
    """
    reset_after = _flag(reset_after, "reset_after")
    (a_next, yt_pred, z, _), (x_in, a_in), weights = _forward(
        "gru", [("xt", xt), ("a_prev", a_prev)], parameters, False, reset_after)
    if _checked.is_checked():
        _check("gru_cell_forward", _outputs(("a_next", "yt_pred"), (a_next, yt_pred)),
               lambda: _outputs(("a_next", "yt_pred"), reference.gru_cell_forward(
                   _f64(x_in), _f64(a_in), _f64_params(weights), reset_after)[:2]))
    return a_next, yt_pred, (a_next, a_prev, *gru_gates(z, 0), xt, parameters)


def gru_forward(x, a0, parameters, *, reset_after=True):
    """The GRU over a sequence.

    Parameters
    ----------
    x : array_like (n_x, m, T_x)
    a0 : array_like (n_a, m)
    parameters : mapping
        As for :func:`gru_cell_forward`.
    reset_after : bool
        As for :func:`gru_cell_forward`.

    Returns
    -------
    a : ndarray (n_a, m, T_x)
    y_pred : ndarray (n_y, m, T_x) or None
        None without an output layer.
    caches : tuple
        ``(list of the T_x cell caches, x)``, built lazily, only when read.
    """
    reset_after = _flag(reset_after, "reset_after")
    (a, y, z, s), (x_in, a_in), weights = _forward(
        "gru", [("x", x), ("a0", a0)], parameters, True, reset_after)
    if _checked.is_checked():
        _check("gru_forward", _outputs(("a", "y_pred"), (a, y)),
               lambda: _outputs(("a", "y_pred"), reference.gru_forward(
                   _f64(x_in), _f64(a_in), _f64_params(weights), reset_after)[:2]))
    return a, y, (_gru_caches(z, s, x_in, a0, parameters), x)
