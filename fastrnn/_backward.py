"""The drop-in backward passes (backpropagation through time) of the lessons.

``rnn_backward`` / ``lstm_backward`` on caches made by fastrnn's own forward read the
forward's private gate and state buffers directly (no per-step tuples are built); caches made
by any other code (lists of the lessons' tuples) are validated and converted, with the same
kernels and the same results.  See ``fastrnn.reference`` for the specification.
"""
import threading

import numpy as np

from fastrnn import _api, _checked, reference
from fastrnn._kernels import _backward as _bk
from fastrnn._packing import GATES, as_c
from fastrnn._validation import validate_backward

__all__ = ["rnn_cell_backward", "rnn_backward", "lstm_cell_backward", "lstm_backward"]

_LSTM_GATE = {"f": 4, "i": 5, "c": 6, "o": 7}  # cache index of each gate's activation

# Per-thread work buffer of the fast path, kept between calls: fresh memory costs a page
# fault per 4 KiB on first touch (measured: about a fifth of a backward pass at DeepBench's
# size; 9% of the RNN's at the fastrnns size).  The buffer holds the gate gradients
# (m*T_x*G values), the shifted hidden states (m*T_x*n_a) and the packed recurrent block:
# less than the forward's own caches of the same call.  Buffers above _KEEP_BYTES are not
# kept (the drop-in calls should not hold on to very large memory between calls).
_SCRATCH = threading.local()
_KEEP_BYTES = 128 * 1024 * 1024


def _scratch():
    slots = _SCRATCH.__dict__.setdefault("slots", [None])
    if slots[0] is not None and slots[0].nbytes > _KEEP_BYTES:
        slots[0] = None
    return slots


def _fast_source(caches):
    """The forward buffers (z, s, x, a0, c0, parameters) behind fastrnn's own caches, or
    None for any other caches."""
    if type(caches) is not tuple or len(caches) != 2:
        return None
    steps = caches[0]
    if type(steps) is not _api.StepCaches or steps.source is None:
        return None
    parameters = steps.source[5]
    return steps.source if type(parameters) is dict else None


def _has_keys(parameters, keys):
    return all(k in parameters for k in keys)


# ------------------------------------------------------------------ the general route

def _time_major(steps, index, width, m, T, dtype, rows=None):
    """(m, T, width) array whose column (j, t) stacks ``steps[t][k][:, j]`` for k in index."""
    out = np.empty((m, T, width), dtype=dtype)
    with np.errstate(over="ignore"):  # float64 beyond the float32 range becomes +-inf
        for t, arrays in enumerate(steps):
            r = 0
            for k in index:
                n = arrays[k].shape[0]
                out[:, t, r:r + n] = arrays[k].T
                r += n
    return out


def _stack_x(steps, k, n_x, m, T, dtype):
    x = np.empty((n_x, m, T), dtype=dtype)
    with np.errstate(over="ignore"):
        for t, arrays in enumerate(steps):
            x[:, :, t] = arrays[k]
    return x


def _rnn_general(upstream, caches, sequence):
    """Validate, convert and run; returns (dx, da0, dWaa, dWax, db) and the validated
    (upstream, steps, weights) for checked mode."""
    dims, dtype, ups, steps, weights = validate_backward("rnn", upstream, caches,
                                                         sequence=sequence)
    n_x, n_a, m = dims.n_x, dims.n_a, dims.m
    T = dims.T_x if sequence else 1
    if 0 in (n_a, m, T):
        z = np.zeros
        out = (z((n_x, m, T), dtype), z((n_a, m), dtype), z((n_a, n_a), dtype),
               z((n_a, n_x), dtype), z(n_a, dtype))
        return out, (ups, steps, weights)
    da = as_c(ups[0], dtype).reshape(n_a, m, T)
    h = _time_major(steps, (0,), n_a, m, T, dtype)
    prev = _time_major(steps, (1,), n_a, m, T, dtype)
    x = _stack_x(steps, 2, n_x, m, T, dtype)
    out = _bk.rnn_backward(da, x, h, prev, as_c(steps[0][1], dtype),
                           as_c(weights["Waa"], dtype), as_c(weights["Wax"], dtype),
                           _api.SMALL_BATCH_MAX_M)
    if out is None:  # cannot happen: everything above is exact
        raise RuntimeError("fastrnn: the backward kernel refused converted arrays")
    return out, (ups, steps, weights)


