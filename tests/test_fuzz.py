"""Fuzzing every public call with junk.

Hypothesis builds a consistent call (sizes n_x, n_a, n_y, m, T_x from 0 up, odd and unequal)
and then mutates any part of it: arrays of another dtype (bool, complex, object, str, int8,
uint64, float16, float32, float64, byte-swapped), of another number of dimensions (0-4) or size,
in another memory layout (Fortran, strided, negative strides, read-only), replaced by None,
scalars, strings, dicts, nested or ragged lists; NaN and +-inf injected; ``parameters`` with
missing, extra or misshapen keys, of another kind, or not a mapping at all.  Model constructors
get junk dtypes, ``forward`` junk ``n_threads`` and ``step`` junk states.

Allowed outcomes, and nothing else:
- a result, which must then be the reference's (same shapes, the dtype the policy gives, the
  same NaN/+-inf pattern, the finite rest within the dtype's tolerance), in new arrays that
  share no memory with the inputs;
- a TypeError, ValueError or KeyError whose message is non-empty and names what was wrong
  (one of the call's argument names or a parameters key).
Any other exception fails the test; a crash kills pytest (which fails CI); a hang is stopped
by a faulthandler watchdog that dumps the stacks and exits.

The examples are derandomized (the same ones every run, so CI is reproducible); set
FASTRNN_FUZZ_SCALE=10 locally for a longer, still deterministic run.
"""
import faulthandler
import os
import types
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
from _util import TOL
from fastrnn import reference

SCALE = float(os.environ.get("FASTRNN_FUZZ_SCALE", "1"))
EXAMPLES = {"drop-in": int(400 * SCALE), "constructor": int(200 * SCALE),
            "forward": int(250 * SCALE), "step": int(250 * SCALE)}
WATCHDOG_SECONDS = 600
COUNTS = {}

FUZZ = settings(deadline=None, database=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

RNN_KEYS = ("Wax", "Waa", "Wya", "ba", "by")
LSTM_KEYS = ("Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo", "Wy", "by")
ALLOWED = (TypeError, ValueError, KeyError)


@pytest.fixture(autouse=True)
def watchdog():
    """A hang anywhere (even inside a kernel with the GIL released) dumps every thread's stack
    and exits the process, instead of stalling CI."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ------------------------------------------------------------------ junk generation

# weights of the choices (repeats): mostly keep an argument valid so calls get deep
ARRAY_FORMS = (["array"] * 10 + ["list", "fortran", "strided", "negative", "readonly",
                                 "masked", "memoryview"])
JUNK = ["none", "scalar", "npscalar", "string", "dict", "ragged", "nested-none", "bytes",
        "object-scalar"]


class PlainMapping(Mapping):
    """A read-only Mapping that is not a dict."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class DictSubclass(dict):
    pass


def _values(rng, shape, dtype):
    dt = np.dtype(dtype) if dtype not in ("object", "str") else None
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "complex128":
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    if dtype == "object":
        return rng.standard_normal(shape).astype(object)
    if dtype == "str":
        return rng.standard_normal(shape).round(3).astype(str)
    if dt.kind == "u":
        return rng.integers(0, 3, size=shape).astype(dt)
    if dt.kind == "i":
        return rng.integers(-2, 3, size=shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def _inject(rng, arr, n_special):
    """Write NaN/+inf/-inf at n_special random positions of a float array."""
    if n_special == 0 or arr.size == 0 or arr.dtype.kind != "f":
        return arr
    flat = arr.reshape(-1)
    for pos in rng.integers(0, flat.size, size=n_special):
        flat[pos] = rng.choice([np.nan, np.inf, -np.inf])
    return arr


def _mutate_shape(draw, shape):
    how = draw(st.sampled_from(["resize", "drop", "add", "reverse", "zero-d", "4-d"]))
    shape = list(shape)
    if how == "resize" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = max(0, shape[i] + draw(st.sampled_from([-1, 1, 2])))
    elif how == "drop" and shape:
        shape.pop(draw(st.integers(0, len(shape) - 1)))
    elif how == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(0, 2)))
    elif how == "reverse":
        shape.reverse()
    elif how == "zero-d":
        shape = []
    elif how == "4-d":
        shape = (shape + [1, 2, 3, 1])[:4]
    return tuple(shape)


