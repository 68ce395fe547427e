"""Shared helpers for the test suite: parameter factories, reference calls, tolerances,
the recurrent-product path switch, the SIMD-level switch."""
import contextlib

import numpy as np

from fastrnn import reference
# Random parameters of either model (weights scaled 1/sqrt(n_a + n_x) by default: a
# contractive recurrence, so long sequences stay comparable); the benchmark uses the same.
from fastrnn._bench import lstm_params, rnn_params  # noqa: F401

# Tight enough that a wrong gate order, a transposed weight or a missing bias
# fails (tests/test_equivalence.py proves it with mutants).
TOL = {
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-11},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
}

RNN_KEYS = ("Wax", "Waa", "Wya", "ba", "by")
LSTM_KEYS = ("Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo", "Wy", "by")


def f64(tree):
    """float64 copies of an array or of every array in a dict (for the reference)."""
    if isinstance(tree, dict):
        return {k: np.asarray(v, dtype=np.float64) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float64)


def ref(name, *args):
    """Call reference.<name> in float64 with numpy's overflow warnings silenced (the
    lessons' sigmoid overflows harmlessly for large negative input).  Options (strings,
    bools) are passed as they are."""
    args = [a if isinstance(a, (str, bool)) else f64(a) for a in args]
    with np.errstate(over="ignore", under="ignore"):
        return getattr(reference, name)(*args)


def assert_close(got, want, dtype, err_msg=""):
    """assert_allclose with the tolerance of ``dtype`` passed by keyword."""
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=tol["rtol"],
                               atol=tol["atol"], equal_nan=True, err_msg=err_msg)


# The kernels' recurrent-product paths and the switch that forces one (fastrnn._api).
from fastrnn._api import RECURRENT_PATHS, recurrent_path  # noqa: E402,F401


GRU_KEYS = ("Wrx", "Wzx", "Wnx", "Wra", "Wza", "Wna", "brx", "bzx", "bnx", "bra", "bza", "bna",
            "Wy", "by")


# Random GRU parameters, scaled as above (n_y = 0: no output layer); the self-check's copy.
from fastrnn._bench import gru_params  # noqa: E402


def layer_params(kind, rng, n_x, n_a, n_y=0, dtype=np.float64, **kwargs):
    """Random parameters of any kind; ``n_y = 0``: no output layer."""
    if kind == "gru":
        return gru_params(rng, n_x, n_a, n_y, dtype, **kwargs)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, n_x, n_a, max(n_y, 1), dtype,
                                                        **kwargs)
    if not n_y:
        del p["Wya" if kind == "rnn" else "Wy"], p["by"]
    return p


@contextlib.contextmanager
def at_simd(level):
    """Run the block with the kernels at SIMD ``level`` (one this CPU has), then restore the
    level that was active."""
    from fastrnn._kernels import _core

    previous = _core.set_simd(level)
    try:
        yield level
    finally:
        _core.set_simd(previous)