def _lstm_general(upstream, caches, sequence):
    """As _rnn_general; returns (dx, da0, dc0, dW, db)."""
    dims, dtype, ups, steps, weights = validate_backward("lstm", upstream, caches,
                                                         sequence=sequence)
    n_x, n_a, m = dims.n_x, dims.n_a, dims.m
    T = dims.T_x if sequence else 1
    if 0 in (n_a, m, T):
        z = np.zeros
        out = (z((n_x, m, T), dtype), z((n_a, m), dtype), z((n_a, m), dtype),
               z((4 * n_a, n_a + n_x), dtype), z(4 * n_a, dtype))
        return out, (ups, steps, weights)
    da = as_c(ups[0], dtype).reshape(n_a, m, T)
    z = _time_major(steps, [_LSTM_GATE[g] for g in GATES], 4 * n_a, m, T, dtype)
    s = _time_major(steps, (0, 1), 2 * n_a, m, T, dtype)
    prev = _time_major(steps, (2, 3), 2 * n_a, m, T, dtype)
    x = _stack_x(steps, 8, n_x, m, T, dtype)
    dc_next = as_c(ups[1], dtype) if len(ups) > 1 else None
    out = _bk.lstm_backward(da, x, z, s, prev, as_c(steps[0][2], dtype), None,
                            tuple(as_c(weights["W" + g], dtype) for g in GATES),
                            _api.SMALL_BATCH_MAX_M, dc_next)
    if out is None:
        raise RuntimeError("fastrnn: the backward kernel refused converted arrays")
    return out, (ups, steps, weights)


# ------------------------------------------------------------------ checked mode

