"""Models round-trip through every pickle protocol and copy.deepcopy at their own size, and
run after unpickling whatever alignment and byte order their buffers arrive in (the routes
Dask and multiprocessing use: protocol 5 hands out-of-band buffers over at any address)."""
import copy
import pickle

import numpy as np
import pytest

import fastrnn
from _util import lstm_params, rnn_params

MODELS = {"rnn": (fastrnn.RNN, rnn_params), "lstm": (fastrnn.LSTM, lstm_params)}
DTYPES = (np.float32, np.float64)


def make(kind, dtype, n_x=7, n_a=5, n_y=3, seed=0):
    cls, params = MODELS[kind]
    return cls(params(np.random.default_rng(seed), n_x, n_a, n_y), dtype=dtype)


def inputs(model, m=4, T=6, seed=1):
    return np.random.default_rng(seed).standard_normal((model.n_x, m, T))


def assert_same_results(model, clone, x):
    """Bit-identical results: the clone holds the same weights and runs the same kernels."""
    for want, got in zip(model.forward(x), clone.forward(x)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    state, y = model.step(x[:, :, 0])
    state2, y2 = clone.step(x[:, :, 0])
    np.testing.assert_array_equal(np.asarray(state2), np.asarray(state))
    np.testing.assert_array_equal(y2, y)


def owners(model):
    """The distinct memory owners of a model's packed weights."""
    seen = {}
    for name in type(model._packed).__slots__:
        value = getattr(model._packed, name)
        for arr in value if isinstance(value, tuple) else (value,):
            if not isinstance(arr, np.ndarray):
                continue
            while isinstance(arr.base, np.ndarray):
                arr = arr.base
            seen[id(arr)] = arr
    return list(seen.values())


def weight_bytes(model):
    return sum(a.nbytes for a in owners(model))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_protocol_round_trips_at_the_models_own_size(kind, dtype, protocol):
    model = make(kind, dtype, n_x=30, n_a=40, n_y=5)
    x = inputs(model)
    model.forward(x)  # fills the per-thread work buffers, which are not pickled
    data = pickle.dumps(model, protocol=protocol)
    clone = pickle.loads(data)
    assert repr(clone) == repr(model)
    assert_same_results(model, clone, x)
    # the pickle holds each weight once: no more than the weights themselves pickled by the
    # same protocol (protocols < 3 inflate bytes as latin-1 text, whatever holds them)
    alone = len(pickle.dumps([np.array(a) for a in owners(model)], protocol=protocol))
    assert len(data) < alone + 2048
    # and the clone holds them once: its gate matrices are views of its one block again
    assert weight_bytes(clone) == weight_bytes(model)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_gate_views_stay_views_of_one_block(dtype):
    model = make("lstm", dtype, n_x=6, n_a=4, n_y=2)
    for clone in (pickle.loads(pickle.dumps(model, protocol=2)), copy.deepcopy(model)):
        block, bias = clone._packed.blocks
        assert len(owners(clone)) == len(owners(model)) == 4  # W block, b block, Wy, by
        for k, (w, b) in enumerate(zip(clone._packed.w, clone._packed.b)):
            assert np.shares_memory(w, block) and np.shares_memory(b, bias)
            np.testing.assert_array_equal(w, block[4 * k:4 * (k + 1)])
        assert not np.shares_memory(block, model._packed.blocks[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_deepcopy_is_independent_and_same_size(kind, dtype):
    model = make(kind, dtype)
    x = inputs(model)
    clone = copy.deepcopy(model)
    assert_same_results(model, clone, x)
    assert weight_bytes(clone) == weight_bytes(model)
    for a, b in zip(owners(model), owners(clone)):
        assert not np.shares_memory(a, b)
    copy.copy(model).forward(x)  # a shallow copy shares the weights and runs too


def out_of_band(model, shift):
    """Pickle with protocol 5 and hand the buffers back ``shift`` bytes off their alignment,
    read-only (as a received network frame would be)."""
    buffers = []
    data = pickle.dumps(model, protocol=5, buffer_callback=buffers.append)
    assert buffers, "protocol 5 should move the weights out of band"
    moved = []
    for buf in buffers:
        raw = bytes(buf.raw())
        moved.append(memoryview(b"\0" * shift + raw)[shift:])
    return pickle.loads(data, buffers=moved)


@pytest.mark.parametrize("shift", [0, 1, 2, 4, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_runs_after_out_of_band_buffers_arrive_at_any_alignment(kind, dtype, shift):
    model = make(kind, dtype, n_x=9, n_a=6, n_y=2)
    clone = out_of_band(model, shift)
    assert_same_results(model, clone, inputs(model))
    assert weight_bytes(clone) == weight_bytes(model)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_runs_after_buffers_arrive_in_the_other_byte_order(kind):
    """A pickle written on a machine of the other endianness holds swapped arrays."""
    model = make(kind, np.float64)
    rebuild, (roots, fields) = model._packed.__reduce__()
    swapped = [r.astype(r.dtype.newbyteorder()) for r in roots]
    assert not swapped[0].dtype.isnative
    clone = copy.copy(model)
    clone._packed = rebuild(swapped, fields)
    assert_same_results(model, clone, inputs(model))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_pickled_model_runs_with_threads(kind):
    model = pickle.loads(pickle.dumps(make(kind, np.float64, n_x=8, n_a=16, n_y=4)))
    x = inputs(model, m=64, T=3)
    for want, got in zip(model.forward(x), model.forward(x, n_threads=2)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
