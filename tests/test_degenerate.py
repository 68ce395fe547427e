"""Degenerate and overflowing sizes.

- T_x = 0, m = 0, n_x = 0, n_a = 0, alone and in every combination: whatever the reference
  returns (empty arrays of the right shapes, or real values such as softmax(by) when n_a = 0),
  or a clear ValueError where the reference itself fails.
- n_y = 0 is a ValueError naming n_y (the softmax over an empty axis is undefined), even where
  the reference never reaches its softmax (T_x = 0).
- Sizes a 32-bit BLAS int cannot hold are a ValueError naming the size, raised before anything
  large is allocated.  The inputs are zero-stride views of one element (no memory), and the
  process's address space is capped at +1 GiB during the call, so a missing check shows up as
  a MemoryError instead of eating the machine.
"""
import contextlib
import itertools
import re
import resource
import warnings

import numpy as np
import pytest

import _util
import fastrnn
from _util import assert_close, lstm_params, rnn_params

FUNCS = ("rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward")
DTYPES = (np.float64, np.float32)
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}
BASE = {"n_x": 3, "n_a": 5, "n_y": 2, "m": 4, "T_x": 3}
INT_MAX = 2**31 - 1




def is_cell(name):
    return name.endswith("cell_forward")


def is_lstm(name):
    return name.startswith("lstm")


def make_args(name, sizes, dtype, seed=0):
    """Positional arguments (inputs..., parameters) for ``name`` at ``sizes``."""
    rng = np.random.default_rng(seed)
    n_x, n_a, n_y, m, T_x = (sizes[k] for k in ("n_x", "n_a", "n_y", "m", "T_x"))
    params = (lstm_params if is_lstm(name) else rnn_params)(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m) if is_cell(name) else (n_x, m, T_x)).astype(dtype)
    args = [x, rng.standard_normal((n_a, m)).astype(dtype)]
    if name == "lstm_cell_forward":
        args.append(rng.standard_normal((n_a, m)).astype(dtype))
    return args + [params]


def zero_combos(name):
    keys = ("m", "n_x", "n_a") if is_cell(name) else ("T_x", "m", "n_x", "n_a")
    return [c for r in range(1, len(keys) + 1) for c in itertools.combinations(keys, r)]


CASES = [(f, c) for f in FUNCS for c in zero_combos(f)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,zeros", CASES, ids=[f"{f}-{'+'.join(c)}=0" for f, c in CASES])
def test_zero_sizes_behave_like_the_reference(name, zeros, dtype, recurrent_path):
    sizes = dict(BASE, **{k: 0 for k in zeros})
    args = make_args(name, sizes, dtype)
    try:
        with np.errstate(all="ignore"):
            want = _util.ref(name, *args)
    except Exception as exc:  # the reference fails: fastrnn must say why, as a ValueError
        with pytest.raises(ValueError) as info:
            getattr(fastrnn, name)(*args)
        assert str(info.value), f"empty message; the reference said {exc!r}"
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = getattr(fastrnn, name)(*args)
    n = N_OUT[name]
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got[:n], want[:n])):
        assert isinstance(g, np.ndarray)
        assert g.shape == w.shape, f"output {k}: {g.shape} != reference {w.shape}"
        assert g.dtype == np.dtype(dtype)
        assert_close(g, w, dtype, err_msg=f"{name} with {zeros} = 0: output {k}")
    cache = got[n]
    if is_cell(name):
        assert len(cache) == len(want[n])
        assert cache[-1] is args[-1]  # the same parameters object
    else:
        steps, x_back = cache
        assert len(steps) == sizes["T_x"] == len(want[n][0])
        assert x_back is args[0]
        assert list(steps) == [] or len(steps[0]) == len(want[n][0][0])


NY0_CASES = [(f, m, T) for f in FUNCS for m in (4, 0) for T in ((3,) if is_cell(f) else (3, 0))]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,m,T_x", NY0_CASES, ids=[f"{f}-m{m}-T{t}" for f, m, t in NY0_CASES])
def test_n_y_zero_is_a_value_error(name, m, T_x, dtype):
    """Rejected even at T_x = 0, where the reference never reaches its softmax."""
    args = make_args(name, dict(BASE, n_y=0, m=m, T_x=T_x), dtype)
    with pytest.raises(ValueError, match="n_y"):
        getattr(fastrnn, name)(*args)


