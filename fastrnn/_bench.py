"""``python -m fastrnn bench``: fastrnn, the numpy reference and PyTorch, side by side.

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
each row reports its GEMM-only GFLOP/s (DESIGN §6) and the fraction of that rate.

The helpers here (parameter generators, the PyTorch weight conversion and peer builders, the
timer) are also used by ``bench/`` (pytest-benchmark) and the tests, so the logic exists once.
"""
import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import namedtuple

import numpy as np

import fastrnn
from fastrnn import reference

__all__ = [
    "Shape", "SHAPES", "CELL_SHAPES", "QUICK_SHAPES", "LARGE_SHAPES", "MODELS", "DTYPES",
    "TORCH_GATES", "rnn_params", "lstm_params", "make_params", "make_case", "flops",
    "torch_weights", "import_torch", "build_torch", "torch_peer", "fastrnn_impls",
    "reference_outputs", "max_abs_diff", "measure", "gemm_rate", "environment",
    "peak_memory", "run", "main", "add_arguments",
]

# ------------------------------------------------------------------ the public suite

Shape = namedtuple("Shape", "n_x n_a n_y m T_x")

# DESIGN §6 (name: n_x, n_a, n_y, m, T_x)
SHAPES = {
    "lesson": Shape(3, 5, 2, 10, 4),          # the lessons' test size: pure overhead
    "charlm": Shape(27, 100, 27, 1, 50),      # a character-level language model
    "stream": Shape(64, 64, 64, 1, 1),        # one cell step per call: latency
    "deepbench": Shape(512, 512, 64, 4, 25),  # a DeepBench inference-server size
    "mid": Shape(128, 256, 128, 32, 100),
    "fastrnns": Shape(512, 512, 128, 64, 100),  # PyTorch's own RNN benchmark size
    "big": Shape(512, 1024, 512, 64, 25),
}
# Shapes timed through the single-step calls (*_cell_forward, .step, nn.*Cell).
CELL_SHAPES = frozenset({"stream"})
QUICK_SHAPES = ("lesson", "charlm", "stream", "deepbench", "mid")
# Shapes where one reference call takes most of a second: it gets a few samples only.
LARGE_SHAPES = frozenset({"fastrnns", "big"})
MODELS = ("rnn", "lstm")
DTYPES = {"float64": np.float64, "float32": np.float32}

# Seconds of reference calls per case (after its untimed first call); at least one sample.
REFERENCE_BUDGET = 2.5
# A sample groups calls until it lasts about this long (timer overhead is ~0.1 us a call).
SAMPLE_TARGET = 1e-3
MAX_SAMPLES = 2000


# ------------------------------------------------------------------ inputs

def rnn_params(rng, n_x, n_a, n_y, dtype=np.float64, scale=None, bias=1.0):
    """Random basic-RNN ``parameters``.

    Weights are N(0, scale^2) with ``scale = 1/sqrt(n_a + n_x)`` by default (a contractive
    recurrence: long sequences stay well conditioned); biases N(0, bias^2).

    Returns
    -------
    dict
        ``Wax`` (n_a, n_x), ``Waa`` (n_a, n_a), ``Wya`` (n_y, n_a), ``ba`` (n_a, 1),
        ``by`` (n_y, 1), all of ``dtype``.
    """
    s = 1.0 / math.sqrt(max(n_a + n_x, 1)) if scale is None else scale
    p = {
        "Wax": rng.standard_normal((n_a, n_x)) * s,
        "Waa": rng.standard_normal((n_a, n_a)) * s,
        "Wya": rng.standard_normal((n_y, n_a)) * s,
        "ba": rng.standard_normal((n_a, 1)) * bias,
        "by": rng.standard_normal((n_y, 1)) * bias,
    }
    return {k: v.astype(dtype) for k, v in p.items()}


def lstm_params(rng, n_x, n_a, n_y, dtype=np.float64, scale=None, bias=1.0):
    """Random LSTM ``parameters``, scaled as in :func:`rnn_params`.

    Returns
    -------
    dict
        ``Wf``, ``Wi``, ``Wc``, ``Wo`` (n_a, n_a + n_x); ``bf``, ``bi``, ``bc``, ``bo``
        (n_a, 1); ``Wy`` (n_y, n_a); ``by`` (n_y, 1), all of ``dtype``.
    """
    s = 1.0 / math.sqrt(max(n_a + n_x, 1)) if scale is None else scale
    p = {}
    for g in "fico":
        p["W" + g] = rng.standard_normal((n_a, n_a + n_x)) * s
        p["b" + g] = rng.standard_normal((n_a, 1)) * bias
    p["Wy"] = rng.standard_normal((n_y, n_a)) * s
    p["by"] = rng.standard_normal((n_y, 1)) * bias
    return {k: v.astype(dtype) for k, v in p.items()}


def make_params(model, rng, n_x, n_a, n_y, dtype=np.float64, **kwargs):
    """:func:`rnn_params` or :func:`lstm_params` by ``model`` ("rnn" or "lstm")."""
    return (rnn_params if model == "rnn" else lstm_params)(rng, n_x, n_a, n_y, dtype, **kwargs)


