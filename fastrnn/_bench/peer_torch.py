"""The PyTorch peer: ``parameters`` in PyTorch's layout, and modules doing the same work.

``torch.nn.RNN(tanh)``/``LSTM``/``GRU`` (``RNNCell``/``LSTMCell``/``GRUCell`` for single
steps) + ``nn.Linear`` + softmax, under ``torch.inference_mode()``. PyTorch is optional:
nothing here imports it at module import time.
"""
import numpy as np

# PyTorch stacks the LSTM gates as i, f, g, o (g is the candidate, our "c").
TORCH_GATES = ("i", "f", "c", "o")


def _out(p, wy, by):
    return {"weight_out": p[wy], "bias_out": p[by].reshape(-1)}


def torch_weights_rnn(parameters):
    """RNN ``parameters`` in PyTorch's layout: ``weight_ih = Wax``, ``weight_hh = Waa``,
    ``bias_ih = ba``, ``bias_hh = 0``; ``weight_out``/``bias_out`` for ``nn.Linear``."""
    p = {k: np.asarray(v) for k, v in parameters.items()}
    n_a = p["Waa"].shape[0]
    return {"weight_ih": p["Wax"], "weight_hh": p["Waa"], "bias_ih": p["ba"].reshape(-1),
            "bias_hh": np.zeros(n_a, dtype=p["ba"].dtype), **_out(p, "Wya", "by")}


def torch_weights_lstm(parameters):
    """LSTM ``parameters`` in PyTorch's layout.

    The four ``(n_a, n_a + n_x)`` gate matrices act on ``[a_prev; xt]``: their first n_a
    columns are the recurrent block, the rest the input block; each block is stacked in
    PyTorch's gate order i, f, g, o into ``(4 n_a, n_x)`` / ``(4 n_a, n_a)``.  PyTorch adds
    two biases; the whole bias goes into ``bias_ih`` and ``bias_hh`` is zeros.
    """
    p = {k: np.asarray(v) for k, v in parameters.items()}
    n_a = p["Wy"].shape[1]
    mats = [p["W" + g] for g in TORCH_GATES]
    bias = np.concatenate([p["b" + g].reshape(-1) for g in TORCH_GATES])
    return {"weight_ih": np.concatenate([w[:, n_a:] for w in mats]),
            "weight_hh": np.concatenate([w[:, :n_a] for w in mats]),
            "bias_ih": bias, "bias_hh": np.zeros_like(bias), **_out(p, "Wy", "by")}


# PyTorch stacks the GRU gates as r, z, n, fastrnn's own order; b_hn stays inside the reset
# product, which is fastrnn's reset_after=True.
TORCH_GRU_GATES = ("r", "z", "n")


def torch_weights_gru(parameters):
    """GRU ``parameters`` in PyTorch's layout: ``weight_ih = [Wrx; Wzx; Wnx]`` (3 n_a, n_x),
    ``weight_hh = [Wra; Wza; Wna]`` (3 n_a, n_a), ``bias_ih = [brx, bzx, bnx]``, ``bias_hh =
    [bra, bza, bna]`` (both biases kept: ``bna`` is scaled by the reset gate)."""
    p = {k: np.asarray(v) for k, v in parameters.items()}
    g = TORCH_GRU_GATES
    return {"weight_ih": np.concatenate([p[f"W{k}x"] for k in g]),
            "weight_hh": np.concatenate([p[f"W{k}a"] for k in g]),
            "bias_ih": np.concatenate([p[f"b{k}x"].reshape(-1) for k in g]),
            "bias_hh": np.concatenate([p[f"b{k}a"].reshape(-1) for k in g]),
            **_out(p, "Wy", "by")}


def torch_weights(model, parameters):
    """``parameters`` of a model kind in PyTorch's layout, as numpy arrays (no torch needed).

    Returns
    -------
    dict
        ``weight_ih`` (G n_a, n_x), ``weight_hh`` (G n_a, n_a), ``bias_ih``, ``bias_hh``
        (G n_a,) for ``nn.RNN``/``nn.LSTM`` and the cells, and ``weight_out`` (n_y, n_a),
        ``bias_out`` (n_y,) for ``nn.Linear``.
    """
    from fastrnn._bench.kinds import kind
    return kind(model).torch_weights(parameters)


