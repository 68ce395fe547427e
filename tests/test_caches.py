"""The caches: structure, identities and values as in the spec.

``caches`` of a sequence call is ``(list of the T_x cell caches, x)``; fastrnn builds the list
lazily, so these tests check that it behaves like the reference's list (len, indexing with
negative indices, slicing, iteration, unpacking, IndexError), that each item is the spec's tuple
in the spec's order with the spec's values, and that a backward pass written against the spec
computes the same gradients from fastrnn's caches as from the reference's.
"""
from collections.abc import Sequence

import numpy as np
import pytest

import fastrnn
from fastrnn._kernels import _core
from _util import assert_close, at_simd, f64, lstm_params, ref, rnn_params

DTYPES = [np.float64, np.float32]
RNN_ITEMS = ("a_next", "a_prev", "xt", "parameters")
LSTM_ITEMS = ("a_next", "c_next", "a_prev", "c_prev", "ft", "it", "cct", "ot", "xt",
              "parameters")




def make(kind, dims=(3, 5, 4, 6, 7), dtype=np.float64, seed=0):
    n_x, n_a, n_y, m, T = dims
    rng = np.random.default_rng(seed)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    return x, a0, p


def call(kind, x, a0, p):
    """(fastrnn caches, reference caches) of a sequence call."""
    fast = getattr(fastrnn, kind + "_forward")(x, a0, p)[-1]
    want = ref(kind + "_forward", x, a0, p)[-1]
    return fast, want


def assert_item_matches(item, want_item, names, dtype, t):
    assert isinstance(item, tuple)
    assert len(item) == len(names)
    for k, name in enumerate(names):
        if name == "parameters":
            continue
        got = item[k]
        assert isinstance(got, np.ndarray), (t, name)
        assert got.shape == want_item[k].shape, (t, name)
        assert_close(got, want_item[k], dtype, err_msg=f"step {t}: {name}")


# ------------------------------------------------------------------ sequence caches

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_sequence_cache_structure_and_values(kind, dtype, recurrent_path):
    x, a0, p = make(kind, dtype=dtype)
    T = x.shape[2]
    caches, want = call(kind, x, a0, p)
    names = RNN_ITEMS if kind == "rnn" else LSTM_ITEMS

    assert isinstance(caches, tuple) and len(caches) == 2
    assert caches[1] is x
    list_of_caches, x_ = caches  # the lessons' unpacking
    assert x_ is x
    assert isinstance(list_of_caches, Sequence)
    assert len(list_of_caches) == T == len(want[0])
    assert bool(list_of_caches)

    for t in range(T):
        item = list_of_caches[t]
        assert_item_matches(item, want[0][t], names, dtype, t)
        assert item[-1] is p
        # xt is exactly the input step
        np.testing.assert_array_equal(item[names.index("xt")], x[:, :, t])
        # the arrays fastrnn computed are of the result dtype (at step 0 a_prev is the a0
        # passed in, whatever it is)
        computed = [n for n in names if n not in ("xt", "parameters")
                    and not (t == 0 and n == "a_prev")]
        for name in computed:
            assert item[names.index(name)].dtype == np.dtype(dtype), (t, name)


