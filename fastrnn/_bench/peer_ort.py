"""The ONNX Runtime peer: the same work as one ONNX graph, run by ONNX Runtime.

The graph (built with ``onnx.helper``): the ONNX ``RNN``/``LSTM``/``GRU`` operator over the whole
sequence (``X`` in ONNX's ``(T_x, m, n_x)`` layout, initial states as inputs, weights as
initializers), then ``MatMul``/``Add``/``Softmax`` for the output layer.  A single step (the
``stream`` shape) is the same graph with ``T_x = 1``.  One intra-op thread per benchmark
thread, sequential execution, all graph optimisations.  ONNX Runtime's RNN/LSTM/GRU kernels
compute float32 only: float64 cases have no ONNX Runtime row.

onnx and onnxruntime are optional: nothing here imports them at module import time.
"""
import numpy as np

# ONNX stacks the LSTM gates as i, o, f, c.
ONNX_GATES = ("i", "o", "f", "c")
OPSET = 17
IR_VERSION = 8     # opset 17's IR version: what every ONNX Runtime of that opset reads


def onnx_weights_rnn(parameters):
    """RNN ``parameters`` as ONNX ``RNN`` inputs: ``W`` (1, n_a, n_x) = Wax, ``R`` (1, n_a,
    n_a) = Waa, ``B`` (1, 2 n_a) = [ba, 0]; ``Wy`` (n_y, n_a), ``by`` (n_y,)."""
    p = {k: np.asarray(v) for k, v in parameters.items()}
    ba = p["ba"].reshape(-1)
    return {"W": p["Wax"][None], "R": p["Waa"][None],
            "B": np.concatenate([ba, np.zeros_like(ba)])[None],
            "Wy": p["Wya"], "by": p["by"].reshape(-1)}


def onnx_weights_lstm(parameters):
    """LSTM ``parameters`` as ONNX ``LSTM`` inputs, gates in ONNX's order i, o, f, c.

    ``W`` (1, 4 n_a, n_x) from the input columns of each ``(n_a, n_a + n_x)`` gate matrix,
    ``R`` (1, 4 n_a, n_a) from its first n_a (recurrent) columns, ``B`` (1, 8 n_a) = [Wb, Rb]
    with the whole bias in Wb; ``Wy`` (n_y, n_a), ``by`` (n_y,).
    """
    p = {k: np.asarray(v) for k, v in parameters.items()}
    n_a = p["Wy"].shape[1]
    mats = [p["W" + g] for g in ONNX_GATES]
    bias = np.concatenate([p["b" + g].reshape(-1) for g in ONNX_GATES])
    return {"W": np.concatenate([w[:, n_a:] for w in mats])[None],
            "R": np.concatenate([w[:, :n_a] for w in mats])[None],
            "B": np.concatenate([bias, np.zeros_like(bias)])[None],
            "Wy": p["Wy"], "by": p["by"].reshape(-1)}


# ONNX stacks the GRU gates as z, r, h (h is the candidate, our "n").
ONNX_GRU_GATES = ("z", "r", "n")


def onnx_weights_gru(parameters):
    """GRU ``parameters`` as ONNX ``GRU`` inputs, gates in ONNX's order z, r, h, for
    ``linear_before_reset=1`` (fastrnn's ``reset_after=True``).

    ``W`` (1, 3 n_a, n_x) = [Wzx; Wrx; Wnx], ``R`` (1, 3 n_a, n_a) = [Wza; Wra; Wna], ``B``
    (1, 6 n_a) = [bzx, brx, bnx, bza, bra, bna] (the recurrent biases are kept apart: the
    candidate's is scaled by the reset gate); ``Wy`` (n_y, n_a), ``by`` (n_y,).
    """
    p = {k: np.asarray(v) for k, v in parameters.items()}
    g = ONNX_GRU_GATES
    return {"W": np.concatenate([p[f"W{k}x"] for k in g])[None],
            "R": np.concatenate([p[f"W{k}a"] for k in g])[None],
            "B": np.concatenate([p[f"b{k}x"].reshape(-1) for k in g]
                                + [p[f"b{k}a"].reshape(-1) for k in g])[None],
            "Wy": p["Wy"], "by": p["by"].reshape(-1)}


