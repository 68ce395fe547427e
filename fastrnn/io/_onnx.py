"""ONNX -> fastrnn: the ``RNN``, ``LSTM`` and ``GRU`` operators.

An ONNX recurrent operator takes ``W (D, G·n_a, n_x)``, ``R (D, G·n_a, n_a)`` and
``B (D, 2·G·n_a) = [Wb, Rb]`` with gate blocks in the order LSTM ``i, o, f, c``, GRU
``z, r, h``; direction ``d = 1`` of a bidirectional operator is the reverse one.
``sequence_lens``, ``initial_h`` and ``initial_c`` are run-time inputs: the model's
``forward(x, lengths, h0, c0)``.  onnx is imported only by :func:`from_onnx`;
:func:`spec_from_arrays` works on plain arrays.
"""
import os

import numpy as np

from fastrnn.io._spec import Spec, layer_parameters

__all__ = ["from_onnx", "spec_from_arrays", "ONNX_GATES"]

# ONNX's gate blocks, top to bottom, in fastrnn's gate names.
ONNX_GATES = {"rnn": ("a",), "lstm": ("i", "o", "f", "c"), "gru": ("z", "r", "n")}
_KINDS = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
_DIRECTIONS = {"forward": ("forward",), "reverse": ("reverse",),
               "bidirectional": ("forward", "reverse")}
# The default activations per operator (one list per direction).
_DEFAULT_ACTS = {"rnn": ["tanh"], "lstm": ["sigmoid", "tanh", "tanh"],
                 "gru": ["sigmoid", "tanh"]}


def spec_from_arrays(kind, W, R, B=None, *, direction="forward", activation="tanh",
                     linear_before_reset=0):
    """A :class:`~fastrnn.io.Spec` from an ONNX recurrent operator's weights.

    Parameters
    ----------
    kind : {"rnn", "lstm", "gru"}
    W : ndarray (D, G·n_a, n_x)
    R : ndarray (D, G·n_a, n_a)
    B : ndarray (D, 2·G·n_a), optional (zeros)
    direction : {"forward", "reverse", "bidirectional"}
    activation : {"tanh", "relu"}
        The RNN operator's activation.
    linear_before_reset : {0, 1}
        The GRU operator's attribute: 1 is PyTorch's formulation (``reset_after=True`` of
        :class:`fastrnn.GRU`), 0 (ONNX's default) applies the reset gate to the state before
        the recurrent product.
    """
    W, R = np.asarray(W), np.asarray(R)
    dtype = np.float32 if W.dtype == np.float32 else np.float64
    directions = _DIRECTIONS[direction]
    D, Gn, _ = W.shape
    G = len(ONNX_GATES[kind])
    n = Gn // G
    if len(directions) != D or Gn != G * n or R.shape != (D, Gn, n):
        raise ValueError(f"W (D, G*n_a, n_x) and R (D, G*n_a, n_a) with D = {len(directions)} "
                         f"({direction}) and G = {G} do not match: got W {W.shape}, "
                         f"R {R.shape}")
    B = np.zeros((D, 2 * Gn), dtype=dtype) if B is None else np.asarray(B)
    if B.shape != (D, 2 * Gn):
        raise ValueError(f"B must have shape (D, 2*G*n_a) = {(D, 2 * Gn)}, got {B.shape}")
    layer = []
    for d in range(D):
        blk = lambda a, j: np.asarray(a[j * n:(j + 1) * n], dtype=dtype)  # noqa: E731
        Wb, Rb = B[d, :Gn], B[d, Gn:]
        gates = {g: (blk(W[d], j), blk(R[d], j), blk(Wb, j), blk(Rb, j))
                 for j, g in enumerate(ONNX_GATES[kind])}
        layer.append(layer_parameters(kind, gates))
    return Spec(kind, [layer], directions=directions, activation=activation,
                reset_after=bool(linear_before_reset) if kind == "gru" else True, dtype=dtype)


def _attributes(node):
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list):
            v = [s.decode() if isinstance(s, bytes) else s for s in v]
        out[a.name] = v
    return out


def _check_attributes(kind, attrs, where):
    direction = attrs.get("direction", "forward")
    if direction not in _DIRECTIONS:
        raise ValueError(f"{where}: direction {direction!r} is not one of {list(_DIRECTIONS)}")
    D = len(_DIRECTIONS[direction])
    acts = [a.lower() for a in attrs.get("activations", _DEFAULT_ACTS[kind] * D)]
    activation = "tanh"
    if kind == "rnn" and acts == ["relu"] * D:
        activation = "relu"
    elif acts != _DEFAULT_ACTS[kind] * D:
        raise ValueError(f"{where}: activations {attrs['activations']} are not supported; "
                         f"fastrnn computes {_DEFAULT_ACTS[kind] * D}"
                         + (" (or Relu for the RNN)" if kind == "rnn" else ""))
    for name in ("activation_alpha", "activation_beta", "clip"):
        if name in attrs:
            raise ValueError(f"{where}: attribute {name}={attrs[name]} is not supported")
    if attrs.get("input_forget", 0):
        raise ValueError(f"{where}: input_forget=1 (coupled input and forget gates) is not "
                         f"supported")
    return direction, activation


