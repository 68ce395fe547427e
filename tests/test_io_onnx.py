"""fastrnn.from_onnx against ONNX Runtime running the same graph, with mutants."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX importer tests need onnx")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is the importer tests' oracle")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import _io_oracle  # noqa: E402
import fastrnn  # noqa: E402
from fastrnn.io import _onnx  # noqa: E402

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-10}, np.float32: {"rtol": 1e-4, "atol": 1e-5}}
OPS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def weights(kind, n_x, n_a, D, rng, dtype, scale=1.0):
    G = GATES[kind]
    s = scale / np.sqrt(n_a + n_x)
    return tuple((s * rng.standard_normal(shape)).astype(dtype) for shape in
                 ((D, G * n_a, n_x), (D, G * n_a, n_a), (D, 2 * G * n_a)))


def graph(kind, W, R, B=None, *, direction="forward", lengths=False, states=False,
          extra_inputs=(), **attrs):
    """A one-node ONNX model: X, [sequence_lens, initial_h, initial_c] -> Y, Y_h[, Y_c]."""
    D, _, n_x = W.shape
    n_a = R.shape[2]
    elem = TensorProto.DOUBLE if W.dtype == np.float64 else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", elem, ["T", "m", n_x])]
    init = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    names = ["X", "W", "R", ""]
    if B is not None:
        init.append(numpy_helper.from_array(B, "B"))
        names[3] = "B"
    names.append("sequence_lens" if lengths else "")
    if lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["m"]))
    names.append("initial_h" if states else "")
    if states:
        inputs.append(helper.make_tensor_value_info("initial_h", elem, [D, "m", n_a]))
    if kind == "lstm":
        names.append("initial_c" if states else "")
        if states:
            inputs.append(helper.make_tensor_value_info("initial_c", elem, [D, "m", n_a]))
    names += list(extra_inputs)
    while names and names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if kind == "lstm" else [])
    node = helper.make_node(OPS[kind], names, outs, hidden_size=n_a, direction=direction,
                            **attrs)
    outputs = [helper.make_tensor_value_info(o, elem, None) for o in outs]
    g = helper.make_graph([node], "g", inputs, outputs, init)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def ort_run(model, x, lengths=None, h0=None, c0=None):
    """ORT's outputs in fastrnn's layouts: a (D·n_a, m, T), h_n (D, n_a, m), c_n."""
    sess = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"])
    feed = {"X": np.ascontiguousarray(x.transpose(2, 1, 0))}
    if lengths is not None:
        feed["sequence_lens"] = lengths.astype(np.int32)
    if h0 is not None:
        feed["initial_h"] = np.ascontiguousarray(h0.transpose(0, 2, 1))
    if c0 is not None:
        feed["initial_c"] = np.ascontiguousarray(c0.transpose(0, 2, 1))
    out = sess.run(None, feed)
    T, D, m, n_a = out[0].shape
    a = out[0].transpose(1, 3, 2, 0).reshape(D * n_a, m, T)
    return (a,) + tuple(o.transpose(0, 2, 1) for o in out[1:]) + ((None,) if len(out) == 2
                                                                  else ())


def assert_same(got, want, dtype, what):
    for g, w, name in zip(got, want, ("a", "h_n", "c_n")):
        if w is None:
            continue
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, **TOL[dtype],
                                   err_msg=f"{what}: {name}")


def assert_differs(got, want, dtype):
    tol = TOL[dtype]
    worst = max(np.max(np.abs(np.asarray(g, np.float64) - w) - tol["rtol"] * np.abs(w))
                for g, w in zip(got, want) if w is not None)
    assert worst > tol["atol"], "the mutated map was not detected"


def check(kind, model, x, lengths, h0, c0, dtype, activation="tanh", what=""):
    """The map (oracle) and the model against ONNX Runtime.

    ONNX Runtime's RNN, LSTM and GRU kernels are float32 only: a float64 graph is compared
    with ORT running its float32 copy (to float32 tolerance), and with the oracle to 1e-10.
    """
    f32 = onnx.ModelProto()
    f32.CopyFrom(model)
    for t in f32.graph.initializer:
        if t.data_type == TensorProto.DOUBLE:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32),
                                               t.name))
    for v in list(f32.graph.input) + list(f32.graph.output):
        if v.type.tensor_type.elem_type == TensorProto.DOUBLE:
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    cast = lambda v: None if v is None else v.astype(np.float32)  # noqa: E731
    want = ort_run(f32, cast(x), lengths, cast(h0), cast(c0))
    attrs = _onnx._attributes(model.graph.node[0])
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    spec = _onnx.spec_from_arrays(kind, inits["W"], inits["R"], inits.get("B"),
                                  direction=attrs.get("direction", "forward"),
                                  activation=activation,
                                  linear_before_reset=attrs.get("linear_before_reset", 0))
    assert spec.dtype == dtype
    exact = _io_oracle.run(spec, x, lengths, h0, c0)
    a, _, h, c = exact
    assert_same((a, h, c), want, np.float32, "map " + what)
    imported = fastrnn.from_onnx(model)
    got_a, y, s = imported.forward(x, lengths=lengths, h0=h0, c0=c0)
    assert y is None and imported.dtype == dtype and got_a.dtype == dtype
    got = (got_a,) + (tuple(s) if kind == "lstm" else (s, None))
    assert_same(got, want, np.float32, "model " + what)
    assert_same(got, (a, h, c), dtype, "model vs oracle " + what)
    return want


KINDS = [("rnn", "tanh", {}), ("rnn", "relu", {}), ("lstm", "tanh", {}),
         ("gru", "tanh", {"linear_before_reset": 1}), ("gru", "tanh", {}),
         ("gru", "tanh", {"linear_before_reset": 0})]


@pytest.mark.parametrize("kind,activation,extra", KINDS)
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_onnxruntime(kind, activation, extra, direction, dtype):
    rng = np.random.default_rng(0)
    D = 2 if direction == "bidirectional" else 1
    W, R, B = weights(kind, 3, 5, D, rng, dtype)
    attrs = dict(extra)
    if activation == "relu":
        attrs["activations"] = ["Relu"] * D
    for lengths, states, bias in ((False, False, True), (True, True, True),
                                  (True, False, False)):
        model = graph(kind, W, R, B if bias else None, direction=direction, lengths=lengths,
                      states=states, **attrs)
        x = rng.standard_normal((3, 4, 7)).astype(dtype)
        L = rng.integers(1, 8, size=4) if lengths else None
        h0 = rng.standard_normal((D, 5, 4)).astype(dtype) if states else None
        c0 = rng.standard_normal((D, 5, 4)).astype(dtype) if states and kind == "lstm" \
            else None
        check(kind, model, x, L, h0, c0, dtype, activation, f"{lengths} {states} {bias}")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saturating_long(kind):
    rng = np.random.default_rng(1)
    W, R, B = weights(kind, 2, 3, 2, rng, np.float32, scale=6.0)
    attrs = {"linear_before_reset": 1} if kind == "gru" else {}
    model = graph(kind, W, R, B, direction="bidirectional", lengths=True, **attrs)
    x = 3 * rng.standard_normal((2, 3, 1000)).astype(np.float32)
    check(kind, model, x, np.array([1000, 17, 999]), None, None, np.float32, what="T=1000")


MUTANTS = {
    "lstm gates o,f swapped": ("lstm", lambda mp: mp.setitem(
        _onnx.ONNX_GATES, "lstm", ("i", "f", "o", "c"))),
    "lstm as PyTorch's i,f,g,o": ("lstm", lambda mp: mp.setitem(
        _onnx.ONNX_GATES, "lstm", ("i", "f", "c", "o"))),
    "gru gates z,r swapped": ("gru", lambda mp: mp.setitem(
        _onnx.ONNX_GATES, "gru", ("r", "z", "n"))),
}


def _mutant(kind, patch, monkeypatch, B_mutation=None, reverse_from_forward=False):
    rng = np.random.default_rng(2)
    W, R, B = weights(kind, 4, 4, 2, rng, np.float32, scale=1.5)
    attrs = {"linear_before_reset": 1} if kind == "gru" else {}
    model = graph(kind, W, R, B, direction="bidirectional", lengths=True, **attrs)
    x = rng.standard_normal((4, 3, 6)).astype(np.float32)
    L = np.array([6, 2, 4])
    want = ort_run(model, x, L)
    if patch is not None:
        patch(monkeypatch)
    if B_mutation is not None:
        B = B_mutation(B.copy())
    if reverse_from_forward:
        W, R, B = (np.stack([v[0], v[0]]) for v in (W, R, B))
    spec = _onnx.spec_from_arrays(kind, W, R, B, direction="bidirectional")
    a, _, h, c = _io_oracle.run(spec, x, L)
    assert_differs((a, h, c), want, np.float32)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutants_fail(name, monkeypatch):
    kind, patch = MUTANTS[name]
    _mutant(kind, patch, monkeypatch)


def test_mutant_recurrent_bias_dropped(monkeypatch):
    def drop(B):
        B[:, B.shape[1] // 2:] = 0
        return B
    _mutant("gru", None, monkeypatch, B_mutation=drop)


def test_mutant_reverse_direction_forgotten(monkeypatch):
    _mutant("lstm", None, monkeypatch, reverse_from_forward=True)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_mutant_other_gru_formulation(linear_before_reset):
    rng = np.random.default_rng(5)
    W, R, B = weights("gru", 3, 4, 1, rng, np.float32, scale=2.0)
    model = graph("gru", W, R, B, linear_before_reset=linear_before_reset)
    x = rng.standard_normal((3, 2, 6)).astype(np.float32)
    want = ort_run(model, x)
    spec = _onnx.spec_from_arrays("gru", W, R, B,
                                  linear_before_reset=1 - linear_before_reset)
    a, _, h, c = _io_oracle.run(spec, x)
    assert_differs((a, h, c), want, np.float32)


def _export(module, xt):
    torch = pytest.importorskip("torch", reason="exporting a module needs torch")
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(module, (xt,), buf, dynamo=False, input_names=["X"])
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (3, False),
                                                      (2, True)])
def test_torch_export(kind, num_layers, bidirectional):
    """Graphs as torch.onnx.export writes them (initial states built by Shape/Expand nodes,
    one operator per layer, outputs reshaped between them) import and run."""
    torch = pytest.importorskip("torch", reason="exporting a module needs torch")
    torch.manual_seed(0)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    module = cls(3, 4, num_layers=num_layers, bidirectional=bidirectional).eval()
    x = np.random.default_rng(6).standard_normal((3, 2, 5)).astype(np.float32)
    xt = torch.from_numpy(x.transpose(2, 1, 0).copy())
    model = fastrnn.from_onnx(_export(module, xt))
    D = 2 if bidirectional else 1
    assert model.num_layers == num_layers and model.num_directions == D
    h0 = np.random.default_rng(7).standard_normal((num_layers * D, 4, 2)).astype(np.float32)
    with torch.no_grad():
        out, state = module(xt, torch.from_numpy(h0.transpose(0, 2, 1).copy())
                            if kind != "lstm" else None)
    a, _, got = model.forward(x, h0=h0 if kind != "lstm" else None)
    hs = state if kind == "lstm" else (state,)
    gs = got if kind == "lstm" else (got,)
    assert_same((a,) + tuple(gs), (out.numpy().transpose(2, 1, 0),) + tuple(
        v.numpy().transpose(0, 2, 1) for v in hs), np.float32, "exported")


def test_refuses_a_chain_with_something_between():
    torch = pytest.importorskip("torch", reason="exporting a module needs torch")
    module = torch.nn.GRU(3, 4, num_layers=2).eval()
    m = _export(module, torch.zeros(5, 2, 3))
    squeeze = next(n for n in m.graph.node if n.op_type == "Squeeze")
    relu = helper.make_node("Relu", [squeeze.output[0]], ["relu_out"])
    second = [n for n in m.graph.node if n.op_type == "GRU"][1]
    second.input[0] = "relu_out"
    m.graph.node.insert(list(m.graph.node).index(second), relu)
    with pytest.raises(ValueError, match="must read the previous recurrent node's output"):
        fastrnn.from_onnx(m)


def test_layout_1():
    """layout=1 (batch-first X, Y and states in the graph; ONNX Runtime has no kernel for it)
    changes only the graph's tensor layouts: the model reads the same weights."""
    rng = np.random.default_rng(7)
    W, R, B = weights("gru", 3, 4, 2, rng, np.float32)
    x = rng.standard_normal((3, 2, 5)).astype(np.float32)
    outs = [fastrnn.from_onnx(graph("gru", W, R, B, direction="bidirectional", layout=layout,
                                    linear_before_reset=1)).forward(x)
            for layout in (0, 1)]
    for got, want in zip(outs[1][::2], outs[0][::2]):
        np.testing.assert_array_equal(got, want)


