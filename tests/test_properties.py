"""Property-based tests (hypothesis): for any sizes (1..12, unequal), any T_x (1..20), both
dtypes, both recurrent code paths and any input memory layout -- C order, Fortran order,
strided views, transposed views, negative strides, read-only arrays, misaligned arrays, nested
lists, LSTM gate weights that are row blocks of one array -- the four functions

- match the reference within the dtype's tolerance,
- return new, writeable, C-contiguous arrays of the documented dtype that share no memory
  with any input or with each other,
- leave their inputs unchanged.
"""
import unittest.mock

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import fastrnn
import fastrnn._api as api
from _util import LSTM_KEYS, RNN_KEYS, TOL, f64, lstm_params, ref, rnn_params

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

ARGS = {
    "rnn_cell_forward": ("xt", "a_prev"),
    "rnn_forward": ("x", "a0"),
    "lstm_cell_forward": ("xt", "a_prev", "c_prev"),
    "lstm_forward": ("x", "a0"),
}
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}
LAYOUTS = ["C", "F", "strided", "transposed", "negative", "readonly", "readonly strided",
           "misaligned", "list"]




def with_layout(arr, how):
    """The values of ``arr`` in memory laid out as ``how``."""
    arr = np.asarray(arr)
    if how == "C":
        return np.array(arr, order="C")
    if how == "F":
        return np.array(arr, order="F")
    if how in ("strided", "readonly strided"):
        steps = (2, 3, 2)[:arr.ndim]
        # NaN around the view: reading outside it would show in the results
        big = np.full(tuple(max(n, 1) * s for n, s in zip(arr.shape, steps)), np.nan,
                      dtype=arr.dtype)
        view = big[tuple(slice(None, n * s, s) for n, s in zip(arr.shape, steps))]
        view[...] = arr
        if how == "readonly strided":
            view.flags.writeable = False
        return view
    if how == "transposed":
        perm = tuple(range(arr.ndim))[::-1] if arr.ndim == 2 else (1, 2, 0)
        inv = tuple(np.argsort(perm))
        return np.ascontiguousarray(arr.transpose(perm)).transpose(inv)
    if how == "negative":
        flip = (slice(None, None, -1),) * arr.ndim
        return np.ascontiguousarray(arr[flip])[flip]
    if how == "readonly":
        out = np.array(arr)
        out.flags.writeable = False
        return out
    if how == "misaligned":
        # C-contiguous but not aligned to its itemsize (offset 1 byte into a buffer)
        buf = np.zeros(arr.nbytes + 1, dtype=np.uint8)
        out = np.frombuffer(buf.data, dtype=arr.dtype, count=arr.size, offset=1)
        out = out.reshape(arr.shape)
        out[...] = arr
        return out
    if how == "list":
        return arr.tolist()
    raise ValueError(how)


def _stacked(p, n_a, order, dtype):
    """The four gate weights/biases as row blocks of one (4n_a, ...) array in ``order``."""
    p = dict(p)
    for prefix in ("W", "b"):
        block = np.concatenate([p[prefix + g] for g in order], axis=0).astype(dtype)
        for k, g in enumerate(order):
            p[prefix + g] = block[k * n_a:(k + 1) * n_a]
    return p


@st.composite
def cases(draw, function):
    kind = "rnn" if function.startswith("rnn") else "lstm"
    n_x, n_a, n_y = (draw(st.integers(1, 12)) for _ in range(3))
    m = draw(st.integers(1, 8))
    T = draw(st.integers(1, 20)) if "cell" not in function else 1
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    threshold = draw(st.sampled_from([0, 10**6]))
    rng = np.random.default_rng(seed)
    make = rnn_params if kind == "rnn" else lstm_params
    p = make(rng, n_x, n_a, n_y, dtype=dtype)
    if kind == "lstm":
        order = draw(st.sampled_from([None, "fioc", "fico", "cofi"]))
        if order:
            p = _stacked(p, n_a, order, dtype)
    else:
        order = None
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    values = [x if "cell" not in function else x[:, :, 0],
              rng.standard_normal((n_a, m)).astype(dtype),
              rng.standard_normal((n_a, m)).astype(dtype)][:len(ARGS[function])]
    layouts = [draw(st.sampled_from(LAYOUTS)) for _ in values]
    keys = RNN_KEYS if kind == "rnn" else LSTM_KEYS
    if order:
        p_layouts = {k: "C" for k in keys}  # keep the row-block views as they are
        p_layouts["Wy"] = draw(st.sampled_from(LAYOUTS))
        p_layouts["by"] = draw(st.sampled_from(LAYOUTS))
    else:
        p_layouts = {k: draw(st.sampled_from(LAYOUTS)) for k in keys}
    given = [with_layout(v, how) for v, how in zip(values, layouts)]
    p_given = {k: (p[k] if (order and k[0] in "Wb" and k not in ("Wy", "by"))
                   else with_layout(p[k], p_layouts[k])) for k in keys}
    note(f"{function} n_x={n_x} n_a={n_a} n_y={n_y} m={m} T={T} dtype={np.dtype(dtype)} "
         f"threshold={threshold} layouts={layouts} params={p_layouts} stacked={order}")
    return dict(function=function, values=values, given=given, p=p, p_given=p_given,
                threshold=threshold)


def _arrays(objs):
    return [o for o in objs if isinstance(o, np.ndarray)]


def check(case):
    function = case["function"]
    given, p_given = case["given"], case["p_given"]
    inputs = _arrays(given) + _arrays(p_given.values())
    before = [np.array(a, copy=True) for a in inputs]
    all_f32 = all(isinstance(v, np.ndarray) and v.dtype == np.float32
                  for v in list(given) + list(p_given.values()))
    dtype = np.dtype(np.float32 if all_f32 else np.float64)

    with unittest.mock.patch.object(api, "SMALL_BATCH_MAX_M", case["threshold"]):
        out = getattr(fastrnn, function)(*given, p_given)
    want = ref(function, *[f64(v) for v in case["values"]], f64(case["p"]))

    results = out[:N_OUT[function]]
    tol = TOL[dtype]
    for k, (g, w) in enumerate(zip(results, want)):
        assert isinstance(g, np.ndarray)
        assert g.dtype == dtype, (k, g.dtype, dtype)
        assert g.shape == w.shape
        assert g.flags.c_contiguous, k
        assert g.flags.writeable, k
        np.testing.assert_allclose(g, w, rtol=tol["rtol"], atol=tol["atol"], err_msg=str(k))
        for a in inputs:
            assert not np.shares_memory(g, a), k
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not np.shares_memory(results[i], results[j]), (i, j)
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(cases("rnn_cell_forward"))
def test_rnn_cell_forward(case):
    check(case)


@SETTINGS
@given(cases("rnn_forward"))
def test_rnn_forward(case):
    check(case)


@SETTINGS
@given(cases("lstm_cell_forward"))
def test_lstm_cell_forward(case):
    check(case)


@SETTINGS
@given(cases("lstm_forward"))
def test_lstm_forward(case):
    check(case)
