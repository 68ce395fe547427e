"""Bad input to the backward passes and the training methods: a ValueError/TypeError/KeyError
naming the argument and the expected shape, raised before any kernel runs."""
import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn._kernels import _backward as kb

from _util import lstm_params, rnn_params

N_X, N_A, N_Y, M, T = 3, 5, 2, 4, 6


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    """Any kernel call during a validation failure is a test failure."""
    calls = []
    for name in ("rnn_loss_backward", "lstm_loss_backward"):
        real = getattr(kb, name)
        monkeypatch.setattr(kb, name, lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    yield calls


def _setup(kind, dtype=np.float64):
    rng = np.random.default_rng(0)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, N_X, N_A, N_Y, dtype)
    x = rng.standard_normal((N_X, M, T))
    a0 = rng.standard_normal((N_A, M))
    return p, x, a0


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("fast", [True, False])
def test_da_shape_disagrees_with_caches(kind, fast):
    p, x, a0 = _setup(kind)
    fwd = (fastrnn if fast else reference).__dict__[f"{kind}_forward"]
    bwd = getattr(fastrnn, f"{kind}_backward")
    caches = fwd(x, a0, p)[-1]
    with pytest.raises(ValueError, match=r"da must have shape \(n_a, m, T_x\) = \(5, 4, 6\)"):
        bwd(np.zeros((N_A + 1, M, T)), caches)
    with pytest.raises(ValueError, match=r"da must have shape \(n_a, m, T_x\) = \(5, 4, 6\)"):
        bwd(np.zeros((N_A, M + 1, T)), caches)
    with pytest.raises(ValueError, match=r"covers T_x = 7 steps but caches hold 6"):
        bwd(np.zeros((N_A, M, T + 1)), caches)
    with pytest.raises(ValueError, match=r"da must be 3-dimensional"):
        bwd(np.zeros((N_A, M)), caches)
    with pytest.raises(TypeError, match=r"da must hold real numbers"):
        bwd(np.zeros((N_A, M, T), dtype=complex), caches)
    with pytest.raises(TypeError, match=r"da must be an array"):
        bwd(None, caches)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_wrong_cache_structure(kind):
    p, x, a0 = _setup(kind)
    bwd = getattr(fastrnn, f"{kind}_backward")
    caches = getattr(reference, f"{kind}_forward")(x, a0, p)[-1]
    da = np.zeros((N_A, M, T))
    with pytest.raises(TypeError, match=r"caches must be the pair \(list of T_x cell caches"):
        bwd(da, caches[0])                                  # the list without x
    with pytest.raises(TypeError, match=r"caches must be the pair"):
        bwd(da, None)
    with pytest.raises(TypeError, match=r"caches\[0\] must be the list of cell caches"):
        bwd(da, (5, x))
    with pytest.raises(ValueError, match=r"caches\[0\]\[2\] must be a cache tuple"):
        steps = list(caches[0])
        steps[2] = steps[2][:-1]
        bwd(da, (steps, x))
    with pytest.raises(TypeError, match=r"caches\[0\]\[0\] must be a cache tuple"):
        bwd(da, ([np.zeros(3)] * T, x))
    with pytest.raises(ValueError, match=r"caches\[0\]\[3\]\[1\] \((a_prev|c_next)\) must "
                                         r"have shape \(n_a, m\) = \(5, 4\)"):
        steps = list(caches[0])
        steps[3] = steps[3][:1] + (np.zeros((N_A, M + 1)),) + steps[3][2:]
        bwd(da, (steps, x))
    with pytest.raises(KeyError, match=r"parameters is missing"):
        steps = [c[:-1] + ({k: v for k, v in p.items() if k not in ("Waa", "Wf")},)
                 for c in caches[0]]
        bwd(da, (steps, x))
    with pytest.raises(ValueError, match=r"other parameters than caches\[0\]\[0\]"):
        other = {k: v + 1 for k, v in p.items()}
        steps = list(caches[0])
        steps[1] = steps[1][:-1] + (other,)
        bwd(da, (steps, x))
    with pytest.raises(ValueError, match=r"caches hold 0"):
        bwd(da[:, :, :0], ([], x))


