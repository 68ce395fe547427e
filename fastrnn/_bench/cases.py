"""The benchmark's cases: the public suite of shapes, random parameters and inputs, FLOPs."""
import math
from collections import namedtuple

import numpy as np


Shape = namedtuple("Shape", "n_x n_a n_y m T_x")

# The public suite (name: n_x, n_a, n_y, m, T_x).
SHAPES = {
    "lesson": Shape(3, 5, 2, 10, 4),
    "charlm": Shape(27, 100, 27, 1, 50),
    "stream": Shape(64, 64, 64, 1, 1),
    "deepbench": Shape(512, 512, 64, 4, 25),
    "mid": Shape(128, 256, 128, 32, 100),
    "fastrnns": Shape(512, 512, 128, 64, 100),
    "big": Shape(512, 1024, 512, 64, 25),
}
SHAPE_NOTES = {
    "lesson": "the lessons' test size: pure overhead",
    "charlm": "a character-level language model, one sequence",
    "stream": "one cell step per call (the *_cell_forward calls): latency",
    "deepbench": "a DeepBench inference-server size",
    "fastrnns": "PyTorch's own RNN benchmark size",
}
# Shapes timed through the single-step calls (*_cell_forward, .step, nn.*Cell).
CELL_SHAPES = frozenset({"stream"})
QUICK_SHAPES = ("lesson", "charlm", "stream", "deepbench", "mid")
# Shapes where one reference call takes most of a second: it gets a few samples only.
LARGE_SHAPES = frozenset({"fastrnns", "big"})
DTYPES = {"float64": np.float64, "float32": np.float32}

# Seconds of reference calls per case (after its untimed first call); at least one sample.
REFERENCE_BUDGET = 2.5


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


def gru_params(rng, n_x, n_a, n_y, dtype=np.float64, scale=None, bias=1.0):
    """Random GRU ``parameters``, scaled as in :func:`rnn_params` (gates r, z, n).

    Returns
    -------
    dict
        ``Wrx``, ``Wzx``, ``Wnx`` (n_a, n_x); ``Wra``, ``Wza``, ``Wna`` (n_a, n_a); ``brx``,
        ``bzx``, ``bnx``, ``bra``, ``bza``, ``bna`` (n_a, 1); ``Wy`` (n_y, n_a); ``by``
        (n_y, 1) unless ``n_y`` is 0 (no output layer), all of ``dtype``.
    """
    s = 1.0 / math.sqrt(max(n_a + n_x, 1)) if scale is None else scale
    p = {}
    for g in "rzn":
        p[f"W{g}x"] = rng.standard_normal((n_a, n_x)) * s
        p[f"W{g}a"] = rng.standard_normal((n_a, n_a)) * s
        p[f"b{g}x"] = rng.standard_normal((n_a, 1)) * bias
        p[f"b{g}a"] = rng.standard_normal((n_a, 1)) * bias
    if n_y:
        p["Wy"] = rng.standard_normal((n_y, n_a)) * s
        p["by"] = rng.standard_normal((n_y, 1)) * bias
    return {k: v.astype(dtype) for k, v in p.items()}


def _kind(model):
    from fastrnn._bench.kinds import kind   # the table of kinds imports this module
    return kind(model)


def make_params(model, rng, n_x, n_a, n_y, dtype=np.float64, **kwargs):
    """Random parameters of a model kind ("rnn": :func:`rnn_params`, "lstm":
    :func:`lstm_params`, "gru": :func:`gru_params`)."""
    return _kind(model).params(rng, n_x, n_a, n_y, dtype, **kwargs)


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
    if _kind(model).cell_state:
        case["c0"] = (0.5 * rng.standard_normal((shape.n_a, shape.m))).astype(dtype)
    return case


def flops(model, shape):
    """GEMM FLOPs of one forward pass, 2 per multiply-add.

    ``2*G*n_a*(n_a + n_x)*m*T_x + 2*n_y*n_a*m*T_x`` with G gate blocks (1 RNN, 4 LSTM, 3 GRU).
    """
    n_x, n_a, n_y, m, T_x = shape
    G = _kind(model).gates
    return 2 * G * n_a * (n_a + n_x) * m * T_x + 2 * n_y * n_a * m * T_x
