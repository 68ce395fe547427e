"""Equivalence of the four drop-in functions with the numpy reference.

Every comparison passes the tolerances of ``_util.TOL`` by keyword: float64 results against
the float64 reference at rtol=1e-9, atol=1e-11; float32 results against the float64
reference (run on the same float32 values) at rtol=1e-4, atol=1e-5.  The mutation tests at
the end prove those tolerances are tight: a reference with two gates swapped, a square weight
transposed, a bias dropped, ... computed in numpy must *not* pass them.
"""
import functools

import numpy as np
import pytest

import fastrnn
import fastrnn._api as api
from _util import TOL, assert_close, f64, lstm_params, ref, rnn_params

DTYPES = [np.float64, np.float32]
FUNCTIONS = ["rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward"]

# Output names, in the order the functions return them (caches excluded).
OUTPUTS = {
    "rnn_cell_forward": ("a_next", "yt_pred"),
    "rnn_forward": ("a", "y_pred"),
    "lstm_cell_forward": ("a_next", "c_next", "yt_pred"),
    "lstm_forward": ("a", "y", "c"),
}

# (n_x, n_a, n_y, m, T_x).  Deliberately unequal sizes: square shapes hide transposes.
SHAPES = {
    "lesson": (3, 5, 2, 10, 4),        # the benchmark suite
    "charlm": (27, 100, 27, 1, 50),    # the benchmark suite
    "stream": (64, 64, 64, 1, 1),      # the benchmark suite (latency)
    "deepbench": (512, 512, 64, 4, 25),  # the benchmark suite
    "mid": (128, 256, 128, 32, 100),   # the benchmark suite
    "unequal": (7, 11, 5, 6, 9),
    "all_ones": (1, 1, 1, 1, 1),
    "n_x=1": (1, 6, 3, 5, 4),
    "n_a=1": (5, 1, 3, 5, 4),
    "n_y=1": (5, 6, 1, 5, 4),
    "m=1": (5, 6, 3, 1, 4),
    "T_x=1": (5, 6, 3, 5, 1),
    "n_y>n_a>n_x": (2, 3, 9, 2, 5),
    "n_x>n_y>n_a": (13, 4, 6, 3, 5),
    "m=5": (4, 6, 3, 5, 6),            # just above the shipped small-batch threshold (4)
    "long": (4, 9, 6, 3, 300),         # long sequence, contractive weights
}




def _kind(function):
    return "rnn" if function.startswith("rnn") else "lstm"


def _is_cell(function):
    return "cell" in function