@st.composite
def junk(draw):
    kind = draw(st.sampled_from(JUNK))
    if kind == "none":
        return None
    if kind == "scalar":
        return draw(st.sampled_from([0, 1, -1.5, 2.0, float("nan"), float("inf"), True]))
    if kind == "npscalar":
        return draw(st.sampled_from([np.float64(1.5), np.float32(-2), np.int8(3),
                                     np.complex128(1j)]))
    if kind == "string":
        return draw(st.sampled_from(["", "x", "1.0", "nan"]))
    if kind == "dict":
        return {"a": np.ones(2)}
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    if kind == "nested-none":
        return [[1.0, None], [2.0, 3.0]]
    if kind == "bytes":
        return b"\x00\x01"
    return object()


VALID_DTYPES = ["float64"] * 4 + ["float32"] * 3 + ["float16", "int8", "int64", "uint64",
                                                     ">f8", ">f4"]
BAD_DTYPES = ["bool", "complex128", "object", "str"]


@st.composite
def array_like(draw, shape):
    """An array (or array-like) meant to have ``shape``: usually valid in some dtype, form and
    memory layout, with NaN/inf sometimes; one time in six corrupted (junk, a wrong shape or
    a rejected dtype)."""
    corrupt = draw(st.sampled_from([None] * 5 + ["junk", "shape", "dtype"]))
    if corrupt == "junk":
        return draw(junk())
    if corrupt == "shape":
        shape = _mutate_shape(draw, shape)
    dtype = draw(st.sampled_from(BAD_DTYPES if corrupt == "dtype" else VALID_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arr = np.asarray(_values(rng, shape, dtype))
    arr = _inject(rng, arr, draw(st.sampled_from([0] * 4 + [1, 2, 3])))
    form = draw(st.sampled_from(ARRAY_FORMS))
    if form == "list":
        return arr.tolist()
    if form == "fortran":
        return np.asfortranarray(arr)
    if form == "strided" and arr.ndim:
        big = np.repeat(arr, 2, axis=-1)
        return big[..., ::2]
    if form == "negative" and arr.ndim:
        return arr[..., ::-1].copy()[..., ::-1]
    if form == "readonly":
        arr.flags.writeable = False
        return arr
    if form == "masked" and arr.dtype.kind in "fiu":
        return np.ma.masked_array(arr, mask=np.zeros(arr.shape, dtype=bool))
    if form == "memoryview" and arr.dtype.kind in "fiu" and arr.dtype.isnative:
        return memoryview(np.ascontiguousarray(arr))
    return arr


def _weight_shapes(kind, n_x, n_a, n_y):
    if kind == "rnn":
        return {"Wax": (n_a, n_x), "Waa": (n_a, n_a), "Wya": (n_y, n_a), "ba": (n_a, 1),
                "by": (n_y, 1)}
    shapes = {}
    for g in "fico":
        shapes["W" + g] = (n_a, n_a + n_x)
        shapes["b" + g] = (n_a, 1)
    shapes["Wy"], shapes["by"] = (n_y, n_a), (n_y, 1)
    return shapes


@st.composite
def parameters(draw, kind, n_x, n_a, n_y):
    """A parameters mapping for ``kind`` at these sizes, possibly mutated."""
    container = draw(st.sampled_from(["dict"] * 12 + ["plain-mapping", "ordered", "subclass",
                                                      "proxy", "items-list", "tuple",
                                                      "none", "string", "array", "other-kind"]))
    if container == "other-kind":
        kind = "lstm" if kind == "rnn" else "rnn"
    shapes = _weight_shapes(kind, n_x, n_a, n_y)
    params = {}
    for key, shape in shapes.items():
        if draw(st.integers(0, 15)) == 0:
            params[key] = draw(array_like(shape))  # this weight is fuzzed
        else:  # a valid weight (dtype float64 or float32), maybe with NaN/inf
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            dtype = draw(st.sampled_from(["float64", "float32"]))
            params[key] = _inject(rng, np.asarray(_values(rng, shape, dtype)),
                                  draw(st.sampled_from([0] * 6 + [1])))
    if draw(st.integers(0, 15)) == 0:
        del params[draw(st.sampled_from(sorted(params)))]
    if draw(st.integers(0, 7)) == 0:
        params[draw(st.sampled_from(["extra", "Wxx", 3, None, "by "]))] = draw(
            st.one_of(junk(), st.just(np.ones((2, 2)))))
    if container == "plain-mapping":
        return PlainMapping(params)
    if container == "ordered":
        return OrderedDict(params)
    if container == "subclass":
        return DictSubclass(params)
    if container == "proxy":
        return types.MappingProxyType(params)
    if container == "items-list":
        return list(params.items())
    if container == "tuple":
        return tuple(params.values())
    if container == "none":
        return None
    if container == "string":
        return "Wax"
    if container == "array":
        return np.ones((2, 2))
    return params


@st.composite
def sizes(draw):
    return {"n_x": draw(st.integers(0, 4)), "n_a": draw(st.integers(0, 5)),
            "n_y": draw(st.sampled_from([1, 2, 3, 1, 2, 3, 0])),
            "m": draw(st.integers(0, 5)), "T_x": draw(st.integers(0, 4))}


# ------------------------------------------------------------------ the oracle

def _as_f64(value):
    return np.asarray(value, dtype=np.float64)


def _arrays_of(values):
    return [np.asarray(v) for v in values]


def _is_float32(arr):
    return arr.dtype.kind == "f" and arr.dtype.itemsize == 4


def expected_dtype(arrays):
    return np.dtype(np.float32) if all(_is_float32(a) for a in arrays) else np.dtype(np.float64)


def _ndarrays_in(values):
    out = []
    for v in values:
        if isinstance(v, np.ndarray):
            out.append(v)
        elif isinstance(v, Mapping):
            out += [w for w in v.values() if isinstance(w, np.ndarray)]
    return out


def check_result(got, want, dtype, inputs, what):
    """got must be the reference's result ``want`` (float64) in dtype ``dtype``."""
    assert len(got) == len(want), what
    tol = TOL[np.dtype(dtype)]
    for k, (g, w) in enumerate(zip(got, want)):
        msg = f"{what}: output {k}"
        assert isinstance(g, np.ndarray), msg
        assert g.shape == w.shape, f"{msg}: shape {g.shape}, reference {w.shape}"
        assert g.dtype == dtype, f"{msg}: dtype {g.dtype}, expected {dtype}"
        assert g.flags.c_contiguous, msg
        for inp in _ndarrays_in(inputs):
            assert not np.shares_memory(g, inp), f"{msg} shares memory with an input"
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=msg + " NaN mask")
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w), err_msg=msg + " +inf")
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w), err_msg=msg + " -inf")
        fin = np.isfinite(w)
        np.testing.assert_allclose(g[fin].astype(np.float64), w[fin], rtol=tol["rtol"],
                                   atol=tol["atol"], err_msg=msg)