def make_case(model, shape, dtype, seed=0):
    """The arrays of one benchmark case.

    Returns
    -------
    dict
        ``parameters``; ``x`` (n_x, m, T_x); ``a0`` (n_a, m); ``c0`` (n_a, m) (LSTM, for the
        single-step calls; the sequence calls start from zero cell state); all of ``dtype``,
        C-contiguous.  ``xt`` (n_x, m) is ``x[:, :, 0]`` as its own array.
    """
    shape = Shape(*shape)
    rng = np.random.default_rng(seed)
    params = make_params(model, rng, shape.n_x, shape.n_a, shape.n_y, dtype)
    x = rng.standard_normal((shape.n_x, shape.m, shape.T_x)).astype(dtype)
    a0 = (0.5 * rng.standard_normal((shape.n_a, shape.m))).astype(dtype)
    case = {"parameters": params, "x": x, "a0": a0, "xt": np.ascontiguousarray(x[:, :, 0])}
    if model == "lstm":
        case["c0"] = (0.5 * rng.standard_normal((shape.n_a, shape.m))).astype(dtype)
    return case


def flops(model, shape):
    """GEMM FLOPs of one forward pass (DESIGN §6), 2 per multiply-add.

    ``2*G*n_a*(n_a + n_x)*m*T_x + 2*n_y*n_a*m*T_x`` with G = 1 (RNN) or 4 (LSTM).
    """
    n_x, n_a, n_y, m, T_x = shape
    G = 1 if model == "rnn" else 4
    return 2 * G * n_a * (n_a + n_x) * m * T_x + 2 * n_y * n_a * m * T_x


# ------------------------------------------------------------------ PyTorch peer

# PyTorch stacks the LSTM gates as i, f, g, o (g is the candidate, our "c").
TORCH_GATES = ("i", "f", "c", "o")


def torch_weights(model, parameters):
    """``parameters`` in PyTorch's layout, as numpy arrays (no torch needed).

    RNN: ``weight_ih = Wax``, ``weight_hh = Waa``.  LSTM: the four ``(n_a, n_a + n_x)``
    gate matrices act on ``[a_prev; xt]``, so their first n_a columns are the recurrent
    block and the rest the input block; each block is stacked in PyTorch's gate order
    i, f, g, o into ``(4 n_a, n_x)`` / ``(4 n_a, n_a)``.  PyTorch adds two biases; the
    whole bias goes into ``bias_ih`` and ``bias_hh`` is zeros.

    Returns
    -------
    dict
        ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` (for ``nn.RNN``/``nn.LSTM``
        and the cells) and ``weight_out`` (n_y, n_a), ``bias_out`` (n_y,) for ``nn.Linear``.
    """
    p = {k: np.asarray(v) for k, v in parameters.items()}
    if model == "rnn":
        n_a = p["Waa"].shape[0]
        return {"weight_ih": p["Wax"], "weight_hh": p["Waa"], "bias_ih": p["ba"].reshape(-1),
                "bias_hh": np.zeros(n_a, dtype=p["ba"].dtype), "weight_out": p["Wya"],
                "bias_out": p["by"].reshape(-1)}
    n_a = p["Wy"].shape[1]
    mats = [p["W" + g] for g in TORCH_GATES]
    bias = np.concatenate([p["b" + g].reshape(-1) for g in TORCH_GATES])
    return {"weight_ih": np.concatenate([w[:, n_a:] for w in mats]),
            "weight_hh": np.concatenate([w[:, :n_a] for w in mats]),
            "bias_ih": bias, "bias_hh": np.zeros_like(bias),
            "weight_out": p["Wy"], "bias_out": p["by"].reshape(-1)}