def _f64_steps(steps, weights):
    """The validated cache arrays as float64 cache tuples for the reference."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    return [tuple(np.asarray(a, dtype=np.float64) for a in arrays) + (params,)
            for arrays in steps]


def _validated(kind, upstream, caches, sequence):
    """The validated inputs of a call that took the fast path (for checked mode only)."""
    _, _, ups, steps, weights = validate_backward(kind, upstream, caches, sequence=sequence)
    return ups, steps, weights


def _check(function, got, reference_call):
    with np.errstate(all="ignore"):
        want = reference_call()
    dtype = next(iter(got.values())).dtype
    _checked.compare(function, got, {k: want[k] for k in got}, dtype)


def _f64(v):
    return np.asarray(v, dtype=np.float64)


# ------------------------------------------------------------------ the drop-in functions

def rnn_cell_backward(da_next, cache):
    """Backward pass of one basic-RNN step (drop-in for the lessons' ``rnn_cell_backward``).

    Parameters
    ----------
    da_next : array_like (n_a, m)
        Gradient of the loss with respect to ``a_next`` (the output layer is not
        backpropagated, as in the lessons).
    cache : tuple
        ``(a_next, a_prev, xt, parameters)``, as ``rnn_cell_forward`` returns it.

    Returns
    -------
    gradients : dict
        ``dxt`` (n_x, m), ``da_prev`` (n_a, m), ``dWax`` (n_a, n_x), ``dWaa`` (n_a, n_a),
        ``dba`` (n_a, 1).
    """
    (dx, da0, dwa, dwx, db), (ups, steps, weights) = _rnn_general(
        [("da_next", da_next)], cache, sequence=False)
    grads = {"dxt": dx[:, :, 0], "da_prev": da0, "dWax": dwx, "dWaa": dwa,
             "dba": db.reshape(-1, 1)}
    if _checked.is_checked():
        _check("rnn_cell_backward", grads, lambda: reference.rnn_cell_backward(
            _f64(ups[0]), _f64_steps(steps, weights)[0]))
    return grads


def rnn_backward(da, caches):
    """Backward pass of the basic RNN over a sequence (drop-in for ``rnn_backward``).

    Parameters
    ----------
    da : array_like (n_a, m, T_x)
        Upstream gradient of every hidden state.  T_x is read from ``da``; it may cover fewer
        steps than ``caches`` (then only the first T_x caches are used).
    caches : tuple
        ``(list of cell caches, x)``, as ``rnn_forward`` returns it: fastrnn's own (read
        straight from the forward's buffers) or made by any numpy forward.

    Returns
    -------
    gradients : dict
        ``dx`` (n_x, m, T_x), ``da0`` (n_a, m), ``dWax`` (n_a, n_x), ``dWaa`` (n_a, n_a),
        ``dba`` (n_a, 1).
    """
    out = None
    src = _fast_source(caches)
    if src is not None and _has_keys(src[5], ("Wya", "ba", "by")):
        z, _, x, a0, _, p = src
        out = _bk.rnn_backward(da, x, z, None, a0, p.get("Waa"), p.get("Wax"),
                               _api.SMALL_BATCH_MAX_M, _scratch())
    checked = None
    if out is None:
        out, checked = _rnn_general([("da", da)], caches, sequence=True)
    dx, da0, dwa, dwx, db = out
    grads = {"dx": dx, "da0": da0, "dWax": dwx, "dWaa": dwa, "dba": db.reshape(-1, 1)}
    if _checked.is_checked():
        ups, steps, weights = checked or _validated("rnn", [("da", da)], caches, True)
        _check("rnn_backward", grads, lambda: reference.rnn_backward(
            _f64(ups[0]), (_f64_steps(steps, weights), None)))
    return grads


def _lstm_grads(dW, db, n_a):
    """The merged gate gradients as the lessons' dict entries (row views, GATES order)."""
    grads = {}
    for g in ("f", "i", "c", "o"):
        k = GATES.index(g)
        grads["dW" + g] = dW[k * n_a:(k + 1) * n_a]
        grads["db" + g] = db[k * n_a:(k + 1) * n_a].reshape(n_a, 1)
    return grads


def lstm_cell_backward(da_next, dc_next, cache):
    """Backward pass of one LSTM step (drop-in for the lessons' ``lstm_cell_backward``).

    Parameters
    ----------
    da_next, dc_next : array_like (n_a, m)
        Gradients of the loss with respect to ``a_next`` and ``c_next``.
    cache : tuple
        ``(a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)``.

    Returns
    -------
    gradients : dict
        ``dxt`` (n_x, m), ``da_prev``, ``dc_prev`` (n_a, m), ``dWf, dbf, dWi, dbi, dWc, dbc,
        dWo, dbo`` (the parameters' shapes).
    """
    (dx, da0, dc0, dW, db), (ups, steps, weights) = _lstm_general(
        [("da_next", da_next), ("dc_next", dc_next)], cache, sequence=False)
    n_a = da0.shape[0]
    grads = {"dxt": dx[:, :, 0], "da_prev": da0, "dc_prev": dc0}
    grads.update(_lstm_grads(dW, db, n_a))
    grads = {k: grads[k] for k in ("dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi",
                                   "dWc", "dbc", "dWo", "dbo")}
    if _checked.is_checked():
        _check("lstm_cell_backward", grads, lambda: reference.lstm_cell_backward(
            _f64(ups[0]), _f64(ups[1]), _f64_steps(steps, weights)[0]))
    return grads


def lstm_backward(da, caches):
    """Backward pass of the LSTM over a sequence (drop-in for ``lstm_backward``).

    Parameters
    ----------
    da : array_like (n_a, m, T_x)
        Upstream gradient of every hidden state (T_x read from it, as for
        :func:`rnn_backward`).  The cell gradient starts at zero after the last step.
    caches : tuple
        ``(list of cell caches, x)``, as ``lstm_forward`` returns it.

    Returns
    -------
    gradients : dict
        ``dx`` (n_x, m, T_x), ``da0`` (n_a, m), ``dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo``.
    """
    out = None
    src = _fast_source(caches)
    if src is not None and _has_keys(src[5], ("Wy", "by", "bf", "bi", "bc", "bo")):
        z, s, x, a0, c0, p = src
        w = tuple(p.get("W" + g) for g in GATES)
        out = _bk.lstm_backward(da, x, z, s, None, a0, c0, w, _api.SMALL_BATCH_MAX_M,
                                None, _scratch())
    checked = None
    if out is None:
        out, checked = _lstm_general([("da", da)], caches, sequence=True)
    dx, da0, _, dW, db = out
    grads = {"dx": dx, "da0": da0}
    grads.update(_lstm_grads(dW, db, da0.shape[0]))
    if _checked.is_checked():
        ups, steps, weights = checked or _validated("lstm", [("da", da)], caches, True)
        _check("lstm_backward", grads, lambda: reference.lstm_backward(
            _f64(ups[0]), (_f64_steps(steps, weights), None)))
    return grads
