"""What a benchmark case times: the workloads, in one table.

A workload says, for a model kind and a case (:func:`~fastrnn._bench.cases.make_case`),
which callables to time (fastrnn's, the reference's, the peers'), what their outputs must
match (the float64 reference), and how many FLOPs one call does.  ``forward`` (the drop-in
functions, the packed models and the peers' forward passes) is the public suite.

``train`` (:mod:`fastrnn._bench.training`) times the drop-in backward passes on fastrnn's
caches against the reference's numpy backward and the forward pass, and
``model.loss_and_grads`` against PyTorch's forward + ``loss.backward()``.

Adding a workload is one :class:`Workload` entry in :data:`WORKLOADS`: the suite, the report
(the workload's name is shown beside the shape), the JSON and ``--workloads`` pick it up.
Its implementations' roles are "fastrnn", "model", "reference", a peer's name ("torch",
"ort") or its own (timed and checked, compared through ``baselines``), and its outputs dicts
must share keys with ``want``'s.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from fastrnn._bench.cases import flops
from fastrnn._bench.impls import fastrnn_impls, peer_impls, reference_outputs
from fastrnn._bench.compose import applies as compose_applies
from fastrnn._bench.compose import compose_flops, compose_impls, compose_want
from fastrnn._bench.training import applies as train_applies
from fastrnn._bench.training import train_flops, train_impls, train_want


@dataclass(frozen=True)
class Workload:
    """One workload (see the module docstring)."""

    name: str
    description: str
    impls: Callable    # (model, case, cell, n_threads, peers) -> list of Impl
    want: Callable     # (model, case, cell) -> the float64 reference's outputs
    flops: Callable    # (model, shape) -> FLOPs of one call (GEMM work)
    # (model, shape name) -> whether the workload has a case there
    applies: Callable = lambda model, shape_name: True
    # role -> the roles its time is divided by (ratio columns); None: every role against
    # the reference and the peers
    baselines: Optional[dict] = None
    # the summary's ratio columns: (title, role, baseline role); None: fn xref, fn/peer,
    # mdl/peer
    summary: Optional[tuple] = None
    note: str = ""     # the report's footer line on this workload's rows


def _forward_impls(model, case, cell, n_threads, peers):
    return (fastrnn_impls(model, case, cell=cell, n_threads=n_threads)
            + peer_impls(model, case, cell=cell, peers=peers, threads=n_threads))


WORKLOADS = {
    "forward": Workload("forward", "the forward pass (outputs a, y, c)", _forward_impls,
                        reference_outputs, flops),
    "train": Workload(
        "train", "the drop-in rnn/lstm_backward on fastrnn's caches (vs the reference's "
        "numpy backward and the forward), model.loss_and_grads (vs PyTorch forward + "
        "loss.backward())", train_impls, train_want, train_flops, applies=train_applies,
        baselines={"fastrnn": ("reference", "forward"), "model": ("torch",),
                   "torch": ("model",), "reference": ("fastrnn",)},
        summary=(("bwd xref", "reference", "fastrnn"), ("bwd/fwd", "fastrnn", "forward"),
                 ("lg/torch", "model", "torch")),
        note="GFLOP/s counts the backward's GEMM work, 4*G*n_a*(n_a+n_x)*m*T_x; the "
             "checks compare the loss and the weight gradients divided by m*T_x (sums over "
             "the columns), dx and da0 as they are; PyTorch: forward + summed "
             "cross_entropy + loss.backward() (autograd), torch.set_num_threads(--threads)"),
    "compose": Workload(
        "compose", "fastrnn.Stack of 2 layers vs the sum of its layers' times; "
        "fastrnn.Bidirectional on 1 and 2 threads vs the sum of its directions' times; "
        "lengths vs the padded call (shapes lesson, mid, fastrnns)", compose_impls,
        compose_want, compose_flops, applies=compose_applies,
        baselines={"fastrnn": ("layers",), "bidir": ("directions",),
                   "bidir2": ("directions",), "lengths": ("bidir",)},
        summary=(("stack/sum", "fastrnn", "layers"), ("bidir/sum", "bidir", "directions"),
                 ("2 thr/sum", "bidir2", "directions"), ("len/padded", "lengths", "bidir")),
        note="layers without an output layer (n_x -> n_a -> n_a; both directions n_x -> "
             "n_a); lengths drawn in [T_x/2, T_x], the longest T_x; GFLOP/s counts two "
             "layers' GEMM work"),
}


def workload(name):
    """The :class:`Workload` called ``name`` (or ``name`` itself if it is one)."""
    if isinstance(name, Workload):
        return name
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