def test_cell_backward_bad_input():
    p, x, a0 = _setup("rnn")
    cache = reference.rnn_cell_forward(x[:, :, 0], a0, p)[2]
    with pytest.raises(ValueError, match=r"da_next must have shape \(n_a, m\) = \(5, 4\)"):
        fastrnn.rnn_cell_backward(np.zeros((N_A, M + 2)), cache)
    with pytest.raises(ValueError, match=r"cache must be a cache tuple \(a_next, a_prev, xt, "
                                         r"parameters\) of 4 items"):
        fastrnn.rnn_cell_backward(np.zeros((N_A, M)), cache[:3])
    q, x, a0 = _setup("lstm")
    cache = reference.lstm_cell_forward(x[:, :, 0], a0, a0, q)[3]
    with pytest.raises(ValueError, match=r"dc_next must have shape \(n_a, m\) = \(5, 4\)"):
        fastrnn.lstm_cell_backward(np.zeros((N_A, M)), np.zeros((N_A, 1)), cache)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_bad_targets(kind, no_kernel):
    p, x, a0 = _setup(kind)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    good = np.zeros((M, T), dtype=np.int64)
    model.loss_and_grads(x, good)
    assert no_kernel
    no_kernel.clear()
    bad = good.copy()
    bad[2, 3] = N_Y
    with pytest.raises(ValueError, match=r"targets must hold class indices in \[0, n_y\) = "
                                         r"\[0, 2\), got 2 at index \(2, 3\)"):
        model.loss_and_grads(x, bad)
    bad[2, 3] = -1
    with pytest.raises(ValueError, match=r"got -1 at index \(2, 3\)"):
        model.loss_and_grads(x, bad)
    with pytest.raises(ValueError, match=r"targets must have shape \(m, T_x\) = \(4, 6\), got "
                                         r"\(6, 4\)"):
        model.loss_and_grads(x, good.T)
    with pytest.raises(TypeError, match=r"targets must hold integer class indices .* got "
                                        r"float64"):
        model.loss_and_grads(x, good.astype(float))
    with pytest.raises(TypeError, match=r"targets must hold integer"):
        model.loss_and_grads(x, good.astype(bool))
    with pytest.raises(TypeError, match=r"targets must be an integer array"):
        model.loss_and_grads(x, None)
    with pytest.raises(ValueError, match=r"x must have shape \(n_x, m, T_x\)"):
        model.loss_and_grads(x[:2], good)
    with pytest.raises(ValueError, match=r"a0 must have shape \(n_a, m\) = \(5, 4\)"):
        model.loss_and_grads(x, good, a0[:, :2])
    assert not no_kernel
    # uint8 and int32 targets are fine
    model.loss_and_grads(x, good.astype(np.uint8))
    model.loss_and_grads(x, good.astype(np.int32).tolist())


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_bad_gradients_and_learning_rate(kind):
    p, x, a0 = _setup(kind)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    before = model.parameters()
    _, grads = model.loss_and_grads(x, np.zeros((M, T), dtype=int))
    key = "dWaa" if kind == "rnn" else "dWf"
    with pytest.raises(KeyError, match=f"grads is missing '{key}'"):
        model.apply_gradients({k: v for k, v in grads.items() if k != key}, 0.1)
    with pytest.raises(ValueError, match=rf"grads\['{key}'\] must have shape"):
        model.apply_gradients({**grads, key: grads[key][:, :1]}, 0.1)
    with pytest.raises(TypeError, match=r"grads\['dby'\] must hold real numbers"):
        model.apply_gradients({**grads, "dby": grads["dby"].astype(complex)}, 0.1)
    with pytest.raises(TypeError, match="grads must be a mapping"):
        model.apply_gradients(list(grads.values()), 0.1)
    with pytest.raises(TypeError, match="lr must be a real number"):
        model.apply_gradients(grads, "0.1")
    with pytest.raises(ValueError, match="lr must be finite"):
        model.apply_gradients(grads, float("nan"))
    with pytest.raises(ValueError, match="clip must be a positive number"):
        model.apply_gradients(grads, 0.1, clip=0)
    # nothing was changed by the refused calls
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(v, before[k])


def test_models_without_a_backward_are_refused():
    rng = np.random.default_rng(1)
    p = rnn_params(rng, N_X, N_A, N_Y, np.float64)
    x, targets = rng.standard_normal((N_X, M, T)), np.zeros((M, T), dtype=int)
    relu = fastrnn.RNN(p, nonlinearity="relu")
    with pytest.raises(ValueError, match="nonlinearity='relu'"):
        relu.loss_and_grads(x, targets)
    headless = fastrnn.RNN({k: v for k, v in p.items() if k not in ("Wya", "by")})
    with pytest.raises(ValueError, match="needs an output layer"):
        headless.loss_and_grads(x, targets)
    assert set(headless.parameters()) == {"Wax", "Waa", "ba"}
    grads = {"d" + k: np.ones_like(v) for k, v in headless.parameters().items()}
    headless.apply_gradients(grads, 0.5)
    np.testing.assert_array_equal(headless.parameters()["Waa"], p["Waa"] - 0.5)
    gru = fastrnn.GRU(_gru_params(rng))
    assert not hasattr(gru, "loss_and_grads")
    with pytest.raises(TypeError, match="not for a GRU"):
        gru.apply_gradients({}, 0.1)
    assert all(v.dtype == np.float64 for v in gru.parameters().values())


def _gru_params(rng):
    p = {}
    for g in "rzn":
        p[f"W{g}x"] = rng.standard_normal((N_A, N_X))
        p[f"W{g}a"] = rng.standard_normal((N_A, N_A))
        p[f"b{g}x"] = rng.standard_normal((N_A, 1))
        p[f"b{g}a"] = rng.standard_normal((N_A, 1))
    p["Wy"], p["by"] = rng.standard_normal((N_Y, N_A)), rng.standard_normal((N_Y, 1))
    return p
