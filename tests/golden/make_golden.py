"""Write the importer golden files: a few small reference models, their framework-native
weights, inputs, and the framework's own outputs.

    KERAS_BACKEND=torch python tests/golden/make_golden.py     # needs torch, keras, onnx,
                                                               # onnxruntime

tests/test_io_golden.py reads them without any framework: it feeds the stored weights (a torch
state_dict, Keras kernels, ONNX W/R/B) to the same layout maps the importers use and compares
fastrnn's outputs with the framework's.  Each file is a plain .npz (no pickle): ``config`` (a
JSON string), ``w/<name>`` the framework's weights, ``in/<name>`` the inputs in fastrnn's
layouts (x (n_x, m, T_x), lengths (m,), h0/c0 (L·D, n_a, m)) and ``out/<name>`` the
framework's outputs in fastrnn's layouts (a (D·n_a, m, T_x), y, h_n, c_n).
"""
import json
import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, config, weights, inputs, outputs):
    arrays = {"config": np.array(json.dumps(config, sort_keys=True))}
    arrays.update({f"w/{k}": v for k, v in weights.items()})
    arrays.update({f"in/{k}": v for k, v in inputs.items() if v is not None})
    arrays.update({f"out/{k}": v for k, v in outputs.items() if v is not None})
    path = os.path.join(HERE, name + ".npz")
    np.savez_compressed(path, **arrays)
    print(f"{path}: {os.path.getsize(path)} bytes")


def torch_case(name, kind, dtype, *, num_layers=1, bidirectional=False, bias=True,
               nonlinearity=None, head=0, lengths=None, states=False, n_a=4, seed=0):
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_x, m, T = 3, 3, 5
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    options = dict(num_layers=num_layers, bidirectional=bidirectional, bias=bias)
    if nonlinearity:
        options["nonlinearity"] = nonlinearity
    module = cls(n_x, n_a, **options).to(torch.float64 if dtype == "float64" else torch.float32)
    D = 2 if bidirectional else 1
    linear = torch.nn.Linear(D * n_a, head).to(module.weight_hh_l0.dtype) if head else None
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    L = None if lengths is None else np.array(lengths, dtype=np.int64)
    h0 = rng.standard_normal((num_layers * D, n_a, m)).astype(dtype) if states else None
    c0 = h0 * 0.5 if states and kind == "lstm" else None
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0)))
    if L is not None:
        xt = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.from_numpy(L),
                                                     enforce_sorted=False)
    state = None
    if h0 is not None:
        h = torch.from_numpy(np.ascontiguousarray(h0.transpose(0, 2, 1)))
        state = (h, torch.from_numpy(np.ascontiguousarray(c0.transpose(0, 2, 1)))) \
            if kind == "lstm" else h
    with torch.no_grad():
        out, hn = module(xt, state)
        if L is not None:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
        y = None
        if linear is not None:
            y = torch.softmax(linear(out), dim=-1).numpy().transpose(2, 1, 0).copy()
            if L is not None:  # fastrnn's predictions past a length are 0
                y[:, np.arange(T)[None, :] >= L[:, None]] = 0
    hn, cn = hn if isinstance(hn, tuple) else (hn, None)
    weights = {k: v.numpy() for k, v in module.state_dict().items()}
    if linear is not None:
        weights.update({"head." + k: v.detach().numpy() for k, v in linear.state_dict().items()})
    config = {"framework": "torch", "kind": kind, "dtype": dtype, "num_layers": num_layers,
              "bidirectional": bidirectional, "nonlinearity": nonlinearity or "tanh",
              "torch": __import__("torch").__version__}
    write(name, config, weights, {"x": x, "lengths": L, "h0": h0, "c0": c0},
          {"a": out.numpy().transpose(2, 1, 0), "y": y, "h_n": hn.numpy().transpose(0, 2, 1),
           "c_n": None if cn is None else cn.numpy().transpose(0, 2, 1)})