def from_onnx(path_or_model):
    """A fastrnn model computing what the ONNX graph's recurrent operators compute.

    Parameters
    ----------
    path_or_model : str, os.PathLike or onnx.ModelProto
        A graph with one ``RNN``, ``LSTM`` or ``GRU`` node, or a chain of them as
        ``torch.onnx.export`` writes a stacked module (each node reading the previous one's
        ``Y`` through ``Squeeze(axes=[1])``, or ``Transpose(perm=[0, 2, 1, 3])`` and
        ``Reshape([0, 0, -1])`` for a bidirectional one), whose ``W``, ``R`` (and ``B``) are
        constants (initializers).  Any direction and ``layout``; GRU ``linear_before_reset``
        either way; default activations (RNN: Tanh or Relu).  Peepholes ``P``, ``clip``,
        ``input_forget`` and other activations are refused.  Nodes before the first
        recurrent node and after the last are not part of the model.

    Returns
    -------
    fastrnn.io.Imported
        ``forward(x, lengths=None, h0=None, c0=None)`` takes ``x (n_x, m, T_x)``,
        ``sequence_lens`` as ``lengths (m,)`` and ``initial_h``/``initial_c`` of each node,
        stacked, as ``(L·D, n_a, m)``; it returns ``(a, None, state)`` with
        ``a (D·n_a, m, T_x)`` the last operator's ``Y (T_x, D, m, n_a)`` rearranged and
        ``state`` the operators' ``Y_h`` (and ``Y_c``) stacked as ``(L·D, n_a, m)``.
    """
    import onnx
    from onnx import numpy_helper

    if isinstance(path_or_model, (str, os.PathLike)):
        model = onnx.load(path_or_model)
    elif isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    else:
        raise TypeError(f"path_or_model must be a path or an onnx.ModelProto, got "
                        f"{type(path_or_model).__name__}")
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in _KINDS]
    if not nodes:
        raise ValueError("the graph must hold an RNN, LSTM or GRU node, found none")
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    constants[n.output[0]] = numpy_helper.to_array(a.t)
    producers = {out: n for n in graph.node for out in n.output}
    layers, options = [], set()
    for k, node in enumerate(nodes):
        if k:
            _check_chained(node, nodes[k - 1], producers, constants)
        W, R, B, opts = _read_node(node, constants)
        options.add(opts)
        layers.append((W, R, B))
    if len(options) != 1:
        raise ValueError(f"the graph's recurrent nodes must share one kind, direction and "
                         f"attributes, got {sorted(options)}")
    kind, direction, activation, lbr, lengths_input = options.pop()
    specs = [spec_from_arrays(kind, W, R, B, direction=direction, activation=activation,
                              linear_before_reset=lbr) for W, R, B in layers]
    first = specs[0]
    spec = Spec(kind, [s.layers[0] for s in specs], directions=first.directions,
                activation=activation, reset_after=first.reset_after, dtype=first.dtype)
    from fastrnn.io._model import Imported
    return Imported(spec)


_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


def _read_node(node, constants):
    """W, R, B and the options (kind, direction, activation, linear_before_reset, the
    sequence_lens input's name) of one recurrent node."""
    kind = _KINDS[node.op_type]
    where = f"{node.op_type} node {node.name!r}"
    inputs = list(node.input) + [""] * 8

    def const(i, required):
        name = inputs[i]
        if not name:
            if required:
                raise ValueError(f"{where} has no {_INPUTS[i]} input")
            return None
        if name not in constants:
            raise ValueError(f"{where}: input {_INPUTS[i]} ({name!r}) must be a constant "
                             f"(an initializer) for fastrnn to read it")
        return constants[name]

    for i in (4, 5, 6):
        if inputs[i] and inputs[i] in constants:
            raise ValueError(f"{where}: {_INPUTS[i]} is a constant of the graph; fastrnn takes "
                             f"it at run time (forward's lengths, h0, c0): remove it from the "
                             f"graph and pass it there")
    if kind == "lstm" and inputs[7]:
        raise ValueError(f"{where}: peephole weights P are not supported")
    attrs = _attributes(node)
    direction, activation = _check_attributes(kind, attrs, where)
    W, R, B = const(1, True), const(2, True), const(3, False)
    if W.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: W must be float32 or float64, got {W.dtype}")
    n_a = R.shape[-1]
    if "hidden_size" in attrs and attrs["hidden_size"] != n_a:
        raise ValueError(f"{where}: hidden_size={attrs['hidden_size']} but R is {R.shape}")
    lbr = attrs.get("linear_before_reset", 0) if kind == "gru" else 0
    return W, R, B, (kind, direction, activation, lbr, inputs[4])


def _check_chained(node, prev, producers, constants):
    """Refuse unless ``node`` reads ``prev``'s Y exactly as a stacked layer would: the
    (T, D, m, n_a) output as (T, m, D·n_a) input, nothing else in between."""
    where = f"{node.op_type} node {node.name!r}"
    D = 2 if _attributes(prev).get("direction") == "bidirectional" else 1
    y = prev.output[0] if prev.output else ""
    n = producers.get(node.input[0])

    def const_ints(name):
        return None if name not in constants else [int(v) for v in
                                                   np.ravel(constants[name])]

    ok = False
    if D == 1 and n is not None and n.op_type == "Squeeze" and n.input[0] == y:
        axes = _attributes(n).get("axes") or (const_ints(n.input[1]) if len(n.input) > 1
                                               else None)
        ok = list(axes or []) == [1]
    elif D == 2 and n is not None and n.op_type == "Reshape":
        t = producers.get(n.input[0])
        ok = (const_ints(n.input[1]) == [0, 0, -1] and t is not None
              and t.op_type == "Transpose" and t.input[0] == y
              and list(_attributes(t).get("perm", [])) == [0, 2, 1, 3])
    if not ok:
        raise ValueError(
            f"{where} must read the previous recurrent node's output Y directly (through "
            f"Squeeze(axes=[1]), or Transpose(perm=[0, 2, 1, 3]) and Reshape([0, 0, -1]) for a "
            f"bidirectional one) for fastrnn to run them as a stack; this graph does something "
            f"else between them")
