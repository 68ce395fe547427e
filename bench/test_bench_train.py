"""Training benchmarks under pytest-benchmark: backward passes and whole-model gradients.

One group per shape x model x dtype (``train-mid-lstm-float32``, ...), holding the roles of
``fastrnn._train_bench.ROLES``: the drop-in forward (for the backward/forward ratio), the
drop-in backward on fastrnn's own caches, the model's ``loss_and_grads``, the lessons' numpy
backward loop (one round at the large shapes) and PyTorch's forward + ``loss.backward()``
(skipped without PyTorch).  Timings only: nothing here asserts a speed.
"""
import functools

import pytest

from fastrnn import _train_bench

DTYPES = ("float64", "float32")
LARGE = ("deepbench", "mid", "fastrnns", "big")
CASES = [(s, m, d, r) for s in _train_bench.SUITE for m in ("rnn", "lstm") for d in DTYPES
         for r in _train_bench.ROLES]


@functools.lru_cache(maxsize=1)
def _calls(shape, model, dtype):
    return _train_bench.make_calls(model, _train_bench.SUITE[shape], dtype)


@pytest.mark.parametrize("shape,model,dtype,role", CASES,
                         ids=[f"{s}-{m}-{d}-{r}" for s, m, d, r in CASES])
def test_train(benchmark, pinned_threads, shape, model, dtype, role):
    calls = _calls(shape, model, dtype)
    if role not in calls:
        pytest.skip(f"{role} is not available here (PyTorch not installed)")
    benchmark.group = f"train-{shape}-{model}-{dtype}"
    benchmark.extra_info.update(shape=shape, dims=_train_bench.SUITE[shape], model=model,
                                dtype=dtype, role=role, threads=pinned_threads)
    if role == "reference_backward" and shape in LARGE:
        benchmark.pedantic(calls[role], rounds=1, iterations=1, warmup_rounds=0)
    else:
        benchmark(calls[role])