def import_ort():
    """``(onnx, onnxruntime)``, or None when either is not installed (an optional peer)."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        return None
    return onnx, onnxruntime


def build_graph(model, parameters, dtype=np.float32):
    """The ONNX model (``onnx.ModelProto``) of a forward pass of ``model`` with
    ``parameters``.

    Inputs ``X`` (T_x, m, n_x), ``h0`` (1, m, n_a) (and ``c0`` for an LSTM-style kind);
    outputs ``Y`` (T_x, 1, m, n_a), ``y`` (T_x, m, n_y) (and ``Y_c`` (1, m, n_a), the last
    cell state).  ``T_x`` and ``m`` are symbolic.
    """
    from onnx import TensorProto, helper, numpy_helper

    from fastrnn._bench.kinds import kind
    k = kind(model)
    if np.dtype(dtype) != np.float32:
        raise ValueError("ONNX Runtime's recurrent operators compute float32 only")
    w = {name: np.ascontiguousarray(v, dtype=np.float32)
         for name, v in k.onnx_weights(parameters).items()}
    n_a, n_x = w["R"].shape[2], w["W"].shape[2]
    n_y = w["Wy"].shape[0]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f32, ["T", "m", n_x]),
              helper.make_tensor_value_info("h0", f32, [1, "m", n_a])]
    rnn_inputs = ["X", "W", "R", "B", "", "h0"]
    rnn_outputs = ["Y", ""]
    outputs = [helper.make_tensor_value_info("Y", f32, ["T", 1, "m", n_a]),
               helper.make_tensor_value_info("y", f32, ["T", "m", n_y])]
    if k.cell_state:
        inputs.append(helper.make_tensor_value_info("c0", f32, [1, "m", n_a]))
        rnn_inputs.append("c0")
        rnn_outputs.append("Y_c")
        outputs.append(helper.make_tensor_value_info("Y_c", f32, [1, "m", n_a]))
    inits = [numpy_helper.from_array(w["W"], "W"), numpy_helper.from_array(w["R"], "R"),
             numpy_helper.from_array(w["B"], "B"),
             numpy_helper.from_array(np.ascontiguousarray(w["Wy"].T), "WyT"),
             numpy_helper.from_array(w["by"], "by"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes = [
        helper.make_node(k.onnx_op, rnn_inputs, rnn_outputs, hidden_size=n_a,
                         **k.onnx_attributes),
        helper.make_node("Squeeze", ["Y", "axis1"], ["a"]),          # (T, m, n_a)
        helper.make_node("MatMul", ["a", "WyT"], ["z"]),             # (T, m, n_y)
        helper.make_node("Add", ["z", "by"], ["zb"]),
        helper.make_node("Softmax", ["zb"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(nodes, f"fastrnn_bench_{k.name}", inputs, outputs, inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="fastrnn bench")
    onnx_model.ir_version = IR_VERSION
    return onnx_model


def ort_peer(model, parameters, dtype, x, a0, c0=None, *, cell=False, threads=1):
    """An ONNX Runtime forward pass on fastrnn's arrays: ``(call, outputs)``.

    ``call()`` runs the session; ``outputs(call())`` converts its result to fastrnn's layout
    (a dict with ``a``, ``y`` and, for an LSTM-style kind, ``c`` (cell) or ``c_T`` (sequence:
    the last cell state)).  The inputs are converted to ONNX's layout here, once.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x), or (n_x, m) when ``cell``
    a0 : ndarray (n_a, m)
    c0 : ndarray (n_a, m), optional
        The initial cell state of a single step; sequences start from zeros, as
        ``lstm_forward`` does.
    threads : int
        ONNX Runtime's intra-op threads.
    """
    from fastrnn._bench.kinds import kind
    mods = import_ort()
    if mods is None:
        raise ImportError("onnx and onnxruntime are not installed")
    onnx, ort = mods
    k = kind(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(build_graph(k, parameters, dtype).SerializeToString(),
                                   opts, providers=["CPUExecutionProvider"])
    x = np.asarray(x, np.float32)
    xs = x[:, :, None] if cell else x
    feeds = {"X": np.ascontiguousarray(xs.transpose(2, 1, 0)),        # (T_x, m, n_x)
             "h0": np.ascontiguousarray(np.asarray(a0, np.float32).T[None])}
    if k.cell_state:
        feeds["c0"] = (np.ascontiguousarray(np.asarray(c0, np.float32).T[None]) if cell
                       else np.zeros_like(feeds["h0"]))
    names = [o.name for o in session.get_outputs()]

    def call():
        return session.run(names, feeds)

    def outputs(res):
        got = dict(zip(names, res))
        a = got["Y"][:, 0].transpose(2, 1, 0)        # (n_a, m, T_x)
        y = got["y"].transpose(2, 1, 0)              # (n_y, m, T_x)
        if cell:
            out = {"a": a[:, :, 0], "y": y[:, :, 0]}
            if k.cell_state:
                out["c"] = got["Y_c"][0].T
            return out
        out = {"a": a, "y": y}
        if k.cell_state:
            out["c_T"] = got["Y_c"][0].T
        return out
    return call, outputs