def make_case(function, dims, dtype, seed, scale=None, out_scale=None, bias=1.0):
    """Inputs for ``function``: (args tuple, parameters).  Values are drawn in float64 and
    cast to ``dtype``; the reference later runs on float64 copies of the cast values."""
    n_x, n_a, n_y, m, T = dims
    rng = np.random.default_rng(seed)
    kind = _kind(function)
    make = rnn_params if kind == "rnn" else lstm_params
    p = make(rng, n_x, n_a, n_y, dtype=dtype, scale=scale, bias=bias)
    if out_scale is not None:
        key = "Wya" if kind == "rnn" else "Wy"
        p[key] = (rng.standard_normal(p[key].shape) * out_scale).astype(dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    c0 = rng.standard_normal((n_a, m)).astype(dtype)
    if function == "rnn_cell_forward":
        args = (x[:, :, 0], a0)
    elif function == "lstm_cell_forward":
        args = (x[:, :, 0], a0, c0)
    else:
        args = (x, a0)
    return args, p


def outputs(function, result):
    """The named array outputs of a call's result tuple."""
    return dict(zip(OUTPUTS[function], result))


def fast(function, args, p):
    return outputs(function, getattr(fastrnn, function)(*args, p))


def reference_outputs(function, args, p):
    return outputs(function, ref(function, *args, p))


@functools.lru_cache(maxsize=None)
def _cached_reference(function, shape_name, dtype_name, seed):
    args, p = make_case(function, SHAPES[shape_name], np.dtype(dtype_name), seed)
    return args, p, reference_outputs(function, args, p)


def check_equal(function, got, want, dtype, shapes=None):
    assert set(got) == set(want)
    for name in OUTPUTS[function]:
        g = got[name]
        assert isinstance(g, np.ndarray), name
        assert g.dtype == np.dtype(dtype), name
        assert g.shape == want[name].shape, name
        assert_close(g, want[name], dtype, err_msg=f"{function}: {name}")


# ------------------------------------------------------------------ shapes and paths

@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_matches_reference(function, dtype, shape_name, recurrent_path):
    args, p, want = _cached_reference(function, shape_name, np.dtype(dtype).name, 1)
    check_equal(function, fast(function, args, p), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_default_gemv_threshold_both_sides(function, dtype):
    """With the shipped threshold, batches just below, at and above it agree too."""
    limit = api.SMALL_BATCH_MAX_M
    for m in sorted({1, max(limit, 1), limit + 1, 2 * limit + 3}):
        args, p = make_case(function, (5, 7, 4, m, 6), dtype, seed=10 + m)
        check_equal(function, fast(function, args, p), reference_outputs(function, args, p),
                    dtype)


def test_recurrent_path_fixture_reaches_the_kernel(monkeypatch, recurrent_path):
    """The threshold and panel switch the fixture sets are the ones the kernels run with (so
    every recurrent path is really exercised above)."""
    from fastrnn._kernels import _core

    seen = []
    for name in ("try_rnn", "try_lstm", "rnn_forward", "lstm_forward"):
        real = getattr(_core, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(args[-1])  # small_max, the last positional argument
            return _real(*args, **kwargs)

        monkeypatch.setattr(_core, name, spy)
    for function in FUNCTIONS:
        args, p = make_case(function, (3, 5, 2, 6, 3), np.float64, seed=3)
        fast(function, args, p)
    want = 10**6 if recurrent_path == "small" else 0
    assert seen and all(v == want for v in seen)
    assert _core.panel_gemm_enabled() == (recurrent_path == "panel"
                                          and _core.simd() in ("avx2", "avx512"))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", ["rnn_cell_forward", "lstm_cell_forward"])
def test_chained_cells_match_reference_sequence(function, dtype, recurrent_path):
    """A loop of fastrnn cell calls (as the lessons' rnn_forward writes it) follows the
    reference sequence call step by step."""
    n_x, n_a, n_y, m, T = 4, 7, 3, 5, 20
    seq = function.replace("_cell", "")
    (x, a0), p = make_case(seq, (n_x, n_a, n_y, m, T), dtype, seed=4)
    want = reference_outputs(seq, (x, a0), p)
    a_prev = a0
    c_prev = np.zeros((n_a, m), dtype=dtype)
    for t in range(T):
        if function == "rnn_cell_forward":
            a_prev, yt, _ = fastrnn.rnn_cell_forward(x[:, :, t], a_prev, p)
            assert_close(a_prev, want["a"][:, :, t], dtype)
            assert_close(yt, want["y_pred"][:, :, t], dtype)
        else:
            a_prev, c_prev, yt, _ = fastrnn.lstm_cell_forward(x[:, :, t], a_prev, c_prev, p)
            assert_close(a_prev, want["a"][:, :, t], dtype)
            assert_close(c_prev, want["c"][:, :, t], dtype)
            assert_close(yt, want["y"][:, :, t], dtype)


# ------------------------------------------------------------------ saturation

def _saturated_fraction(function, args, p):
    """Fraction of the reference's hidden pre-activations with |z| > 5 (saturated)."""
    x = f64(args[0])
    x = x if x.ndim == 3 else x[:, :, None]
    a_prev = f64(args[1])
    c_prev = f64(args[2]) if len(args) == 3 else np.zeros_like(a_prev)
    p = f64(p)
    fracs = []
    for t in range(x.shape[2]):
        if _kind(function) == "rnn":
            z = p["Waa"] @ a_prev + p["Wax"] @ x[:, :, t] + p["ba"]
            a_prev = np.tanh(z)
        else:
            concat = np.vstack([a_prev, x[:, :, t]])
            z = np.vstack([p["W" + g] @ concat + p["b" + g] for g in "fico"])
            a_prev, c_prev = ref("lstm_cell_forward", x[:, :, t], a_prev, c_prev, p)[:2]
        fracs.append(np.mean(np.abs(z) > 5))
    return float(np.mean(fracs))


@pytest.mark.parametrize("dtype,T", [(np.float64, 40), (np.float32, 6)], ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_saturating_weights(function, dtype, T, recurrent_path):
    """Weights of scale 30 saturate tanh and sigmoid; the output layer stays moderate so the
    float32 softmax is well-conditioned.  (float32 uses a short sequence: with a recurrent
    gain of ~30 per step, float32 rounding of the *input* weights alone is amplified past the
    float32 tolerance after a few dozen steps, for any correct float32 implementation.)"""
    args, p = make_case(function, (6, 9, 4, 5, T), dtype, seed=5, scale=30.0,
                        out_scale=1 / 3, bias=1.0)
    assert _saturated_fraction(function, args, p) > 0.8
    check_equal(function, fast(function, args, p), reference_outputs(function, args, p), dtype)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_extreme_preactivations_float64(function, recurrent_path):
    """|z| up to ~1e4: exp overflows in a naive formula; the kernels must return exact limits
    (and, with filterwarnings=error, emit no RuntimeWarning)."""
    args, p = make_case(function, (6, 9, 4, 5, 5), np.float64, seed=6, scale=1000.0,
                        out_scale=1 / 3, bias=100.0)
    check_equal(function, fast(function, args, p), reference_outputs(function, args, p),
                np.float64)


def _lessons_softmax(z):
    """The lessons' softmax: shifted by the *global* maximum."""
    e_x = np.exp(z - np.max(z))
    return e_x / e_x.sum(axis=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_large_logits_softmax(function, dtype):
    """Columns of logits that differ by many hundreds: the lessons' global-max softmax gives
    NaN there; the spec's per-column softmax (and fastrnn) must not."""
    args, p = make_case(function, (3, 5, 4, 6, 3), dtype, seed=7)
    key = "Wya" if _kind(function) == "rnn" else "Wy"
    p = dict(p)
    # logit row 0 = s * (a[0] - mean(a[0])), s chosen so that row 0 spans 3000 across the
    # examples and steps: some columns peak at hundreds, others at O(1); the other rows stay
    # moderate.
    a = reference_outputs(function, args, p)["a_next" if _is_cell(function) else "a"]
    w = np.array(p[key])
    by = np.array(p["by"])
    w[0] = 0
    w[0, 0] = 3000 / np.ptp(a[0])
    by[0] = -w[0, 0] * np.mean(a[0])
    p[key], p["by"] = w, by
    want = reference_outputs(function, args, p)
    # premise: at some step the logits really defeat the lessons' global-max shift
    a = want["a_next" if _is_cell(function) else "a"]
    a = a if a.ndim == 3 else a[:, :, None]
    with np.errstate(invalid="ignore", under="ignore", over="ignore"):
        assert any(np.isnan(_lessons_softmax(f64(w) @ a[:, :, t] + f64(by))).any()
                   for t in range(a.shape[2]))
    got = fast(function, args, p)
    for name in got:
        assert np.all(np.isfinite(got[name])), name
    check_equal(function, got, want, dtype)


# ------------------------------------------------------------------ NaN and inf

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_nan_inf_pattern(function, dtype, recurrent_path):
    """NaN and +-inf in: the same NaN/+-inf pattern out as the reference."""
    args, p = make_case(function, (3, 5, 4, 6, 5), dtype, seed=8)
    args = [np.array(a) for a in args]
    x = args[0]
    if x.ndim == 3:
        x[0, 0, 1] = np.nan
        x[1, 1, 2] = np.inf
        x[2, 2, 3] = -np.inf
    else:
        x[0, 0] = np.nan
        x[1, 1] = np.inf
        x[2, 2] = -np.inf
    args[1][0, 3] = np.inf
    args[1][1, 4] = -np.inf
    if len(args) == 3:
        args[2][2, 5] = np.nan
    got = fast(function, tuple(args), p)
    want = reference_outputs(function, tuple(args), p)
    assert any(np.isnan(w).any() for w in want.values())  # the case does produce NaN
    for name in OUTPUTS[function]:
        g, w = got[name], want[name]
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=name)
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w), err_msg=name)
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w), err_msg=name)
    check_equal(function, got, want, dtype)


