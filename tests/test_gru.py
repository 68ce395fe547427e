"""The GRU (PyTorch's and Keras's default formulation) against the numpy reference.

``fastrnn.gru_cell_forward``/``gru_forward`` and the packed ``fastrnn.GRU`` against
``fastrnn.reference.gru_cell_forward``/``gru_forward`` (float64 at rtol=1e-9, atol=1e-11;
float32 against the float64 reference at rtol=1e-4, atol=1e-5), over unequal sizes, sizes of 1,
every recurrent-product path, both dtypes, odd memory layouts, saturating weights and T_x =
1000; the caches item by item; agreement with ``torch.nn.GRU``; mutants (two gates swapped,
the candidate's recurrent bias folded into the input bias) that the tolerances must catch;
bad parameters named in the error.
"""
import numpy as np
import pytest

import fastrnn
from _util import RECURRENT_PATHS, TOL, assert_close, f64, gru_params, recurrent_path, ref

DTYPES = [np.float64, np.float32]

# (n_x, n_a, n_y, m, T_x), n_y = 0: no output layer
SHAPES = {
    "lesson": (3, 5, 2, 10, 4),
    "all_ones": (1, 1, 1, 1, 1),
    "unequal": (7, 11, 5, 6, 9),
    "n_x>n_y>n_a": (13, 4, 6, 3, 5),
    "m=1": (5, 6, 3, 1, 7),
    "odd": (13, 17, 11, 9, 7),
    "headless": (4, 6, 0, 5, 6),
    "headless_ones": (1, 1, 0, 1, 1),
    "no_input": (0, 6, 3, 4, 5),  # n_x = 0: the gates are their biases and the recurrence
}


def _case(shape, dtype, seed=0, **kwargs):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng(seed)
    p = gru_params(rng, n_x, n_a, n_y, dtype, **kwargs)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = (0.5 * rng.standard_normal((n_a, m))).astype(dtype)
    return p, x, a0


@pytest.mark.parametrize("path", RECURRENT_PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SHAPES))
def test_gru_forward_matches_reference(name, dtype, path):
    p, x, a0 = _case(SHAPES[name], dtype)
    with recurrent_path(path):
        a, y, caches = fastrnn.gru_forward(x, a0, p)
    a_ref, y_ref, caches_ref = ref("gru_forward", x, a0, p)
    assert a.dtype == dtype and a.shape == a_ref.shape
    assert_close(a, a_ref, dtype)
    if SHAPES[name][2]:
        assert y.dtype == dtype
        assert_close(y, y_ref, dtype)
    else:
        assert y is None and y_ref is None
    steps, x_back = caches
    assert x_back is x and len(steps) == x.shape[2]
    for t in (0, x.shape[2] - 1):
        got, want = steps[t], caches_ref[0][t]
        assert len(got) == 7 and got[-1] is p
        for g, w in zip(got[:6], want[:6]):  # a_next, a_prev, rt, zt, nt, xt
            assert_close(g, w, dtype)
    assert steps[0][1] is a0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["lesson", "all_ones", "unequal", "headless"])
