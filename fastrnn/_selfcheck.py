"""``python -m fastrnn check``: every public call against the numpy reference.

Runs the six drop-in forward functions (outputs and the arrays in their caches), the packed
models' ``forward`` and ``step`` (``RNN`` with tanh and ReLU, ``LSTM``, ``GRU``), two-layer
bidirectional ``Stack``s of each kind (random lengths and initial states, the GRU with the reset
gate after and before its product, against the reference's ``layer_forward`` composed layer by
layer), the four drop-in backward passes (on fastrnn's own caches and, every other shape, on
the same caches as a plain list) and the models' ``loss_and_grads`` on random inputs over a
spread of shapes:
unequal sizes (square shapes hide transposes), sizes of 1, a longer sequence, every path
of the recurrent product in turn (the small-batch kernel, the packed-panel GEMM, BLAS gemm:
``fastrnn._api.recurrent_path``), saturating weights, batch-parallel threads, both dtypes.
float32 results are compared with the float64 reference run on the same (float32) values.
Prints one row per function and dtype; the exit status is 0 when all pass.

Tolerances (README, "Numerical contract"): float64 ``rtol=1e-9, atol=1e-11``; float32 ``rtol=1e-4,
atol=1e-5``.  A value passes when ``|got - want| <= atol + rtol * |want|`` (NaN must meet
NaN).  The relative error column is ``|got - want| / |want|`` where ``|want| > atol``.
"""
import argparse
import math
import sys
import time

import numpy as np

import fastrnn
from fastrnn import _api, _checked, reference
from fastrnn._bench import gru_params, make_params

__all__ = ["TOLERANCES", "SHAPES", "QUICK_SHAPES", "FUNCTIONS", "run_checks", "main",
           "add_arguments"]

# The same tolerances as checked mode's, by dtype name.
TOLERANCES = {np.dtype(d).name: tol for d, tol in _checked.TOLERANCES.items()}

# (n_x, n_a, n_y, m, T_x): deliberately unequal, with sizes of 1 and a longer sequence.
SHAPES = (
    (3, 5, 2, 10, 4),      # the lessons' test size
    (1, 1, 1, 1, 1),       # every size 1
    (7, 3, 5, 1, 6),       # one example; saturated
    (2, 9, 1, 3, 5),       # n_y = 1: the softmax of one row
    (1, 4, 3, 6, 2),       # n_x = 1
    (5, 1, 4, 2, 3),       # n_a = 1
    (13, 17, 11, 9, 7),    # odd sizes, m above the default small-batch threshold
    (6, 8, 5, 2, 160),     # a longer sequence
    (40, 33, 29, 12, 12),  # sizes off the vector widths
    (6, 9, 4, 5, 6),       # saturated
    (4, 3, 3, 7, 5),       # saturated
)
QUICK_SHAPES = SHAPES[:4] + SHAPES[6:8] + SHAPES[9:10]

# Saturated shapes: weights large enough that |z| is of order SATURATING_Z (tanh and
# sigmoid at their limits), with a moderate output layer.  Only small, short ones: with a
# large recurrent gain, the few units that land near z = 0 amplify any rounding difference
# (even float64's, even between two summation orders of the reference itself) by about
# the gain each step, so a long or wide saturated sequence cannot be compared within the
# tolerances for any correct implementation.  For the same reason float32 runs them for at
# most SATURATED_T32 steps: near z = 0 the float32 rounding of a sum of terms of size ~30
# is already ~1e-6 and a few steps of gain take it past atol = 1e-5 now and then (numpy's
# own float32 evaluation of the reference fails as often as fastrnn does).
SATURATED = frozenset({(7, 3, 5, 1, 6), (6, 9, 4, 5, 6), (4, 3, 3, 7, 5)})
SATURATING_Z = 30.0
SATURATED_T32 = 2

FUNCTIONS = ("rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward",
             "gru_cell_forward", "gru_forward", "RNN.forward", "RNN.step", "LSTM.forward",
             "LSTM.step", "GRU.forward", "GRU.step", "Stack.forward",
             "rnn_cell_backward", "rnn_backward", "lstm_cell_backward", "lstm_backward",
             "RNN.loss_and_grads", "LSTM.loss_and_grads")
