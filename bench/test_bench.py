"""The public benchmark suite under pytest-benchmark.

One benchmark group per shape x model x dtype (``lesson-lstm-float32``, ...), holding:

- ``fastrnn``: the drop-in ``rnn_forward``/``lstm_forward``/``gru_forward``
  (``*_cell_forward`` for ``stream``);
- ``model``: ``fastrnn.RNN``/``LSTM``/``GRU`` packed once, ``.forward`` (``.step`` for
  ``stream``);
- ``reference``: ``fastrnn.reference``, the lessons' numpy code (1-3 rounds at the large
  shapes, where one call takes most of a second);
- ``torch``: ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (cells for ``stream``) + ``nn.Linear`` +
  softmax under ``torch.inference_mode()``, skipped when PyTorch is not installed;
- ``ort``: ONNX Runtime running the ONNX ``RNN``/``LSTM``/``GRU`` operator +
  MatMul/Add/Softmax (float32 only: its recurrent kernels refuse float64), skipped when
  onnxruntime is not installed.

Inputs, the implementations and the PyTorch weight conversion come from ``fastrnn._bench``
(the same code as ``python -m fastrnn bench``).  Each implementation's outputs are checked
once against the float64 reference, outside the timed calls.
"""
import functools

import numpy as np
import pytest

from fastrnn import _bench
from fastrnn._selfcheck import TOLERANCES

ROLES = ("fastrnn", "model", "reference", "torch", "ort")
CASES = [(s, m, d, r) for s in _bench.SHAPES for m in _bench.MODELS for d in _bench.DTYPES
         for r in ROLES if not (r == "ort" and d == "float64")]
# Rounds of the reference where one call takes most of a second.
REFERENCE_ROUNDS = 3


@functools.lru_cache(maxsize=2)
def _case(shape, model, dtype):
    return _bench.make_case(model, _bench.SHAPES[shape], _bench.DTYPES[dtype], seed=0)


@functools.lru_cache(maxsize=2)
def _want(shape, model, dtype):
    return _bench.reference_outputs(model, _case(shape, model, dtype),
                                    cell=shape in _bench.CELL_SHAPES)


def _impl(shape, model, dtype, role, n_threads=1):
    case = _case(shape, model, dtype)
    cell = shape in _bench.CELL_SHAPES
    if role == "torch":
        pytest.importorskip("torch", reason="PyTorch is an optional peer")
        return _bench.torch_impl(model, case, cell=cell)
    if role == "ort":
        pytest.importorskip("onnxruntime", reason="ONNX Runtime is an optional peer")
        pytest.importorskip("onnx", reason="ONNX Runtime's graphs are built with onnx")
        return _bench.ort_impl(model, case, cell=cell, threads=n_threads)
    impls = _bench.fastrnn_impls(model, case, cell=cell, n_threads=n_threads)
    return next(i for i in impls if i.role == role)


@pytest.mark.parametrize("shape,model,dtype,role", CASES,
                         ids=[f"{s}-{m}-{d}-{r}" for s, m, d, r in CASES])
def test_forward(blas_extra_info, pinned_threads, shape, model, dtype, role):
    benchmark = blas_extra_info
    benchmark.group = f"{shape}-{model}-{dtype}"
    # the model splits the batch over the pinned thread count (BLAS at one thread each)
    impl = _impl(shape, model, dtype, role, n_threads=pinned_threads)
    dims = _bench.SHAPES[shape]
    flops = _bench.flops(model, dims)
    benchmark.extra_info.update(shape=shape, dims=dims._asdict(), model=model, dtype=dtype,
                                implementation=impl.label, flops=flops)

    # correctness, once, outside the timed calls
    with impl.context():
        got = impl.outputs(impl.call())
    want = _want(shape, model, dtype)
    tol = TOLERANCES[dtype]
    for key in got.keys() & want.keys():
        np.testing.assert_allclose(np.asarray(got[key], np.float64), want[key],
                                   err_msg=f"{impl.label}: {key}", **tol)
    benchmark.extra_info["max_abs_err_vs_reference"] = _bench.max_abs_diff(got, want)

    with impl.context():
        if role == "reference" and shape in _bench.LARGE_SHAPES:
            benchmark.pedantic(impl.call, rounds=REFERENCE_ROUNDS, iterations=1,
                               warmup_rounds=0)
        else:
            benchmark(impl.call)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:   # absent with --benchmark-disable
        benchmark.extra_info["gflops_median"] = flops / stats.stats.median / 1e9
