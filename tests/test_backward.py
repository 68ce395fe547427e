"""The drop-in backward passes and the models' loss_and_grads against the reference.

fastrnn's own caches (the compiled fast path reading the forward's buffers) and caches made
by the reference's numpy forward (validated and converted) must both give the reference's
gradients; float32 within float32 tolerance of the float64 reference; every recurrent-product
path; unequal sizes and sizes of 1; finite differences of fastrnn's own forward; NaN/inf
patterns; PyTorch autograd when installed.
"""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn._kernels import _core
from fastrnn._packing import GATES

from _util import TOL, assert_close, f64, lstm_params, ref, rnn_params

SHAPES = [  # (n_x, n_a, n_y, m, T_x): unequal, sizes of 1, m across the small-batch limit
    (3, 5, 2, 10, 4),
    (1, 1, 1, 1, 1),
    (7, 3, 5, 1, 6),
    (4, 9, 3, 3, 5),
    (13, 6, 4, 9, 7),
]
DTYPES = [np.float64, np.float32]


def _case(kind, shape, dtype, seed=0, scale=None):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng([seed, *shape, np.dtype(dtype).itemsize, kind == "rnn"])
    make = rnn_params if kind == "rnn" else lstm_params
    p = make(rng, n_x, n_a, n_y, dtype)
    if scale is not None:
        p = {k: (v * scale).astype(dtype) for k, v in p.items()}
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    c0 = rng.standard_normal((n_a, m)).astype(dtype)
    da = rng.standard_normal((n_a, m, T)).astype(dtype)
    targets = rng.integers(0, n_y, size=(m, T))
    return p, x, a0, c0, da, targets


def _fns(kind):
    if kind == "rnn":
        return fastrnn.rnn_forward, fastrnn.rnn_backward, "rnn_forward", "rnn_backward"
    return fastrnn.lstm_forward, fastrnn.lstm_backward, "lstm_forward", "lstm_backward"


def ref_bwd(rbwd, rfwd, da, *fwd_args):
    """reference.<rbwd>(da, caches of reference.<rfwd>(*fwd_args)), all in float64."""
    args = [f64(a) for a in fwd_args]
    with np.errstate(all="ignore"):  # the lessons' numpy warns on overflow, inf - inf
        caches = getattr(reference, rfwd)(*args)[-1]
        if isinstance(da, tuple):
            return getattr(reference, rbwd)(*[f64(d) for d in da], caches)
        return getattr(reference, rbwd)(f64(da), caches)


def _dtype_of(cache):
    """float32 when every array of a cache tuple is float32 (fastrnn's dtype rule)."""
    arrays = [a for a in cache if isinstance(a, np.ndarray)]
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


