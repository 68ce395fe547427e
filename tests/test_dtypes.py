"""The dtype policy: float32 and float64 are computed natively; the result is
float32 only when every floating input is float32, else float64; integer input is accepted as
float64 (and gives the float64 result of the same values).
"""
import numpy as np
import pytest

import fastrnn
from _util import LSTM_KEYS, RNN_KEYS, TOL, assert_close, f64, lstm_params, ref, rnn_params

FUNCTIONS = ["rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward"]
ARGS = {
    "rnn_cell_forward": ("xt", "a_prev"),
    "rnn_forward": ("x", "a0"),
    "lstm_cell_forward": ("xt", "a_prev", "c_prev"),
    "lstm_forward": ("x", "a0"),
}
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64]


def _kind(function):
    return "rnn" if function.startswith("rnn") else "lstm"


def _keys(function):
    return RNN_KEYS if _kind(function) == "rnn" else LSTM_KEYS


def base(function, dtype=np.float64, dims=(3, 5, 4, 6, 7), seed=0):
    """(inputs dict, parameters) of ``function`` in ``dtype``."""
    n_x, n_a, n_y, m, T = dims
    rng = np.random.default_rng(seed)
    make = rnn_params if _kind(function) == "rnn" else lstm_params
    p = make(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    c0 = rng.standard_normal((n_a, m)).astype(dtype)
    values = dict(zip(ARGS[function], ((x if "cell" not in function else x[:, :, 0]), a0, c0)))
    return values, p


def call(function, inputs, p):
    return getattr(fastrnn, function)(*[inputs[n] for n in ARGS[function]], p)


def reference(function, inputs, p):
    return ref(function, *[inputs[n] for n in ARGS[function]], p)


def result_arrays(function, out):
    return list(out[:N_OUT[function]])


def cache_arrays(function, out):
    """The arrays of the caches that fastrnn computed (not the inputs it passes through)."""
    caches = out[-1]
    if "cell" in function:
        items = [caches]
    else:
        items = list(caches[0])
    idx = (0,) if _kind(function) == "rnn" else (0, 1, 4, 5, 6, 7)
    return [item[k] for item in items for k in idx]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_all_float32_gives_float32(function):
    inputs, p = base(function, np.float32)
    out = call(function, inputs, p)
    for arr in result_arrays(function, out):
        assert arr.dtype == np.float32
    for arr in cache_arrays(function, out):
        assert arr.dtype == np.float32
    want = reference(function, inputs, p)
    for g, w in zip(result_arrays(function, out), want):
        assert_close(g, w, np.float32)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_all_float64_gives_float64(function):
    inputs, p = base(function, np.float64)
    out = call(function, inputs, p)
    for arr in result_arrays(function, out) + cache_arrays(function, out):
        assert arr.dtype == np.float64


def _one_different(function, name, make):
    """float32 everywhere except ``name`` (an input or a parameter key) made by ``make``."""
    inputs, p = base(function, np.float32)
    inputs64, p64 = base(function, np.float64)
    if name in inputs:
        inputs = dict(inputs)
        inputs[name] = make(inputs64[name])
    else:
        p = dict(p)
        p[name] = make(p64[name])
    return inputs, p


def _all_names(function):
    return list(ARGS[function]) + list(_keys(function))


MIXED_CASES = [(f, n) for f in FUNCTIONS for n in _all_names(f)]


@pytest.mark.parametrize("function,name", MIXED_CASES)
def test_one_float64_among_float32_gives_float64(function, name):
    """Mixed float32/float64 gives float64, computed in float64: the float64 argument holds
    values float32 cannot represent, and a float32 computation would miss the float64
    tolerance."""
    inputs, p = _one_different(function, name, lambda v: np.asarray(v, np.float64))
    out = call(function, inputs, p)
    for arr in result_arrays(function, out) + cache_arrays(function, out):
        assert arr.dtype == np.float64
    want = reference(function, inputs, p)
    for g, w in zip(result_arrays(function, out), want):
        assert_close(g, w, np.float64)
    # the float64 value really is not a float32 value (so the check above can fail)
    given = inputs[name] if name in inputs else p[name]
    assert not np.array_equal(given, given.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("function,name", MIXED_CASES)
def test_one_integer_among_float32_gives_float64(function, name):
    """An integer argument makes the result float64, even when every float is float32."""
    inputs, p = _one_different(function, name,
                               lambda v: np.round(np.asarray(v) * 3).astype(np.int32))
    out = call(function, inputs, p)
    for arr in result_arrays(function, out) + cache_arrays(function, out):
        assert arr.dtype == np.float64
    want = reference(function, inputs, p)
    for g, w in zip(result_arrays(function, out), want):
        assert_close(g, w, np.float64)


@pytest.mark.parametrize("int_dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_integer_inputs_equal_float64_result(function, int_dtype):
    """All-integer input is accepted, gives float64, and equals the call on the same values
    as float64 arrays (and the reference)."""
    inputs, p = base(function, np.float64)
    lo = 0 if np.issubdtype(int_dtype, np.unsignedinteger) else -2
    rng = np.random.default_rng(1)
    inputs_i = {k: rng.integers(lo, 3, size=v.shape).astype(int_dtype) for k, v in inputs.items()}
    p_i = {k: rng.integers(lo, 3, size=v.shape).astype(int_dtype) for k, v in p.items()}
    out = call(function, inputs_i, p_i)
    same = call(function, {k: f64(v) for k, v in inputs_i.items()}, f64(p_i))
    for g, s in zip(result_arrays(function, out), result_arrays(function, same)):
        assert g.dtype == np.float64
        assert_close(g, s, np.float64)
    want = reference(function, inputs_i, p_i)
    for g, w in zip(result_arrays(function, out), want):
        assert_close(g, w, np.float64)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_python_scalars_lists_are_float64(function):
    """Nested Python lists of floats are float64 data, even if made from float32 arrays."""
    inputs, p = base(function, np.float32)
    lists = {k: v.tolist() for k, v in inputs.items()}
    out = call(function, lists, p)
    for arr in result_arrays(function, out):
        assert arr.dtype == np.float64
    want = reference(function, inputs, p)
    for g, w in zip(result_arrays(function, out), want):
        assert_close(g, w, np.float64)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_float16_is_float64(function):
    """float16 is a floating input that is not float32: the result is float64."""
    inputs, p = base(function, np.float16)
    out = call(function, inputs, p)
    for arr in result_arrays(function, out):
        assert arr.dtype == np.float64
    want = reference(function, inputs, p)
    for g, w in zip(result_arrays(function, out), want):
        assert_close(g, w, np.float64)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_float32_result_is_computed_in_float32(function):
    """The float32 path is native float32 (not float64 rounded at the end): it is within the
    float32 tolerance of the reference but not within the float64 one."""
    inputs, p = base(function, np.float32, dims=(13, 17, 5, 6, 9))
    out = call(function, inputs, p)
    want = reference(function, inputs, p)
    tol64 = TOL[np.dtype(np.float64)]
    assert not all(np.allclose(g, w, rtol=tol64["rtol"], atol=tol64["atol"])
                   for g, w in zip(result_arrays(function, out), want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_non_native_byte_order(function, dtype):
    """Big-endian (non-native) arrays of float32/float64 hold float32/float64 numbers: the
    result has that dtype (native byte order) and the right values."""
    inputs, p = base(function, dtype)
    swapped = np.dtype(dtype).newbyteorder()
    inputs_s = {k: v.astype(swapped) for k, v in inputs.items()}
    p_s = {k: v.astype(swapped) for k, v in p.items()}
    out = call(function, inputs_s, p_s)
    want = reference(function, inputs, p)
    for g, w in zip(result_arrays(function, out), want):
        assert g.dtype == np.dtype(dtype)
        assert g.dtype.isnative
        assert_close(g, w, dtype)