def check_error(exc, names, what):
    """An allowed exception type with a message that says what was wrong."""
    assert isinstance(exc, ALLOWED), (
        f"{what}: {type(exc).__name__} is not a TypeError/ValueError/KeyError: {exc!r}")
    message = str(exc.args[0]) if exc.args else ""
    assert message.strip(), f"{what}: {type(exc).__name__} with an empty message"
    assert any(n in message for n in names), (
        f"{what}: the message names none of {sorted(names)}: {message!r}")


def call_quietly(fn, *args, **kwargs):
    """fn(...) with every warning an error; returns ("ok", result) or ("raised", exc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return "ok", fn(*args, **kwargs)
        except Exception as exc:  # classified by the caller
            return "raised", exc


def reference_call(name, inputs, params, keys):
    """The reference on float64 conversions of whatever fastrnn accepted."""
    conv = [_as_f64(v) for v in inputs]
    p = {k: _as_f64(params[k]) for k in keys}
    with np.errstate(all="ignore"):
        return getattr(reference, name)(*conv, p)


# ------------------------------------------------------------------ drop-in functions

FUNCS = {
    "rnn_cell_forward": ("rnn", ("xt", "a_prev")),
    "rnn_forward": ("rnn", ("x", "a0")),
    "lstm_cell_forward": ("lstm", ("xt", "a_prev", "c_prev")),
    "lstm_forward": ("lstm", ("x", "a0")),
}
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}


@st.composite
def drop_in_call(draw, name):
    kind, input_names = FUNCS[name]
    s = draw(sizes())
    cell = name.endswith("cell_forward")
    x_shape = (s["n_x"], s["m"]) if cell else (s["n_x"], s["m"], s["T_x"])
    inputs = [draw(array_like(x_shape))]
    for _ in input_names[1:]:
        inputs.append(draw(array_like((s["n_a"], s["m"]))))
    return inputs, draw(parameters(kind, s["n_x"], s["n_a"], s["n_y"]))


def _names(kind, input_names, extra=()):
    keys = RNN_KEYS if kind == "rnn" else LSTM_KEYS
    return set(input_names) | set(keys) | {"parameters", "n_x", "n_a", "n_y", "m", "T_x"} \
        | set(extra)


def fuzz_drop_in(name, case):
    """One fuzzed call; returns "result" or "error" after checking it."""
    kind, input_names = FUNCS[name]
    inputs, params = case
    what = f"fastrnn.{name}"
    status, out = call_quietly(getattr(fastrnn, name), *inputs, params)
    if status == "raised":
        check_error(out, _names(kind, input_names), what)
        return "error"
    keys = RNN_KEYS if kind == "rnn" else LSTM_KEYS
    assert isinstance(params, Mapping), f"{what} accepted non-mapping parameters"
    want = reference_call(name, inputs, params, keys)
    dtype = expected_dtype(_arrays_of(inputs) + _arrays_of(params[k] for k in keys))
    n = N_OUT[name]
    check_result(out[:n], want[:n], dtype, list(inputs) + [params], what)
    cache = out[n]
    if name.endswith("cell_forward"):
        assert len(cache) == len(want[n]) and cache[-1] is params
    else:
        assert cache[1] is inputs[0] and len(cache[0]) == len(want[n][0])
    return "result"


def run_fuzz(label, strategy, check, n_examples, expected_outcomes):
    """Run ``check`` on ``n_examples`` derandomized examples of ``strategy``; every outcome in
    ``expected_outcomes`` must occur (the generator is not degenerate: it reaches results as
    well as errors)."""
    outcomes = []

    @settings(FUZZ, max_examples=n_examples)
    @given(case=strategy)
    def run(case):
        outcomes.append(check(case))

    run()
    COUNTS[label] = len(outcomes)
    seen = set(outcomes)
    tally = {o: outcomes.count(o) for o in sorted(seen)}
    print(f"\n{label}: {len(outcomes)} fuzzed examples, outcomes {tally}")
    assert len(outcomes) >= n_examples
    missing = set(expected_outcomes) - seen
    assert not missing, f"{label}: never reached {missing}"


@pytest.mark.parametrize("name", list(FUNCS))
def test_fuzz_drop_in(name):
    run_fuzz(name, drop_in_call(name), lambda case: fuzz_drop_in(name, case),
             EXAMPLES["drop-in"], {"result", "error"})


# ------------------------------------------------------------------ models

MODEL_DTYPES = [None] * 6 + [np.float32, np.float64, "float32", "f8", np.int8, np.complex64,
                             "junk", object, np.dtype("U3"), [("a", "f8")], 3]
N_THREADS = [1] * 4 + [2, 3, 0, -1, 10**6, None, 1.5, "2", "many", True, [2]]
MODEL_NAMES = {"x", "xt", "a0", "c0", "a_prev", "c_prev", "state", "dtype", "n_threads"}


def _ref_lstm_sequence(x, a0, c0, params):
    n_y, T = params["Wy"].shape[0], x.shape[2]
    a = np.zeros(a0.shape + (T,))
    c, y = np.zeros_like(a), np.zeros((n_y, x.shape[1], T))
    a_t, c_t = a0, c0
    with np.errstate(all="ignore"):
        for t in range(T):
            a_t, c_t, y[:, :, t], _ = reference.lstm_cell_forward(x[:, :, t], a_t, c_t, params)
            a[:, :, t], c[:, :, t] = a_t, c_t
    return a, y, c


def _model_class(kind):
    return fastrnn.LSTM if kind == "lstm" else fastrnn.RNN


@st.composite
def constructor_case(draw, kind):
    s = draw(sizes())
    params = draw(parameters(kind, s["n_x"], s["n_a"], s["n_y"]))
    return params, draw(st.sampled_from(MODEL_DTYPES))


def fuzz_constructor(kind, case):
    params, dtype = case
    cls = _model_class(kind)
    status, model = call_quietly(cls, params, dtype=dtype)
    if status == "raised":
        check_error(model, _names(kind, MODEL_NAMES), f"fastrnn.{cls.__name__}()")
        return "error"
    assert isinstance(params, Mapping)
    keys = RNN_KEYS if kind == "rnn" else LSTM_KEYS
    weights = [np.asarray(params[k]) for k in keys]
    if dtype is None:
        assert model.dtype == expected_dtype(weights)
    else:
        assert model.dtype == np.dtype(dtype)
    assert model.dtype in (np.dtype(np.float32), np.dtype(np.float64))
    assert (model.n_y, model.n_a) == np.shape(params["Wy" if kind == "lstm" else "Wya"])
    return "result"


@st.composite
def valid_model(draw, kind):
    """A model from valid (finite) weights, float32 or float64, with its weights."""
    s = draw(sizes().filter(lambda s: s["n_y"] > 0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    params = {k: rng.standard_normal(shape).astype(dtype)
              for k, shape in _weight_shapes(kind, s["n_x"], s["n_a"], s["n_y"]).items()}
    return _model_class(kind)(params), params, s


def _reference_params(model, params):
    with np.errstate(all="ignore"):
        return {k: _as_f64(np.asarray(v).astype(model.dtype)) for k, v in params.items()}


def _converted(model, value, shape):
    """What the model computes from ``value``: converted to its dtype (zeros for None)."""
    if value is None:
        return np.zeros(shape)
    with np.errstate(all="ignore"):
        return _as_f64(np.asarray(value).astype(model.dtype))


@st.composite
def forward_case(draw, kind):
    model, params, s = draw(valid_model(kind))
    m, T = draw(st.integers(0, 5)), draw(st.integers(0, 4))
    x = draw(array_like((s["n_x"], m, T)))
    states = [draw(st.one_of(st.none(), array_like((s["n_a"], m))))
              for _ in range(2 if kind == "lstm" else 1)]
    return model, params, x, states, draw(st.sampled_from(N_THREADS))


def fuzz_forward(kind, case):
    model, params, x, states, n_threads = case
    what = f"fastrnn.{type(model).__name__}.forward"
    status, out = call_quietly(model.forward, x, *states, n_threads=n_threads)
    if status == "raised":
        check_error(out, _names(kind, MODEL_NAMES), what)
        return "error"
    xa = _converted(model, x, None)
    s0 = [_converted(model, v, (model.n_a, xa.shape[1])) for v in states]
    p = _reference_params(model, params)
    with np.errstate(all="ignore"):
        if kind == "rnn":
            want = reference.rnn_forward(xa, s0[0], p)[:2]
        else:
            want = _ref_lstm_sequence(xa, s0[0], s0[1], p)
    check_result(out, want, model.dtype, [x] + states, what)
    return "result"


STATE_FORMS = ["tuple"] * 4 + ["list", "none", "array", "single", "triple", "junk"]


@st.composite
def step_case(draw, kind):
    model, params, s = draw(valid_model(kind))
    m = draw(st.integers(0, 5))
    xt = draw(array_like((s["n_x"], m)))
    states = [draw(st.one_of(st.none(), array_like((s["n_a"], m))))
              for _ in range(2 if kind == "lstm" else 1)]
    form = draw(st.sampled_from(STATE_FORMS))
    if kind == "rnn":
        state = states[0] if form != "junk" else draw(junk())
    elif form == "tuple":
        state = tuple(states)
    elif form == "list":
        state = list(states)
    elif form == "none":
        state = None
    elif form == "array":  # one (2, n_a, m) array, unpacked by rows
        try:
            state = np.stack([np.asarray(v) for v in states])
        except (ValueError, TypeError):
            state = tuple(states)
    elif form == "single":
        state = states[0]
    elif form == "triple":
        state = tuple(states) + (states[0],)
    else:
        state = draw(junk())
    return model, params, xt, state


def fuzz_step(kind, case):
    model, params, xt, state = case
    what = f"fastrnn.{type(model).__name__}.step"
    status, out = call_quietly(model.step, xt, state)
    if status == "raised":
        check_error(out, _names(kind, MODEL_NAMES), what)
        return "error"
    xa = _converted(model, xt, None)
    shape = (model.n_a, xa.shape[1])
    p = _reference_params(model, params)
    with np.errstate(all="ignore"):
        if kind == "rnn":
            got = out
            want = reference.rnn_cell_forward(xa, _converted(model, state, shape), p)[:2]
            states = [state]
        else:
            (a_next, c_next), yt = out
            got = (a_next, c_next, yt)
            a_prev, c_prev = (None, None) if state is None else state
            want = reference.lstm_cell_forward(xa, _converted(model, a_prev, shape),
                                               _converted(model, c_prev, shape), p)[:3]
            states = [a_prev, c_prev]
    check_result(got, want, model.dtype, [xt] + states, what)
    return "result"


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_fuzz_model_constructor(kind):
    run_fuzz(f"{kind} constructor", constructor_case(kind),
             lambda case: fuzz_constructor(kind, case), EXAMPLES["constructor"],
             {"result", "error"})


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_fuzz_model_forward(kind):
    run_fuzz(f"{kind} forward", forward_case(kind), lambda case: fuzz_forward(kind, case),
             EXAMPLES["forward"], {"result", "error"})


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_fuzz_model_step(kind):
    run_fuzz(f"{kind} step", step_case(kind), lambda case: fuzz_step(kind, case),
             EXAMPLES["step"], {"result", "error"})


# ------------------------------------------------------------------ cases the fuzzer found
# (kept as plain tests so they do not depend on the fuzzer's path through its examples)

def _small_model(kind):
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(shape)
              for k, shape in _weight_shapes(kind, 3, 5, 2).items()}
    return _model_class(kind)(params), params


@pytest.mark.parametrize("call", ["forward(None)", "step(None)", "step(None, None)"])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_model_input_none_is_a_type_error_naming_it(kind, call):
    model, _ = _small_model(kind)
    name = "x" if call.startswith("forward") else "xt"
    with pytest.raises(TypeError) as info:
        if call == "forward(None)":
            model.forward(None)
        elif call == "step(None)":
            model.step(None)
        else:
            model.step(None, None)
    assert name in str(info.value)


@pytest.mark.parametrize("dtype", ["junk", 3, object, np.dtype("U3"), np.int8, np.complex64])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_model_junk_dtype_is_a_type_error_naming_dtype(kind, dtype):
    _, params = _small_model(kind)
    with pytest.raises(TypeError) as info:
        _model_class(kind)(params, dtype=dtype)
    assert "dtype" in str(info.value)