# ------------------------------------------------------------------ mutation tests

def _softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _rounded(arrs, work):
    return [np.asarray(a, dtype=np.float64).astype(work) for a in arrs]


def mutant_rnn_cell(xt, a_prev, p, mutation):
    work = {"float32": np.float32, "float16": np.float16}.get(mutation, np.float64)
    Wax, Waa, Wya, ba, by, xt, a_prev = _rounded(
        [p["Wax"], p["Waa"], p["Wya"], p["ba"], p["by"], xt, a_prev], work)
    if mutation == "Waa transposed":
        Waa = Waa.T
    if mutation == "no ba":
        ba = 0 * ba
    if mutation == "no by":
        by = 0 * by
    if mutation == "a_prev ignored":
        a_prev = 0 * a_prev
    pre = Waa @ a_prev + Wax @ xt + ba
    a_next = _sigmoid(pre) if mutation == "sigmoid for tanh" else np.tanh(pre)
    return a_next, _softmax(Wya @ a_next + by)


def mutant_lstm_cell(xt, a_prev, c_prev, p, mutation):
    work = {"float32": np.float32, "float16": np.float16}.get(mutation, np.float64)
    keys = ["Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo", "Wy", "by"]
    vals = _rounded([p[k] for k in keys] + [xt, a_prev, c_prev], work)
    q = dict(zip(keys, vals[:10]))
    xt, a_prev, c_prev = vals[10:]
    n_a = a_prev.shape[0]
    if mutation.startswith("swap "):
        g, h = mutation[5], mutation[6]
        q["W" + g], q["W" + h] = q["W" + h], q["W" + g]
        q["b" + g], q["b" + h] = q["b" + h], q["b" + g]
    if mutation.startswith("no b"):
        q[mutation[3:]] = 0 * q[mutation[3:]]
    if mutation == "Wf recurrent block transposed":
        q["Wf"] = np.hstack([q["Wf"][:, :n_a].T, q["Wf"][:, n_a:]])
    if mutation == "concat [xt; a_prev]":
        concat = np.vstack([xt, a_prev])
    else:
        concat = np.vstack([a_prev, xt])
    ft = _sigmoid(q["Wf"] @ concat + q["bf"])
    it = _sigmoid(q["Wi"] @ concat + q["bi"])
    cct = np.tanh(q["Wc"] @ concat + q["bc"])
    ot = _sigmoid(q["Wo"] @ concat + q["bo"])
    c_next = ft * c_prev + it * cct
    a_next = ot * c_next if mutation == "no tanh on c_next" else ot * np.tanh(c_next)
    return a_next, c_next, _softmax(q["Wy"] @ a_next + q["by"])