@pytest.mark.parametrize("simd", ["avx512", "avx2", "sse2"])
@pytest.mark.parametrize("dtype,n_a", [(np.float64, 129), (np.float32, 257)], ids=["f64", "f32"])
def test_lstm_gates_stored_past_the_caches(dtype, n_a, simd):
    # A call whose gates exceed 16 MiB stores each step's activated gates into them with
    # non-temporal stores, per SIMD level with the panel GEMM (AVX-512, AVX2; at SSE2 the
    # gates are computed in place, as below the size).  Odd n_a: columns of 4 * n_a
    # elements start off the vector alignment, so every copy has a ragged head and tail.
    if simd not in _core.simd_available():
        pytest.skip(f"this CPU has no {simd}")
    n_x, n_y, m, T = 3, 4, 64, 70
    assert m * T * 4 * n_a * np.dtype(dtype).itemsize > 16 * 1024 * 1024
    x, a0, p = make("lstm", dims=(n_x, n_a, n_y, m, T), dtype=dtype)
    with at_simd(simd):
        caches, want = call("lstm", x, a0, p)
    for t in range(T):
        assert_item_matches(caches[0][t], want[0][t], LSTM_ITEMS, dtype, t)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_step0_state_and_chaining(kind):
    x, a0, p = make(kind)
    caches, want = call(kind, x, a0, p)
    steps = caches[0]
    names = RNN_ITEMS if kind == "rnn" else LSTM_ITEMS
    ia, ia_prev = names.index("a_next"), names.index("a_prev")
    assert steps[0][ia_prev] is a0
    if kind == "lstm":
        ic, ic_prev = names.index("c_next"), names.index("c_prev")
        c0 = steps[0][ic_prev]
        np.testing.assert_array_equal(c0, np.zeros_like(f64(a0)))
        assert c0.shape == a0.shape
    for t in range(1, len(steps)):
        # as in the reference, each step's state is the previous step's output object
        assert steps[t][ia_prev] is steps[t - 1][ia]
        if kind == "lstm":
            assert steps[t][ic_prev] is steps[t - 1][ic]


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_indexing_slicing_iteration(kind):
    x, a0, p = make(kind, dims=(3, 5, 4, 6, 9))
    caches, want = call(kind, x, a0, p)
    steps = caches[0]
    T = len(steps)
    # negative indices
    for t in range(1, T + 1):
        assert steps[-t] is steps[T - t]
    # numpy integers are indices too
    assert steps[np.int64(2)] is steps[2]
    # slices give lists of the same items, like list slicing
    ref_list = list(range(T))
    for sl in (slice(1, 4), slice(None, None, -1), slice(None, None, 2), slice(-3, None),
               slice(T + 5, None), slice(2, 2), slice(-100, 100)):
        got = steps[sl]
        assert isinstance(got, list)
        assert len(got) == len(ref_list[sl])
        for item, t in zip(got, ref_list[sl]):
            assert item is steps[t]
    # iteration gives the same items in order, twice
    items = list(steps)
    assert len(items) == T
    assert all(item is steps[t] for t, item in enumerate(items))
    assert all(a is b for a, b in zip(items, iter(steps)))
    # reversed() works like a list's
    assert all(a is b for a, b in zip(reversed(steps), items[::-1]))
    # out of range
    for bad in (T, T + 1, -T - 1, 10**9):
        with pytest.raises(IndexError):
            steps[bad]
    with pytest.raises(TypeError):
        steps["0"]


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_lazy_access_order_does_not_matter(kind):
    """Items read last-first, or after another call, are those of their own call."""
    x, a0, p = make(kind, seed=1)
    x2, a02, p2 = make(kind, seed=2)
    caches, want = call(kind, x, a0, p)
    caches2, want2 = call(kind, x2, a02, p2)
    names = RNN_ITEMS if kind == "rnn" else LSTM_ITEMS
    for t in reversed(range(x.shape[2])):
        assert_item_matches(caches[0][t], want[0][t], names, np.float64, t)
    for t in range(x.shape[2]):
        assert_item_matches(caches2[0][t], want2[0][t], names, np.float64, t)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_zero_length_sequence(kind):
    x, a0, p = make(kind, dims=(3, 5, 4, 6, 0))
    out = getattr(fastrnn, kind + "_forward")(x, a0, p)
    want = ref(kind + "_forward", x, a0, p)
    for o, w in zip(out[:-1], want[:-1]):
        assert o.shape == w.shape
    steps, x_ = out[-1]
    assert x_ is x
    assert len(steps) == 0
    assert list(steps) == []
    assert not steps
    assert steps[:] == []
    with pytest.raises(IndexError):
        steps[0]
    with pytest.raises(IndexError):
        steps[-1]


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_caches_x_identity_for_any_input_object(kind):
    """``caches[1] is x`` whatever x is: a list, a Fortran array, a strided view."""
    x, a0, p = make(kind, dims=(3, 4, 2, 3, 5))
    big = np.zeros((6, 3, 10))
    big[::2, :, ::2] = x
    for given in (x.tolist(), np.asfortranarray(x), big[::2, :, ::2]):
        caches = getattr(fastrnn, kind + "_forward")(given, a0, p)[-1]
        assert caches[1] is given
        np.testing.assert_array_equal(caches[0][2][-2], x[:, :, 2])


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_caches_independent_of_later_changes_to_the_outputs(kind):
    """In the reference the cached states are separate arrays from the returned ``a``
    (and ``c``): changing the outputs in place after the call does not change the caches,
    and changing a cached array does not change the outputs."""
    x, a0, p = make(kind)
    out = getattr(fastrnn, kind + "_forward")(x, a0, p)
    want = ref(kind + "_forward", x, a0, p)
    names = RNN_ITEMS if kind == "rnn" else LSTM_ITEMS
    a = out[0]
    a_copy = a.copy()
    a[...] = 7.0  # e.g. a caller reusing the returned buffer
    if kind == "lstm":
        out[2][...] = 7.0
    for t in range(x.shape[2]):
        assert_item_matches(out[-1][0][t], want[-1][0][t], names, np.float64, t)

    out = getattr(fastrnn, kind + "_forward")(x, a0, p)
    a_copy = out[0].copy()
    out[-1][0][1][0][...] = -3.0
    np.testing.assert_array_equal(out[0], a_copy)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_caches_survive_pickle_like_the_reference(kind):
    """The reference's caches are plain tuples and lists of arrays, so code that pickles
    them (saving them, returning them from a multiprocessing/joblib worker) works; it must
    keep working with fastrnn's caches (drop-in)."""
    import pickle

    x, a0, p = make(kind)
    caches, want = call(kind, x, a0, p)
    names = RNN_ITEMS if kind == "rnn" else LSTM_ITEMS
    pickle.loads(pickle.dumps(want))  # the reference's caches do pickle
    steps, x_ = pickle.loads(pickle.dumps(caches))
    np.testing.assert_array_equal(x_, x)
    assert len(steps) == len(want[0])
    for t in range(len(steps)):
        assert_item_matches(steps[t], want[0][t], names, np.float64, t)
        assert steps[t][-1].keys() == p.keys()