MODELS = ("rnn", "lstm", "gru")


def _params(model, rng, n_x, n_a, n_y, dtype, **kwargs):
    if model == "gru":
        return gru_params(rng, n_x, n_a, n_y, dtype, **kwargs)
    p = make_params(model, rng, n_x, n_a, max(n_y, 1), dtype, **kwargs)
    if not n_y:  # no output layer
        del p["Wya" if model == "rnn" else "Wy"], p["by"]
    return p

def _f64(v):
    return np.asarray(v, dtype=np.float64)


def _ref(name, *args, **options):
    """reference.<name> in float64; its sigmoid overflows harmlessly (0 is right).  Options
    (strings, bools), lengths (integers) and None are passed as they are."""
    args = [{k: _f64(v) for k, v in a.items()} if isinstance(a, dict)
            else a if a is None or isinstance(a, (str, bool)) or np.asarray(a).dtype.kind in "iu"
            else _f64(a) for a in args]
    with np.errstate(over="ignore", under="ignore"):
        return getattr(reference, name)(*args, **options)


def _ref_lstm_sequence(x, a0, c0, parameters):
    """reference.lstm_cell_forward over a sequence from any (a0, c0): a, y, c."""
    T = x.shape[2]
    a, y, c = [], [], []
    a_t, c_t = a0, c0
    for t in range(T):
        a_t, c_t, y_t, _ = _ref("lstm_cell_forward", x[:, :, t], a_t, c_t, parameters)
        a.append(a_t)
        c.append(c_t)
        y.append(y_t)
    return np.stack(a, axis=2), np.stack(y, axis=2), np.stack(c, axis=2)


class Tally:
    """Worst errors and failures of one (function, dtype) row."""

    def __init__(self):
        self.cases = 0
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.failures = []

    @property
    def ok(self):
        return not self.failures

    def compare(self, what, got, want, tol):
        """Compare one output; record the errors and any failure (with ``what``)."""
        got_arr = np.asarray(got)
        want = _f64(want)
        if got_arr.shape != want.shape:
            self.failures.append(f"{what}: shape {got_arr.shape}, expected {want.shape}")
            self.max_abs = math.inf
            return
        g = _f64(got_arr)
        diff = np.abs(g - want)
        same_nonfinite = (np.isnan(g) & np.isnan(want)) | (g == want)
        diff = np.where(same_nonfinite, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)
        if diff.size:
            abs_err = float(diff.max())
            big = np.abs(want) > tol["atol"]
            rel_err = float((diff[big] / np.abs(want[big])).max()) if big.any() else 0.0
            self.max_abs = max(self.max_abs, abs_err)
            self.max_rel = max(self.max_rel, rel_err)
            bad = diff > tol["atol"] + tol["rtol"] * np.abs(want)
            if bad.any():
                k = np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), diff.shape)
                self.failures.append(
                    f"{what}: {int(bad.sum())} of {diff.size} values beyond tolerance; worst "
                    f"at {tuple(int(i) for i in k)}: got {g[k]!r}, expected {want[k]!r}")

    def check(self, what, condition, message):
        if not condition:
            self.failures.append(f"{what}: {message}")


def _check_dtype(tally, what, arrays, dtype):
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        tally.check(f"{what} {name}", arr.dtype == dtype,
                    f"dtype {arr.dtype}, expected {np.dtype(dtype).name}")


def _compare_all(tally, what, got, want, tol, dtype):
    _check_dtype(tally, what, got, dtype)
    for name in got:
        tally.compare(f"{what} {name}", got[name], want[name], tol)


def _compare_cache(tally, what, got, want, parameters, tol):
    """Array items of a cache tuple against the reference's; parameters by identity."""
    tally.check(what, len(got) == len(want), f"{len(got)} items, expected {len(want)}")
    for k, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, dict):
            tally.check(f"{what}[{k}]", g is parameters, "is not the parameters passed in")
        else:
            tally.compare(f"{what}[{k}]", g, w, tol)


