"""The timed callables of a case: fastrnn's drop-in function and packed model, the
reference, the peers; the float64 reference outputs and the error measure."""
import contextlib
import math

import numpy as np

import fastrnn
from fastrnn import reference
from fastrnn._bench.kinds import kind
from fastrnn._bench.peer_ort import ort_peer
from fastrnn._bench.peer_torch import import_torch, torch_peer


# Roles of the timed callables: fastrnn's, then the reference, then the peers.
FASTRNN_ROLES = ("fastrnn", "model")
PEERS = ("torch", "ort")
PEER_NAMES = {"torch": "PyTorch", "ort": "ONNX Runtime"}


class Impl:
    """One timed implementation of a case.

    Attributes
    ----------
    role : "fastrnn" (drop-in function), "model", "reference", or a peer ("torch", "ort")
    label : what is called, for the tables
    call : callable with no arguments
    outputs : callable mapping ``call()``'s result to a dict of arrays in fastrnn's layout
    context : callable returning the context manager the calls run in
    """

    __slots__ = ("role", "label", "call", "outputs", "context")

    def __init__(self, role, label, call, outputs, context=contextlib.nullcontext):
        self.role, self.label, self.call, self.outputs = role, label, call, outputs
        self.context = context


def _seq_outputs(k):
    if not k.cell_state:
        return lambda res: {"a": res[0], "y": res[1]}
    return lambda res: {"a": res[0], "y": res[1], "c": res[2], "c_T": res[2][:, :, -1]}


def _cell_outputs(k):
    if not k.cell_state:
        return lambda res: {"a": res[0], "y": res[1]}
    return lambda res: {"a": res[0], "c": res[1], "y": res[2]}


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
    k = kind(model)
    p, x, a0, xt = case["parameters"], case["x"], case["a0"], case["xt"]
    net = getattr(fastrnn, k.model)(p)
    model_ctx = contextlib.nullcontext
    if n_threads > 1:
        from threadpoolctl import threadpool_limits

        def model_ctx():
            return threadpool_limits(1)
    if not cell:
        name = k.name + "_forward"
        fn, ref = getattr(fastrnn, name), getattr(reference, name)
        out = _seq_outputs(k)
        return [
            Impl("fastrnn", f"fastrnn.{name}", lambda: fn(x, a0, p), out),
            Impl("model", f"fastrnn.{k.model}.forward"
                 + (f"(n_threads={n_threads})" if n_threads > 1 else ""),
                 lambda: net.forward(x, a0, n_threads=n_threads), out, model_ctx),
            Impl("reference", f"reference.{name}", lambda: ref(x, a0, p), out,
                 _reference_context),
        ]
    name = k.name + "_cell_forward"
    fn, ref = getattr(fastrnn, name), getattr(reference, name)
    out = _cell_outputs(k)
    if k.cell_state:
        state = (a0, case["c0"])
        args = (xt, a0, case["c0"], p)

        def step_out(res):
            return {"a": res[0][0], "c": res[0][1], "y": res[1]}
    else:
        state, args, step_out = a0, (xt, a0, p), out
    return [
        Impl("fastrnn", f"fastrnn.{name}", lambda: fn(*args), out),
        Impl("model", f"fastrnn.{k.model}.step", lambda: net.step(xt, state), step_out),
        Impl("reference", f"reference.{name}", lambda: ref(*args), out, _reference_context),
    ]


def torch_impl(model, case, cell=False):
    """The PyTorch :class:`Impl` of a case (PyTorch must be importable)."""
    torch = import_torch()
    k = kind(model)
    x = case["xt"] if cell else case["x"]
    call, outputs = torch_peer(k, case["parameters"], x.dtype, x, case["a0"], case.get("c0"),
                               cell=cell)
    label = f"torch nn.{k.torch_module}{'Cell' if cell else ''}+Linear"
    return Impl("torch", label, call, outputs, torch.inference_mode)


def ort_impl(model, case, cell=False, threads=1):
    """The ONNX Runtime :class:`Impl` of a float32 case (onnx and onnxruntime must be
    importable)."""
    k = kind(model)
    x = case["xt"] if cell else case["x"]
    call, outputs = ort_peer(k, case["parameters"], x.dtype, x, case["a0"], case.get("c0"),
                             cell=cell, threads=threads)
    return Impl("ort", f"onnxruntime {k.onnx_op}+MatMul", call, outputs)


def peer_impls(model, case, cell=False, peers=PEERS, threads=1):
    """The peers' :class:`Impl` of a case, for the ``peers`` asked for that can run it
    (ONNX Runtime: float32 only)."""
    out = []
    if "torch" in peers:
        out.append(torch_impl(model, case, cell=cell))
    if "ort" in peers and case["x"].dtype == np.float32:
        out.append(ort_impl(model, case, cell=cell, threads=threads))
    return out


def reference_outputs(model, case, cell=False):
    """The float64 reference's outputs for a case (the baseline of the error columns)."""
    k = kind(model)
    p = {key: np.asarray(v, np.float64) for key, v in case["parameters"].items()}
    f = {key: np.asarray(case[key], np.float64) for key in ("x", "xt", "a0", "c0")
         if key in case}
    with _reference_context():
        if not cell:
            return _seq_outputs(k)(getattr(reference, k.name + "_forward")(f["x"], f["a0"], p))
        args = (f["xt"], f["a0"], f["c0"], p) if k.cell_state else (f["xt"], f["a0"], p)
        return _cell_outputs(k)(getattr(reference, k.name + "_cell_forward")(*args))


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
