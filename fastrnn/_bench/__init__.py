"""``fastrnn bench``: fastrnn, the numpy reference and its peers, side by side.

Every case of the public suite (a shape x a model kind x float64/float32) checks, then
times, on the same arrays:

- the drop-in function (``rnn_forward``/``lstm_forward``/``gru_forward``; for ``stream`` the
  ``*_cell_forward`` call), which validates and packs the weights on every call;
- the packed model (``fastrnn.RNN``/``LSTM``/``GRU``: ``.forward``; for ``stream`` ``.step``);
- the reference (``fastrnn.reference``, the lessons' numpy code);
- PyTorch when it is importable: ``nn.RNN(tanh)``/``nn.LSTM``/``nn.GRU`` + ``nn.Linear`` +
  softmax (the ``*Cell`` modules for ``stream``) under ``torch.inference_mode()``;
- ONNX Runtime when onnx and onnxruntime are importable (float32 only): the ONNX
  ``RNN``/``LSTM``/``GRU`` operator + MatMul/Add/Softmax, one graph, sequential execution.

The peers get weights converted from the same parameters; their inputs are converted to
their ``(T_x, m, n)`` layout outside the timed region.  Every output is compared with the
float64 reference first (a peer or a fastrnn call beyond a sanity bound is a MISMATCH: not
timed, exit status 1).  fastrnn and the peers are then timed in interleaved rounds (one
sample of each per round, samples of about ``--min-time / --repeat`` seconds), so every
ratio is paired by round and comes with its spread (min-max over the rounds); the
reference joins the first rounds within its time budget.  Threads: BLAS through
``threadpoolctl.threadpool_limits``, ``torch.set_num_threads``, ONNX Runtime's
``intra_op_num_threads``.

The machine's limit is a large square ``sgemm``/``dgemm`` through ``scipy.linalg.blas`` (the
BLAS fastrnn's kernels call), measured at the start of the run with the same thread count;
each row reports its GEMM-only GFLOP/s and the fraction of that rate.  ``--sweep`` runs a
grid of hidden sizes x batch sizes instead of the suite, with the floor of a small-batch
step (a read of the recurrent block from cache) measured in the same run.

Modules: ``cases`` (shapes, parameters, inputs, FLOPs), ``kinds`` (the model kinds, one
table), ``workloads`` (what a case times, one table), ``peer_torch``, ``peer_ort``,
``impls`` (the timed callables of a case), ``timing`` (interleaved rounds, ratios, the
floor, GEMM rates), ``environment``, ``memory``, ``suite`` (check and time one case),
``sweep``, ``report`` (text tables, JSON), ``plot``, ``cli``.  The helpers are also used by
``bench/`` (pytest-benchmark) and the tests, so the logic exists once.
"""
from fastrnn._bench.cases import (
    CELL_SHAPES, DTYPES, LARGE_SHAPES, QUICK_SHAPES, REFERENCE_BUDGET, SHAPES, Shape, flops,
    gru_params, lstm_params, make_case, make_params, rnn_params)
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
from fastrnn._bench.workloads import WORKLOADS, Workload
from fastrnn._bench.peer_torch import (
    TORCH_GATES, build_torch, import_torch, torch_peer, torch_weights)

__all__ = [
    "Kind", "KINDS", "kind", "Workload", "WORKLOADS", "PEERS", "ONNX_GATES", "build_graph",
    "import_ort", "ort_peer", "ort_impl", "peer_impls", "Shape", "SHAPES", "CELL_SHAPES",
    "QUICK_SHAPES", "LARGE_SHAPES", "MODELS", "DTYPES", "REFERENCE_BUDGET", "TORCH_GATES",
    "rnn_params", "lstm_params", "gru_params", "make_params", "make_case", "flops",
    "torch_weights",
    "import_torch", "build_torch", "torch_peer", "Impl", "fastrnn_impls", "torch_impl",
    "reference_outputs", "max_abs_diff", "Timing", "measure", "gemm_rate", "environment",
    "blas_info", "peak_memory", "plot_suite", "plot_sweep", "run", "main", "add_arguments",
]