def import_torch():
    """``torch``, or None when it is not installed (it is an optional peer)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def build_torch(model, parameters, dtype, cell=False):
    """PyTorch modules holding ``parameters``: (recurrent module, ``nn.Linear``).

    ``nn.<Kind>`` (``nn.<Kind>Cell`` when ``cell``), float64 modules made with ``.double()``,
    in eval mode.
    """
    from fastrnn._bench.kinds import kind
    torch = import_torch()
    if torch is None:
        raise ImportError("PyTorch is not installed")
    k = kind(model)
    w = k.torch_weights(parameters)
    n_a, n_x = w["weight_hh"].shape[1], w["weight_ih"].shape[1]
    n_y = w["weight_out"].shape[0]
    if cell:
        core = getattr(torch.nn, k.torch_module + "Cell")(n_x, n_a, bias=True, **k.torch_kwargs)
    else:
        core = getattr(torch.nn, k.torch_module)(n_x, n_a, num_layers=1, bias=True,
                                                 **k.torch_kwargs)
    linear = torch.nn.Linear(n_a, n_y, bias=True)
    if np.dtype(dtype) == np.float64:
        core, linear = core.double(), linear.double()
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(core, name + suffix).copy_(torch.tensor(np.asarray(w[name], np.float64)))
        linear.weight.copy_(torch.tensor(np.asarray(w["weight_out"], np.float64)))
        linear.bias.copy_(torch.tensor(np.asarray(w["bias_out"], np.float64)))
    return core.eval(), linear.eval()


def torch_peer(model, parameters, dtype, x, a0, c0=None, *, cell=False):
    """A PyTorch forward pass on fastrnn's arrays: ``(call, outputs)``.

    ``call()`` runs the recurrent module, ``nn.Linear`` and the softmax (call it under
    ``torch.inference_mode()``); ``outputs(call())`` converts its result to fastrnn's layout:
    a dict with ``a``, ``y`` and, for an LSTM-style kind, ``c`` (cell: the new cell state) or
    ``c_T`` (sequence: the last cell state, all ``nn.LSTM`` returns).  The input conversion
    to PyTorch's layout is done here, once, outside ``call``.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x), or (n_x, m) when ``cell``
    a0 : ndarray (n_a, m)
        Initial hidden state.
    c0 : ndarray (n_a, m), optional
        LSTM cell only: the previous cell state (sequences start from zeros, as
        ``lstm_forward`` does).
    """
    from fastrnn._bench.kinds import kind
    torch = import_torch()
    cell_state = kind(model).cell_state
    core, linear = build_torch(model, parameters, dtype, cell)
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32

    def tensor(arr):
        return torch.tensor(np.ascontiguousarray(arr), dtype=tdtype)

    def arr(t):
        return t.detach().numpy()

    if cell:
        xt, h = tensor(np.asarray(x).T), tensor(np.asarray(a0).T)
        if not cell_state:
            def call():
                h1 = core(xt, h)
                return h1, None, torch.softmax(linear(h1), dim=1)
        else:
            c = tensor(np.asarray(c0).T)

            def call():
                h1, c1 = core(xt, (h, c))
                return h1, c1, torch.softmax(linear(h1), dim=1)

        def outputs(res):
            out = {"a": arr(res[0]).T, "y": arr(res[2]).T}
            if res[1] is not None:
                out["c"] = arr(res[1]).T
            return out
        return call, outputs

    xs = tensor(np.asarray(x).transpose(2, 1, 0))   # (T_x, m, n_x)
    h0 = tensor(np.asarray(a0).T)[None]             # (1, m, n_a)
    if not cell_state:
        def call():
            out, _ = core(xs, h0)
            return out, None, torch.softmax(linear(out), dim=-1)
    else:
        zeros = torch.zeros_like(h0)

        def call():
            out, (_, c_n) = core(xs, (h0, zeros))
            return out, c_n, torch.softmax(linear(out), dim=-1)

    def outputs(res):
        out = {"a": arr(res[0]).transpose(2, 1, 0), "y": arr(res[2]).transpose(2, 1, 0)}
        if res[1] is not None:
            out["c_T"] = arr(res[1][0]).T
        return out
    return call, outputs