def mutant(function, args, p, mutation):
    """The reference computed literally in numpy, with ``mutation`` applied."""
    with np.errstate(over="ignore", under="ignore"):
        if function == "rnn_cell_forward":
            return dict(zip(OUTPUTS[function], mutant_rnn_cell(*args, p, mutation)))
        if function == "lstm_cell_forward":
            return dict(zip(OUTPUTS[function], mutant_lstm_cell(*args, p, mutation)))
        x, a0 = args
        if mutation == "time reversed":
            x, mutation = x[:, :, ::-1], "none"
        if mutation == "a0 ignored":
            a0, mutation = 0 * f64(a0), "none"
        a_prev = a0
        c_prev = np.zeros(np.shape(a0))
        steps = []
        for t in range(x.shape[2]):
            if function == "rnn_forward":
                a_prev, yt = mutant_rnn_cell(x[:, :, t], a_prev, p, mutation)
                steps.append((a_prev, yt))
            else:
                a_prev, c_prev, yt = mutant_lstm_cell(x[:, :, t], a_prev, c_prev, p, mutation)
                steps.append((a_prev, yt, c_prev))
        return {name: np.stack([s[k] for s in steps], axis=-1).astype(np.float64)
                for k, name in enumerate(OUTPUTS[function])}


COMMON = ["float16"]
RNN_MUTATIONS = ["Waa transposed", "no ba", "no by", "a_prev ignored", "sigmoid for tanh"]
LSTM_MUTATIONS = (["swap fi", "swap fc", "swap fo", "swap ic", "swap io", "swap co",
                   "no bf", "no bi", "no bc", "no bo", "no by", "Wf recurrent block transposed",
                   "concat [xt; a_prev]", "no tanh on c_next"])