class Case:
    """The inputs of one check: parameters, x (n_x, m, T_x), a0 and c0 (n_a, m)."""

    def __init__(self, label, rng, shape, dtype, model, scale, variant):
        self.label, self.shape, self.dtype, self.variant = label, shape, np.dtype(dtype), variant
        n_x, n_a, n_y, m, T = shape
        self.model = model
        self.p = _params(model, rng, n_x, n_a, n_y, dtype, scale=scale)
        if scale is not None:
            # saturated hidden units, but a moderate output layer: a well-conditioned softmax
            key = "Wya" if model == "rnn" else "Wy"
            self.p[key] = (rng.standard_normal(self.p[key].shape) / 3).astype(dtype)
        self.x = rng.standard_normal((n_x, m, T)).astype(dtype)
        self.a0 = rng.standard_normal((n_a, m)).astype(dtype)
        self.c0 = rng.standard_normal((n_a, m)).astype(dtype)
        self.xt = np.ascontiguousarray(self.x[:, :, 0])
        self.zeros = np.zeros((n_a, m))
        # drawn last, so that the forward checks' inputs do not depend on them
        self.da = rng.standard_normal((n_a, m, T)).astype(dtype)
        self.dc = rng.standard_normal((n_a, m)).astype(dtype)
        self.targets = rng.integers(0, n_y, size=(m, T))
        self.rng = rng


def _check_rnn_cell_forward(t, c, tol):
    got = fastrnn.rnn_cell_forward(c.xt, c.a0, c.p)
    want = _ref("rnn_cell_forward", c.xt, c.a0, c.p)
    _compare_all(t, c.label, {"a_next": got[0], "yt_pred": got[1]},
                 {"a_next": want[0], "yt_pred": want[1]}, tol, c.dtype)
    _compare_cache(t, f"{c.label} cache", got[2], want[2], c.p, tol)


def _check_rnn_forward(t, c, tol):
    T = c.shape[4]
    got = fastrnn.rnn_forward(c.x, c.a0, c.p)
    want = _ref("rnn_forward", c.x, c.a0, c.p)
    _compare_all(t, c.label, {"a": got[0], "y_pred": got[1]},
                 {"a": want[0], "y_pred": want[1]}, tol, c.dtype)
    caches = got[2]
    t.check(f"{c.label} caches", len(caches) == 2 and caches[1] is c.x
            and len(caches[0]) == T, "not (list of T_x caches, x)")
    for s in sorted({0, T - 1}):
        _compare_cache(t, f"{c.label} caches[0][{s}]", caches[0][s], want[2][0][s], c.p, tol)


def _nonlinearity(c):
    # every third shape runs the RNN model with ReLU
    return "relu" if c.variant % 3 == 2 else "tanh"


def _check_rnn_model_forward(t, c, tol):
    act = _nonlinearity(c)
    net = fastrnn.RNN(c.p, nonlinearity=act)
    if c.variant % 2:   # a0 given, batch-parallel threads
        got = net.forward(c.x, c.a0, n_threads=2)
        want = _ref("rnn_forward", c.x, c.a0, c.p, act)
    else:               # a0 omitted: zeros
        got = net.forward(c.x)
        want = _ref("rnn_forward", c.x, c.zeros, c.p, act)
    _compare_all(t, c.label, {"a": got[0], "y_pred": got[1]},
                 {"a": want[0], "y_pred": want[1]}, tol, c.dtype)


def _check_rnn_model_step(t, c, tol):
    act = _nonlinearity(c)
    net = fastrnn.RNN(c.p, nonlinearity=act)
    state, ref_state = (c.a0, c.a0) if c.variant % 2 else (None, c.zeros)
    for s in range(min(c.shape[4], 3)):   # a short stream
        state, yt = net.step(c.x[:, :, s], state)
        ref_state, ref_y, _ = _ref("rnn_cell_forward", c.x[:, :, s], ref_state, c.p, act)
        _compare_all(t, f"{c.label} step {s}", {"a_next": state, "yt_pred": yt},
                     {"a_next": ref_state, "yt_pred": ref_y}, tol, c.dtype)


