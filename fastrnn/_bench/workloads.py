"""What a benchmark case times: the workloads, in one table.

A workload says, for a model kind and a case (:func:`~fastrnn._bench.cases.make_case`),
which callables to time (fastrnn's, the reference's, the peers'), what their outputs must
match (the float64 reference), and how many FLOPs one call does.  ``forward`` (the drop-in
functions, the packed models and the peers' forward passes) is the public suite.

Adding a workload -- training (the backward passes, ``model.loss_and_grads``, against
PyTorch's ``loss.backward()``), or batch inference over Dask arrays -- is one
:class:`Workload` entry in :data:`WORKLOADS`: the suite, the report (the workload's name is
shown beside the shape), the JSON and ``--workloads`` pick it up.  Its implementations'
roles must be "fastrnn", "model", "reference" or a peer's name ("torch", "ort") for the
ratio columns, and its outputs dicts must share keys with ``want``'s.
"""
from dataclasses import dataclass
from typing import Callable

from fastrnn._bench.cases import flops
from fastrnn._bench.impls import fastrnn_impls, peer_impls, reference_outputs


@dataclass(frozen=True)
class Workload:
    """One workload (see the module docstring)."""

    name: str
    description: str
    impls: Callable    # (model, case, cell, n_threads, peers) -> list of Impl
    want: Callable     # (model, case, cell) -> the float64 reference's outputs
    flops: Callable    # (model, shape) -> FLOPs of one call (GEMM work)


def _forward_impls(model, case, cell, n_threads, peers):
    return (fastrnn_impls(model, case, cell=cell, n_threads=n_threads)
            + peer_impls(model, case, cell=cell, peers=peers, threads=n_threads))


WORKLOADS = {
    "forward": Workload("forward", "forward pass: outputs a, y (and c)", _forward_impls,
                        reference_outputs, flops),
}


def workload(name):
    """The :class:`Workload` called ``name`` (or ``name`` itself if it is one)."""
    if isinstance(name, Workload):
        return name
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
