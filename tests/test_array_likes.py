"""Array-likes are read once.

The drop-ins once converted ``x`` for the kernel and again for the caches, so an object whose
``__array__`` returns different data on a second call (or raises) left the caches
inconsistent with the outputs.  Every input, state and weight is converted exactly once per
call, and the caches hold the very values the kernel read.
"""
import numpy as np
import pytest

import fastrnn
from _util import lstm_params, rnn_params

N_X, N_A, N_Y, M, T = 3, 5, 2, 4, 6


class Shifty:
    """An array-like whose every ``__array__`` call returns new data (the n-th call adds n),
    and which raises after ``limit`` calls."""

    def __init__(self, value, limit=1):
        self.value, self.calls, self.limit = np.asarray(value), 0, limit

    def __array__(self, dtype=None, copy=None):
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError(f"__array__ called {self.calls} times")
        out = self.value + (self.calls - 1)
        return out if dtype is None else out.astype(dtype)


def _args(function):
    rng = np.random.default_rng(8)
    p = (rnn_params if function.startswith("rnn") else lstm_params)(rng, N_X, N_A, N_Y)
    x = rng.standard_normal((N_X, M, T))
    a0 = rng.standard_normal((N_A, M))
    if function == "rnn_cell_forward":
        return [x[:, :, 0], a0, p]
    if function == "lstm_cell_forward":
        return [x[:, :, 0], a0, a0 * 0.5, p]
    return [x, a0, p]


FUNCTIONS = ["rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward"]


def _read_caches(function, out):
    """Every array of every cache (building the lazy ones)."""
    caches = out[-1]
    if "cell" in function:
        return [caches]
    return list(caches[0])


@pytest.mark.parametrize("checked", [False, True], ids=["plain", "checked"])
@pytest.mark.parametrize("position", [0, 1, -1], ids=["input", "state", "weight"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_argument_is_read_once(function, position, checked):
    args = _args(function)
    plain = getattr(fastrnn, function)(*args)
    if position == -1:
        key = "Waa" if function.startswith("rnn") else "Wf"
        shifty = Shifty(args[-1][key])
        args[-1] = dict(args[-1], **{key: shifty})
    else:
        shifty = Shifty(args[position])
        args[position] = shifty
    with fastrnn.checked(checked):
        out = getattr(fastrnn, function)(*args)
        cache_arrays = _read_caches(function, out)
    assert shifty.calls == 1
    # the outputs are those of the first (and only) reading
    for g, w in zip(out[:-1], plain[:-1]):
        np.testing.assert_array_equal(g, w)
    if position == 0 and "cell" not in function:
        # the caches' xt are the values the kernel read
        for t, cache in enumerate(cache_arrays):
            np.testing.assert_array_equal(cache[-2], shifty.value[:, :, t])


@pytest.mark.parametrize("method", ["forward", "step"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_models_read_the_input_once(kind, method):
    function = "rnn_forward" if kind == "RNN" else "lstm_forward"
    x, a0, p = _args(function)
    model = getattr(fastrnn, kind)(p)
    value = x if method == "forward" else x[:, :, 0]
    want = getattr(model, method)(value)
    shifty = Shifty(value)
    got = getattr(model, method)(shifty)
    assert shifty.calls == 1
    for g, w in zip(np.asarray(got[0]).reshape(-1), np.asarray(want[0]).reshape(-1)):
        assert g == w
