"""NaN, +-inf, huge finite and subnormal values.

- NaN and +-inf anywhere in the inputs, states or weights give the reference's NaN/+-inf
  pattern exactly (masks compared element by element), the finite rest within tolerance.
- Huge finite values (1e300 in float64, 1e30 in float32) saturate the activations without any
  warning (pytest turns warnings into errors; the calls are also wrapped explicitly).
- The softmax of finite logits is finite even when columns differ wildly in scale (each column
  is shifted by its own maximum).
- Subnormal inputs and states give the reference's results and do not fall into slow paths.

Every recurrent-product path is covered (the ``recurrent_path`` fixture of conftest.py).
"""
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import _util
import fastrnn
from _util import assert_close, lstm_params, rnn_params
from fastrnn import reference

FUNCS = ("rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward")
DTYPES = (np.float64, np.float32)
INPUTS = {
    "rnn_cell_forward": ("xt", "a_prev"),
    "rnn_forward": ("x", "a0"),
    "lstm_cell_forward": ("xt", "a_prev", "c_prev"),
    "lstm_forward": ("x", "a0"),
}
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}
RNN_KEYS = ("Wax", "Waa", "Wya", "ba", "by")
LSTM_KEYS = ("Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo", "Wy", "by")
HUGE = {np.float64: 1e300, np.float32: 1e30}
TINY = {np.float64: 1e-310, np.float32: 1e-40}

# Every (function, array) pair: each input/state and each weight of the function.
TARGETS = [(f, t) for f in FUNCS
           for t in INPUTS[f] + (LSTM_KEYS if f.startswith("lstm") else RNN_KEYS)]

# Values spread over evenly spaced flat positions of the target array.
SPECIALS = {
    "nan": [np.nan, np.nan],
    "+inf": [np.inf, np.inf],
    "-inf": [-np.inf, -np.inf],
    "mixed": [np.nan, np.inf, -np.inf],
}




def is_lstm(name):
    return name.startswith("lstm")


def y_index(name):
    """Position of the predictions among the outputs: (a, y[, c]) or (a_next, c_next, yt)."""
    return 2 if name == "lstm_cell_forward" else 1


def make_case(name, dtype, seed=0, n_x=3, n_a=5, n_y=4, m=6, T_x=4, bias=1.0):
    """Random inputs (dict name -> array, in call order) and parameters, unequal sizes."""
    rng = np.random.default_rng(seed)
    factory = lstm_params if is_lstm(name) else rnn_params
    params = factory(rng, n_x, n_a, n_y, dtype=dtype, bias=bias)
    names = INPUTS[name]
    shape = (n_x, m) if name.endswith("cell_forward") else (n_x, m, T_x)
    inputs = {names[0]: rng.standard_normal(shape).astype(dtype)}
    for state in names[1:]:
        inputs[state] = rng.standard_normal((n_a, m)).astype(dtype)
    return inputs, params


def run_fast(name, inputs, params):
    """The fastrnn call, warnings turned into errors; returns the outputs without caches."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = getattr(fastrnn, name)(*inputs.values(), params)
    return out[:N_OUT[name]]


def run_ref(name, inputs, params):
    """The reference in float64; numpy's warnings (inf - inf, 0 * inf, ...) silenced."""
    with np.errstate(all="ignore"):
        return _util.ref(name, *inputs.values(), params)[:N_OUT[name]]


def assert_same_specials(got, want, dtype, what=""):
    """Same shapes, result dtype, NaN/+inf/-inf masks; finite entries within tolerance."""
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        msg = f"{what}: output {k}"
        assert g.shape == w.shape, msg
        assert g.dtype == np.dtype(dtype), msg
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=msg + " NaN mask")
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w),
                                      err_msg=msg + " +inf mask")
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w),
                                      err_msg=msg + " -inf mask")
        finite = np.isfinite(w)
        assert_close(g[finite], w[finite], dtype, err_msg=msg + " finite values")


def with_values(arr, values):
    """A copy of arr with ``values`` written at evenly spaced flat positions (first, ...,
    last)."""
    out = np.array(arr, copy=True)
    flat = out.reshape(-1)
    positions = np.linspace(0, flat.size - 1, len(values)).round().astype(int)
    for pos, v in zip(positions, values):
        flat[pos] = v
    return out