def import_torch():
    """``torch``, or None when it is not installed (it is an optional peer)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def build_torch(model, parameters, dtype, cell=False):
    """PyTorch modules holding ``parameters``: (recurrent module, ``nn.Linear``).

    ``nn.RNN(nonlinearity="tanh")``/``nn.LSTM``, or ``nn.RNNCell``/``nn.LSTMCell`` when
    ``cell``; float64 modules are made with ``.double()``.  In eval mode.
    """
    torch = import_torch()
    if torch is None:
        raise ImportError("PyTorch is not installed")
    w = torch_weights(model, parameters)
    n_a, n_x = w["weight_ih"].shape[0] // (1 if model == "rnn" else 4), w["weight_ih"].shape[1]
    n_y = w["weight_out"].shape[0]
    if model == "rnn":
        core = (torch.nn.RNNCell(n_x, n_a, bias=True, nonlinearity="tanh") if cell else
                torch.nn.RNN(n_x, n_a, num_layers=1, nonlinearity="tanh", bias=True))
    else:
        core = torch.nn.LSTMCell(n_x, n_a, bias=True) if cell else torch.nn.LSTM(n_x, n_a)
    linear = torch.nn.Linear(n_a, n_y, bias=True)
    if np.dtype(dtype) == np.float64:
        core, linear = core.double(), linear.double()
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(core, name + suffix).copy_(torch.tensor(np.asarray(w[name], np.float64)))
        linear.weight.copy_(torch.tensor(np.asarray(w["weight_out"], np.float64)))
        linear.bias.copy_(torch.tensor(np.asarray(w["bias_out"], np.float64)))
    return core.eval(), linear.eval()


def torch_peer(model, parameters, dtype, x, a0, c0=None, *, cell=False):
    """A PyTorch forward pass on fastrnn's arrays: ``(call, outputs)``.

    ``call()`` runs the recurrent module, ``nn.Linear`` and the softmax (call it under
    ``torch.inference_mode()``); ``outputs(call())`` converts its result to fastrnn's layout:
    a dict with ``a``, ``y`` and, for the LSTM, ``c`` (cell: the new cell state) or ``c_T``
    (sequence: the last cell state, all ``nn.LSTM`` returns).  The input conversion to
    PyTorch's layout is done here, once, outside ``call``.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x), or (n_x, m) when ``cell``
    a0 : ndarray (n_a, m)
        Initial hidden state.
    c0 : ndarray (n_a, m), optional
        LSTM cell only: the previous cell state (sequences start from zeros, as
        ``lstm_forward`` does).
    """
    torch = import_torch()
    core, linear = build_torch(model, parameters, dtype, cell)
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32

    def tensor(arr):
        return torch.tensor(np.ascontiguousarray(arr), dtype=tdtype)

    def arr(t):
        return t.detach().numpy()

    if cell:
        xt, h = tensor(np.asarray(x).T), tensor(np.asarray(a0).T)
        if model == "rnn":
            def call():
                h1 = core(xt, h)
                return h1, None, torch.softmax(linear(h1), dim=1)
        else:
            c = tensor(np.asarray(c0).T)

            def call():
                h1, c1 = core(xt, (h, c))
                return h1, c1, torch.softmax(linear(h1), dim=1)

        def outputs(res):
            out = {"a": arr(res[0]).T, "y": arr(res[2]).T}
            if res[1] is not None:
                out["c"] = arr(res[1]).T
            return out
        return call, outputs

    xs = tensor(np.asarray(x).transpose(2, 1, 0))   # (T_x, m, n_x)
    h0 = tensor(np.asarray(a0).T)[None]             # (1, m, n_a)
    if model == "rnn":
        def call():
            out, _ = core(xs, h0)
            return out, None, torch.softmax(linear(out), dim=-1)
    else:
        zeros = torch.zeros_like(h0)

        def call():
            out, (_, c_n) = core(xs, (h0, zeros))
            return out, c_n, torch.softmax(linear(out), dim=-1)

    def outputs(res):
        out = {"a": arr(res[0]).transpose(2, 1, 0), "y": arr(res[2]).transpose(2, 1, 0)}
        if res[1] is not None:
            out["c_T"] = arr(res[1][0]).T
        return out
    return call, outputs


# ------------------------------------------------------------------ the timed callables

class Impl:
    """One timed implementation of a case.

    Attributes
    ----------
    role : "fastrnn" (drop-in function), "model", "reference" or "torch"
    label : what is called, for the tables
    call : callable with no arguments
    outputs : callable mapping ``call()``'s result to a dict of arrays in fastrnn's layout
    context : callable returning the context manager the calls run in
    """

    __slots__ = ("role", "label", "call", "outputs", "context")

    def __init__(self, role, label, call, outputs, context=contextlib.nullcontext):
        self.role, self.label, self.call, self.outputs = role, label, call, outputs
        self.context = context


def _seq_outputs(model):
    def rnn(res):
        return {"a": res[0], "y": res[1]}

    def lstm(res):
        return {"a": res[0], "y": res[1], "c": res[2], "c_T": res[2][:, :, -1]}
    return rnn if model == "rnn" else lstm


def _reference_context():
    # the lessons' sigmoid overflows harmlessly for large negative input
    return np.errstate(over="ignore", under="ignore")


def fastrnn_impls(model, case, cell=False, n_threads=1):
    """The fastrnn and reference implementations of a case: a list of :class:`Impl`.

    Sequence shapes: the drop-in ``*_forward``, the packed model's ``.forward`` (packed
    here, outside the timed call; ``n_threads`` batch-parallel threads, BLAS held at one
    thread per worker when ``n_threads > 1``) and ``reference.*_forward``.  ``cell``: the
    drop-in ``*_cell_forward``, the model's ``.step`` and ``reference.*_cell_forward``.
    """
    p, x, a0, xt = case["parameters"], case["x"], case["a0"], case["xt"]
    Model = fastrnn.RNN if model == "rnn" else fastrnn.LSTM
    net = Model(p)
    name = Model.__name__
    model_ctx = contextlib.nullcontext
    if n_threads > 1:
        from threadpoolctl import threadpool_limits

        def model_ctx():
            return threadpool_limits(1)
    if not cell:
        fn, ref = getattr(fastrnn, model + "_forward"), getattr(reference, model + "_forward")
        out = _seq_outputs(model)
        return [
            Impl("fastrnn", f"fastrnn.{model}_forward", lambda: fn(x, a0, p), out),
            Impl("model", f"fastrnn.{name}.forward"
                 + (f"(n_threads={n_threads})" if n_threads > 1 else ""),
                 lambda: net.forward(x, a0, n_threads=n_threads), out, model_ctx),
            Impl("reference", f"reference.{model}_forward", lambda: ref(x, a0, p), out,
                 _reference_context),
        ]
    fn = getattr(fastrnn, model + "_cell_forward")
    ref = getattr(reference, model + "_cell_forward")
    if model == "rnn":
        def out(res):
            return {"a": res[0], "y": res[1]}
        return [
            Impl("fastrnn", "fastrnn.rnn_cell_forward", lambda: fn(xt, a0, p), out),
            Impl("model", "fastrnn.RNN.step", lambda: net.step(xt, a0), out),
            Impl("reference", "reference.rnn_cell_forward", lambda: ref(xt, a0, p), out,
                 _reference_context),
        ]
    c0 = case["c0"]

    def out(res):
        return {"a": res[0], "c": res[1], "y": res[2]}

    def step_out(res):
        return {"a": res[0][0], "c": res[0][1], "y": res[1]}
    return [
        Impl("fastrnn", "fastrnn.lstm_cell_forward", lambda: fn(xt, a0, c0, p), out),
        Impl("model", "fastrnn.LSTM.step", lambda: net.step(xt, (a0, c0)), step_out),
        Impl("reference", "reference.lstm_cell_forward", lambda: ref(xt, a0, c0, p), out,
             _reference_context),
    ]


def torch_impl(model, case, cell=False):
    """The PyTorch :class:`Impl` of a case (PyTorch must be importable)."""
    torch = import_torch()
    dtype = case["x"].dtype
    if cell:
        call, outputs = torch_peer(model, case["parameters"], dtype, case["xt"], case["a0"],
                                   case.get("c0"), cell=True)
        label = "torch nn." + ("RNNCell" if model == "rnn" else "LSTMCell")
    else:
        call, outputs = torch_peer(model, case["parameters"], dtype, case["x"], case["a0"])
        label = "torch nn." + ("RNN" if model == "rnn" else "LSTM")
    return Impl("torch", label + "+Linear", call, outputs, torch.inference_mode)


def reference_outputs(model, case, cell=False):
    """The float64 reference's outputs for a case (the baseline of the error columns)."""
    p = {k: np.asarray(v, np.float64) for k, v in case["parameters"].items()}
    f = {k: np.asarray(case[k], np.float64) for k in ("x", "xt", "a0", "c0") if k in case}
    with _reference_context():
        if not cell:
            res = getattr(reference, model + "_forward")(f["x"], f["a0"], p)
            return _seq_outputs(model)(res)
        if model == "rnn":
            res = reference.rnn_cell_forward(f["xt"], f["a0"], p)
            return {"a": res[0], "y": res[1]}
        res = reference.lstm_cell_forward(f["xt"], f["a0"], f["c0"], p)
        return {"a": res[0], "c": res[1], "y": res[2]}


