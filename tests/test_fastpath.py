"""The compiled fast path (fastrnn._kernels._core.try_*) against the validated route.

The fast path only accepts arguments that are already exactly what the kernel takes and
declines (None) everything else, which then goes through fastrnn._validation and
fastrnn._packing.  Both routes run the same kernel, so on accepted input they must agree to
the bit, outputs and caches alike; and the fast path must decline every argument it cannot
take as it is.
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import _api
from fastrnn._kernels import _core
from fastrnn._packing import GATES, pack
from _util import assert_close, lstm_params, ref, rnn_params

DTYPES = [np.float32, np.float64]
FUNCTIONS = ["rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward"]


def make(function, dtype, n_x=4, n_a=6, n_y=3, m=5, T=7, seed=0):
    rng = np.random.default_rng(seed)
    lstm = function.startswith("lstm")
    p = (lstm_params if lstm else rnn_params)(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    if function == "lstm_cell_forward":
        return [x[:, :, 0].copy(), a0, rng.standard_normal((n_a, m)).astype(dtype), p]
    if function == "rnn_cell_forward":
        return [x[:, :, 0].copy(), a0, p]
    return [x, a0, p]


def cache_arrays(function, out):
    """Every array in the caches a call returned, in order."""
    steps = [out[-1]] if "cell" in function else list(out[-1][0])
    return [v for step in steps for v in step if isinstance(v, np.ndarray)]


# Besides the default size: 300 inputs and three examples (an input projection ahead of the
# loop over a wide W_x), and a 0.6-1.3 MB LSTM block with five examples.
@pytest.mark.parametrize("size", [{}, {"n_x": 300, "n_a": 20, "m": 3, "T": 5},
                                  {"n_x": 200, "n_a": 128, "m": 5, "T": 3}],
                         ids=["default", "wide_x", "large_block"])
@pytest.mark.parametrize("threshold", [0, 10**6])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_both_routes_agree_bitwise(monkeypatch, function, dtype, threshold, size):
    monkeypatch.setattr(_api, "SMALL_BATCH_MAX_M", threshold)
    args = make(function, dtype, **size)
    calls = []
    kind = "rnn" if function.startswith("rnn") else "lstm"
    real = getattr(_core, "try_" + kind)

    def spy(*a):
        out = real(*a)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(_core, "try_" + kind, spy)
    fast = getattr(fastrnn, function)(*args)
    assert calls == [True], "the fast path declined well-formed input"
    monkeypatch.setattr(_core, "try_" + kind, lambda *a: None)
    slow = getattr(fastrnn, function)(*args)
    for f, s in zip(fast[:-1], slow[:-1]):
        assert f.dtype == s.dtype and f.flags.c_contiguous
        np.testing.assert_array_equal(f, s)
    assert len(cache_arrays(function, fast)) == len(cache_arrays(function, slow)) > 0
    for f, s in zip(cache_arrays(function, fast), cache_arrays(function, slow)):
        np.testing.assert_array_equal(f, s)


def _variants(args, function):
    """Arguments the fast path must decline (each still valid for the validated route)."""
    x = args[0]
    p = args[-1]
    key = "Wya" if function.startswith("rnn") else "Wf"
    misaligned = np.empty(x.nbytes + 1, dtype=np.uint8)[1:].view(x.dtype).reshape(x.shape)
    misaligned[...] = x
    other = np.float64 if x.dtype == np.float32 else np.float32
    sub = x.copy()
    sub.flat[0] = np.finfo(x.dtype).tiny / 4
    yield "fortran x", [np.asfortranarray(x)] + args[1:]
    yield "list x", [x.tolist()] + args[1:]
    yield "misaligned x", [misaligned] + args[1:]
    yield "other dtype x", [x.astype(other)] + args[1:]
    yield "subnormal x", [sub] + args[1:]
    yield "subclass x", [x.view(type("Sub", (np.ndarray,), {}))] + args[1:]
    yield "dict subclass", args[:-1] + [type("D", (dict,), {})(p)]
    yield "strided weight", args[:-1] + [{**p, key: np.asfortranarray(p[key])}]
    yield "int weight", args[:-1] + [{**p, key: np.round(p[key]).astype(np.int64)}]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_fast_path_declines_what_it_cannot_take_as_is(monkeypatch, function, dtype):
    kind = "rnn" if function.startswith("rnn") else "lstm"
    real = getattr(_core, "try_" + kind)
    seen = []
    monkeypatch.setattr(_core, "try_" + kind, lambda *a: seen.append(real(*a)) or seen[-1])
    for what, args in _variants(make(function, dtype), function):
        seen.clear()
        out = getattr(fastrnn, function)(*args)
        assert seen == [None], f"{function}: fast path accepted {what}"
        assert out[0].shape[0] == make(function, dtype)[1].shape[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_models_fast_and_validated_routes_agree(monkeypatch, kind, dtype):
    function = kind + "_forward"
    x, a0, p = make(function, dtype)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    fast_seq = model.forward(x, a0)
    fast_step = model.step(x[:, :, 0].copy(), a0 if kind == "rnn" else (a0, a0))
    monkeypatch.setattr(_core, "try_packed_" + kind, lambda *a: None)
    slow_seq = model.forward(x, a0)
    slow_step = model.step(x[:, :, 0].copy(), a0 if kind == "rnn" else (a0, a0))
    for f, s in zip(fast_seq, slow_seq):
        np.testing.assert_array_equal(f, s)
    flat = lambda out: [out[0][0], out[0][1], out[1]] if kind == "lstm" else list(out)  # noqa
    for f, s in zip(flat(fast_step), flat(slow_step)):
        np.testing.assert_array_equal(f, s)


def test_pack_stacks_gates_in_kernel_order():
    """pack() spells the gate order out; it must be GATES, which the caches read back."""
    n_x, n_a, n_y = 2, 3, 2
    p = lstm_params(np.random.default_rng(0), n_x, n_a, n_y)
    for k, g in enumerate("fico"):
        p["W" + g] = np.full((n_a, n_a + n_x), float(k + 1))
        p["b" + g] = np.full((n_a, 1), float(10 * (k + 1)))
    marker = {g: float(k + 1) for k, g in enumerate("fico")}
    for merge in (False, True):
        packed = pack("lstm", p, np.dtype(np.float64), merge=merge)
        assert [float(w[0, 0]) for w in packed.w] == [marker[g] for g in GATES]
        assert [float(b[0]) for b in packed.b] == [10 * marker[g] for g in GATES]
        if merge:
            wblock, bblock = packed.blocks
            for k, w in enumerate(packed.w):
                assert np.shares_memory(w, wblock) and w.ctypes.data == (
                    wblock.ctypes.data + k * w.nbytes)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_models_reuse_work_buffers_across_shapes_and_pickle(kind):
    """A model keeps its work buffers between calls: calls of changing batch and sequence
    sizes (and dtype of the input) still give the reference's answer, results of one call
    are not overwritten by the next, and the model pickles without its buffers."""
    import pickle

    rng = np.random.default_rng(4)
    make_p = rnn_params if kind == "rnn" else lstm_params
    p = make_p(rng, 4, 6, 3)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    kept = []
    for m, T in [(5, 7), (5, 7), (9, 3), (1, 1), (5, 7)]:
        x = rng.standard_normal((4, m, T))
        a0 = rng.standard_normal((6, m))
        out = model.forward(x, a0)
        want = ref(kind + "_forward", x, a0, p)[:-1]
        kept.append((out, want))
    for out, want in kept:
        for o, w in zip(out, want):
            assert_close(o, w, np.float64)
    clone = pickle.loads(pickle.dumps(model))
    x = rng.standard_normal((4, 5, 7))
    for o, w in zip(clone.forward(x), model.forward(x)):
        np.testing.assert_array_equal(o, w)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_all_gates_fortran_ordered(dtype):
    """Weights stored transposed (e.g. imported from an (n_a + n_x, n_a) layout): every
    route, the models' packed block included, must still compute the reference's answer."""
    rng = np.random.default_rng(8)
    n_x, n_a, n_y, m, T = 3, 5, 2, 6, 4
    p = lstm_params(rng, n_x, n_a, n_y, dtype=dtype)
    for g in "fico":
        p["W" + g] = np.asfortranarray(p["W" + g])
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    want = ref("lstm_forward", x, a0, p)[:3]
    model = fastrnn.LSTM(p)
    for got in (fastrnn.lstm_forward(x, a0, p)[:3], model.forward(x, a0)):
        for g, w in zip(got, want):
            assert_close(g, w, dtype)
    (a1, c1), _ = model.step(x[:, :, 0].copy(), (a0, np.zeros_like(a0)))
    assert_close(a1, want[0][:, :, 0], dtype)


@pytest.mark.parametrize("n_threads,error", [(np.int64(2), None), (2, None), (True, TypeError),
                                             (1.0, TypeError), (0, ValueError),
                                             ("2", TypeError)])
def test_n_threads_accepts_integers_only(n_threads, error):
    rng = np.random.default_rng(9)
    p = rnn_params(rng, 3, 4, 2)
    x = rng.standard_normal((3, 5, 2))
    model = fastrnn.RNN(p)
    if error is None:
        for g, w in zip(model.forward(x, n_threads=n_threads), model.forward(x)):
            assert_close(g, w, np.float64)
    else:
        with pytest.raises(error, match="n_threads"):
            model.forward(x, n_threads=n_threads)


def test_kernel_entry_points_refuse_wrong_ndim_before_reading_shapes():
    """Defence in depth: the private kernel wrappers check dimensions before they read any
    shape (a 0-d array has none)."""
    z = np.zeros
    args = [z((2, 3, 4)), np.array(0.0), z((5, 2)), z((5, 5)), z(5), z((2, 5)), z(2),
            z((5, 3, 4)), z((2, 3, 4)), z((3, 4, 5))]
    with pytest.raises(ValueError, match="2-d"):
        _core.rnn_forward(*args, 0, 3, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_lstm_cell_forward_refuses_a_missing_c_prev_on_every_route(dtype):
    """``c_prev`` is required: None is refused with a TypeError naming it also where every
    other argument is what the compiled path takes as is (whose own None means zeros, for
    the models and lstm_forward), as on the validated route (float16 input)."""
    rng = np.random.default_rng(8)
    p = lstm_params(rng, 3, 5, 2, dtype=dtype)
    xt = rng.standard_normal((3, 4)).astype(dtype)
    a_prev = rng.standard_normal((5, 4)).astype(dtype)
    for x in (xt, xt.astype(np.float16)):
        with pytest.raises(TypeError, match="c_prev"):
            fastrnn.lstm_cell_forward(x, a_prev, None, p)


def test_masked_arrays_are_refused():
    """A numpy masked array anywhere (input, state, weight, lengths, targets): TypeError
    naming it, on every route, instead of computing on the values under the mask."""
    rng = np.random.default_rng(11)
    N_X, N_A, N_Y, M, T = 3, 5, 2, 4, 6
    p = lstm_params(rng, N_X, N_A, N_Y)
    x = rng.standard_normal((N_X, M, T))
    a0 = rng.standard_normal((N_A, M))
    xm = np.ma.masked_array(x, mask=np.arange(T) >= 2 + np.zeros_like(x, dtype=int))
    model = fastrnn.LSTM(p)
    for call, name in [
            (lambda: fastrnn.lstm_forward(xm, a0, p), "x"),
            (lambda: fastrnn.lstm_forward(x, np.ma.masked_array(a0), p), "a0"),
            (lambda: fastrnn.lstm_forward(x, a0, dict(p, Wf=np.ma.masked_array(p["Wf"]))),
             "Wf"),
            (lambda: model.forward(xm), "x"),
            (lambda: model.forward(x, lengths=np.ma.masked_array(np.full(M, T))), "lengths"),
            (lambda: model.loss_and_grads(x, np.ma.masked_array(np.zeros((M, T), int))),
             "targets"),
            (lambda: fastrnn.LSTM(dict(p, by=np.ma.masked_array(p["by"]))), "by")]:
        with pytest.raises(TypeError, match=f"{name}.* is a masked array|{name} is a masked"):
            call()