SEQ_MUTATIONS = ["time reversed", "a0 ignored"]


def _mutations(function, dtype):
    muts = list(COMMON) + (RNN_MUTATIONS if _kind(function) == "rnn" else LSTM_MUTATIONS)
    if not _is_cell(function):
        muts += SEQ_MUTATIONS
    if dtype == np.float64:
        # a float64 call that secretly computes in float32 must be caught
        muts.append("float32")
    return muts


MUTATION_CASES = [(f, d, mut) for f in FUNCTIONS for d in DTYPES for mut in _mutations(f, d)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_mutation_harness_matches_when_unmutated(function, dtype):
    """The mutant harness itself is right: unmutated, it agrees with fastrnn and the
    reference within tolerance (so the mutants below fail for their mutation only)."""
    args, p = make_case(function, SHAPES["lesson"], dtype, seed=9)
    got = fast(function, args, p)
    harness = mutant(function, args, p, "none")
    check_equal(function, got, harness, dtype)
    check_equal(function, got, reference_outputs(function, args, p), dtype)


@pytest.mark.parametrize(
    "function,dtype,mutation", MUTATION_CASES,
    ids=[f"{f}-{np.dtype(d).name}-{m}" for f, d, m in MUTATION_CASES])
def test_mutant_fails_tolerance(function, dtype, mutation):
    """The tolerances are tight: fastrnn's output is *not* within them of a mutated
    reference (wrong gate order, transposed square weight, dropped bias, lower precision)."""
    args, p = make_case(function, SHAPES["lesson"], dtype, seed=9)
    got = fast(function, args, p)
    bad = mutant(function, args, p, mutation)
    tol = TOL[np.dtype(dtype)]
    agree = [np.allclose(got[k], bad[k], rtol=tol["rtol"], atol=tol["atol"], equal_nan=True)
             for k in OUTPUTS[function]]
    assert not all(agree), f"mutation {mutation!r} is within the {np.dtype(dtype)} tolerance"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_mutant_shifted_gate_order_fails_on_public_shapes(dtype):
    """On the charlm shape too, the kernel's own gate order (f, i, o, c) read as the spec's
    (f, i, c, o) is caught."""
    args, p = make_case("lstm_forward", SHAPES["charlm"], dtype, seed=11)
    got = fast("lstm_forward", args, p)
    tol = TOL[np.dtype(dtype)]
    for mutation in ("swap co", "swap io"):
        bad = mutant("lstm_forward", args, p, mutation)
        assert not np.allclose(got["a"], bad["a"], rtol=tol["rtol"], atol=tol["atol"])
    good = mutant("lstm_forward", args, p, "none")
    assert np.allclose(got["a"], good["a"], rtol=tol["rtol"], atol=tol["atol"])