def _check_lstm_cell_forward(t, c, tol):
    got = fastrnn.lstm_cell_forward(c.xt, c.a0, c.c0, c.p)
    want = _ref("lstm_cell_forward", c.xt, c.a0, c.c0, c.p)
    names = ("a_next", "c_next", "yt_pred")
    _compare_all(t, c.label, dict(zip(names, got[:3])), dict(zip(names, want[:3])), tol,
                 c.dtype)
    _compare_cache(t, f"{c.label} cache", got[3], want[3], c.p, tol)


def _check_lstm_forward(t, c, tol):
    T = c.shape[4]
    got = fastrnn.lstm_forward(c.x, c.a0, c.p)
    want = _ref("lstm_forward", c.x, c.a0, c.p)
    names = ("a", "y", "c")
    _compare_all(t, c.label, dict(zip(names, got[:3])), dict(zip(names, want[:3])), tol,
                 c.dtype)
    caches = got[3]
    t.check(f"{c.label} caches", len(caches) == 2 and caches[1] is c.x
            and len(caches[0]) == T, "not (list of T_x caches, x)")
    for s in sorted({0, T - 1}):
        _compare_cache(t, f"{c.label} caches[0][{s}]", caches[0][s], want[3][0][s], c.p, tol)


def _check_lstm_model_forward(t, c, tol):
    net = fastrnn.LSTM(c.p)
    if c.variant % 2:   # (a0, c0) given, batch-parallel threads
        got = net.forward(c.x, c.a0, c.c0, n_threads=2)
        want = _ref_lstm_sequence(c.x, c.a0, c.c0, c.p)
    else:               # omitted: zeros
        got = net.forward(c.x)
        want = _ref("lstm_forward", c.x, c.zeros, c.p)[:3]
    names = ("a", "y", "c")
    _compare_all(t, c.label, dict(zip(names, got)), dict(zip(names, want)), tol, c.dtype)


def _check_lstm_model_step(t, c, tol):
    net = fastrnn.LSTM(c.p)
    state = (c.a0, c.c0) if c.variant % 2 else None
    ra, rc = (c.a0, c.c0) if c.variant % 2 else (c.zeros, c.zeros)
    for s in range(min(c.shape[4], 3)):   # a short stream
        state, yt = net.step(c.x[:, :, s], state)
        ra, rc, ry, _ = _ref("lstm_cell_forward", c.x[:, :, s], ra, rc, c.p)
        _compare_all(t, f"{c.label} step {s}",
                     {"a_next": state[0], "c_next": state[1], "yt_pred": yt},
                     {"a_next": ra, "c_next": rc, "yt_pred": ry}, tol, c.dtype)


def _f64_cache(cache):
    return tuple({k: _f64(v) for k, v in a.items()} if isinstance(a, dict) else _f64(a)
                 for a in cache)


def _ref_backward(name, upstream, caches, sequence=True):
    """reference.<name> in float64 on the same cache values that fastrnn's backward got
    (its own forward's): the backward is compared on its own inputs, the forward has rows
    of its own (near saturation, 1 - a**2 of a float32 a close to 1 is only good to a few
    percent, whichever code computes the backward)."""
    if sequence:
        caches = ([_f64_cache(c) for c in caches[0]], None)
    else:
        caches = _f64_cache(caches)
    with np.errstate(all="ignore"):
        return getattr(reference, name)(*[_f64(u) for u in upstream], caches)


def _compare_grads(t, what, got, want, tol, dtype):
    t.check(what, list(got) == list(want), f"keys {list(got)}, expected {list(want)}")
    _compare_all(t, what, got, {k: want[k] for k in got if k in want}, tol, dtype)


def _check_rnn_cell_backward(t, c, tol):
    da = np.ascontiguousarray(c.da[:, :, 0])
    cache = fastrnn.rnn_cell_forward(c.xt, c.a0, c.p)[2]
    got = fastrnn.rnn_cell_backward(da, cache)
    want = _ref_backward("rnn_cell_backward", (da,), cache, sequence=False)
    _compare_grads(t, c.label, got, want, tol, c.dtype)


def _check_rnn_backward(t, c, tol):
    caches = fastrnn.rnn_forward(c.x, c.a0, c.p)[2]
    if c.variant % 2:   # the same caches as a plain list: the validated, converted route
        caches = (list(caches[0]), caches[1])
    got = fastrnn.rnn_backward(c.da, caches)
    want = _ref_backward("rnn_backward", (c.da,), caches)
    _compare_grads(t, c.label, got, want, tol, c.dtype)


