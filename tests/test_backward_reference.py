"""The backward reference (fastrnn.reference) against finite differences of its own forward.

Central differences in float64 of a scalar function of the forward's outputs whose gradient
the backward pass computes: sum(da * a) for the sequences (sum(da_next * a_next) +
sum(dc_next * c_next) for an LSTM cell), the summed cross-entropy for the whole model.
Unequal sizes (square shapes hide transposes), sizes of 1, saturating weights.
"""
import numpy as np
import pytest

from fastrnn import reference

from _util import lstm_params, rnn_params

EPS = 1e-6
# central differences: truncation ~ eps^2 * f''', rounding ~ 1e-16 * |f| / eps
FD_TOL = {"rtol": 1e-6, "atol": 1e-8}

SHAPES = [  # (n_x, n_a, n_y, m, T_x)
    (3, 5, 2, 4, 4),
    (1, 1, 1, 1, 1),
    (2, 4, 3, 1, 3),
    (4, 2, 1, 3, 5),
]


def numeric_grad(f, arr):
    """d f / d arr by central differences, perturbing arr in place."""
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


def _params(kind, rng, n_x, n_a, n_y, saturating):
    make = rnn_params if kind == "rnn" else lstm_params
    p = make(rng, n_x, n_a, n_y, np.float64)
    if saturating:
        # large weights: most units at the flat ends of tanh / sigmoid, a few in between
        p = {k: v * (4.0 if k.startswith("W") else 2.0) for k, v in p.items()}
    return {k: np.array(v, dtype=np.float64) for k, v in p.items()}


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_cell_backward(shape, saturating):
    n_x, n_a, n_y, m, _ = shape
    rng = np.random.default_rng([1, *shape, saturating])
    p = _params("rnn", rng, n_x, n_a, n_y, saturating)
    xt, a_prev = rng.standard_normal((n_x, m)), rng.standard_normal((n_a, m))
    da_next = rng.standard_normal((n_a, m))
    _, _, cache = reference.rnn_cell_forward(xt, a_prev, p)
    g = reference.rnn_cell_backward(da_next, cache)
    assert set(g) == {"dxt", "da_prev", "dWax", "dWaa", "dba"}

    def f():
        return float(np.sum(da_next * reference.rnn_cell_forward(xt, a_prev, p)[0]))

    for name, arr in (("dxt", xt), ("da_prev", a_prev), ("dWax", p["Wax"]),
                      ("dWaa", p["Waa"]), ("dba", p["ba"])):
        assert g[name].shape == arr.shape
        np.testing.assert_allclose(g[name], numeric_grad(f, arr), **FD_TOL, err_msg=name)


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_backward(shape, saturating):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng([2, *shape, saturating])
    p = _params("rnn", rng, n_x, n_a, n_y, saturating)
    x, a0 = rng.standard_normal((n_x, m, T)), rng.standard_normal((n_a, m))
    da = rng.standard_normal((n_a, m, T))
    _, _, caches = reference.rnn_forward(x, a0, p)
    g = reference.rnn_backward(da, caches)
    assert set(g) == {"dx", "da0", "dWax", "dWaa", "dba"}

    def f():
        return float(np.sum(da * reference.rnn_forward(x, a0, p)[0]))

    for name, arr in (("dx", x), ("da0", a0), ("dWax", p["Wax"]), ("dWaa", p["Waa"]),
                      ("dba", p["ba"])):
        assert g[name].shape == arr.shape
        np.testing.assert_allclose(g[name], numeric_grad(f, arr), **FD_TOL, err_msg=name)


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_cell_backward(shape, saturating):
    n_x, n_a, n_y, m, _ = shape
    rng = np.random.default_rng([3, *shape, saturating])
    p = _params("lstm", rng, n_x, n_a, n_y, saturating)
    xt = rng.standard_normal((n_x, m))
    a_prev, c_prev = rng.standard_normal((n_a, m)), rng.standard_normal((n_a, m))
    da_next, dc_next = rng.standard_normal((n_a, m)), rng.standard_normal((n_a, m))
    _, _, _, cache = reference.lstm_cell_forward(xt, a_prev, c_prev, p)
    g = reference.lstm_cell_backward(da_next, dc_next, cache)
    assert set(g) == {"dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc",
                      "dWo", "dbo"}

    def f():
        a, c, _, _ = reference.lstm_cell_forward(xt, a_prev, c_prev, p)
        return float(np.sum(da_next * a) + np.sum(dc_next * c))

    pairs = [("dxt", xt), ("da_prev", a_prev), ("dc_prev", c_prev)]
    pairs += [("d" + k, p[k]) for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")]
    for name, arr in pairs:
        assert g[name].shape == arr.shape
        np.testing.assert_allclose(g[name], numeric_grad(f, arr), **FD_TOL, err_msg=name)


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_backward(shape, saturating):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng([4, *shape, saturating])
    p = _params("lstm", rng, n_x, n_a, n_y, saturating)
    x, a0 = rng.standard_normal((n_x, m, T)), rng.standard_normal((n_a, m))
    da = rng.standard_normal((n_a, m, T))
    _, _, _, caches = reference.lstm_forward(x, a0, p)
    g = reference.lstm_backward(da, caches)
    assert set(g) == {"dx", "da0", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo"}

    def f():
        return float(np.sum(da * reference.lstm_forward(x, a0, p)[0]))

    pairs = [("dx", x), ("da0", a0)]
    pairs += [("d" + k, p[k]) for k in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")]
    for name, arr in pairs:
        assert g[name].shape == arr.shape
        np.testing.assert_allclose(g[name], numeric_grad(f, arr), **FD_TOL, err_msg=name)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_da_shorter_than_caches(kind):
    # T comes from da: the lesson's own test passes da for fewer steps than the caches
    rng = np.random.default_rng(5)
    n_x, n_a, n_y, m, T = 3, 5, 2, 4, 6
    p = _params(kind, rng, n_x, n_a, n_y, False)
    x, a0 = rng.standard_normal((n_x, m, T)), rng.standard_normal((n_a, m))
    da = rng.standard_normal((n_a, m, T - 2))
    fwd, bwd = ((reference.rnn_forward, reference.rnn_backward) if kind == "rnn"
                else (reference.lstm_forward, reference.lstm_backward))
    g = bwd(da, fwd(x, a0, p)[-1])
    assert g["dx"].shape == (n_x, m, T - 2)
    # the same as the backward of the first T - 2 steps alone
    g_short = bwd(da, fwd(x[:, :, :T - 2], a0, p)[-1])
    for k in g:
        np.testing.assert_allclose(g[k], g_short[k], rtol=1e-14, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_loss_and_grads(kind, shape, saturating):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng([6, *shape, saturating, kind == "rnn"])
    p = _params(kind, rng, n_x, n_a, n_y, saturating)
    x, a0 = rng.standard_normal((n_x, m, T)), rng.standard_normal((n_a, m))
    c0 = rng.standard_normal((n_a, m))
    targets = rng.integers(0, n_y, size=(m, T))
    if kind == "rnn":
        def f():
            return reference.rnn_loss_and_grads(x, targets, a0, p)[0]
        states = [("da0", a0)]
    else:
        def f():
            return reference.lstm_loss_and_grads(x, targets, a0, c0, p)[0]
        states = [("da0", a0), ("dc0", c0)]
    loss, grads = (reference.rnn_loss_and_grads(x, targets, a0, p) if kind == "rnn"
                   else reference.lstm_loss_and_grads(x, targets, a0, c0, p))
    assert set(grads) == {"d" + k for k in p} | {name for name, _ in states}
    # the loss is the summed cross-entropy of the forward's outputs
    y = (reference.rnn_forward(x, a0, p)[1] if kind == "rnn" else None)
    if y is not None:
        want = -sum(np.log(y[targets[j, t], j, t]) for j in range(m) for t in range(T))
        np.testing.assert_allclose(loss, want, rtol=1e-13, atol=0)
    for name, arr in [("d" + k, v) for k, v in p.items()] + states:
        assert grads[name].shape == arr.shape
        np.testing.assert_allclose(grads[name], numeric_grad(f, arr), **FD_TOL, err_msg=name)