# ------------------------------------------------------------------ models

MODEL_ZEROS = [c for r in range(1, 5)
               for c in itertools.combinations(("T_x", "m", "n_x", "n_a"), r)]


def _ref_lstm_sequence(x, a0, c0, params):
    from fastrnn import reference
    x, a0, c0, params = _util.f64(x), _util.f64(a0), _util.f64(c0), _util.f64(params)
    n_y, T = params["Wy"].shape[0], x.shape[2]
    a = np.zeros(a0.shape + (T,))
    c, y = np.zeros_like(a), np.zeros((n_y, x.shape[1], T))
    a_t, c_t = a0, c0
    for t in range(T):
        a_t, c_t, y[:, :, t], _ = reference.lstm_cell_forward(x[:, :, t], a_t, c_t, params)
        a[:, :, t], c[:, :, t] = a_t, c_t
    return a, y, c


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("zeros", MODEL_ZEROS, ids=lambda c: "+".join(c) + "=0")
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_models_with_zero_sizes_behave_like_the_reference(kind, zeros, dtype, recurrent_path):
    sizes = dict(BASE, **{k: 0 for k in zeros})
    rng = np.random.default_rng(1)
    n_x, n_a, n_y, m, T_x = (sizes[k] for k in ("n_x", "n_a", "n_y", "m", "T_x"))
    params = (lstm_params if kind == "lstm" else rnn_params)(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T_x)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    c0 = rng.standard_normal((n_a, m)).astype(dtype)
    xt = rng.standard_normal((n_x, m)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if kind == "rnn":
            model = fastrnn.RNN(params)
            got = model.forward(x, a0)
            want = _util.ref("rnn_forward", x, a0, params)[:2]
            got_step = model.step(xt, a0)
            want_step = _util.ref("rnn_cell_forward", xt, a0, params)[:2]
        else:
            model = fastrnn.LSTM(params)
            got = model.forward(x, a0, c0)
            with np.errstate(over="ignore"):
                want = _ref_lstm_sequence(x, a0, c0, params)
            (a_next, c_next), yt = model.step(xt, (a0, c0))
            got_step = (a_next, c_next, yt)
            want_step = _util.ref("lstm_cell_forward", xt, a0, c0, params)[:3]
    for g, w in list(zip(got, want)) + list(zip(got_step, want_step)):
        assert g.shape == w.shape
        assert g.dtype == np.dtype(dtype)
        assert_close(g, w, dtype, err_msg=f"{kind} model with {zeros} = 0")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_model_with_n_y_zero_is_a_value_error(kind):
    rng = np.random.default_rng(2)
    params = (lstm_params if kind == "lstm" else rnn_params)(rng, 3, 5, 0)
    with pytest.raises(ValueError, match="n_y"):
        (fastrnn.LSTM if kind == "lstm" else fastrnn.RNN)(params)


# ------------------------------------------------------------------ BLAS int overflow

def _vm_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


@contextlib.contextmanager
def address_space_cap(extra=2**30):
    """Cap this process's address space at its current size + ``extra`` bytes: an attempt to
    allocate gigabytes fails with MemoryError instead of succeeding (overcommit) or swapping."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def view(shape, dtype=np.float64):
    """A read-only array of ``shape`` backed by a single element (all strides zero)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def view_params(kind, n_x, n_a, n_y, dtype=np.float64):
    if kind == "rnn":
        return {"Wax": view((n_a, n_x), dtype), "Waa": view((n_a, n_a), dtype),
                "Wya": view((n_y, n_a), dtype), "ba": view((n_a, 1), dtype),
                "by": view((n_y, 1), dtype)}
    params = {}
    for g in "fico":
        params["W" + g] = view((n_a, n_a + n_x), dtype)
        params["b" + g] = view((n_a, 1), dtype)
    params["Wy"], params["by"] = view((n_y, n_a), dtype), view((n_y, 1), dtype)
    return params


def view_args(name, n_x, n_a, n_y, m, T_x, dtype):
    kind = "lstm" if is_lstm(name) else "rnn"
    x = view((n_x, m) if is_cell(name) else (n_x, m, T_x), dtype)
    args = [x, view((n_a, m), dtype)]
    if name == "lstm_cell_forward":
        args.append(view((n_a, m), dtype))
    return args + [view_params(kind, n_x, n_a, n_y, dtype)]


# (functions, sizes n_x, n_a, n_y, m, T_x, the quantity the message must name, its value)
OVERFLOWS = [
    ("seq", (1, 3, 2, 2**16, 2**16), "T_x", 2**32),          # m*T_x columns
    ("cell", (1, 3, 2, 2**31, 1), "m", 2**31),               # m columns of one step
    ("all", (2**31, 3, 2, 1, 1), "n_x", 2**31),
    ("all", (2, 3, 2**31, 1, 1), "n_y", 2**31),
    ("lstm", (2, 2**29, 2, 1, 1), "n_a", 2**31),              # 4*n_a gate rows
    ("lstm", (2**31 - 2**28, 2**28, 2, 1, 1), "n_x", 2**31),  # n_a + n_x, row stride
    ("lstm-seq", (2, 2**14, 2, 1, 2**15), "T_x", 2**31),      # T_x*4*n_a, ld of the work
    ("rnn-seq", (2, 2**15, 2, 1, 2**16), "T_x", 2**31),       # T_x*n_a
]


def _selects(which, name):
    return {"seq": not is_cell(name), "cell": is_cell(name), "all": True,
            "lstm": is_lstm(name), "lstm-seq": is_lstm(name) and not is_cell(name),
            "rnn-seq": name == "rnn_forward"}[which]


OVERFLOW_CASES = [(f, sizes, sym, value) for which, sizes, sym, value in OVERFLOWS
                  for f in FUNCS if _selects(which, f)]


def assert_names_size(message, symbol, value):
    assert re.search(rf"\b{value}\b", message), f"message does not give the size: {message}"
    assert symbol in message, f"message does not name {symbol}: {message}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,sizes,symbol,value", OVERFLOW_CASES,
                         ids=[f"{f}-{s}-{v}" for f, _, s, v in OVERFLOW_CASES])