def max_abs_diff(got, want):
    """Largest |got - want| over the outputs the two dicts share (None if none)."""
    worst = None
    for key in got.keys() & want.keys():
        g = np.asarray(got[key], np.float64)
        w = np.asarray(want[key], np.float64)
        if g.shape != w.shape:
            return math.inf
        d = float(np.max(np.abs(g - w), initial=0.0)) if g.size else 0.0
        if math.isnan(d):
            d = math.inf
        worst = d if worst is None else max(worst, d)
    return worst


# ------------------------------------------------------------------ timing

class Timing:
    """Per-call times (seconds) of the samples of one measurement."""

    __slots__ = ("times", "number")

    def __init__(self, times, number):
        self.times, self.number = list(times), number

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def min(self):
        return min(self.times)

    @property
    def quartiles(self):
        if len(self.times) < 2:
            return self.times[0], self.times[0]
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def iqr(self):
        q1, q3 = self.quartiles
        return q3 - q1


def measure(fn, *, repeat=5, min_time=0.2, budget=None, context=contextlib.nullcontext,
            sample_target=SAMPLE_TARGET, max_samples=MAX_SAMPLES):
    """Time ``fn()``: adaptive repeats, per-call times of each sample.

    Calls are grouped into samples of ``number`` calls, ``number`` doubling (from a first
    timed call, which also warms up) until a sample lasts ``sample_target`` seconds.  Then
    samples are taken until there are at least ``repeat`` of them and they total at least
    ``min_time`` seconds; ``budget`` (seconds) caps that total for slow callables (at least
    one sample).  The garbage collector is off while timing, as in ``timeit``.

    Returns
    -------
    Timing
    """
    clock = time.perf_counter
    with context():
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            number = 1
            while True:
                t0 = clock()
                for _ in range(number):
                    fn()
                dt = clock() - t0
                if dt >= sample_target or number >= 1 << 20:
                    break
                number = max(2 * number, int(number * sample_target / max(dt, 1e-9)))
            n = max(repeat, math.ceil(min_time / dt))
            if budget is not None:
                n = min(n, max(1, int(budget // dt)))
            n = max(1, min(n, max_samples))
            times = []
            for _ in range(n):
                t0 = clock()
                for _ in range(number):
                    fn()
                times.append((clock() - t0) / number)
        finally:
            if gc_was_enabled:
                gc.enable()
    return Timing(times, number)


def torch_gemm_rate(torch, dtype, n, repeat=5):
    """PyTorch's own matmul rate (GFLOP/s, its bundled BLAS: MKL on x86 wheels), for
    comparison with :func:`gemm_rate`: median of ``repeat`` n x n x n ``torch.mm`` calls."""
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(n, n, generator=gen, dtype=tdtype)
    b = torch.randn(n, n, generator=gen, dtype=tdtype)
    c = torch.empty(n, n, dtype=tdtype)
    with torch.inference_mode():
        torch.mm(a, b, out=c)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def _torch_backend(torch):
    """PyTorch's BLAS and CPU capability (its MKL is linked in: threadpoolctl cannot see
    it)."""
    try:
        config = torch.__config__.show()
    except Exception:   # noqa: BLE001 - informational only
        return None
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split()
                 if part.startswith("BLAS_INFO=")), "?")
    cap = next((line.split(":", 1)[1].strip() for line in config.splitlines()
                if "CPU capability usage" in line), "?")
    onednn = getattr(getattr(torch.backends, "mkldnn", None), "is_available", lambda: False)()
    return f"BLAS {blas}, CPU capability {cap}, oneDNN {'on' if onednn else 'off'}"


def gemm_rate(dtype, n, repeat=5):
    """The machine's GEMM rate (GFLOP/s): median of ``repeat`` n x n x n ``?gemm`` calls
    through ``scipy.linalg.blas`` (the BLAS fastrnn's kernels use)."""
    from scipy.linalg import blas

    rng = np.random.default_rng(1)
    a = np.asfortranarray(rng.standard_normal((n, n)), dtype=dtype)
    b = np.asfortranarray(rng.standard_normal((n, n)), dtype=dtype)
    c = np.zeros((n, n), dtype=dtype, order="F")
    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)   # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