def _check_lstm_cell_backward(t, c, tol):
    da = np.ascontiguousarray(c.da[:, :, 0])
    cache = fastrnn.lstm_cell_forward(c.xt, c.a0, c.c0, c.p)[3]
    got = fastrnn.lstm_cell_backward(da, c.dc, cache)
    want = _ref_backward("lstm_cell_backward", (da, c.dc), cache, sequence=False)
    _compare_grads(t, c.label, got, want, tol, c.dtype)


def _check_lstm_backward(t, c, tol):
    caches = fastrnn.lstm_forward(c.x, c.a0, c.p)[3]
    if c.variant % 2:
        caches = (list(caches[0]), caches[1])
    got = fastrnn.lstm_backward(c.da, caches)
    want = _ref_backward("lstm_backward", (c.da,), caches)
    _compare_grads(t, c.label, got, want, tol, c.dtype)


def _check_model_loss_and_grads(t, c, tol, kind):
    states = (c.a0,) if kind == "rnn" else (c.a0, c.c0)
    net = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(c.p)
    loss, got = net.loss_and_grads(c.x, c.targets, *states)
    args = ([_f64(c.x), c.targets] + [_f64(v) for v in states]
            + [{k: _f64(v) for k, v in c.p.items()}])
    with np.errstate(all="ignore"):
        want_loss, want = getattr(reference, f"{kind}_loss_and_grads")(*args)
    t.compare(f"{c.label} loss", loss, want_loss, tol)
    _compare_grads(t, c.label, got, want, tol, c.dtype)


def _reset_after(c):
    # every third shape runs the GRU with the reset gate before the product
    return c.variant % 3 != 2


def _check_gru_cell_forward(t, c, tol):
    ra = _reset_after(c)
    got = fastrnn.gru_cell_forward(c.xt, c.a0, c.p, reset_after=ra)
    want = _ref("gru_cell_forward", c.xt, c.a0, c.p, ra)
    _compare_all(t, c.label, {"a_next": got[0], "yt_pred": got[1]},
                 {"a_next": want[0], "yt_pred": want[1]}, tol, c.dtype)
    _compare_cache(t, f"{c.label} cache", got[2], want[2], c.p, tol)


def _check_gru_forward(t, c, tol):
    T = c.shape[4]
    ra = _reset_after(c)
    got = fastrnn.gru_forward(c.x, c.a0, c.p, reset_after=ra)
    want = _ref("gru_forward", c.x, c.a0, c.p, ra)
    _compare_all(t, c.label, {"a": got[0], "y_pred": got[1]},
                 {"a": want[0], "y_pred": want[1]}, tol, c.dtype)
    caches = got[2]
    t.check(f"{c.label} caches", len(caches) == 2 and caches[1] is c.x
            and len(caches[0]) == T, "not (list of T_x caches, x)")
    for s in sorted({0, T - 1}):
        _compare_cache(t, f"{c.label} caches[0][{s}]", caches[0][s], want[2][0][s], c.p, tol)


def _check_gru_model_forward(t, c, tol):
    ra = _reset_after(c)
    net = fastrnn.GRU(c.p, reset_after=ra)
    if c.variant % 2:   # a0 given, batch-parallel threads
        got = net.forward(c.x, c.a0, n_threads=2)
        want = _ref("gru_forward", c.x, c.a0, c.p, ra)
    else:               # a0 omitted: zeros
        got = net.forward(c.x)
        want = _ref("gru_forward", c.x, c.zeros, c.p, ra)
    _compare_all(t, c.label, {"a": got[0], "y_pred": got[1]},
                 {"a": want[0], "y_pred": want[1]}, tol, c.dtype)


def _check_gru_model_step(t, c, tol):
    ra = _reset_after(c)
    net = fastrnn.GRU(c.p, reset_after=ra)
    state, ref_state = (c.a0, c.a0) if c.variant % 2 else (None, c.zeros)
    for s in range(min(c.shape[4], 3)):   # a short stream
        state, yt = net.step(c.x[:, :, s], state)
        ref_state, ref_y, _ = _ref("gru_cell_forward", c.x[:, :, s], ref_state, c.p, ra)
        _compare_all(t, f"{c.label} step {s}", {"a_next": state, "yt_pred": yt},
                     {"a_next": ref_state, "yt_pred": ref_y}, tol, c.dtype)


