"""The timed callables of a case: fastrnn's drop-in function and packed model, the
reference, the peers; the float64 reference outputs and the error measure."""
import contextlib
import math

import numpy as np

import fastrnn
from fastrnn import reference
from fastrnn._bench.torch_peer import import_torch, torch_peer


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