def test_reads_a_file(tmp_path):
    rng = np.random.default_rng(3)
    W, R, B = weights("lstm", 3, 4, 1, rng, np.float32)
    model = graph("lstm", W, R, B)
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = rng.standard_normal((3, 2, 5)).astype(np.float32)
    a, _, _ = fastrnn.from_onnx(tmp_path / "m.onnx").forward(x)
    assert_same((a,), ort_run(model, x), np.float32, "from a file")


def test_refuses_unsupported_attributes():
    rng = np.random.default_rng(4)
    W, R, B = weights("lstm", 3, 4, 1, rng, np.float32)
    with pytest.raises(ValueError, match="clip"):
        fastrnn.from_onnx(graph("lstm", W, R, B, clip=1.0))
    with pytest.raises(ValueError, match="input_forget"):
        fastrnn.from_onnx(graph("lstm", W, R, B, input_forget=1))
    with pytest.raises(ValueError, match="activations"):
        fastrnn.from_onnx(graph("lstm", W, R, B, activations=["Sigmoid", "Relu", "Tanh"]))
    P = numpy_helper.from_array(np.zeros((1, 12), np.float32), "P")
    m = graph("lstm", W, R, B, extra_inputs=("P",))
    m.graph.initializer.append(P)
    with pytest.raises(ValueError, match="peephole"):
        fastrnn.from_onnx(m)
    with pytest.raises(TypeError, match="path or an onnx.ModelProto"):
        fastrnn.from_onnx(42)
    empty = helper.make_model(helper.make_graph([], "g", [], []))
    with pytest.raises(ValueError, match="an RNN, LSTM or GRU node, found none"):
        fastrnn.from_onnx(empty)
    # weights that are run-time inputs cannot be read
    m = graph("lstm", W, R, B)
    del m.graph.initializer[2]
    with pytest.raises(ValueError, match="B .* must be a constant"):
        fastrnn.from_onnx(m)