def test_gru_cell_forward_matches_reference(name, dtype):
    p, x, a0 = _case(SHAPES[name], dtype, seed=1)
    xt = np.ascontiguousarray(x[:, :, 0])
    a_next, yt, cache = fastrnn.gru_cell_forward(xt, a0, p)
    a_ref, y_ref, cache_ref = ref("gru_cell_forward", xt, a0, p)
    assert_close(a_next, a_ref, dtype)
    if y_ref is None:
        assert yt is None
    else:
        assert_close(yt, y_ref, dtype)
    assert cache[0] is a_next and cache[1] is a0 and cache[5] is xt and cache[6] is p
    for g, w in zip(cache[2:5], cache_ref[2:5]):
        assert_close(g, w, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_odd_layouts_and_integer_input(dtype):
    p, x, a0 = _case((5, 7, 3, 4, 6), dtype, seed=2)
    want = ref("gru_forward", x, a0, p)[:2]
    # Fortran order, a strided view, read-only weights, a list for a0
    xf = np.asfortranarray(x)
    xs = np.concatenate([x, x], axis=2)[:, :, ::2]
    xs[...] = x
    pf = {k: np.asfortranarray(v) for k, v in p.items()}
    for v in pf.values():
        v.flags.writeable = False
    for xi, pi, ai in ((xf, p, a0), (xs, pf, a0), (x, p, a0.tolist())):
        a, y, _ = fastrnn.gru_forward(xi, ai, pi)
        assert a.flags.c_contiguous and a.dtype == (dtype if not isinstance(ai, list)
                                                    else np.float64)
        assert_close(a, want[0], a.dtype)
        assert_close(y, want[1], a.dtype)
    # integer input is read as float64
    xi = np.arange(5 * 4 * 6).reshape(5, 4, 6) % 3 - 1
    a, _, _ = fastrnn.gru_forward(xi, a0, p)
    assert a.dtype == np.float64
    assert_close(a, ref("gru_forward", xi, a0, p)[0], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_saturating_weights(dtype):
    # |pre-activations| of order 30: sigmoid and tanh at their limits.  Short in float32
    # (see fastrnn._selfcheck: near z = 0 a large gain amplifies any rounding).
    p, x, a0 = _case((6, 9, 4, 5, 6 if dtype == np.float64 else 2), dtype, seed=3,
                     scale=30 / np.sqrt(15), bias=10.0)
    a, y, _ = fastrnn.gru_forward(x, a0, p)
    a_ref, y_ref, _ = ref("gru_forward", x, a0, p)
    assert np.abs(a_ref).max() > 0.99
    assert_close(a, a_ref, dtype)
    assert_close(y, y_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_long_sequence(dtype):
    p, x, a0 = _case((3, 8, 5, 2, 1000), dtype, seed=4)
    model = fastrnn.GRU(p)
    a, y = model.forward(x, a0)
    a_ref, y_ref, _ = ref("gru_forward", x, a0, p)
    assert_close(a, a_ref, dtype)
    assert_close(y, y_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["lesson", "odd", "headless", "all_ones"])
def test_gru_model_forward_and_step(name, dtype):
    p, x, a0 = _case(SHAPES[name], dtype, seed=5)
    model = fastrnn.GRU(p)
    assert (model.n_x, model.n_a) == (x.shape[0], a0.shape[0])
    assert model.has_head == bool(SHAPES[name][2])
    a, y = model.forward(x, a0)
    a_ref, y_ref, _ = ref("gru_forward", x, a0, p)
    assert_close(a, a_ref, dtype)
    assert (y is None) == (y_ref is None)
    if y is not None:
        assert_close(y, y_ref, dtype)
    # a stream of steps from zeros gives the sequence from zeros (within rounding: BLAS
    # may sum a one-step projection in another order than the sequence's)
    a_zero, y_zero = model.forward(x)
    state = None
    for t in range(x.shape[2]):
        state, yt = model.step(x[:, :, t], state)
        assert_close(state, f64(a_zero[:, :, t]), dtype)
        if y_zero is not None:
            assert_close(yt, f64(y_zero[:, :, t]), dtype)
        else:
            assert yt is None
    # two threads: each slice of the batch is computed as on one thread
    a2, _ = model.forward(x, a0, n_threads=2)
    assert_close(a2, a_ref, dtype)


def test_gru_checked_mode_passes_and_model_copies_weights():
    p, x, a0 = _case(SHAPES["unequal"], np.float64, seed=6)
    model = fastrnn.GRU(p)
    with fastrnn.checked():
        fastrnn.gru_forward(x, a0, p)
        fastrnn.gru_cell_forward(x[:, :, 0], a0, p)
        a, _ = model.forward(x, a0)
        model.step(x[:, :, 0], a0)
    p["Wna"][...] = 0  # the model packed a copy
    np.testing.assert_array_equal(model.forward(x, a0)[0], a)


def test_gru_matches_torch():
    torch = pytest.importorskip("torch", reason="torch is the optional GRU peer")
    for dtype, tdtype in ((np.float64, torch.float64), (np.float32, torch.float32)):
        p, x, a0 = _case((7, 11, 0, 6, 9), dtype, seed=7)
        g = torch.nn.GRU(7, 11).to(tdtype)
        with torch.no_grad():
            g.weight_ih_l0.copy_(torch.tensor(np.concatenate([p[f"W{k}x"] for k in "rzn"])))
            g.weight_hh_l0.copy_(torch.tensor(np.concatenate([p[f"W{k}a"] for k in "rzn"])))
            g.bias_ih_l0.copy_(torch.tensor(np.concatenate([p[f"b{k}x"] for k in "rzn"])[:, 0]))
            g.bias_hh_l0.copy_(torch.tensor(np.concatenate([p[f"b{k}a"] for k in "rzn"])[:, 0]))
            out, h_n = g(torch.tensor(x.transpose(2, 1, 0).copy()),
                         torch.tensor(a0.T.copy())[None])
        a, y = fastrnn.GRU(p).forward(x, a0)
        assert y is None
        assert_close(a, f64(out.numpy().transpose(2, 1, 0)), dtype)


def _mutant(p, how):
    q = {k: np.array(v, dtype=np.float64) for k, v in p.items()}
    if how == "swap_rz":
        for s in "xa":
            q[f"Wr{s}"], q[f"Wz{s}"] = q[f"Wz{s}"], q[f"Wr{s}"]
            q[f"br{s}"], q[f"bz{s}"] = q[f"bz{s}"], q[f"br{s}"]
    elif how == "fold_bna":  # the bias a converter folding b_hn into b_in would compute
        q["bnx"] = q["bnx"] + q["bna"]
        q["bna"] = np.zeros_like(q["bna"])
    elif how == "transpose_Wna":
        q["Wna"] = q["Wna"].T.copy()
    return q


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("how", ["swap_rz", "fold_bna", "transpose_Wna"])
def test_gru_tolerances_catch_mutants(how, dtype):
    p, x, a0 = _case(SHAPES["unequal"], dtype, seed=8)
    a, y, _ = fastrnn.gru_forward(x, a0, p)
    a_mut = ref("gru_forward", x, a0, _mutant(p, how))[0]
    tol = TOL[np.dtype(dtype)]
    assert not np.allclose(f64(a), a_mut, rtol=tol["rtol"], atol=tol["atol"])


def test_gru_bad_parameters_are_named():
    p, x, a0 = _case(SHAPES["lesson"], np.float64)
    q = dict(p)
    del q["bna"]
    with pytest.raises(KeyError, match="bna.*\\(n_a, 1\\)"):
        fastrnn.gru_forward(x, a0, q)
    q = dict(p, Wra=p["Wra"][:, :-1])
    with pytest.raises(ValueError, match=r"parameters\['Wra'\].*\(n_a, n_a\) = \(5, 5\)"):
        fastrnn.GRU(q)
    q = dict(p)
    del q["by"]  # half an output layer
    with pytest.raises(KeyError, match="by"):
        fastrnn.GRU(q)
    with pytest.raises(ValueError, match=r"x must have shape \(n_x, m, T_x\)"):
        fastrnn.GRU(p).forward(x[:-1])
    with pytest.raises(ValueError, match=r"a0 must have shape \(n_a, m\) = \(5, 10\)"):
        fastrnn.GRU(p).forward(x, a0[:, :-1])
    with pytest.raises(TypeError, match="complex"):
        fastrnn.gru_forward(x.astype(complex), a0, p)
    with pytest.raises(ValueError, match="n_y"):
        fastrnn.gru_forward(x, a0, dict(p, Wy=p["Wy"][:0], by=p["by"][:0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["lesson", "m=1", "headless"])
def test_gru_compiled_fast_path_is_the_validated_route_bitwise(name, dtype):
    # exact C-contiguous arrays take the compiled fast path; a Fortran-ordered copy of x
    # goes through validation and packing: the same kernel, the same bits
    p, x, a0 = _case(SHAPES[name], dtype, seed=9)
    xf = np.asfortranarray(x)
    fast, slow = fastrnn.gru_forward(x, a0, p), fastrnn.gru_forward(xf, a0, p)
    np.testing.assert_array_equal(fast[0], slow[0])
    if SHAPES[name][2]:
        np.testing.assert_array_equal(fast[1], slow[1])
    for t in (0, x.shape[2] - 1):
        for g, s in zip(fast[2][0][t][:5], slow[2][0][t][:5]):
            np.testing.assert_array_equal(g, s)
    model = fastrnn.GRU(p)
    for _ in range(2):  # the second call reuses the model's work buffers
        got = model.forward(x, a0)
        np.testing.assert_array_equal(got[0], slow[0])
    np.testing.assert_array_equal(model.forward(xf, a0)[0], slow[0])
    np.testing.assert_array_equal(model.step(x[:, :, 0], a0)[0],
                                  fastrnn.gru_cell_forward(np.asfortranarray(x[:, :, 0]),
                                                           a0, p)[0])


@pytest.mark.parametrize("path", RECURRENT_PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["lesson", "all_ones", "odd", "headless"])
def test_gru_reset_before_the_product(name, dtype, path):
    # reset_after=False: nt = tanh(Wnx xt + bnx + Wna (rt * a_prev) + bna), Keras's
    # reset_after=False and ONNX's default linear_before_reset=0
    p, x, a0 = _case(SHAPES[name], dtype, seed=10)
    with recurrent_path(path):
        a, y, caches = fastrnn.gru_forward(x, a0, p, reset_after=False)
        model = fastrnn.GRU(p, reset_after=False)
        a_model, _ = model.forward(x, a0)
        a_step, _ = model.step(x[:, :, 0], a0)
        a_cell, _, cache = fastrnn.gru_cell_forward(x[:, :, 0], a0, p, reset_after=False)
    a_ref, y_ref, caches_ref = ref("gru_forward", x, a0, p, False)
    assert_close(a, a_ref, dtype)
    assert_close(a_model, a_ref, dtype)
    assert_close(a_step, a_ref[:, :, 0], dtype)
    assert_close(a_cell, a_ref[:, :, 0], dtype)
    if y_ref is not None:
        assert_close(y, y_ref, dtype)
    for g, w in zip(caches[0][-1][2:5], caches_ref[0][-1][2:5]):
        assert_close(g, w, dtype)
    with fastrnn.checked():
        fastrnn.gru_forward(x, a0, p, reset_after=False)
        model.forward(x, a0, lengths=np.full(x.shape[1], x.shape[2]))
        model.step(x[:, :, 0], a0)
    # one step written out by hand (the reference is the spec; this pins the formula)
    q = f64(p)
    xt, h = f64(x[:, :, 0]), f64(a0)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    r = sig(q["Wrx"] @ xt + q["brx"] + q["Wra"] @ h + q["bra"])
    z = sig(q["Wzx"] @ xt + q["bzx"] + q["Wza"] @ h + q["bza"])
    n = np.tanh(q["Wnx"] @ xt + q["bnx"] + q["Wna"] @ (r * h) + q["bna"])
    assert_close(a_cell, (1 - z) * n + z * h, dtype)
    # the two formulations differ beyond the tolerance (so each test can fail)
    tol = TOL[np.dtype(dtype)]
    if name != "all_ones":
        assert not np.allclose(f64(a), ref("gru_forward", x, a0, p)[0], **tol)
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        fastrnn.GRU(p, reset_after="no")


@pytest.mark.parametrize("path", RECURRENT_PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_lengths_skip_the_padding(path, dtype, reset_after):
    # The GRU runs only the examples still going at each step (batch sorted by length):
    # every direction, both formulations, every recurrent path, one and two threads, with
    # NaN in the padding, against the reference one example at a time.
    from fastrnn import reference
    rng = np.random.default_rng(11)
    n_x, n_a, m, T = 5, 7, 9, 8
    p = gru_params(rng, n_x, n_a, 3, dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    lengths = np.array([3, 8, 1, 5, 8, 2, 7, 1, 4])
    x[:, np.arange(T)[None, :] >= lengths[:, None]] = np.nan
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    model = fastrnn.GRU(p, reset_after=reset_after)
    with recurrent_path(path):
        for reverse in (False, True):
            want = reference.layer_forward("gru", f64(x), f64(p), lengths, reverse, f64(a0),
                                           reset_after=reset_after)
            for n_threads in (1, 2):
                a, y, _, (last,) = model._sequence(np.ascontiguousarray(x), [a0], lengths,
                                                   reverse, n_threads)
                assert_close(a, want[0], dtype)
                assert_close(y, want[1], dtype)
                assert_close(last, want[3], dtype)
        a, y = model.forward(x, a0, lengths=lengths)
    assert not np.isnan(a).any() and not np.isnan(y).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_x, n_y", [(13, 5), (13, 0), (0, 5)])
def test_gru_model_projects_the_input_step_by_step(dtype, n_x, n_y):
    # A model's batch of at least 16 examples per thread (the panel GEMM; no caches) makes
    # its input projection per step into a one-step buffer instead of ahead of the loop:
    # one and two threads (slices of 19 and 18), forwards and backwards, with lengths
    # (the sorted batch, each step on fewer examples), without inputs (the gates' biases
    # alone), against the reference; the drop-in function (caches) per step too, each
    # step's gates written into the caches.
    from fastrnn import reference
    rng = np.random.default_rng(12)
    n_a, m, T = 17, 37, 70
    assert m * T * 3 * n_a * (n_a + n_x) >= fastrnn._api._MIN_THREADED_WORK  # two slices
    p = gru_params(rng, n_x, n_a, n_y, dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=m)
    model = fastrnn.GRU(p)
    with recurrent_path("panel"):
        for n_threads in (1, 2):
            a, y = model.forward(x, a0, n_threads=n_threads)
            want = ref("gru_forward", x, a0, p)
            assert_close(a, want[0], dtype)
            assert (y is None) == (n_y == 0)
            if n_y:
                assert_close(y, want[1], dtype)
            for reverse in (False, True):
                want = reference.layer_forward("gru", f64(x), f64(p), lengths, reverse,
                                               f64(a0))
                a, y, _, (last,) = model._sequence(x, [a0], lengths, reverse, n_threads)
                assert_close(a, want[0], dtype)
                assert_close(last, want[3], dtype)
                if n_y:
                    assert_close(y, want[1], dtype)
        got, want = fastrnn.gru_forward(x, a0, p), ref("gru_forward", x, a0, p)
        for g, w in zip(got[:2], want[:2]):
            assert (g is None) == (w is None)
            if w is not None:
                assert_close(g, w, dtype)
        for t in (0, 1, T // 2, T - 1):
            for k, (g, w) in enumerate(zip(got[2][0][t], want[2][0][t])):
                if isinstance(w, np.ndarray):
                    assert_close(g, w, dtype, err_msg=f"step {t}, cache item {k}")


def test_gru_kernel_refuses_bad_active_counts():
    from fastrnn._kernels import _core
    n_x, n_a, m, T = 2, 3, 4, 5
    arrays = [np.zeros(s) for s in [(n_x, m, T), (n_a, m), (3 * n_a, n_x), (3 * n_a, n_a),
                                    (3 * n_a,), (3 * n_a,), (0, n_a), (0,), (n_a, m, T),
                                    (0, m, T), (m, T, 3 * n_a), (m, T, n_a)]]
    for active in (np.array([4, 3, 5, 1, 0], np.intc), np.array([4, 3, 2, 1, -1], np.intc),
                   np.array([4, 3, 2, 1], np.intc), np.array([4, 3, 2, 1, 0], np.int64)):
        with pytest.raises(ValueError, match="active"):
            _core.gru_forward(*arrays, True, active, 0, m, 4)
    _core.gru_forward(*arrays, True, np.array([4, 4, 2, 1, 0], np.intc), 0, m, 4)