def test_sizes_overflowing_a_blas_int_are_refused_before_allocating(name, sizes, symbol,
                                                                    value, dtype):
    args = view_args(name, *sizes, dtype)
    with address_space_cap():
        with pytest.raises(ValueError) as info:
            getattr(fastrnn, name)(*args)
    assert_names_size(str(info.value), symbol, value)


MODEL_OVERFLOWS = [
    ("rnn", (2**31, 3, 2), "n_x", 2**31),
    ("lstm", (2**31, 3, 2), "n_x", 2**31),
    ("rnn", (2, 3, 2**31), "n_y", 2**31),
    ("lstm", (2, 3, 2**31), "n_y", 2**31),
    ("lstm", (2, 2**29, 2), "n_a", 2**31),
    ("lstm", (2**31 - 2**28, 2**28, 2), "n_x", 2**31),
]


@pytest.mark.parametrize("kind,sizes,symbol,value", MODEL_OVERFLOWS,
                         ids=[f"{k}-{s}-{v}" for k, _, s, v in MODEL_OVERFLOWS])
def test_model_constructor_refuses_overflowing_weights_before_packing(kind, sizes, symbol,
                                                                      value):
    params = view_params(kind, *sizes)
    with address_space_cap():
        with pytest.raises(ValueError) as info:
            (fastrnn.LSTM if kind == "lstm" else fastrnn.RNN)(params)
    assert_names_size(str(info.value), symbol, value)


@pytest.mark.parametrize("method", ["forward", "step"])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_model_calls_refuse_overflowing_batches(kind, method):
    rng = np.random.default_rng(3)
    params = (lstm_params if kind == "lstm" else rnn_params)(rng, 2, 3, 2)
    model = (fastrnn.LSTM if kind == "lstm" else fastrnn.RNN)(params)
    with address_space_cap():
        with pytest.raises(ValueError) as info:
            if method == "forward":
                model.forward(view((2, 2**16, 2**16)))
            else:
                model.step(view((2, 2**31)))
    assert_names_size(str(info.value), "m", 2**32 if method == "forward" else 2**31)
