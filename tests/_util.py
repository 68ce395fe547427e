"""Shared helpers for the test suite: parameter factories, reference calls, tolerances,
the recurrent-product path switch."""
import numpy as np

from fastrnn import reference

# DESIGN §5: tight enough that a wrong gate order, a transposed weight or a missing bias
# fails (tests/test_equivalence.py proves it with mutants).
TOL = {
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-11},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
}

RNN_KEYS = ("Wax", "Waa", "Wya", "ba", "by")
LSTM_KEYS = ("Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo", "Wy", "by")


def rnn_params(rng, n_x, n_a, n_y, dtype=np.float64, scale=None, bias=1.0):
    """Random RNN parameters; weights ~ N(0, scale^2), scale 1/sqrt(n_a + n_x) by default
    (a contractive recurrence, so long sequences stay comparable)."""
    s = 1.0 / np.sqrt(max(n_a + n_x, 1)) if scale is None else scale
    p = {
        "Wax": rng.standard_normal((n_a, n_x)) * s,
        "Waa": rng.standard_normal((n_a, n_a)) * s,
        "Wya": rng.standard_normal((n_y, n_a)) * s,
        "ba": rng.standard_normal((n_a, 1)) * bias,
        "by": rng.standard_normal((n_y, 1)) * bias,
    }
    return {k: v.astype(dtype) for k, v in p.items()}


def lstm_params(rng, n_x, n_a, n_y, dtype=np.float64, scale=None, bias=1.0):
    """Random LSTM parameters, scaled as in :func:`rnn_params`."""
    s = 1.0 / np.sqrt(max(n_a + n_x, 1)) if scale is None else scale
    p = {}
    for g in "fico":
        p["W" + g] = rng.standard_normal((n_a, n_a + n_x)) * s
        p["b" + g] = rng.standard_normal((n_a, 1)) * bias
    p["Wy"] = rng.standard_normal((n_y, n_a)) * s
    p["by"] = rng.standard_normal((n_y, 1)) * bias
    return {k: v.astype(dtype) for k, v in p.items()}


def f64(tree):
    """float64 copies of an array or of every array in a dict (for the reference)."""
    if isinstance(tree, dict):
        return {k: np.asarray(v, dtype=np.float64) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float64)


def ref(name, *args):
    """Call reference.<name> in float64 with numpy's overflow warnings silenced (the
    lessons' sigmoid overflows harmlessly for large negative input)."""
    args = [f64(a) for a in args]
    with np.errstate(over="ignore", under="ignore"):
        return getattr(reference, name)(*args)


def assert_close(got, want, dtype, err_msg=""):
    """assert_allclose with the tolerance of ``dtype`` passed by keyword."""
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=tol["rtol"],
                               atol=tol["atol"], equal_nan=True, err_msg=err_msg)


# The kernels' recurrent-product paths and the switch that forces one (fastrnn._api).
from fastrnn._api import RECURRENT_PATHS, recurrent_path  # noqa: E402,F401