# ------------------------------------------------------------------ gate order

def test_lstm_gate_order_with_distinct_constant_gates():
    """Zero weights and distinct biases make every gate a known constant: the cache holds
    them in the spec's order ft, it, cct, ot."""
    n_x, n_a, n_y, m, T = 3, 4, 2, 5, 3
    rng = np.random.default_rng(3)
    p = lstm_params(rng, n_x, n_a, n_y)
    bias = {"f": -2.0, "i": -0.5, "c": 0.75, "o": 1.5}
    for g in "fico":
        p["W" + g] = np.zeros((n_a, n_a + n_x))
        p["b" + g] = np.full((n_a, 1), bias[g])
    x = rng.standard_normal((n_x, m, T))
    a0 = rng.standard_normal((n_a, m))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    expect = {"ft": sig(bias["f"]), "it": sig(bias["i"]), "cct": np.tanh(bias["c"]),
              "ot": sig(bias["o"])}
    steps = fastrnn.lstm_forward(x, a0, p)[-1][0]
    cell_cache = fastrnn.lstm_cell_forward(x[:, :, 0], a0, np.zeros((n_a, m)), p)[-1]
    for item in list(steps) + [cell_cache]:
        for name, value in expect.items():
            assert_close(item[LSTM_ITEMS.index(name)], np.full((n_a, m), value), np.float64,
                         err_msg=name)


