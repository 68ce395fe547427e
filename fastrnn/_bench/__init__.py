"""``fastrnn bench``: fastrnn, the numpy reference and its peers, side by side.

Every case (a shape of the public suite x RNN/LSTM x float64/float32) times, in one run and
on the same arrays:

- the drop-in function (``rnn_forward``/``lstm_forward``; for ``stream`` the
  ``*_cell_forward`` call), which validates and packs the weights on every call;
- the packed model (``fastrnn.RNN``/``LSTM``: ``.forward``; for ``stream`` ``.step``);
- the reference (``fastrnn.reference``, the lessons' numpy code);
- PyTorch when it is importable: ``nn.RNN(tanh)``/``nn.LSTM`` + ``nn.Linear`` + softmax
  (``nn.RNNCell``/``nn.LSTMCell`` for ``stream``) under ``torch.inference_mode()``, weights
  copied from the same parameters.  Inputs are converted to PyTorch's ``(T_x, m, n)`` layout
  and outputs back *outside* the timed region: the PyTorch time is the recurrent module, the
  linear layer and the softmax.  ``nn.LSTM`` returns only the last cell state, so LSTM
  outputs are compared on ``a``, ``y`` and ``c[:, :, -1]``.

Each callable is called once untimed (its outputs are kept for the error columns), then in
samples of ``number`` calls (``number`` grows until a sample lasts about a millisecond, so
timer overhead is negligible) until at least ``--repeat`` samples and ``--min-time`` seconds;
the reported time is the median of the per-call times of the samples, with their IQR and
minimum.  The reference gets a time budget per case (1-3 samples at the large shapes).
Threads: BLAS through ``threadpoolctl.threadpool_limits`` and ``torch.set_num_threads``.

The machine's limit is a large square ``sgemm``/``dgemm`` through ``scipy.linalg.blas`` (the
BLAS fastrnn's kernels call), measured at the start of the run with the same thread count;
each row reports its GEMM-only GFLOP/s and the fraction of that rate.

Modules: ``cases`` (shapes, parameters, inputs, FLOPs), ``kinds`` (the model kinds: RNN,
LSTM), ``peer_torch``, ``peer_ort`` (ONNX Runtime), ``impls`` (the timed
callables of a case), ``timing``, ``environment``, ``memory``, ``suite`` (one case of the
public suite), ``report`` (text tables, JSON), ``plot``, ``cli``.  The helpers are also used
by ``bench/`` (pytest-benchmark) and the tests, so the logic exists once.
"""
from fastrnn._bench.cases import (
    CELL_SHAPES, DTYPES, LARGE_SHAPES, QUICK_SHAPES, REFERENCE_BUDGET, SHAPES, Shape, flops,
    lstm_params, make_case, make_params, rnn_params)
from fastrnn._bench.kinds import KINDS, MODELS, Kind, kind
from fastrnn._bench.cli import add_arguments, main, run
from fastrnn._bench.environment import blas_info, environment
from fastrnn._bench.impls import (
    PEERS, Impl, fastrnn_impls, max_abs_diff, ort_impl, peer_impls, reference_outputs,
    torch_impl)
from fastrnn._bench.peer_ort import ONNX_GATES, build_graph, import_ort, ort_peer
from fastrnn._bench.memory import peak_memory
from fastrnn._bench.plot import plot_suite, plot_sweep
from fastrnn._bench.timing import Timing, gemm_rate, measure
from fastrnn._bench.peer_torch import (
    TORCH_GATES, build_torch, import_torch, torch_peer, torch_weights)

__all__ = [
    "Kind", "KINDS", "kind", "PEERS", "ONNX_GATES", "build_graph", "import_ort", "ort_peer",
    "ort_impl", "peer_impls", "Shape", "SHAPES", "CELL_SHAPES", "QUICK_SHAPES",
    "LARGE_SHAPES", "MODELS", "DTYPES",
    "REFERENCE_BUDGET", "TORCH_GATES", "rnn_params", "lstm_params", "make_params",
    "make_case", "flops", "torch_weights", "import_torch", "build_torch", "torch_peer",
    "Impl", "fastrnn_impls", "torch_impl", "reference_outputs", "max_abs_diff", "Timing",
    "measure", "gemm_rate", "environment", "blas_info", "peak_memory", "plot_suite",
    "plot_sweep", "run", "main",
    "add_arguments",
]
