"""fastrnn.from_keras against Keras 3 (torch backend, no TensorFlow), with mutants."""
import os
import sys

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: no TensorFlow needed
keras = pytest.importorskip("keras", reason="the Keras importer tests need keras 3")
pytest.importorskip("torch", reason="the Keras tests run keras on its torch backend")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend before these tests",
                allow_module_level=True)

import _io_oracle  # noqa: E402
import fastrnn  # noqa: E402
from fastrnn.io import _keras  # noqa: E402

# Keras 3 forces every 64-bit result to 32 bits on all backends but TensorFlow
# (keras.src.backend.common.dtypes.BIT64_TO_BIT32_DTYPE: a float64 layer's matmuls run in
# float32), so Keras itself is a float32-accurate oracle whatever the layer's dtype.
TOL = {np.float64: {"rtol": 1e-4, "atol": 1e-5}, np.float32: {"rtol": 1e-4, "atol": 1e-5}}
LAYERS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def make(kind, n_x, n_a, *, bidirectional=False, dtype=np.float64, scale=1.0, seed=0,
         **options):
    keras.utils.set_random_seed(seed)
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name  # or a policy name
    layer = LAYERS[kind](n_a, return_sequences=True, return_state=True, dtype=name, bias_initializer="random_normal",
                         **options)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, dtype=name)
    layer.build((None, None, n_x))
    for v in layer.weights:
        v.assign(_keras._to_numpy(v) * scale)
    return layer


