"""The ``compose`` workload's callables: stacked and bidirectional layers against the sum of
their layers' times, both directions on two threads, variable lengths against the padded call.

For a model kind and a case, layers without an output layer (``n_x -> n_a``, then ``n_a ->
n_a`` for the second stacked layer) are packed once, outside the timed calls.  Roles:

- ``fastrnn``: ``Stack([L1, L2]).forward(x)``;
- ``layers``: ``L1.forward(x)`` then ``L2.forward`` of its output: the sum of the layers' times;
- ``bidir``: ``Bidirectional(F, B).forward(x)`` on one thread;
- ``bidir2``: the same with ``n_threads=2`` (one direction per thread);
- ``directions``: ``F.forward(x)`` then ``B.forward`` of the time-reversed ``x`` (reversed
  outside the timed call): the sum of the directions' times;
- ``lengths``: ``Bidirectional(F, B).forward(x, lengths=...)`` on one thread, lengths drawn
  in ``[T_x/2, T_x]`` with the longest ``T_x`` (the same padded ``x``).

Each output is checked against the float64 reference's ``layer_forward``.
"""
import numpy as np

import fastrnn
from fastrnn import reference
from fastrnn._bench.impls import Impl, _reference_context
from fastrnn._bench.kinds import kind

# The shapes the compose rows run at (the targets are stated at mid and fastrnns; lesson
# shows the overhead).
COMPOSE_SHAPES = ("lesson", "mid", "fastrnns")
_HEADS = ("Wya", "Wy", "by")


def applies(model, shape_name):
    return shape_name in COMPOSE_SHAPES


def compose_inputs(model, case):
    """The layers' parameters (no output layer) and the lengths of a case of ``model``, made
    once and kept in ``case``: ``{"L1", "L2", "F", "B"}`` and ``lengths`` (m,)."""
    if "layers" not in case:
        x = case["x"]
        n_x, m, T_x = x.shape
        n_a = case["a0"].shape[0]
        k = kind(model)
        rng = np.random.default_rng(7)

        def params(n_in):
            p = k.params(rng, n_in, n_a, 1, x.dtype)
            return {key: v for key, v in p.items() if key not in _HEADS}
        case["layers"] = {"L1": params(n_x), "L2": params(n_a), "F": params(n_x),
                          "B": params(n_x)}
        lengths = rng.integers(max(1, T_x // 2), T_x + 1, size=m)
        lengths[0] = T_x
        case["lengths"] = lengths
    return case["layers"], case["lengths"]


def _h(res):
    return {"h": np.asarray(res[0])}


def compose_impls(model, case, cell, n_threads, peers):
    """The ``compose`` workload's :class:`~fastrnn._bench.impls.Impl` list (module
    docstring); ``n_threads`` and the peers are not used (the roles fix their threads)."""
    k = kind(model)
    layers, lengths = compose_inputs(k, case)
    x = case["x"]
    x_rev = np.ascontiguousarray(x[:, :, ::-1])
    net = {name: getattr(fastrnn, k.model)(p) for name, p in layers.items()}
    stack = fastrnn.Stack([net["L1"], net["L2"]])
    bidir = fastrnn.Bidirectional(net["F"], net["B"])

    def two_layers():
        return net["L2"].forward(net["L1"].forward(x)[0])

    def two_directions():
        return net["F"].forward(x), net["B"].forward(x_rev)

    def directions_out(res):
        return {"bidir_h": np.concatenate([res[0][0], res[1][0][:, :, ::-1]])}
    return [
        Impl("fastrnn", f"fastrnn.Stack(2 {k.model}).forward", lambda: stack.forward(x),
             lambda res: {"stack_h": res[0]}),
        Impl("layers", f"2 x {k.model}.forward (sum)", two_layers,
             lambda res: {"stack_h": res[0]}),
        Impl("bidir", "Bidirectional.forward", lambda: bidir.forward(x),
             lambda res: {"bidir_h": res[0]}),
        Impl("bidir2", "Bidirectional.forward(n_threads=2)",
             lambda: bidir.forward(x, n_threads=2), lambda res: {"bidir_h": res[0]}),
        Impl("directions", f"2 x {k.model}.forward (sum)", two_directions, directions_out),
        Impl("lengths", "Bidirectional.forward(lengths)",
             lambda: bidir.forward(x, lengths=lengths), lambda res: {"lengths_h": res[0]}),
    ]


def compose_want(model, case, cell=False):
    """The float64 reference's outputs of the ``compose`` workload (``reference.layer_forward``
    layer by layer, direction by direction)."""
    k = kind(model)
    layers, lengths = compose_inputs(k, case)
    p = {name: {key: np.asarray(v, np.float64) for key, v in q.items()}
         for name, q in layers.items()}
    x = np.asarray(case["x"], np.float64)
    run = reference.layer_forward
    with _reference_context():
        h1 = run(k.name, x, p["L1"])[0]
        want = {"stack_h": run(k.name, h1, p["L2"])[0]}
        want["bidir_h"] = np.concatenate([run(k.name, x, p["F"])[0],
                                          run(k.name, x, p["B"], reverse=True)[0]])
        want["lengths_h"] = np.concatenate([
            run(k.name, x, p["F"], lengths=lengths)[0],
            run(k.name, x, p["B"], lengths=lengths, reverse=True)[0]])
    return want


def compose_flops(model, shape):
    """GEMM FLOPs of two layers (or two directions) without output layers:
    ``2*G*n_a*(2 n_a + n_x + n_a)*m*T_x`` for the stack (the directions: n_x for both)."""
    n_x, n_a, n_y, m, T_x = shape
    return 2 * kind(model).gates * n_a * ((n_a + n_x) + 2 * n_a) * m * T_x