# ------------------------------------------------------------------ environment

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _load_average():
    """The 1-minute load average (other processes competing for the cores), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _git_revision():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() or None if rev.returncode == 0 else None


def blas_info():
    """``threadpoolctl.threadpool_info()``, trimmed to what a report needs."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads",
            "threading_layer", "prefix", "filepath")
    libs = [{k: d.get(k) for k in keep} for d in threadpool_info()]
    # a stable order: fastrnn's BLAS (scipy's) first, then numpy's, then the rest
    rank = {"scipy": 0, "numpy": 1}
    return sorted(libs, key=lambda d: rank.get(_blas_package(d), 2))


def environment(torch=None, threads=1):
    """The run's environment: date, CPU, SIMD level, BLAS (threadpoolctl), env vars,
    versions.  Call it with BLAS already pinned, so ``num_threads`` shows the pinned count."""
    import scipy
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so threadpoolctl sees it)

    from fastrnn._kernels import _core

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": _load_average(),
        "platform": platform.platform(),
        "simd_level": _core.simd_level(),
        "blas": blas_info(),
        "env": {k: os.environ.get(k, "unset")
                for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                          "OMP_NUM_THREADS", "FASTRNN_CHECKED")},
        "python": platform.python_version(),
        "fastrnn": fastrnn.__version__,
        "fastrnn_git": _git_revision(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "torch_backend": None if torch is None else _torch_backend(torch),
        "threads": threads,
        "small_batch_max_m": fastrnn._api.SMALL_BATCH_MAX_M,
        "panel_gemm": _core.panel_gemm_enabled(),
    }


def _blas_package(lib):
    path = (lib.get("filepath") or "").replace("\\", "/")
    for pkg in ("scipy", "numpy", "torch"):
        if f"/{pkg}.libs/" in path or f"/{pkg}/" in path:
            return pkg
    return None


def _blas_user(lib):
    pkg = _blas_package(lib)
    if pkg is None:
        return os.path.basename(lib.get("filepath") or "") or "?"
    return {"scipy": "scipy, fastrnn kernels", "numpy": "numpy, the reference",
            "torch": "torch"}[pkg]


def format_environment(env):
    lines = [
        f"fastrnn benchmark   {env['date']}   fastrnn {env['fastrnn']}"
        + (f" (git {env['fastrnn_git']})" if env.get("fastrnn_git") else ""),
        f"CPU          {env['cpu']} ({env['cpu_count']} logical CPUs), {env['platform']}"
        + (f", load average {env['load_average']} at start"
           if env.get("load_average") is not None else ""),
        f"SIMD         {env['simd_level']} (fastrnn's vectorised activations)",
    ]
    for k, lib in enumerate(env["blas"]):
        arch = lib.get("architecture") or "-"
        lines.append(
            f"{'BLAS' if k == 0 else '':<12} {lib['internal_api']} {lib.get('version') or ''}"
            f"  kernel {arch}  num_threads {lib['num_threads']}  [{_blas_user(lib)}]")
    lines.append("env          " + "  ".join(f"{k}={v}" for k, v in env["env"].items()))
    torch_txt = (f"torch {env['torch']} (set_num_threads {env['torch_threads']}; "
                 f"{env.get('torch_backend')})" if env.get("torch") else "torch not used")
    lines.append(f"versions     python {env['python']}, numpy {env['numpy']}, "
                 f"scipy {env['scipy']}, {torch_txt}")
    lines.append(f"threads      {env['threads']} (threadpoolctl.threadpool_limits"
                 + (", torch.set_num_threads" if env.get("torch") else "") + ")")
    return "\n".join(lines)


# ------------------------------------------------------------------ memory

def peak_memory(model, shape, dtype, seed=0, which="fastrnn"):
    """Peak traced memory (bytes) of one forward call, with what it must hold.

    tracemalloc sees numpy's array allocations.  The expected floor is the outputs plus
    one gate buffer of ``G*n_a*m*T_x`` elements (G = 1 RNN, 4 LSTM).

    Parameters
    ----------
    which : "fastrnn" (the drop-in ``*_forward``) or "model" (``RNN``/``LSTM.forward``,
        packed before tracing)

    Returns
    -------
    dict
        ``peak``, ``outputs``, ``gate_buffer``, ``weights`` (bytes of the parameters, which a
        drop-in LSTM call packs into one block), ``ratio`` = peak / (outputs + gate buffer).
    """
    shape = Shape(*shape)
    case = make_case(model, shape, dtype, seed)
    p, x, a0 = case["parameters"], case["x"], case["a0"]
    if which == "model":
        net = (fastrnn.RNN if model == "rnn" else fastrnn.LSTM)(p)

        def call():
            return net.forward(x, a0)
    else:
        fn = getattr(fastrnn, model + "_forward")

        def call():
            return fn(x, a0, p)
    call()   # warm-up outside tracing
    gc.collect()
    G = 1 if model == "rnn" else 4
    tracemalloc.start()
    try:
        res = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n_out = 2 if model == "rnn" else 3
    out_bytes = sum(np.asarray(r).nbytes for r in res[:n_out])
    del res
    itemsize = np.dtype(dtype).itemsize
    gate = G * shape.n_a * shape.m * shape.T_x * itemsize
    weights = sum(v.nbytes for v in p.values())
    return {"model": model, "dtype": np.dtype(dtype).name, "call": which, "peak": peak,
            "outputs": out_bytes, "gate_buffer": gate, "weights": weights,
            "ratio": peak / (out_bytes + gate)}