_MODEL_CLASS = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}


def _check_stack_forward(t, c, tol):
    """Two bidirectional layers of the case's kind (the first with the case's input weights'
    sizes, no output layer), random lengths and initial states, an output layer on top."""
    n_x, n_a, n_y, m, T = c.shape
    rng, kind = c.rng, c.model
    params, layers, n_in = [], [], n_x
    options = ({"reset_after": _reset_after(c)} if kind == "gru"
               else {"nonlinearity": _nonlinearity(c)} if kind == "rnn" else {})
    for _ in range(2):
        pair = [_params(kind, rng, n_in, n_a, 0, c.dtype) for _ in range(2)]
        params.append(pair)
        layers.append(fastrnn.Bidirectional(*(_MODEL_CLASS[kind](p, **options) for p in pair)))
        n_in = 2 * n_a
    head = {"Wy": (rng.standard_normal((n_y, n_in)) / 3).astype(c.dtype),
            "by": rng.standard_normal((n_y, 1)).astype(c.dtype)}
    lengths = rng.integers(1, T + 1, size=m)
    h0 = rng.standard_normal((4, n_a, m)).astype(c.dtype)
    c0 = rng.standard_normal((4, n_a, m)).astype(c.dtype) if kind == "lstm" else None
    h, y, state = fastrnn.Stack(layers, head).forward(c.x, lengths, h0, c0,
                                                      n_threads=1 + c.variant % 2)
    # the reference, one layer and one direction at a time
    x, k, h_n, c_n = _f64(c.x), 0, [], []
    for pair in params:
        outs = []
        for p, reverse in zip(pair, (False, True)):
            a, _, _, a_last, c_last = _ref("layer_forward", kind, x, p, lengths, reverse,
                                           h0[k], None if c0 is None else c0[k],
                                           **options)
            outs.append(a)
            h_n.append(a_last)
            c_n.append(c_last)
            k += 1
        x = np.concatenate(outs, axis=0)
    want_y = np.stack([_ref("softmax", head["Wy"] @ _f64(x[:, :, s]) + head["by"])
                       for s in range(T)], axis=2)
    want_y[:, np.arange(T)[None, :] >= lengths[:, None]] = 0
    got = {"h": h, "y": y, "h_n": state[0] if kind == "lstm" else state}
    want = {"h": x, "y": want_y, "h_n": np.stack(h_n)}
    if kind == "lstm":
        got["c_n"], want["c_n"] = state[1], np.stack(c_n)
    _compare_all(t, f"{c.label} {kind}", got, want, tol, c.dtype)


CHECKS = {
    "gru_cell_forward": ("gru", _check_gru_cell_forward),
    "gru_forward": ("gru", _check_gru_forward),
    "GRU.forward": ("gru", _check_gru_model_forward),
    "GRU.step": ("gru", _check_gru_model_step),
    "Stack.forward": (None, _check_stack_forward),
    "rnn_cell_forward": ("rnn", _check_rnn_cell_forward),
    "rnn_forward": ("rnn", _check_rnn_forward),
    "lstm_cell_forward": ("lstm", _check_lstm_cell_forward),
    "lstm_forward": ("lstm", _check_lstm_forward),
    "RNN.forward": ("rnn", _check_rnn_model_forward),
    "RNN.step": ("rnn", _check_rnn_model_step),
    "LSTM.forward": ("lstm", _check_lstm_model_forward),
    "LSTM.step": ("lstm", _check_lstm_model_step),
    "rnn_cell_backward": ("rnn", _check_rnn_cell_backward),
    "rnn_backward": ("rnn", _check_rnn_backward),
    "lstm_cell_backward": ("lstm", _check_lstm_cell_backward),
    "lstm_backward": ("lstm", _check_lstm_backward),
    "RNN.loss_and_grads": ("rnn", lambda t, c, tol: _check_model_loss_and_grads(t, c, tol, "rnn")),
    "LSTM.loss_and_grads": ("lstm",
                            lambda t, c, tol: _check_model_loss_and_grads(t, c, tol, "lstm")),
}


