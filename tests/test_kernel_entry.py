"""The private kernel entry points (fastrnn._kernels._core) check every array they are
given: dtype, contiguity and every size, before any kernel runs.  Private or not, no
argument may make a kernel read or write out of bounds (before this was checked, a packed
model's ``by`` shorter than ``Wya`` had ``try_packed_rnn`` read past it).

Each valid call is mutated one array at a time (one size one smaller or larger, one
dimension fewer or more, a 0-d array, the other dtype, a non-contiguous view, None); the
entry point must raise ValueError or TypeError, or, for the try_* fast paths, decline with
None (the model's validated route then reports an input that does not fit it).
"""
import numpy as np
import pytest

from fastrnn._kernels import _core
from fastrnn._packing import pack
from fastrnn._validation import LSTM_WEIGHTS, RNN_WEIGHTS, validate_parameters
from _util import lstm_params, rnn_params

N_X, N_A, N_Y, M, T = 3, 5, 2, 4, 6
DTYPES = (np.float64, np.float32)


def _mutations(arr):
    """Arrays like ``arr`` but wrong in one way (each with a label)."""
    out = []
    for axis in range(arr.ndim):
        for delta in (-1, 1):
            shape = list(arr.shape)
            shape[axis] += delta
            if shape[axis] >= 0:
                out.append((f"shape {tuple(shape)}", np.ones(shape, dtype=arr.dtype)))
    out.append(("one dimension fewer", np.ones(arr.shape[:-1], dtype=arr.dtype)))
    out.append(("one dimension more", np.ones(arr.shape + (1,), dtype=arr.dtype)))
    out.append(("0-d", np.array(1.0, dtype=arr.dtype)))
    other = np.float32 if arr.dtype == np.float64 else np.float64
    out.append(("other dtype", arr.astype(other)))
    if arr.ndim >= 1 and arr.shape[-1] > 1:
        wide = np.ones(arr.shape[:-1] + (2 * arr.shape[-1],), dtype=arr.dtype)
        out.append(("non-contiguous", wide[..., ::2]))
    return out


def _packed(kind, dtype):
    rng = np.random.default_rng(3)
    make, spec = (rnn_params, RNN_WEIGHTS) if kind == "rnn" else (lstm_params, LSTM_WEIGHTS)
    weights, _ = validate_parameters(make(rng, N_X, N_A, N_Y, dtype=dtype), spec)
    return pack(kind, weights, np.dtype(dtype), merge=True, copy=True)


def _try_packed_args(kind, dtype):
    """(names, args) of a valid try_packed_* call."""
    rng = np.random.default_rng(4)
    p = _packed(kind, dtype)
    x = rng.standard_normal((N_X, M, T)).astype(dtype)
    a0 = rng.standard_normal((N_A, M)).astype(dtype)
    if kind == "rnn":
        names = ["x", "a0", "wx", "wa", "b", "wy", "by"]
        args = [x, a0, p.w[0], p.w[1], p.b, p.wy, p.by]
    else:
        names = ["x", "a0", "c0", "w", "b", "wy", "by"]
        args = [x, a0, a0.copy(), p.blocks[0], p.blocks[1], p.wy, p.by]
    return names, args


def _call_try_packed(kind, args, scratch):
    fn = _core.try_packed_rnn if kind == "rnn" else _core.try_packed_lstm
    return fn(*args, True, 4, scratch)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_try_packed_checks_every_weight(kind, dtype):
    names, args = _try_packed_args(kind, dtype)
    assert _call_try_packed(kind, args, [None] * 3) is not None  # the valid call runs
    for k, name in enumerate(names):
        for label, bad in _mutations(args[k]) + [("None", None)]:
            if name == "x" and label.startswith("shape") and bad.shape[0] == N_X:
                continue  # any m and T_x are valid
            if name in ("a0", "c0") and bad is None:
                continue  # None: zero initial state
            mutated = list(args)
            mutated[k] = bad
            try:
                got = _call_try_packed(kind, mutated, [None] * 3)
            except (ValueError, TypeError):
                continue
            assert got is None, f"try_packed_{kind} ran with {name} {label}"


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_try_packed_checks_the_scratch_list(kind):
    names, args = _try_packed_args(kind, np.float64)
    for scratch in ([], [None], [None, None]):
        with pytest.raises((ValueError, TypeError)):
            _call_try_packed(kind, args, scratch)


def _kernel_args(kind, dtype):
    """(names, args) of a valid _core.rnn_forward / lstm_forward call (without j0, j1,
    small_max)."""
    rng = np.random.default_rng(5)
    p = _packed(kind, dtype)
    x = rng.standard_normal((N_X, M, T)).astype(dtype)
    a0 = rng.standard_normal((N_A, M)).astype(dtype)
    e = lambda *shape: np.empty(shape, dtype=dtype)  # noqa: E731
    if kind == "rnn":
        names = ["x", "a0", "wx", "wa", "b", "wy", "by", "a", "y", "z"]
        args = [x, a0, p.w[0], p.w[1], p.b, p.wy, p.by, e(N_A, M, T), e(N_Y, M, T),
                e(M, T, N_A)]
    else:
        names = ["x", "a0", "c0", "w0", "b0", "wy", "by", "a", "c", "y", "z", "s"]
        args = [x, a0, a0.copy(), p.w[0], p.b[0], p.wy, p.by, e(N_A, M, T), e(N_A, M, T),
                e(N_Y, M, T), e(M, T, 4 * N_A), e(M, T, 2 * N_A)]
    return names, args, p