# ------------------------------------------------------------------ cell caches

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_rnn_cell_cache(dtype):
    x, a0, p = make("rnn", dtype=dtype)
    xt = x[:, :, 0]
    a_next, yt, cache = fastrnn.rnn_cell_forward(xt, a0, p)
    want = ref("rnn_cell_forward", xt, a0, p)[-1]
    assert isinstance(cache, tuple) and len(cache) == 4
    assert cache[0] is a_next
    assert cache[1] is a0
    assert cache[2] is xt
    assert cache[3] is p
    assert_item_matches(cache, want, RNN_ITEMS, dtype, 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_lstm_cell_cache(dtype, recurrent_path):
    x, a0, p = make("lstm", dtype=dtype)
    xt = x[:, :, 0]
    c_prev = np.random.default_rng(5).standard_normal(a0.shape).astype(dtype)
    a_next, c_next, yt, cache = fastrnn.lstm_cell_forward(xt, a0, c_prev, p)
    want = ref("lstm_cell_forward", xt, a0, c_prev, p)[-1]
    assert isinstance(cache, tuple) and len(cache) == 10
    assert cache[0] is a_next
    assert cache[1] is c_next
    assert cache[2] is a0
    assert cache[3] is c_prev
    assert cache[8] is xt
    assert cache[9] is p
    assert_item_matches(cache, want, LSTM_ITEMS, dtype, 0)
    for k in range(4, 8):
        assert cache[k].dtype == np.dtype(dtype)


# ------------------------------------------------------------------ a backward-pass consumer

def rnn_cell_backward(da_next, cache):
    """The lessons' rnn_cell_backward, written against the spec's cache order."""
    (a_next, a_prev, xt, parameters) = cache
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    dtanh = (1 - a_next ** 2) * da_next
    return {"dxt": Wax.T @ dtanh, "da_prev": Waa.T @ dtanh, "dWax": dtanh @ xt.T,
            "dWaa": dtanh @ a_prev.T, "dba": np.sum(dtanh, axis=1, keepdims=True)}


def rnn_backward(da, caches):
    (caches, x) = caches
    (a1, a0, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    dx = np.zeros((n_x, m, T_x))
    dWax = np.zeros((n_a, n_x))
    dWaa = np.zeros((n_a, n_a))
    dba = np.zeros((n_a, 1))
    da_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        g = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dx[:, :, t] = g["dxt"]
        da_prevt = g["da_prev"]
        dWax += g["dWax"]
        dWaa += g["dWaa"]
        dba += g["dba"]
    return {"dx": dx, "da0": da_prevt, "dWax": dWax, "dWaa": dWaa, "dba": dba}


def lstm_cell_backward(da_next, dc_next, cache):
    """The lessons' lstm_cell_backward, written against the spec's cache order."""
    (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) = cache
    n_a, m = a_next.shape
    tc = np.tanh(c_next)
    dot = da_next * tc * ot * (1 - ot)
    dcct = (dc_next * it + ot * (1 - tc ** 2) * it * da_next) * (1 - cct ** 2)
    dit = (dc_next * cct + ot * (1 - tc ** 2) * cct * da_next) * it * (1 - it)
    dft = (dc_next * c_prev + ot * (1 - tc ** 2) * c_prev * da_next) * ft * (1 - ft)
    concat = np.concatenate((a_prev, xt), axis=0)
    g = {"dWf": dft @ concat.T, "dWi": dit @ concat.T, "dWc": dcct @ concat.T,
         "dWo": dot @ concat.T}
    for name, d in (("dbf", dft), ("dbi", dit), ("dbc", dcct), ("dbo", dot)):
        g[name] = np.sum(d, axis=1, keepdims=True)
    W = {k: parameters[k] for k in ("Wf", "Wi", "Wc", "Wo")}
    ds = (("Wf", dft), ("Wi", dit), ("Wc", dcct), ("Wo", dot))
    g["da_prev"] = sum(W[k][:, :n_a].T @ d for k, d in ds)
    g["dc_prev"] = dc_next * ft + ot * (1 - tc ** 2) * ft * da_next
    g["dxt"] = sum(W[k][:, n_a:].T @ d for k, d in ds)
    return g


def lstm_backward(da, caches):
    (caches, x) = caches
    (a1, c1, a0, c0, f1, i1, cc1, o1, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    grads = {"dx": np.zeros((n_x, m, T_x))}
    for k in ("dWf", "dWi", "dWc", "dWo"):
        grads[k] = np.zeros((n_a, n_a + n_x))
    for k in ("dbf", "dbi", "dbc", "dbo"):
        grads[k] = np.zeros((n_a, 1))
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        g = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
        da_prevt, dc_prevt = g["da_prev"], g["dc_prev"]
        grads["dx"][:, :, t] = g["dxt"]
        for k in ("dWf", "dWi", "dWc", "dWo", "dbf", "dbi", "dbc", "dbo"):
            grads[k] += g[k]
    grads["da0"] = da_prevt
    return grads


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_backward_pass_gives_reference_gradients(kind, recurrent_path):
    x, a0, p = make(kind, dims=(4, 7, 3, 5, 12), seed=6)
    caches, want = call(kind, x, a0, p)
    da = np.random.default_rng(7).standard_normal((7, 5, 12))
    backward = rnn_backward if kind == "rnn" else lstm_backward
    got = backward(da, caches)
    expected = backward(da, want)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name].shape == expected[name].shape
        assert_close(got[name], expected[name], np.float64, err_msg=name)
    # the gradients are not trivially zero (the comparison means something)
    assert all(np.abs(v).max() > 1e-3 for v in expected.values())


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_cell_backward_from_cell_cache(kind):
    x, a0, p = make(kind, seed=8)
    xt = x[:, :, 0]
    rng = np.random.default_rng(9)
    da = rng.standard_normal(a0.shape)
    if kind == "rnn":
        cache = fastrnn.rnn_cell_forward(xt, a0, p)[-1]
        want = ref("rnn_cell_forward", xt, a0, p)[-1]
        got, expected = rnn_cell_backward(da, cache), rnn_cell_backward(da, want)
    else:
        c_prev = rng.standard_normal(a0.shape)
        dc = rng.standard_normal(a0.shape)
        cache = fastrnn.lstm_cell_forward(xt, a0, c_prev, p)[-1]
        want = ref("lstm_cell_forward", xt, a0, c_prev, p)[-1]
        got, expected = lstm_cell_backward(da, dc, cache), lstm_cell_backward(da, dc, want)
    for name in expected:
        assert_close(got[name], expected[name], np.float64, err_msg=name)