def torch_cell_case(name, kind, dtype, seed=0):
    """A cell run step by step over a sequence (the importer's cell path, cell=True)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_x, n_a, m, T = 3, 4, 2, 4
    cls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind]
    cell = cls(n_x, n_a).to(torch.float64 if dtype == "float64" else torch.float32)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    h0 = rng.standard_normal((1, n_a, m)).astype(dtype)
    state = torch.from_numpy(h0[0].T.copy())
    if kind == "lstm":
        state = (state, torch.zeros_like(state))
    a = np.zeros((n_a, m, T), dtype=dtype)
    with torch.no_grad():
        for t in range(T):
            state = cell(torch.from_numpy(x[:, :, t].T.copy()), state)
            a[:, :, t] = (state[0] if kind == "lstm" else state).numpy().T
    config = {"framework": "torch", "kind": kind, "dtype": dtype, "num_layers": 1,
              "bidirectional": False, "nonlinearity": "tanh", "cell": True,
              "torch": torch.__version__}
    hn = state[0] if kind == "lstm" else state
    write(name, config, {k: v.numpy() for k, v in cell.state_dict().items()},
          {"x": x, "h0": h0}, {"a": a, "h_n": hn.numpy().T[None],
                               "c_n": state[1].numpy().T[None] if kind == "lstm" else None})


def keras_case(name, kind, *, bidirectional=False, reset_after=True, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    n_x, n_a, m, T = 3, 4, 2, 5
    cls = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
           "gru": keras.layers.GRU}[kind]
    options = {"reset_after": reset_after} if kind == "gru" else {}
    layer = cls(n_a, return_sequences=True, return_state=True,
                bias_initializer="random_normal", **options)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    layer.build((None, None, n_x))
    x = rng.standard_normal((n_x, m, T)).astype(np.float32)
    out = [o.detach().numpy() for o in layer(np.ascontiguousarray(x.transpose(1, 2, 0)))]
    halves = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    weights = {}
    for d, half in enumerate(halves):
        cell = half.cell
        weights[f"{d}/kernel"] = cell.kernel.value.detach().numpy()
        weights[f"{d}/recurrent_kernel"] = cell.recurrent_kernel.value.detach().numpy()
        weights[f"{d}/bias"] = cell.bias.value.detach().numpy()
    k = 2 if kind == "lstm" else 1
    states = out[1:]
    config = {"framework": "keras", "kind": kind, "dtype": "float32",
              "directions": len(halves), "reset_after": reset_after,
              "keras": keras.__version__}
    write(name, config, weights, {"x": x},
          {"a": out[0].transpose(2, 0, 1),
           "h_n": np.stack([states[d * k].T for d in range(len(halves))]),
           "c_n": np.stack([states[d * k + 1].T for d in range(len(halves))])
           if kind == "lstm" else None})


def onnx_case(name, kind, direction, *, linear_before_reset=1, seed=0):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    n_x, n_a, m, T = 3, 4, 3, 5
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    D = 2 if direction == "bidirectional" else 1
    W = (rng.standard_normal((D, G * n_a, n_x)) / 2).astype(np.float32)
    R = (rng.standard_normal((D, G * n_a, n_a)) / 2).astype(np.float32)
    B = (rng.standard_normal((D, 2 * G * n_a)) / 2).astype(np.float32)
    x = rng.standard_normal((n_x, m, T)).astype(np.float32)
    L = np.array([5, 2, 4], dtype=np.int32)
    h0 = rng.standard_normal((D, n_a, m)).astype(np.float32)
    attrs = {"linear_before_reset": linear_before_reset} if kind == "gru" else {}
    op = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind]
    outs = ["Y", "Y_h"] + (["Y_c"] if kind == "lstm" else [])
    node = helper.make_node(op, ["X", "W", "R", "B", "sequence_lens", "initial_h"], outs,
                            hidden_size=n_a, direction=direction, **attrs)
    f = TensorProto.FLOAT
    g = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("X", f, ["T", "m", n_x]),
         helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["m"]),
         helper.make_tensor_value_info("initial_h", f, [D, "m", n_a])],
        [helper.make_tensor_value_info(o, f, None) for o in outs],
        [numpy_helper.from_array(v, k) for k, v in (("W", W), ("R", R), ("B", B))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    res = sess.run(None, {"X": np.ascontiguousarray(x.transpose(2, 1, 0)), "sequence_lens": L,
                          "initial_h": np.ascontiguousarray(h0.transpose(0, 2, 1))})
    a = res[0].transpose(1, 3, 2, 0).reshape(D * n_a, m, T)
    config = {"framework": "onnx", "kind": kind, "dtype": "float32", "direction": direction,
              "linear_before_reset": linear_before_reset, "onnxruntime": ort.__version__}
    write(name, config, {"W": W, "R": R, "B": B}, {"x": x, "lengths": L.astype(np.int64),
                                                   "h0": h0},
          {"a": a, "h_n": res[1].transpose(0, 2, 1),
           "c_n": res[2].transpose(0, 2, 1) if kind == "lstm" else None})


def main():
    torch_case("torch_lstm_2layer_bidir_f64", "lstm", "float64", num_layers=2,
               bidirectional=True, head=3, lengths=[5, 2, 4], states=True, n_a=2)
    torch_case("torch_gru_bidir_f32", "gru", "float32", bidirectional=True, lengths=[3, 5, 1])
    torch_case("torch_rnn_2layer_nobias_f64", "rnn", "float64", num_layers=2, bias=False,
               states=True, head=2)
    torch_case("torch_rnn_relu_f64", "rnn", "float64", nonlinearity="relu", bidirectional=True)
    torch_cell_case("torch_lstmcell_f64", "lstm", "float64")
    keras_case("keras_gru_bidir", "gru", bidirectional=True)
    keras_case("keras_lstm", "lstm")
    onnx_case("onnx_lstm_bidir", "lstm", "bidirectional")
    onnx_case("onnx_gru_reverse", "gru", "reverse")
    keras_case("keras_gru_reset_before", "gru", reset_after=False)
    onnx_case("onnx_gru_lbr0_bidir", "gru", "bidirectional", linear_before_reset=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