# ------------------------------------------------------------------ a run

def _progress_printer(stream=None):
    stream = sys.stderr if stream is None else stream
    tty = hasattr(stream, "isatty") and stream.isatty()
    width = [0]

    def show(msg, final=False):
        if tty:
            pad = max(0, width[0] - len(msg))
            stream.write("\r" + msg + " " * pad + ("\n" if final else ""))
            width[0] = 0 if final else len(msg)
        else:
            stream.write(msg + "\n")
        stream.flush()
    return show


def _stats(timing, fl, peak):
    med = timing.median
    q1, q3 = timing.quartiles
    gflops = fl / med / 1e9
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "min_s": timing.min,
            "samples": len(timing.times), "calls_per_sample": timing.number,
            "gflops": gflops, "frac_gemm": gflops / peak if peak else None}


def run_case(shape_name, model, dtype_name, opts, torch=None, peaks=None, progress=None,
             prefix=""):
    """Time one case; returns its result dict (see the JSON written by ``--json``)."""
    shape = SHAPES[shape_name]
    cell = shape_name in CELL_SHAPES
    dtype = DTYPES[dtype_name]
    case = make_case(model, shape, dtype, opts.seed)
    fl = flops(model, shape)
    peak = (peaks or {}).get(dtype_name)
    impls = fastrnn_impls(model, case, cell=cell, n_threads=opts.threads)
    if opts.no_reference:
        impls = [i for i in impls if i.role != "reference"]
    if torch is not None:
        impls.append(torch_impl(model, case, cell=cell))
    tag = f"{shape_name} {model} {dtype_name}"
    outs, rows = {}, []
    for impl in impls:
        if progress:
            progress(f"{prefix}{tag}: {impl.label}")
        with impl.context():
            outs[impl.role] = impl.outputs(impl.call())   # untimed first call: warm-up
            if impl.role == "torch":
                impl.call()
        budget = None
        if impl.role == "reference":
            budget = REFERENCE_BUDGET if opts.reference_budget is None else opts.reference_budget
        timing = measure(impl.call, repeat=opts.repeat, min_time=opts.min_time, budget=budget,
                         context=impl.context)
        row = {"role": impl.role, "label": impl.label}
        row.update(_stats(timing, fl, peak))
        rows.append(row)
    # error baselines: the float64 reference, and PyTorch
    want = None
    if not opts.no_reference:
        want = (outs["reference"] if dtype_name == "float64"
                else reference_outputs(model, case, cell=cell))
    times = {r["role"]: r["median_s"] for r in rows}
    for row in rows:
        got = outs[row["role"]]
        row["speedup_vs_reference"] = (times["reference"] / row["median_s"]
                                       if "reference" in times else None)
        row["ratio_vs_torch"] = (row["median_s"] / times["torch"] if "torch" in times
                                 else None)
        row["max_abs_err_vs_reference"] = None if want is None else max_abs_diff(got, want)
        row["max_abs_err_vs_torch"] = (max_abs_diff(got, outs["torch"])
                                       if "torch" in outs and row["role"] != "torch" else None)
    return {"shape": shape_name, "dims": shape._asdict(), "model": model, "dtype": dtype_name,
            "calls": "cell" if cell else "sequence", "flops": fl, "impls": rows}