def _compare(got, want, dtype):
    assert list(got) == list(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert got[k].dtype == np.dtype(dtype), k
        assert_close(got[k], want[k], dtype, err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_sequence_backward(kind, shape, dtype, recurrent_path):
    p, x, a0, _, da, _ = _case(kind, shape, dtype)
    fwd, bwd, rfwd, rbwd = _fns(kind)
    want = ref_bwd(rbwd, rfwd, da, x, a0, p)
    caches = fwd(x, a0, p)[-1]
    fast = bwd(da, caches)                        # fastrnn's caches: the buffers directly
    _compare(fast, want, dtype)
    user = reference.__dict__[rfwd](x, a0, p)[-1]  # user-made (the lessons' LSTM is float64)
    _compare(bwd(da, user), want, _dtype_of(user[0][0]))
    # the same cache values as a plain list take the validated, converted route: the same
    # kernel on the same values, the same bits
    general = bwd(da, (list(caches[0]), caches[1]))
    for k in fast:
        np.testing.assert_array_equal(fast[k], general[k], err_msg=k)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_lazy_caches_read_through_the_general_route(kind):
    # a plain list of fastrnn's cache tuples (not its lazy sequence) is "user-made"
    p, x, a0, _, da, _ = _case(kind, (3, 5, 2, 4, 6), np.float64)
    fwd, bwd, rfwd, rbwd = _fns(kind)
    caches = fwd(x, a0, p)[-1]
    want = ref_bwd(rbwd, rfwd, da, x, a0, p)
    _compare(bwd(da, (list(caches[0]), caches[1])), want, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_da_covers_fewer_steps_than_caches(kind, dtype):
    p, x, a0, _, da, _ = _case(kind, (3, 5, 2, 10, 7), dtype)
    fwd, bwd, rfwd, rbwd = _fns(kind)
    short = da[:, :, :4]
    want = ref_bwd(rbwd, rfwd, short, x, a0, p)
    assert want["dx"].shape == (3, 10, 4)
    _compare(bwd(short, fwd(x, a0, p)[-1]), want, dtype)
    user = reference.__dict__[rfwd](x, a0, p)[-1]
    _compare(bwd(short, user), want, _dtype_of(user[0][0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_cell_backward(shape, dtype):
    p, x, a0, c0, da, _ = _case("rnn", shape, dtype)
    xt, da_next = x[:, :, 0], da[:, :, 0]
    for cache in (fastrnn.rnn_cell_forward(xt, a0, p)[2],
                  reference.rnn_cell_forward(xt, a0, p)[2]):
        _compare(fastrnn.rnn_cell_backward(da_next, cache),
                 ref_bwd("rnn_cell_backward", "rnn_cell_forward", da_next, xt, a0, p),
                 _dtype_of(cache))
    q, x, a0, c0, da, _ = _case("lstm", shape, dtype)
    xt, da_next, dc_next = x[:, :, 0], da[:, :, 0], da[:, :, -1]
    want = ref_bwd("lstm_cell_backward", "lstm_cell_forward", (da_next, dc_next), xt, a0, c0, q)
    for cache in (fastrnn.lstm_cell_forward(xt, a0, c0, q)[3],
                  reference.lstm_cell_forward(xt, a0, c0, q)[3]):
        _compare(fastrnn.lstm_cell_backward(da_next, dc_next, cache), want, _dtype_of(cache))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_saturating_weights(kind):
    # |z| of order 20: the activations at their flat ends, where the gradients vanish
    shape = (6, 9, 4, 5, 3)
    p, x, a0, _, da, _ = _case(kind, shape, np.float64, scale=20 / np.sqrt(15))
    fwd, bwd, rfwd, rbwd = _fns(kind)
    _compare(bwd(da, fwd(x, a0, p)[-1]), ref_bwd(rbwd, rfwd, da, x, a0, p), np.float64)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_odd_layouts_and_dtypes(kind):
    # Fortran-ordered, strided, integer and mixed-dtype arguments take the general route
    p, x, a0, _, da, _ = _case(kind, (3, 5, 2, 4, 6), np.float64)
    fwd, bwd, rfwd, rbwd = _fns(kind)
    want = ref_bwd(rbwd, rfwd, da, x, a0, p)
    caches = fwd(x, a0, p)[-1]
    _compare(bwd(np.asfortranarray(da), caches), want, np.float64)
    wide = np.zeros(da.shape[:2] + (2 * da.shape[2],))
    wide[:, :, ::2] = da
    _compare(bwd(wide[:, :, ::2], caches), want, np.float64)
    # float32 da with float64 caches: float64 result
    da32 = da.astype(np.float32)
    want32 = ref_bwd(rbwd, rfwd, da32, x, a0, p)
    _compare(bwd(da32, caches), want32, np.float64)
    # integer upstream gradient
    dai = np.round(da * 3).astype(np.int64)
    _compare(bwd(dai, caches), ref_bwd(rbwd, rfwd, dai, x, a0, p), np.float64)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_degenerate_sizes(kind):
    fwd, bwd, rfwd, rbwd = _fns(kind)
    for shape in [(3, 5, 2, 0, 4), (0, 5, 2, 3, 4)]:
        p, x, a0, _, da, _ = _case(kind, shape, np.float64)
        got = bwd(da, reference.__dict__[rfwd](x, a0, p)[-1])
        _compare(got, ref_bwd(rbwd, rfwd, da, x, a0, p), np.float64)
    # T_x = 0 from da: zero gradients of the right shapes
    p, x, a0, _, da, _ = _case(kind, (3, 5, 2, 4, 3), np.float64)
    got = bwd(da[:, :, :0], fwd(x, a0, p)[-1])
    _compare(got, ref_bwd(rbwd, rfwd, da[:, :, :0], x, a0, p), np.float64)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_nan_and_inf_propagate_as_in_the_reference(kind):
    p, x, a0, _, da, _ = _case(kind, (3, 5, 2, 4, 6), np.float64)
    fwd, bwd, rfwd, rbwd = _fns(kind)
    da = da.copy()
    da[1, 2, 4] = np.nan
    da[0, 0, 1] = np.inf
    got = bwd(da, fwd(x, a0, p)[-1])
    want = ref_bwd(rbwd, rfwd, da, x, a0, p)
    for k in want:
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=k)
        np.testing.assert_array_equal(np.isposinf(got[k]), np.isposinf(want[k]), err_msg=k)
        np.testing.assert_array_equal(np.isneginf(got[k]), np.isneginf(want[k]), err_msg=k)
        assert_close(got[k], want[k], np.float64, err_msg=k)


# ------------------------------------------------------------------ finite differences

EPS = 1e-6
FD_TOL = {"rtol": 1e-6, "atol": 1e-8}


def numeric_grad(f, arr):
    grad = np.zeros(arr.shape)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        up = f()
        arr[idx] = old - EPS
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * EPS)
    return grad


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_finite_differences_of_fastrnn_itself(kind, saturating):
    # fastrnn's backward against central differences of fastrnn's own forward (float64)
    shape = (2, 3, 2, 2, 3)
    p, x, a0, c0, da, targets = _case(kind, shape, np.float64,
                                      scale=4.0 if saturating else None)
    fwd, bwd, _, _ = _fns(kind)
    g = bwd(da, fwd(x, a0, p)[-1])

    def f():
        return float(np.sum(da * fwd(x, a0, p)[0]))

    for name, arr in [("dx", x), ("da0", a0)] + [("d" + k, p[k]) for k in p
                                                 if k not in ("Wya", "Wy", "by")]:
        np.testing.assert_allclose(g[name], numeric_grad(f, arr), **FD_TOL, err_msg=name)
    # the model: loss and every gradient, initial states included
    Model = fastrnn.RNN if kind == "rnn" else fastrnn.LSTM
    states = (a0,) if kind == "rnn" else (a0, c0)
    loss, grads = Model(p).loss_and_grads(x, targets, *states)

    def loss_of():
        return Model(p).loss_and_grads(x, targets, *states)[0]

    pairs = [("d" + k, v) for k, v in p.items()] + [("da0", a0)]
    if kind == "lstm":
        pairs.append(("dc0", c0))
    for name, arr in pairs:
        np.testing.assert_allclose(grads[name], numeric_grad(loss_of, arr), **FD_TOL,
                                   err_msg=name)


# ------------------------------------------------------------------ whole-model gradients

def _ref_model(kind, p, x, targets, a0, c0):
    with np.errstate(all="ignore"):
        if kind == "rnn":
            return reference.rnn_loss_and_grads(f64(x), targets, f64(a0), f64(p))
        return reference.lstm_loss_and_grads(f64(x), targets, f64(a0), f64(c0), f64(p))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_loss_and_grads(kind, shape, dtype, recurrent_path):
    p, x, a0, c0, _, targets = _case(kind, shape, dtype)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    states = (a0,) if kind == "rnn" else (a0, c0)
    loss, grads = model.loss_and_grads(x, targets, *states)
    want_loss, want = _ref_model(kind, p, x, targets, a0, c0)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, want_loss, **TOL[np.dtype(dtype)])
    _compare(grads, want, dtype)
    # twice in a row (the model's kept buffers), and omitted states are zeros
    _compare(model.loss_and_grads(x, targets, *states)[1], want, dtype)
    zeros = np.zeros_like(a0)
    _, want0 = _ref_model(kind, p, x, targets, zeros, zeros)
    _compare(model.loss_and_grads(x, targets)[1], want0, dtype)


def test_loss_and_grads_degenerate_sizes():
    for kind in ("rnn", "lstm"):
        for shape in [(3, 5, 2, 0, 4), (3, 5, 2, 2, 0), (0, 4, 3, 2, 3)]:
            p, x, a0, c0, _, targets = _case(kind, shape, np.float64)
            model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
            states = (a0,) if kind == "rnn" else (a0, c0)
            loss, grads = model.loss_and_grads(x, targets, *states)
            want_loss, want = _ref_model(kind, p, x, targets, a0, c0)
            np.testing.assert_allclose(loss, want_loss, rtol=1e-12, atol=1e-12)
            _compare(grads, want, np.float64)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_apply_gradients_and_parameters(kind):
    p, x, a0, c0, _, targets = _case(kind, (3, 5, 4, 6, 5), np.float64)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    got = model.parameters()
    assert list(got) == list(p)
    for k in p:
        np.testing.assert_array_equal(got[k], p[k])
    got[next(iter(got))][...] = 0  # a copy: the model is unchanged
    np.testing.assert_array_equal(model.parameters()[next(iter(p))], p[next(iter(p))])
    loss, grads = model.loss_and_grads(x, targets, a0)
    model.apply_gradients(grads, 0.05, clip=0.5)
    updated = {k: p[k] - 0.05 * np.clip(grads["d" + k], -0.5, 0.5) for k in p}
    after = model.parameters()
    for k in p:
        np.testing.assert_allclose(after[k], updated[k], rtol=1e-15, atol=1e-15, err_msg=k)
    # the forward uses the updated weights
    fresh = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(updated)
    for u, v in zip(model.forward(x, a0), fresh.forward(x, a0)):
        np.testing.assert_array_equal(u, v)
    # no clip: the plain step; a training step lowers the loss
    model.apply_gradients(model.loss_and_grads(x, targets, a0)[1], 0.01)
    assert model.loss_and_grads(x, targets, a0)[0] < loss


def test_apply_gradients_float32_model():
    p, x, a0, _, _, targets = _case("lstm", (3, 5, 4, 6, 5), np.float32)
    model = fastrnn.LSTM(p)
    _, grads = model.loss_and_grads(x, targets)
    model.apply_gradients({k: v.astype(np.float64) for k, v in grads.items()}, 0.1)
    for k, v in model.parameters().items():
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, p[k] - 0.1 * grads["d" + k], rtol=1e-6, atol=1e-6)


def test_training_loop_learns_a_sequence():
    # an RNN learns to predict the next symbol of a repeating pattern
    rng = np.random.default_rng(3)
    n_y = 4
    seq = np.tile(np.arange(n_y), 5)
    x = np.eye(n_y)[seq[:-1]].T[:, None, :]       # (n_x, 1, T)
    targets = seq[1:][None, :]
    model = fastrnn.RNN(rnn_params(rng, n_y, 8, n_y, np.float64))
    first = model.loss_and_grads(x, targets)[0]
    for _ in range(200):
        loss, grads = model.loss_and_grads(x, targets)
        model.apply_gradients(grads, 0.05, clip=5)
    assert loss < 0.1 * first


# ------------------------------------------------------------------ PyTorch autograd

@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_agrees_with_torch_autograd(kind):
    torch = pytest.importorskip("torch", reason="PyTorch autograd is the independent check")
    from fastrnn._train_bench import torch_model

    p, x, a0, c0, _, targets = _case(kind, (4, 6, 3, 5, 7), np.float64)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    states = (a0,) if kind == "rnn" else (a0, c0)
    loss, grads = model.loss_and_grads(x, targets, *states)

    rnn, linear = torch_model(kind, p, np.float64)
    xt = torch.tensor(np.transpose(x, (2, 1, 0)).copy())
    h0 = torch.tensor(a0.T.copy())[None].requires_grad_(True)
    cc0 = torch.tensor(c0.T.copy())[None].requires_grad_(True)
    out, _ = rnn(xt, h0) if kind == "rnn" else rnn(xt, (h0, cc0))
    logits = linear(out).reshape(-1, p["by"].shape[0])
    tl = torch.nn.functional.cross_entropy(logits, torch.tensor(targets.T.reshape(-1)),
                                           reduction="sum")
    tl.backward()
    tol = {"rtol": 1e-9, "atol": 1e-11}
    np.testing.assert_allclose(loss, tl.item(), **tol)
    np.testing.assert_allclose(grads["dby"][:, 0], linear.bias.grad.numpy(), **tol)
    np.testing.assert_allclose(grads["da0"], h0.grad[0].numpy().T, **tol)
    if kind == "rnn":
        np.testing.assert_allclose(grads["dWya"], linear.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["dWax"], rnn.weight_ih_l0.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["dWaa"], rnn.weight_hh_l0.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["dba"][:, 0], rnn.bias_ih_l0.grad.numpy(), **tol)
    else:
        n_a = a0.shape[0]
        np.testing.assert_allclose(grads["dWy"], linear.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["dc0"], cc0.grad[0].numpy().T, **tol)
        w_ih, w_hh = rnn.weight_ih_l0.grad.numpy(), rnn.weight_hh_l0.grad.numpy()
        b = rnn.bias_ih_l0.grad.numpy()
        for k, g in enumerate(("i", "f", "c", "o")):  # PyTorch's gate order
            rows = slice(k * n_a, (k + 1) * n_a)
            np.testing.assert_allclose(grads["dW" + g][:, :n_a], w_hh[rows], **tol)
            np.testing.assert_allclose(grads["dW" + g][:, n_a:], w_ih[rows], **tol)
            np.testing.assert_allclose(grads["db" + g][:, 0], b[rows], **tol)


# ------------------------------------------------------------------ checked mode

@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_checked_mode_covers_backward(kind, monkeypatch):
    p, x, a0, c0, da, targets = _case(kind, (3, 5, 2, 4, 6), np.float32)
    fwd, bwd, rfwd, _ = _fns(kind)
    with fastrnn.checked():
        bwd(da, fwd(x, a0, p)[-1])
        bwd(da, reference.__dict__[rfwd](x, a0, p)[-1])
        model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
        model.loss_and_grads(x, targets)
    # a wrong kernel is caught: the fused pass sees a wrong upstream gradient
    from fastrnn._kernels import _backward as kb
    name = f"{kind}_backward"
    real = getattr(kb, name)
    monkeypatch.setattr(kb, name, lambda da, *a, **k: real(da * 1.01, *a, **k))
    with fastrnn.checked(), pytest.raises(fastrnn.CheckError, match=name):
        bwd(da, fwd(x, a0, p)[-1])
    real_loss = getattr(kb, f"{kind}_loss_backward")

    def wrong_loss(y, *a, **k):
        loss, *rest = real_loss(y, *a, **k)
        rest[0] = rest[0] * 1.01
        return (loss, *rest)

    monkeypatch.setattr(kb, f"{kind}_loss_backward", wrong_loss)
    with fastrnn.checked(), pytest.raises(fastrnn.CheckError, match="loss_and_grads"):
        model.loss_and_grads(x, targets)


# ------------------------------------------------------------------ kernel paths

# The backward's recurrent product W_a^T d_t runs on W_a^T packed straight from W_a's rows
# (panels of 32 floats / 16 doubles): n_a not a multiple of either (a zero-padded last
# panel), several panels, exactly two panels; every column count of the panel tiles (1-8 at
# AVX-512, 1-3 at AVX2) and more; two steps (the shortest sequence on the panel path).
PATH_SHAPES = [  # (n_x, n_a, n_y, m, T_x)
    (3, 37, 2, 1, 3),
    (5, 64, 3, 2, 2),
    (4, 45, 3, 5, 3),
    (2, 19, 2, 9, 2),
]


@pytest.mark.parametrize("shape", PATH_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_backward_paths_at_every_simd_level(simd_level, recurrent_path, kind, dtype, shape):
    p, x, a0, c0, da, targets = _case(kind, shape, dtype, seed=3)
    fwd, bwd, rfwd, rbwd = _fns(kind)
    want = ref_bwd(rbwd, rfwd, da, x, a0, p)
    caches = fwd(x, a0, p)[-1]
    fast = bwd(da, caches)
    _compare(fast, want, dtype)
    general = bwd(da, (list(caches[0]), caches[1]))
    for k in fast:
        np.testing.assert_array_equal(fast[k], general[k], err_msg=k)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    states = (a0,) if kind == "rnn" else (a0, c0)
    loss, grads = model.loss_and_grads(x, targets, *states)
    want_loss, want_g = _ref_model(kind, p, x, targets, a0, c0)
    np.testing.assert_allclose(loss, want_loss, **TOL[np.dtype(dtype)])
    _compare(grads, want_g, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_lstm_gate_blocks_of_one_array(dtype, recurrent_path):
    """Gate matrices that are consecutive row blocks of one array, in the kernel's gate order,
    are read as one matrix (one dx product, BLAS on W_a itself); separate ones block by
    block.  Both give the reference's gradients."""
    shape = (6, 11, 3, 5, 4)
    p, x, a0, _, da, _ = _case("lstm", shape, dtype, seed=4)
    want = ref_bwd("lstm_backward", "lstm_forward", da, x, a0, p)
    block = np.concatenate([p["W" + g] for g in GATES])      # (4n_a, n_a + n_x)
    n_a = shape[1]
    merged = dict(p, **{"W" + g: block[k * n_a:(k + 1) * n_a] for k, g in enumerate(GATES)})
    reversed_order = dict(merged)
    block2 = np.concatenate([p["W" + g] for g in GATES[::-1]])
    reversed_order.update({"W" + g: block2[(3 - k) * n_a:(4 - k) * n_a]
                           for k, g in enumerate(GATES)})
    for params in (p, merged, reversed_order):
        caches = fastrnn.lstm_forward(x, a0, params)[-1]
        _compare(fastrnn.lstm_backward(da, caches), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_user_caches_whose_steps_do_not_chain(kind, dtype, recurrent_path):
    """User-made caches are read as they are: each step's own a_prev (and c_prev), even
    where it is not the previous step's a_next (c_next), as the reference reads them."""
    n_x, n_a, n_y, m, T = 5, 7, 3, 4, 3
    p, x, _, _, da, _ = _case(kind, (n_x, n_a, n_y, m, T), dtype, seed=5)
    rng = np.random.default_rng(6)
    steps = []
    for t in range(T):
        a_prev = rng.standard_normal((n_a, m)).astype(dtype)
        if kind == "rnn":
            steps.append(reference.rnn_cell_forward(x[:, :, t], a_prev, p)[-1])
        else:
            c_prev = rng.standard_normal((n_a, m)).astype(dtype)
            steps.append(reference.lstm_cell_forward(x[:, :, t], a_prev, c_prev, p)[-1])
    caches = (steps, x)
    want = getattr(reference, kind + "_backward")(
        f64(da), ([tuple(f64(a) for a in c[:-1]) + (f64(p),) for c in steps], f64(x)))
    got = getattr(fastrnn, kind + "_backward")(da, caches)
    _compare(got, want, _dtype_of(steps[0]))


# ------------------------------------------------------------------ threads

@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_threads_share_a_model_and_caches(kind):
    # the kernels release the GIL and keep their work buffers per thread: concurrent calls
    # on one model and one set of caches give the single-threaded results, bit for bit
    from concurrent.futures import ThreadPoolExecutor

    p, x, a0, c0, da, targets = _case(kind, (13, 6, 4, 9, 7), np.float64)
    fwd, bwd, _, _ = _fns(kind)
    caches = fwd(x, a0, p)[-1]
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    want_b = bwd(da, caches)
    want_l = model.loss_and_grads(x, targets, a0)

    def work(_):
        return bwd(da, caches), model.loss_and_grads(x, targets, a0)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(16)))
    for got_b, (loss, got_l) in results:
        for k in want_b:
            np.testing.assert_array_equal(got_b[k], want_b[k], err_msg=k)
        assert loss == want_l[0]
        for k in want_l[1]:
            np.testing.assert_array_equal(got_l[k], want_l[1][k], err_msg=k)
