"""numpy's error state belongs to the caller.

With ``np.seterr(all="raise")`` (or inside ``np.errstate(all="raise")``) a float32 model given
float64 input holding 1e-300 once raised ``FloatingPointError: underflow encountered in cast``:
fastrnn's own conversions (float64 -> float32, long double -> float64, checked mode's float64
copies) must not depend on the caller's error state, nor change it.
"""
import numpy as np
import pytest

import fastrnn
from _util import assert_close, lstm_params, ref, rnn_params

N_X, N_A, N_Y, M, T = 3, 5, 2, 4, 6


def _case(kind, dtype, x_dtype, fill):
    rng = np.random.default_rng(2)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, N_X, N_A, N_Y, dtype=dtype)
    x = rng.standard_normal((N_X, M, T)).astype(x_dtype)
    x[0, 0, :] = fill  # underflows (1e-300 -> float32) or overflows (1e400 -> float64)
    a0 = rng.standard_normal((N_A, M)).astype(dtype)
    return p, x, a0


CASES = [
    # (weights dtype, input dtype, value): the conversion each one forces
    (np.float32, np.float64, 1e-300),  # float64 -> float32 underflows to 0
    (np.float32, np.float64, 1e300),   # float64 -> float32 overflows to inf
    (np.float64, np.longdouble, np.longdouble("1e-4000") if np.finfo(np.longdouble).tiny
     < 1e-4000 else 1e-310),           # long double -> float64 underflows
]


def _calls(kind, p, x, a0):
    """Every public way to run this case: the drop-ins (sequence and cell) and a model."""
    if kind == "rnn":
        model = fastrnn.RNN(p)
        return {"rnn_forward": lambda: fastrnn.rnn_forward(x, a0, p)[:2],
                "rnn_cell_forward": lambda: fastrnn.rnn_cell_forward(x[:, :, 0], a0, p)[:2],
                "RNN.forward": lambda: model.forward(x, a0),
                "RNN.step": lambda: model.step(x[:, :, 0], a0)}
    model = fastrnn.LSTM(p)
    return {"lstm_forward": lambda: fastrnn.lstm_forward(x, a0, p)[:3],
            "lstm_cell_forward": lambda: fastrnn.lstm_cell_forward(x[:, :, 0], a0, a0, p)[:3],
            "LSTM.forward": lambda: model.forward(x, a0),
            "LSTM.step": lambda: model.step(x[:, :, 0], (a0, a0))[1]}


@pytest.mark.parametrize("checked", [False, True], ids=["plain", "checked"])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_caller_error_state_raise_does_not_reach_fastrnn(kind, case, checked):
    dtype, x_dtype, fill = CASES[case]
    p, x, a0 = _case(kind, dtype, x_dtype, fill)
    calls = _calls(kind, p, x, a0)
    expected = {name: call() for name, call in calls.items()}  # default error state
    with fastrnn.checked(checked), np.errstate(all="raise"):
        for name, call in calls.items():
            got = call()
            for g, w in zip(got, expected[name]):
                np.testing.assert_array_equal(g, w, err_msg=name)
            # ... and fastrnn left the caller's error state as it was
            assert np.geterr() == {"divide": "raise", "over": "raise", "under": "raise",
                                   "invalid": "raise"}, name


def test_seterr_raise_float32_model_on_tiny_float64_input():
    """The report's case, with np.seterr itself (restored afterwards)."""
    p, x, a0 = _case("lstm", np.float32, np.float64, 1e-300)
    old = np.seterr(all="raise")
    try:
        a, y, c = fastrnn.LSTM(p).forward(x, a0)
        assert np.geterr()["under"] == "raise"
    finally:
        np.seterr(**old)
    want = ref("lstm_forward", x, a0, p)
    assert_close(a, want[0], np.float32)