def run_checks(seed=0, quick=False, dtypes=("float64", "float32")):
    """Run the checks; returns ``{(function, dtype): Tally}`` in table order."""
    shapes = QUICK_SHAPES if quick else SHAPES
    tallies = {(f, d): Tally() for f in FUNCTIONS for d in dtypes}
    with fastrnn.checked(False):
        for d in dtypes:
            dtype, tol = np.dtype(d), TOLERANCES[d]
            for k, shape in enumerate(shapes):
                scale = None
                if shape in SATURATED:
                    scale = SATURATING_Z / math.sqrt(shape[0] + shape[1])
                    if d == "float32":
                        shape = shape[:4] + (min(shape[4], SATURATED_T32),)
                for p, path in enumerate(_api.RECURRENT_PATHS):
                    label = f"{d} {shape} {path}" + (" saturated" if scale else "")
                    with _api.recurrent_path(path):
                        for j, model in enumerate(MODELS):
                            rng = np.random.default_rng([seed, k, p, dtype.itemsize, j])
                            case = Case(label, rng, shape, dtype, model, scale, k)
                            _run_case(tallies, case, model, d, tol, label)
    return tallies


def _run_case(tallies, case, model, d, tol, label):
    for f in FUNCTIONS:
        kind, check = CHECKS[f]
        if kind not in (model, None):
            continue
        tally = tallies[(f, d)]
        try:
            check(tally, case, tol)
        except Exception as exc:  # a crash is a failure
            tally.failures.append(f"{label}: {type(exc).__name__}: {exc}")
        tally.cases += 1


def format_table(tallies):
    hdr = (f"{'function':<19} {'dtype':<8} {'cases':>5} {'max abs err':>12} "
           f"{'max rel err':>12}  result")
    lines = [hdr, "-" * len(hdr)]
    for (f, d), t in tallies.items():
        lines.append(f"{f:<19} {d:<8} {t.cases:>5} {t.max_abs:>12.2e} {t.max_rel:>12.2e}  "
                     f"{'pass' if t.ok else 'FAIL'}")
    return "\n".join(lines)


def add_arguments(parser):
    """Add the ``check`` options to an argparse parser."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quick", action="store_true", help="fewer shapes")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.set_defaults(func=run)
    return parser


def run(opts, out=None):
    """Run the checks of parsed options, print the table; return the exit status."""
    out = sys.stdout if out is None else out
    dtypes = ("float64", "float32") if opts.dtype == "both" else (opts.dtype,)
    t0 = time.perf_counter()
    tallies = run_checks(opts.seed, opts.quick, dtypes)
    elapsed = time.perf_counter() - t0
    shapes = QUICK_SHAPES if opts.quick else SHAPES
    print(f"fastrnn {fastrnn.__version__} self-check against fastrnn.reference: seed "
          f"{opts.seed}, {len(shapes)} shapes (n_x, n_a, n_y, m, T_x) x recurrent paths "
          f"{', '.join(_api.RECURRENT_PATHS)}", file=out)
    print("tolerances: " + "; ".join(f"{d} rtol={t['rtol']:g} atol={t['atol']:g}"
                                     for d, t in TOLERANCES.items() if d in dtypes)
          + " (float32 vs the float64 reference)", file=out)
    print("", file=out)
    print(format_table(tallies), file=out)
    failed = [(key, t) for key, t in tallies.items() if not t.ok]
    print("", file=out)
    if failed:
        for (f, d), t in failed:
            for msg in t.failures[:5]:
                print(f"FAIL {f} {d}: {msg}", file=out)
            if len(t.failures) > 5:
                print(f"FAIL {f} {d}: ... and {len(t.failures) - 5} more", file=out)
        print(f"{len(failed)} of {len(tallies)} rows FAIL ({elapsed:.1f} s)", file=out)
        return 1
    print(f"all {len(tallies)} rows pass ({elapsed:.1f} s)", file=out)
    return 0


def main(argv=None):
    """``python -m fastrnn check [--seed N] [--quick]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="fastrnn check", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