def _call_kernel(kind, args, p, j0=0, j1=M):
    if kind == "rnn":
        return _core.rnn_forward(*args, j0, j1, 4)
    # w0/b0 stand for the first gate; the other three are the packed model's
    x, a0, c0, w0, b0, wy, by, *out = args
    return _core.lstm_forward(x, a0, c0, (w0,) + p.w[1:], (b0,) + p.b[1:], wy, by, *out,
                              j0, j1, 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_kernel_wrappers_check_every_array(kind, dtype):
    names, args, p = _kernel_args(kind, dtype)
    _call_kernel(kind, args, p)  # the valid call runs
    for k, name in enumerate(names):
        for label, bad in _mutations(args[k]) + [("None", None)]:
            if name == "x" and label.startswith("shape"):
                continue  # any (n_x, m, T) is a valid input: the others are checked against it
            mutated = list(args)
            mutated[k] = bad
            with pytest.raises((ValueError, TypeError)):
                _call_kernel(kind, mutated, p)
                pytest.fail(f"_core.{kind}_forward ran with {name} {label}")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_kernel_wrappers_check_the_batch_slice(kind):
    names, args, p = _kernel_args(kind, np.float64)
    for j0, j1 in ((-1, M), (0, M + 1), (3, 2)):
        with pytest.raises(ValueError, match="slice"):
            _call_kernel(kind, args, p, j0, j1)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_kernel_wrappers_refuse_read_only_outputs(kind):
    names, args, p = _kernel_args(kind, np.float64)
    for k, name in enumerate(names):
        if name in ("a", "c", "y", "z", "s"):
            mutated = list(args)
            mutated[k] = args[k].copy()
            mutated[k].flags.writeable = False
            with pytest.raises(ValueError, match=name):
                _call_kernel(kind, mutated, p)


@pytest.mark.parametrize("dtype", DTYPES)
def test_last_states_takes_each_sequence_at_its_end(dtype):
    rng = np.random.default_rng(4)
    seqs = [rng.standard_normal((n_a, M, T)).astype(dtype) for n_a in (N_A, N_A, N_A)]
    starts = [False, True, False]
    got = _core.last_states(seqs, starts)
    want = np.array([s[:, :, 0 if first else -1] for s, first in zip(seqs, starts)])
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    unequal = seqs[:2] + [rng.standard_normal((N_A + 2, M, T)).astype(dtype)]
    got = _core.last_states(unequal, [True, False, False])
    assert isinstance(got, list) and [g.shape for g in got] == [(N_A, M), (N_A, M), (N_A + 2, M)]
    for g, s, first in zip(got, unequal, (True, False, False)):
        np.testing.assert_array_equal(g, s[:, :, 0 if first else -1])


def test_last_states_checks_every_sequence():
    good = np.ones((N_A, M, T))
    for label, bad in _mutations(good) + [("T = 0", np.ones((N_A, M, 0)))]:
        if label in (f"shape {(N_A - 1, M, T)}", f"shape {(N_A + 1, M, T)}"):
            continue  # another n_a is a valid sequence (the states come back as a list)
        with pytest.raises((ValueError, TypeError)):
            _core.last_states([good, bad], [False, False])
            pytest.fail(f"last_states ran with a sequence of {label}")
    with pytest.raises(TypeError):
        _core.last_states([good, None], [False, False])
    with pytest.raises(ValueError):
        _core.last_states([good], [False, True])
    with pytest.raises(ValueError):
        _core.last_states([], [])


@pytest.mark.parametrize("dtype", DTYPES)
def test_last_states_of_a_batch_in_order_of_length(dtype):
    # Sorted example q is the caller's example order[q]: its state after step lengths[q] - 1
    # (or step 0 for a backward direction) goes to column order[q].
    rng = np.random.default_rng(5)
    lengths = np.array([T, 2, T, 1])
    _, order, sorted_lengths, _, _ = _core.sort_lengths(lengths, T)
    seqs = [rng.standard_normal((N_A, M, T)).astype(dtype) for _ in range(3)]
    starts = [False, True, False]
    got = _core.last_states(seqs, starts, order, sorted_lengths)
    for k, (s, first) in enumerate(zip(seqs, starts)):
        for q in range(M):
            step = 0 if first else sorted_lengths[q] - 1
            np.testing.assert_array_equal(got[k][:, order[q]], s[:, q, step])


def test_last_states_checks_order_and_lengths():
    good = np.ones((N_A, M, T))
    order, lengths = np.arange(M, dtype=np.intp), np.full(M, T, dtype=np.intp)
    assert _core.last_states([good], [False], order, lengths).shape == (1, N_A, M)
    bad = [(order, None), (None, lengths), (order.astype(np.int32), lengths),
           (order[:-1], lengths), (order, lengths[::2]), (order[::-1] + 1, lengths),
           (order - 1, lengths), (order, lengths + 1), (order, lengths - T)]
    for o, n in bad:
        with pytest.raises(ValueError):
            _core.last_states([good], [False], o, n)
            pytest.fail(f"last_states ran with order {o} and lengths {n}")