def keras_run(layer, x, h0=None, c0=None):
    """(a (D·n_a, m, T), h_n (D, n_a, m), c_n) from keras, in fastrnn's layouts."""
    lstm = "LSTM" in type(getattr(layer, "forward_layer", layer)).__name__
    xk = np.ascontiguousarray(x.transpose(1, 2, 0))
    kwargs = {}
    if h0 is not None:
        per = [[h0[d].T] + ([c0[d].T] if lstm else []) for d in range(h0.shape[0])]
        kwargs["initial_state"] = [s for d in per for s in d]
    out = [_keras._to_numpy(o) for o in layer(xk, **kwargs)]
    a = out[0].transpose(2, 0, 1)
    states = out[1:]
    k = 2 if lstm else 1
    h = np.stack([states[d * k].T for d in range(len(states) // k)])
    c = np.stack([states[d * k + 1].T for d in range(len(states) // k)]) if lstm else None
    return a, h, c


def assert_same(got, want, dtype, what):
    for g, w, name in zip(got, want, ("a", "h_n", "c_n")):
        if w is None:
            continue
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, **TOL[dtype],
                                   err_msg=f"{what}: {name}")


def assert_differs(got, want, dtype):
    tol = TOL[dtype]
    worst = max(np.max(np.abs(np.asarray(g, np.float64) - w) - tol["rtol"] * np.abs(w))
                for g, w in zip(got, want) if w is not None)
    assert worst > tol["atol"], "the mutated map was not detected"


CASES = [("rnn", "tanh", {}), ("rnn", "relu", {}), ("lstm", "tanh", {}),
         ("gru", "tanh", {"reset_after": True}), ("gru", "tanh", {"reset_after": False})]


@pytest.mark.parametrize("kind,activation,extra", CASES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype,scale,use_bias", [(np.float64, 1.0, True),
                                                  (np.float32, 1.0, False),
                                                  (np.float64, 5.0, True)])
def test_matches_keras(kind, activation, extra, bidirectional, dtype, scale, use_bias):
    options = {"use_bias": use_bias, **extra}
    if kind == "rnn":
        options["activation"] = activation
    layer = make(kind, 3, 5, bidirectional=bidirectional, dtype=dtype, scale=scale, **options)
    rng = np.random.default_rng(0)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((3, 4, 7)).astype(dtype)
    for states in (False, True):
        h0 = rng.standard_normal((D, 5, 4)).astype(dtype) if states else None
        c0 = rng.standard_normal((D, 5, 4)).astype(dtype) if states and kind == "lstm" \
            else None
        want = keras_run(layer, x, h0, c0)
        model = fastrnn.from_keras(layer)
        assert model.dtype == dtype
        a, y, s = model.forward(x, h0=h0, c0=c0)
        assert y is None
        got = (a,) + (tuple(s) if kind == "lstm" else (s, None))
        assert_same(got, want, dtype, f"model states={states}")
        a, _, h, c = _io_oracle.run(model.spec, x, None, h0, c0)
        assert_same((a, h, c), want, dtype, f"map states={states}")
        if dtype == np.float64:
            # the model runs the map's weights in float64 to 1e-10
            for g, w in zip(got, (a, h, c)):
                if w is not None:
                    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


def _spec_of(layer):
    """The Spec from_keras builds, without building a runnable model."""
    from fastrnn.io import _model

    captured = {}

    class Capture:
        def __init__(self, spec):
            captured["spec"] = spec

    original = _model.Imported
    _model.Imported = Capture
    try:
        _keras.from_keras(layer)
    finally:
        _model.Imported = original
    return captured["spec"]


def test_long_sequence():
    layer = make("lstm", 2, 3, bidirectional=True)
    x = np.random.default_rng(1).standard_normal((2, 2, 1000))
    want = keras_run(layer, x)
    a, _, (h, c) = fastrnn.from_keras(layer).forward(x)
    assert_same((a, h, c), want, np.float64, "T=1000")


MUTANTS = {
    "lstm gates i,f swapped": ("lstm", lambda mp: mp.setitem(
        _keras.KERAS_GATES, "lstm", ("f", "i", "c", "o"))),
    "gru gates z,r swapped": ("gru", lambda mp: mp.setitem(
        _keras.KERAS_GATES, "gru", ("r", "z", "n"))),
    "lstm gates c,o swapped": ("lstm", lambda mp: mp.setitem(
        _keras.KERAS_GATES, "lstm", ("i", "f", "o", "c"))),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutants_fail(name, monkeypatch):
    kind, patch = MUTANTS[name]
    layer = make(kind, 4, 4, bidirectional=True, scale=1.5)
    x = np.random.default_rng(2).standard_normal((4, 3, 6))
    want = keras_run(layer, x)
    patch(monkeypatch)
    a, _, h, c = _io_oracle.run(_spec_of(layer), x)
    assert_differs((a, h, c), want, np.float64)


def test_mutant_recurrent_bias_dropped(monkeypatch):
    layer = make("gru", 3, 4)
    x = np.random.default_rng(3).standard_normal((3, 2, 5))
    want = keras_run(layer, x)
    original = _keras.gates_from
    monkeypatch.setattr(_keras, "gates_from", lambda kind, K, U, b, dtype: original(
        kind, K, U, None if b is None else b[0], dtype))
    a, _, h, c = _io_oracle.run(_spec_of(layer), x)
    assert_differs((a, h, c), want, np.float64)


@pytest.mark.parametrize("reset_after", [False, True])
def test_mutant_other_gru_formulation(reset_after, monkeypatch):
    """Reading a GRU as the other reset_after formulation must fail."""
    layer = make("gru", 3, 4, reset_after=reset_after, scale=2.0)
    x = np.random.default_rng(3).standard_normal((3, 2, 5))
    want = keras_run(layer, x)
    spec = _spec_of(layer)
    assert spec.reset_after is reset_after
    spec.reset_after = not reset_after
    a, _, h, c = _io_oracle.run(spec, x)
    assert_differs((a, h, c), want, np.float64)


def test_mutant_backward_weights_forgotten(monkeypatch):
    layer = make("lstm", 3, 4, bidirectional=True)
    x = np.random.default_rng(4).standard_normal((3, 2, 5))
    want = keras_run(layer, x)
    original = _keras._weights
    monkeypatch.setattr(_keras, "_weights", lambda sub: original(layer.forward_layer))
    a, _, h, c = _io_oracle.run(_spec_of(layer), x)
    assert_differs((a, h, c), want, np.float64)


def test_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="recurrent_activation='hard_sigmoid'"):
        fastrnn.from_keras(make("lstm", 3, 4, recurrent_activation="hard_sigmoid"))
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        fastrnn.from_keras(make("rnn", 3, 4, activation="sigmoid"))
    with pytest.raises(ValueError, match="go_backwards"):
        fastrnn.from_keras(make("lstm", 3, 4, go_backwards=True))
    bi = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True),
                                    merge_mode="sum")
    bi.build((None, None, 3))
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        fastrnn.from_keras(bi)
    with pytest.raises(ValueError, match="computes in float16"):
        fastrnn.from_keras(make("gru", 3, 4, dtype="mixed_float16"))
    with pytest.raises(TypeError, match="SimpleRNN, LSTM, GRU or Bidirectional"):
        fastrnn.from_keras(keras.layers.Dense(3))


def test_dropout_accepted():
    layer = make("lstm", 3, 4, dropout=0.3, recurrent_dropout=0.2)
    x = np.random.default_rng(5).standard_normal((3, 2, 5))
    want = keras_run(layer, x)  # a call outside training does no dropout
    a, _, (h, c) = fastrnn.from_keras(layer).forward(x)
    assert_same((a, h, c), want, np.float64, "dropout")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_mask_is_lengths(kind, bidirectional):
    """A Keras mask over trailing padding is forward's lengths: the same states at every
    valid step and the same final states (Keras repeats the last valid output over the
    padding of a one-direction layer, where fastrnn gives 0)."""
    layer = make(kind, 3, 4, bidirectional=bidirectional, dtype=np.float32)
    x = np.random.default_rng(8).standard_normal((3, 3, 6)).astype(np.float32)
    L = np.array([6, 2, 4])
    valid = np.arange(6)[None, :] < L[:, None]
    out = [_keras._to_numpy(o) for o in layer(np.ascontiguousarray(x.transpose(1, 2, 0)),
                                               mask=valid)]
    a, _, state = fastrnn.from_keras(layer).forward(x, lengths=L)
    np.testing.assert_allclose(a[:, valid], out[0].transpose(2, 0, 1)[:, valid],
                               **TOL[np.float32])
    assert np.all(a[:, ~valid] == 0)
    h_n = state[0] if kind == "lstm" else state
    k = 2 if kind == "lstm" else 1
    for d in range(2 if bidirectional else 1):
        np.testing.assert_allclose(h_n[d], out[1 + d * k].T, **TOL[np.float32])