def _fmt_time(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{s:.3g} s"


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


_TABLE_HEADER = (
    f"{'shape':<9} {'model':<5} {'dtype':<7} {'implementation':<28} {'median':>9} "
    f"{'IQR':>9} {'min':>9} {'n':>5} {'xref':>7} {'/torch':>7} {'GFLOP/s':>8} "
    f"{'%GEMM':>6} {'err ref':>8} {'err torch':>9}")


def format_table_header():
    return _TABLE_HEADER + "\n" + "-" * len(_TABLE_HEADER)


def format_case(res):
    """The rows of one case (one per implementation) and a blank line."""
    lines = []
    for k, r in enumerate(res["impls"]):
        key = (f"{res['shape']:<9} {res['model']:<5} {res['dtype']:<7}" if k == 0
               else " " * 23)
        frac = None if r["frac_gemm"] is None else 100 * r["frac_gemm"]
        lines.append(
            f"{key} {r['label']:<28} {_fmt_time(r['median_s']):>9} "
            f"{_fmt_time(r['iqr_s']):>9} {_fmt_time(r['min_s']):>9} "
            f"{r['samples']:>5} {_fmt(r['speedup_vs_reference'], '.3g'):>7} "
            f"{_fmt(r['ratio_vs_torch'], '.3g'):>7} {r['gflops']:>8.3g} "
            f"{_fmt(frac, '.1f'):>6} {_fmt(r['max_abs_err_vs_reference'], '.1e'):>8} "
            f"{_fmt(r['max_abs_err_vs_torch'], '.1e'):>9}")
    return "\n".join(lines) + "\n"


def format_summary(results):
    """One line per case: the four median times and fastrnn's ratios."""
    lines = ["Summary (median times; fn = the drop-in function, mdl = the packed model; "
             "xref = reference time / fn time; /torch = time / PyTorch time, < 1: fastrnn "
             "faster)"]
    hdr = (f"{'shape':<9} {'model':<5} {'dtype':<7} {'fastrnn':>9} {'model':>9} "
           f"{'reference':>9} {'torch':>9} {'fn xref':>8} {'fn/torch':>8} "
           f"{'mdl/torch':>9} {'best GF/s':>9} {'%GEMM':>6}")
    lines += [hdr, "-" * len(hdr)]
    for res in results:
        by = {r["role"]: r for r in res["impls"]}

        def t(role, by=by):
            return by[role]["median_s"] if role in by else None
        best = max((by[k] for k in ("fastrnn", "model") if k in by),
                   key=lambda r: r["gflops"])
        frac = None if best["frac_gemm"] is None else 100 * best["frac_gemm"]
        lines.append(
            f"{res['shape']:<9} {res['model']:<5} {res['dtype']:<7} "
            f"{_fmt_time(t('fastrnn')):>9} {_fmt_time(t('model')):>9} "
            f"{_fmt_time(t('reference')):>9} {_fmt_time(t('torch')):>9} "
            f"{_fmt(by['fastrnn']['speedup_vs_reference'], '.3g'):>8} "
            f"{_fmt(by['fastrnn']['ratio_vs_torch'], '.3g'):>8} "
            f"{_fmt(by['model']['ratio_vs_torch'], '.3g'):>9} "
            f"{best['gflops']:>9.3g} {_fmt(frac, '.1f'):>6}")
    return "\n".join(lines)


def _format_gemm(gemm):
    text = ", ".join(f"{'sgemm' if k == 'float32' else 'dgemm'} n={v['n']}: "
                     f"{v['gflops']:.1f} GFLOP/s" for k, v in gemm.items())
    if any("torch_gflops" in v for v in gemm.values()):
        text += ("   (PyTorch's own torch.mm, not the limit used for %GEMM: "
                 + ", ".join(f"{k} {v['torch_gflops']:.1f}" for k, v in gemm.items()) + ")")
    return text


def _mb(b):
    return f"{b / 2**20:.1f} MiB"


def format_footer(data):
    s = data["settings"]
    lines = [f"GEMM rate (scipy.linalg.blas, same threads, median of {s['gemm_repeat']}): "
             + _format_gemm(data["gemm"])]
    for m in data.get("memory", []):
        lines.append(
            f"peak memory, big {m['model']} {m['dtype']} {m['call']:<7}: {_mb(m['peak'])} "
            f"(tracemalloc) vs outputs {_mb(m['outputs'])} + gate buffer "
            f"{_mb(m['gate_buffer'])} = {_mb(m['outputs'] + m['gate_buffer'])}: "
            f"x{m['ratio']:.2f}   (parameters {_mb(m['weights'])})")
    lines.append(
        f"timing: median of per-call times; >= {s['repeat']} samples and >= {s['min_time']} s "
        f"per implementation; reference capped at {s['reference_budget']} s per case; "
        f"seed {s['seed']}")
    lines.append(
        "columns: xref = reference time / this time; /torch = this time / PyTorch time; "
        "GFLOP/s counts GEMM work only (DESIGN §6); err = max |difference| from the float64 "
        "reference / from PyTorch (LSTM sequences vs PyTorch: a, y and the last c)")
    if data["environment"].get("torch"):
        lines.append(
            "PyTorch: layout conversion to (T_x, m, n) outside the timed region; timed = "
            "recurrent module + nn.Linear + softmax under torch.inference_mode()")
    return "\n".join(lines)


def plot(results, path):
    """A bar chart of fastrnn's speedups per shape (needs matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    shapes = list(dict.fromkeys(r["shape"] for r in results))
    series = list(dict.fromkeys((r["model"], r["dtype"]) for r in results))
    has_torch = any(r["ratio_vs_torch"] is not None for res in results for r in res["impls"])
    has_ref = any(r["speedup_vs_reference"] is not None
                  for res in results for r in res["impls"])
    panels = [p for p, ok in (("reference", has_ref), ("torch", has_torch)) if ok]
    if not panels:
        raise ValueError("nothing to plot: neither the reference nor PyTorch was timed")
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 1.6 * len(shapes)),
                                                      3.5 * len(panels)), squeeze=False)
    width = 0.8 / max(1, len(series))
    for ax, panel in zip(axes[:, 0], panels):
        for k, (model, dtype) in enumerate(series):
            vals = []
            for s in shapes:
                v = float("nan")
                for res in results:
                    if (res["shape"], res["model"], res["dtype"]) == (s, model, dtype):
                        r = next(r for r in res["impls"] if r["role"] == "fastrnn")
                        if panel == "reference" and r["speedup_vs_reference"]:
                            v = r["speedup_vs_reference"]
                        elif panel == "torch" and r["ratio_vs_torch"]:
                            v = 1.0 / r["ratio_vs_torch"]
                vals.append(v)
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(shapes))]
            ax.bar(xs, vals, width, label=f"{model} {dtype}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes)
        ax.set_ylabel("speedup (x)")
        ax.set_title("fastrnn drop-in vs " + ("the numpy reference" if panel == "reference"
                                              else "PyTorch") + " (higher is better)")
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _parse_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(bad) or '(none given)'}; choose from "
            f"{', '.join(allowed)}")
    return items


def add_arguments(parser):
    """Add the ``bench`` options to an argparse parser."""
    parser.add_argument("--quick", action="store_true",
                        help=f"a subset ({','.join(QUICK_SHAPES)}) with fewer repeats")
    parser.add_argument("--shapes", type=lambda s: _parse_list(s, list(SHAPES), "shape"),
                        help="comma-separated shapes: " + ",".join(SHAPES) + " (default all)")
    parser.add_argument("--models", type=lambda s: _parse_list(s, list(MODELS), "model"),
                        default=list(MODELS), help="rnn,lstm (default both)")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and PyTorch threads; the packed model's batch threads "
                             "(default 1)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="minimum number of timed samples (default 7, --quick 3)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="minimum seconds of timed calls per implementation "
                             "(default 1, --quick 0.05)")
    parser.add_argument("--reference-budget", type=float, default=None,
                        help=f"seconds of reference calls per case (default "
                             f"{REFERENCE_BUDGET}; at least one call)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not run the reference (no speedups, no errors vs it)")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write all results and the "
                        "environment to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="bar chart of speedups per shape (needs matplotlib)")
    parser.set_defaults(func=run)
    return parser


def run(opts, out=None):
    """Run the benchmark described by parsed options; print the report; return 0."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("fastrnn bench: needs threadpoolctl to pin and report the BLAS threads "
              "(pip install threadpoolctl, or fastrnn[bench])", file=sys.stderr)
        return 2

    out = sys.stdout if out is None else out
    if opts.threads < 1:
        raise SystemExit("fastrnn bench: --threads must be at least 1")
    if opts.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("fastrnn bench: --plot needs matplotlib, which is not installed "
                  "(pip install matplotlib, or fastrnn[plot])", file=sys.stderr)
            return 2
    shapes = opts.shapes or list(QUICK_SHAPES if opts.quick else SHAPES)
    dtypes = ["float64", "float32"] if opts.dtype == "both" else [opts.dtype]
    opts.repeat = opts.repeat or (3 if opts.quick else 7)
    opts.min_time = opts.min_time if opts.min_time is not None else (
        0.05 if opts.quick else 1.0)
    if opts.reference_budget is None:
        opts.reference_budget = 0.5 if opts.quick else REFERENCE_BUDGET
    torch = None if opts.no_torch else import_torch()
    gemm_n = {"float32": 1024, "float64": 768} if opts.quick else {"float32": 2048,
                                                                     "float64": 1536}
    gemm_repeat = 3 if opts.quick else 5
    progress = _progress_printer()
    t_start = time.perf_counter()
    old_torch_threads = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(opts.threads), fastrnn.checked(False):
        if torch is not None:
            torch.set_num_threads(opts.threads)
        try:
            env = environment(torch, opts.threads)
            print(format_environment(env), file=out)
            print("", file=out, flush=True)
            gemm = {}
            for d in dtypes:
                progress(f"GEMM rate: {'sgemm' if d == 'float32' else 'dgemm'} n={gemm_n[d]}")
                gemm[d] = {"n": gemm_n[d], "gflops": gemm_rate(DTYPES[d], gemm_n[d],
                                                               gemm_repeat)}
                if torch is not None:
                    progress(f"GEMM rate: torch.mm {d} n={gemm_n[d]}")
                    gemm[d]["torch_gflops"] = torch_gemm_rate(torch, DTYPES[d], gemm_n[d],
                                                              gemm_repeat)
            peaks = {d: v["gflops"] for d, v in gemm.items()}
            print("GEMM rate    " + _format_gemm(gemm) + "\n", file=out)
            print(format_table_header(), file=out, flush=True)
            todo = [(s, m, d) for s in shapes for m in opts.models for d in dtypes]
            results = []
            for k, (s, m, d) in enumerate(todo, 1):
                results.append(run_case(s, m, d, opts, torch, peaks, progress,
                                        prefix=f"[{k}/{len(todo)}] "))
                print(format_case(results[-1]), file=out, flush=True)
            memory = []
            if "big" in shapes:
                for m in opts.models:
                    for d in dtypes:
                        for which in ("fastrnn", "model"):
                            progress(f"peak memory: big {m} {d} {which}")
                            memory.append(peak_memory(m, SHAPES["big"], DTYPES[d], opts.seed,
                                                      which))
        finally:
            if torch is not None:
                torch.set_num_threads(old_torch_threads)
    elapsed = time.perf_counter() - t_start
    progress(f"done in {elapsed:.0f} s", final=True)
    settings = {k: getattr(opts, k) for k in ("repeat", "min_time", "reference_budget",
                                              "threads", "seed", "no_reference")}
    settings.update(shapes=shapes, models=list(opts.models), dtypes=dtypes,
                    torch=torch is not None, quick=bool(opts.quick), gemm_repeat=gemm_repeat,
                    elapsed_s=elapsed, load_average_end=_load_average())
    data = {"environment": env, "settings": settings, "gemm": gemm, "results": results,
            "memory": memory}
    print(format_summary(results), file=out)
    print("", file=out)
    print(format_footer(data), file=out)
    load = settings["load_average_end"]
    note = ""
    if load is not None:
        note = f"; load average {load} at the end"
        if load > opts.threads + 0.5:
            note += " (other processes were competing for the cores: expect noise)"
    print(f"total time {elapsed:.0f} s{note}", file=out, flush=True)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(_json_safe(data), f, indent=1)
    if opts.plot:
        plot(results, opts.plot)
        print(f"plot written to {opts.plot}", file=out)
    return 0


def main(argv=None):
    """``python -m fastrnn bench [options]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="fastrnn bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