def replace(name, inputs, params, target, values):
    """inputs, params with the target array (an input or a weight) given ``values``."""
    inputs, params = dict(inputs), dict(params)
    if target in inputs:
        inputs[target] = with_values(inputs[target], values)
    else:
        params[target] = with_values(params[target], values)
    return inputs, params


# ------------------------------------------------------------------ NaN and +-inf

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,target", TARGETS, ids=[f"{f}-{t}" for f, t in TARGETS])
def test_nan_inf_pattern_matches_reference(name, target, dtype, recurrent_path):
    inputs, params = make_case(name, dtype)
    for label, values in SPECIALS.items():
        case_inputs, case_params = replace(name, inputs, params, target, values)
        want = run_ref(name, case_inputs, case_params)
        got = run_fast(name, case_inputs, case_params)
        assert_same_specials(got, want, dtype, what=f"{name}, {label} in {target}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_nan_propagates_through_the_sequence(name, dtype, recurrent_path):
    """A NaN in one example's input at the first step poisons exactly that example (all later
    steps, every hidden unit and prediction) and no other example."""
    inputs, params = make_case(name, dtype)
    x_name = INPUTS[name][0]
    x = inputs[x_name].copy()
    x[(1, 2, 0)[:x.ndim]] = np.nan  # feature 1 of example 2, first step
    inputs[x_name] = x
    got = run_fast(name, inputs, params)
    want = run_ref(name, inputs, params)
    assert_same_specials(got, want, dtype, what=name)
    for out in got:
        assert np.isnan(out[:, 2, ...]).all()
        assert not np.isnan(np.delete(out, 2, axis=1)).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c_sign", [1, -1], ids=["c_prev+inf", "c_prev-inf"])
def test_infinite_input_with_infinite_cell_state(c_sign, dtype, recurrent_path):
    """An infinite input drives some gate pre-activations to -inf: the reference's sigmoid is
    then exactly 0, and 0 * (+-inf cell state) is NaN.  A sigmoid that stops at the smallest
    normal number instead (exp clamped) turns that NaN into +-inf.  (Found by tests/test_fuzz.py
    on lstm_cell_forward with n_a = 1.)"""
    inputs, params = make_case("lstm_cell_forward", dtype, n_x=3, n_a=4, n_y=3, m=6)
    xt = inputs["xt"].copy()
    xt[0, :3] = [np.inf, -np.inf, np.inf]
    inputs["xt"] = xt
    inputs["c_prev"] = np.full_like(inputs["c_prev"], c_sign * np.inf)
    got = run_fast("lstm_cell_forward", inputs, params)
    want = run_ref("lstm_cell_forward", inputs, params)
    assert np.isnan(want[1]).any()  # some forget gates are exactly 0 in the reference
    assert_same_specials(got, want, dtype, what=f"lstm_cell_forward, inf x, c_prev {c_sign}inf")


# ------------------------------------------------------------------ huge finite values

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,target", TARGETS, ids=[f"{f}-{t}" for f, t in TARGETS])
def test_huge_finite_values_saturate_silently(name, target, dtype, recurrent_path):
    big = HUGE[dtype]
    inputs, params = make_case(name, dtype)
    case_inputs, case_params = replace(name, inputs, params, target, [big, -big, big])
    got = run_fast(name, case_inputs, case_params)  # any warning is an error here
    want = run_ref(name, case_inputs, case_params)
    assert_same_specials(got, want, dtype, what=f"{name}, +-{big:g} in {target}")
    for out in got:
        assert np.isfinite(out).all(), f"{name}: huge finite input gave a non-finite output"
    a_out, y_out = got[0], got[y_index(name)]
    assert np.abs(a_out).max() <= 1.0
    assert y_out.min() >= 0.0 and y_out.max() <= 1.0
    assert_close(y_out.sum(axis=0), np.ones(y_out.shape[1:]), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_huge_inputs_states_and_biases_together_saturate_silently(name, dtype, recurrent_path):
    """Every input, state and bias entry huge (random signs) at once, weights of order 1 (so
    no product overflows, in float32 or float64)."""
    big = HUGE[dtype]
    rng = np.random.default_rng(7)
    inputs, params = make_case(name, dtype)
    inputs = {k: (np.sign(v) * big).astype(dtype) for k, v in inputs.items()}
    for k, v in params.items():
        if k.startswith("b"):
            params[k] = (np.where(rng.random(v.shape) < 0.5, -1.0, 1.0) * big).astype(dtype)
    got = run_fast(name, inputs, params)
    want = run_ref(name, inputs, params)
    assert_same_specials(got, want, dtype, what=f"{name}, all inputs and biases +-{big:g}")
    for out in got:
        assert np.isfinite(out).all()


# ------------------------------------------------------------------ softmax scale

SCALES = {np.float64: [1e3, 1e5, 1e100, 1e300], np.float32: [1e3, 1e5, 1e30]}
SOFTMAX_CASES = [(d, s) for d in DTYPES for s in SCALES[d]]


@pytest.mark.parametrize("dtype,scale", SOFTMAX_CASES,
                         ids=[f"{np.dtype(d).name}-{s:g}" for d, s in SOFTMAX_CASES])
@pytest.mark.parametrize("name", FUNCS)
def test_softmax_of_columns_of_different_scale_is_finite(name, dtype, scale, recurrent_path):
    """Column 0's hidden state is exactly 0 (zero input, state and biases), so its logits are
    ``by`` (order 1); the other columns have saturated hidden states and logits of order
    ``scale``.  A softmax shifted by the global maximum would give 0/0 = NaN in column 0."""
    n_x, n_a, n_y, m = 3, 5, 4, 4
    inputs, params = make_case(name, dtype, seed=3, n_x=n_x, n_a=n_a, n_y=n_y, m=m, T_x=3)
    for key in params:
        if key.startswith("b") and key != "by":
            params[key] = np.zeros_like(params[key])
    out_w = "Wy" if is_lstm(name) else "Wya"
    params[out_w] = (params[out_w] / np.abs(params[out_w]).max() * scale).astype(dtype)
    params["by"] = np.linspace(-1, 1, n_y).reshape(n_y, 1).astype(dtype)
    x_name = INPUTS[name][0]
    x = np.full(inputs[x_name].shape, 50.0, dtype=dtype)
    x[:, 0, ...] = 0
    inputs[x_name] = x
    for state in INPUTS[name][1:]:
        inputs[state] = np.zeros_like(inputs[state])
    got = run_fast(name, inputs, params)
    want = run_ref(name, inputs, params)
    y = got[y_index(name)]
    assert np.isfinite(y).all(), f"softmax gave non-finite values at scale {scale:g}"
    assert_close(y.sum(axis=0), np.ones(y.shape[1:]), dtype)
    # column 0 really is order 1 and the others order `scale`: the case is what it claims
    a_out = got[0]
    assert (a_out[:, 0, ...] == 0).all()
    assert np.abs(a_out[:, 1:, ...]).max() > 0.5
    assert_same_specials(got, want, dtype, what=f"{name}, logit scale {scale:g}")


# ------------------------------------------------------------------ subnormals

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("variant", ["inputs-and-states", "weights-and-biases", "everything"])
@pytest.mark.parametrize("name", FUNCS)
def test_subnormal_values_match_reference(name, variant, dtype, recurrent_path):
    tiny = TINY[dtype]
    assert 0 < tiny < np.finfo(dtype).tiny  # really subnormal in this dtype
    rng = np.random.default_rng(11)
    inputs, params = make_case(name, dtype)

    def subnormal(arr, fraction):
        keep = rng.random(arr.shape) >= fraction
        return np.where(keep, arr, np.sign(arr) * tiny).astype(dtype)

    if variant in ("inputs-and-states", "everything"):
        inputs = {k: subnormal(v, 1.0) for k, v in inputs.items()}
    if variant in ("weights-and-biases", "everything"):
        params = {k: subnormal(v, 0.5 if k.startswith("W") else 1.0)
                  for k, v in params.items()}
    assert any(np.any((v != 0) & (np.abs(v) < np.finfo(dtype).tiny))
               for v in list(inputs.values()) + list(params.values()))
    got = run_fast(name, inputs, params)
    want = run_ref(name, inputs, params)
    assert_same_specials(got, want, dtype, what=f"{name}, subnormal {variant}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_subnormal_input_times_inf_weight_keeps_reference_pattern(name, dtype):
    """tiny * inf is inf (not 0 * inf = NaN): subnormal inputs are values, not zeros."""
    tiny = TINY[dtype]
    inputs, params = make_case(name, dtype)
    x_name = INPUTS[name][0]
    inputs[x_name] = np.full_like(inputs[x_name], tiny)
    if is_lstm(name):
        n_a = params["Wf"].shape[0]
        params["Wf"] = params["Wf"].copy()
        params["Wf"][0, n_a] = np.inf  # the weight of the first input feature
    else:
        params["Wax"] = params["Wax"].copy()
        params["Wax"][0, 0] = np.inf
    got = run_fast(name, inputs, params)
    want = run_ref(name, inputs, params)
    assert not np.isnan(want[0]).any()  # reference: inf * tiny = inf, saturating the unit
    assert_same_specials(got, want, dtype, what=f"{name}, subnormal x with an inf weight")


@pytest.mark.parametrize("blas_threads", ["default", "1"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["rnn_forward", "lstm_forward"])
def test_subnormal_inputs_have_no_slow_path(name, dtype, blas_threads):
    """Inputs and initial state entirely subnormal, weights finite, biases zero: without
    flush-to-zero every product and sum would be subnormal (a 10-100x microcode slow path, in
    BLAS's own threads too, whose floating-point modes the kernels cannot set).  No clock
    decides this: the result must be bit for bit that of all-zero inputs, which shows that
    the subnormal values were replaced by zeros before any product (so no BLAS thread ever
    multiplies one).  Run with BLAS as it comes and pinned to one thread."""
    tiny = TINY[dtype]
    n_x, n_a, n_y, m, T_x = 64, 128, 16, 16, 50
    rng = np.random.default_rng(5)
    factory = lstm_params if is_lstm(name) else rnn_params
    params = factory(rng, n_x, n_a, n_y, dtype=dtype, bias=0.0)
    x = rng.standard_normal((n_x, m, T_x)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    xs, a0s = (np.sign(x) * tiny).astype(dtype), (np.sign(a0) * tiny).astype(dtype)
    assert fastrnn._kernels._core.count_subnormal(xs) == xs.size
    fn = getattr(fastrnn, name)
    limit = None if blas_threads == "default" else 1
    with threadpool_limits(limit):
        got = fn(xs, a0s, params)
        zero = fn(np.zeros_like(xs), np.zeros_like(a0s), params)
    for g, z in zip(got[:-1], zero[:-1]):
        np.testing.assert_array_equal(g, z)


def _decaying_lstm(dtype, n_x, n_a, n_y, forget_bias):
    """An LSTM whose cell state only decays: forget gate sigmoid(forget_bias) everywhere,
    candidate tanh(0) = 0 (so nothing is added), output gate 1/2."""
    params = {}
    for g in "fico":
        params["W" + g] = np.zeros((n_a, n_a + n_x))
        params["b" + g] = np.zeros((n_a, 1))
    params["bf"][:] = forget_bias
    params["Wy"] = np.random.default_rng(0).standard_normal((n_y, n_a))
    params["by"] = np.zeros((n_y, 1))
    return fastrnn.LSTM({k: v.astype(dtype) for k, v in params.items()})


@pytest.mark.parametrize("blas_threads", ["default", "1"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_decaying_cell_state_has_no_slow_path(dtype, blas_threads):
    """Decaying cell states must not fall into subnormal slow paths: a cell state that
    shrinks by 1% a step from just above the subnormal range crosses it over thousands of
    steps (then, without flush-to-zero, the hidden states and the output layer's inputs are
    subnormal too).  No clock decides this: no state, gate or output the kernel wrote is ever
    subnormal (each went straight from a normal number to zero), so no later step computed
    with one."""
    c_start, T_x = (1e-300, 6000) if dtype == np.float64 else (1e-30, 4000)
    n_x, n_a, n_y, m = 1, 64, 2, 4
    decaying = _decaying_lstm(dtype, n_x, n_a, n_y, np.log(99.0))  # f = 0.99
    x = np.zeros((n_x, m, T_x), dtype=dtype)
    c0 = np.full((n_a, m), c_start, dtype=dtype)
    limit = None if blas_threads == "default" else 1
    count = fastrnn._kernels._core.count_subnormal
    with threadpool_limits(limit):
        a, y, c = decaying.forward(x, None, c0)
    # the state really went through the subnormal range: normal early, gone at the end
    # (0.99**T_x takes it below the smallest subnormal, in the reference too)
    assert (np.abs(c[:, :, 0]) > np.finfo(dtype).tiny).all() and (c[:, :, -1] == 0).all()
    for name, arr in (("c", c), ("a", a), ("y", y)):
        assert count(np.ascontiguousarray(arr)) == 0, f"subnormal values in {name}"


# ------------------------------------------------------------------ models

def _ref_lstm_sequence(x, a0, c0, params):
    """reference.lstm_cell_forward over a sequence from (a0, c0), in float64."""
    x, a0, c0, params = _util.f64(x), _util.f64(a0), _util.f64(c0), _util.f64(params)
    n_y, T = params["Wy"].shape[0], x.shape[2]
    a = np.zeros(a0.shape + (T,))
    c, y = np.zeros_like(a), np.zeros((n_y, x.shape[1], T))
    a_t, c_t = a0, c0
    with np.errstate(all="ignore"):
        for t in range(T):
            a_t, c_t, y[:, :, t], _ = reference.lstm_cell_forward(x[:, :, t], a_t, c_t, params)
            a[:, :, t], c[:, :, t] = a_t, c_t
    return a, y, c


def _model_case(kind, dtype, seed=0, n_x=3, n_a=5, n_y=4, m=6, T_x=4):
    rng = np.random.default_rng(seed)
    params = (lstm_params if kind == "lstm" else rnn_params)(rng, n_x, n_a, n_y, dtype=dtype)
    arrays = {"x": rng.standard_normal((n_x, m, T_x)).astype(dtype),
              "a0": rng.standard_normal((n_a, m)).astype(dtype)}
    if kind == "lstm":
        arrays["c0"] = rng.standard_normal((n_a, m)).astype(dtype)
    return arrays, params


def _model_outputs(kind, params, arrays, method, dtype=None):
    """(fastrnn outputs, reference outputs) of a model forward or step."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = (fastrnn.LSTM if kind == "lstm" else fastrnn.RNN)(params, dtype=dtype)
        if method == "forward":
            got = model.forward(*arrays.values())
        elif kind == "lstm":
            (a_next, c_next), yt = model.step(arrays["x"][:, :, 0],
                                              (arrays["a0"], arrays["c0"]))
            got = (a_next, c_next, yt)
        else:
            got = model.step(arrays["x"][:, :, 0], arrays["a0"])
    # the model computes in its dtype: inputs and weights are converted to it first
    mdt = model.dtype
    with np.errstate(all="ignore"):
        conv = {k: np.asarray(v).astype(mdt) for k, v in arrays.items()}
        cparams = {k: np.asarray(v).astype(mdt) for k, v in params.items()}
        if method == "forward":
            if kind == "lstm":
                want = _ref_lstm_sequence(conv["x"], conv["a0"], conv["c0"], cparams)
            else:
                want = _util.ref("rnn_forward", conv["x"], conv["a0"], cparams)[:2]
        elif kind == "lstm":
            want = _util.ref("lstm_cell_forward", conv["x"][:, :, 0], conv["a0"], conv["c0"],
                             cparams)[:3]
        else:
            want = _util.ref("rnn_cell_forward", conv["x"][:, :, 0], conv["a0"], cparams)[:2]
    return got, want, mdt


MODEL_TARGETS = ([("rnn", t) for t in ("x", "a0") + RNN_KEYS]
                 + [("lstm", t) for t in ("x", "a0", "c0") + LSTM_KEYS])


@pytest.mark.parametrize("method", ["forward", "step"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind,target", MODEL_TARGETS,
                         ids=[f"{k}-{t}" for k, t in MODEL_TARGETS])
def test_model_nan_inf_huge_pattern_matches_reference(kind, target, dtype, method,
                                                      recurrent_path):
    arrays, params = _model_case(kind, dtype)
    cases = dict(SPECIALS, huge=[HUGE[dtype], -HUGE[dtype], HUGE[dtype]])
    for label, values in cases.items():
        a, p = dict(arrays), dict(params)
        if target in a:
            a[target] = with_values(a[target], values)
        else:
            p[target] = with_values(p[target], values)
        got, want, mdt = _model_outputs(kind, p, a, method)
        assert_same_specials(got, want, mdt, what=f"{kind} {method}, {label} in {target}")


@pytest.mark.parametrize("method", ["forward", "step"])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_float32_model_fed_huge_float64_input_does_not_warn(kind, method):
    """A float32 model converts float64 input to float32: 1e300 becomes inf, silently, and the
    result is the reference's for that converted input."""
    arrays, params = _model_case(kind, np.float32)
    arrays = {k: v.astype(np.float64) for k, v in arrays.items()}
    arrays["x"] = with_values(arrays["x"], [1e300, -1e300])
    got, want, mdt = _model_outputs(kind, params, arrays, method)
    assert mdt == np.float32
    assert_same_specials(got, want, np.float32, what=f"{kind} {method}")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_float32_model_from_huge_float64_weights_does_not_warn(kind):
    """dtype=float32 converts the float64 weights: 1e300 becomes inf, silently."""
    arrays, params = _model_case(kind, np.float64)
    w = "Wax" if kind == "rnn" else "Wi"
    params[w] = with_values(params[w], [1e300, -1e300])
    got, want, mdt = _model_outputs(kind, params, arrays, "forward", dtype=np.float32)
    assert mdt == np.float32
    assert_same_specials(got, want, np.float32, what=f"{kind} forward")



# ------------------------------------------------------------------ exponent-range edges
#
# The kernels run without a flush-to-zero mode: intermediate results are IEEE, so a subnormal
# intermediate keeps its value.  Stored states that are subnormal become 0 only where that
# cannot change the NaN/inf pattern (every weight they multiply is finite).

# A forget-gate pre-activation whose sigmoid is subnormal (not 0: exp(-x) still finite), and
# a cell state large enough that the product is of order 1.
SUBNORMAL_GATE = {np.float64: -709.0, np.float32: -87.6}
HUGE_STATE = {np.float64: 1e308, np.float32: 3e38}
EDGE_TINY = {np.float64: (1e-10, 1e-300), np.float32: (1e-10, 1e-30)}  # product subnormal


def _lstm_gate_case(dtype, c_value, n_x=2, n_a=3, n_y=2, m=2):
    """Forget gate sigmoid(SUBNORMAL_GATE) on unit 0, input gate 0: c_next = f * c_prev."""
    rng = np.random.default_rng(7)
    p = lstm_params(rng, n_x, n_a, n_y, dtype=dtype)
    p = {k: v.copy() for k, v in p.items()}
    p["Wf"][0] = 0
    p["bf"][0] = SUBNORMAL_GATE[dtype]
    p["Wi"][0] = 0
    p["bi"][0] = -1e4  # sigmoid: exactly 0
    c_prev = rng.standard_normal((n_a, m)).astype(dtype)
    c_prev[0] = c_value
    xt = rng.standard_normal((n_x, m)).astype(dtype)
    a_prev = rng.standard_normal((n_a, m)).astype(dtype)
    return xt, a_prev, c_prev, p


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c_value", ["huge", "+inf", "-inf"])
def test_subnormal_forget_gate_times_huge_cell_state(c_value, dtype, recurrent_path):
    """f = sigmoid(-709) (float64) is subnormal; f * 1e308 is about 1.2, f * inf is inf.
    A flush-to-zero mode would give 0 and NaN."""
    c0 = {"huge": HUGE_STATE[dtype], "+inf": np.inf, "-inf": -np.inf}[c_value]
    xt, a_prev, c_prev, p = _lstm_gate_case(dtype, c0)
    inputs = {"xt": xt, "a_prev": a_prev, "c_prev": c_prev}
    got = run_fast("lstm_cell_forward", inputs, p)
    want = run_ref("lstm_cell_forward", inputs, p)
    if c_value == "huge":
        assert np.all((np.abs(want[1][0]) > 0.1) & np.isfinite(want[1][0]))
    else:
        assert np.all(np.isinf(want[1][0]))
    assert_same_specials(got, want, dtype, what=f"subnormal forget gate, c_prev {c_value}")
    # a packed model's step and sequence (one step, c0 given) take the same kernels
    model = fastrnn.LSTM(p)
    (a1, c1), y1 = model.step(xt, (a_prev, c_prev))
    assert_same_specials((a1, c1, y1), want, dtype, what="LSTM.step")
    a, y, c = model.forward(xt[:, :, None], a_prev, c_prev)
    assert_same_specials((a[:, :, 0], c[:, :, 0], y[:, :, 0]), want, dtype,
                         what="LSTM.forward")


def _underflow_case(kind, dtype, n_x=2, n_a=3, n_y=2, m=2, T_x=4):
    """Unit 0's state is subnormal at every step (a tiny weight times a tiny input); unit 1
    is driven by an infinite recurrent weight on unit 0: the reference's inf * tiny = inf
    saturates it, where a state flushed to 0 would give 0 * inf = NaN."""
    rng = np.random.default_rng(11)
    s, e = EDGE_TINY[dtype]
    x = rng.standard_normal((n_x, m, T_x)).astype(dtype)
    x[0] = e
    a0 = np.ones((n_a, m), dtype=dtype)
    if kind == "rnn":
        p = rnn_params(rng, n_x, n_a, n_y, dtype=dtype)
        p = {k: v.copy() for k, v in p.items()}
        p["Wax"][0] = 0
        p["Wax"][0, 0] = s
        p["ba"][0] = 0
        p["Waa"][:] = 0
        p["Waa"][1, 0] = np.inf
        return x, a0, p
    p = lstm_params(rng, n_x, n_a, n_y, dtype=dtype)
    p = {k: v.copy() for k, v in p.items()}
    for g in "fioc":
        p["W" + g][:, :n_a] = 0  # no recurrence but the one below
    p["Wf"][1, 0] = np.inf       # unit 1's forget gate reads unit 0's hidden state
    p["bf"][0], p["bi"][0], p["bo"][0] = -1e4, 0, 1e4    # f = 0, i = 1/2, o = 1
    p["Wc"][0] = 0
    p["Wc"][0, n_a] = s
    p["bc"][0] = 0               # cct = tanh(s * e): subnormal, so are c and h
    return x, a0, p


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_underflowing_state_times_inf_weight_keeps_reference_pattern(kind, dtype,
                                                                     recurrent_path):
    x, a0, p = _underflow_case(kind, dtype)
    name = kind + "_forward"
    inputs = {"x": x, "a0": a0}
    want = run_ref(name, inputs, p)
    tiny_state = want[0][0, :, 1:]
    assert np.all((tiny_state != 0) & (np.abs(tiny_state) < np.finfo(dtype).tiny))
    assert not np.isnan(want[0]).any()
    got = run_fast(name, inputs, p)
    assert_same_specials(got, want, dtype, what=f"{name}: underflowing state, inf weight")
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    assert_same_specials(model.forward(x, a0), want, dtype, what=f"{kind} model")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_underflowing_state_with_finite_weights_is_stored_as_zero(kind, dtype,
                                                                  recurrent_path):
    """With every weight finite, a subnormal state is stored as 0 (no slow paths on a
    decaying state): within the tolerance of the reference's tiny value."""
    x, a0, p = _underflow_case(kind, dtype)
    key = "Waa" if kind == "rnn" else "Wf"
    p[key][1, 0] = 2.0
    name = kind + "_forward"
    inputs = {"x": x, "a0": a0}
    want = run_ref(name, inputs, p)
    got = run_fast(name, inputs, p)
    assert np.all(got[0][0, :, 1:] == 0)
    assert_same_specials(got, want, dtype, what=f"{name}: underflowing state")
