"""PyTorch -> fastrnn: ``torch.nn.RNN/LSTM/GRU`` and their cells, by their ``state_dict``.

PyTorch stores, per layer ``k`` and direction (suffix ``_reverse``), ``weight_ih_l{k}``
``(G·n_a, n_in)``, ``weight_hh_l{k}`` ``(G·n_a, n_a)``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
``(G·n_a,)`` with the gate blocks stacked in the order LSTM ``i, f, g, o``, GRU ``r, z, n``
(cells: the same names without ``_l{k}``).  torch is imported only by :func:`from_torch`;
:func:`spec_from_state` works on plain arrays (the golden-file tests use it without torch).
"""
import numpy as np

from fastrnn.io._spec import Spec, head_parameters, layer_parameters

__all__ = ["from_torch", "torch_spec", "spec_from_state", "TORCH_GATES"]

# PyTorch's gate blocks, top to bottom, in fastrnn's gate names (g is the LSTM's c).
TORCH_GATES = {"rnn": ("a",), "lstm": ("i", "f", "c", "o"), "gru": ("r", "z", "n")}


def _gates(kind, state, suffix, dtype):
    """The gates of one layer and direction from state-dict arrays with this ``suffix``."""
    Wx = np.asarray(state["weight_ih" + suffix], dtype=dtype)
    Wh = np.asarray(state["weight_hh" + suffix], dtype=dtype)
    n = Wh.shape[1]
    zeros = np.zeros(Wh.shape[0], dtype=dtype)  # bias=False
    bx = np.asarray(state.get("bias_ih" + suffix, zeros), dtype=dtype)
    bh = np.asarray(state.get("bias_hh" + suffix, zeros), dtype=dtype)
    return {g: (Wx[j * n:(j + 1) * n], Wh[j * n:(j + 1) * n], bx[j * n:(j + 1) * n],
                bh[j * n:(j + 1) * n]) for j, g in enumerate(TORCH_GATES[kind])}


def spec_from_state(kind, state, *, num_layers=1, bidirectional=False, nonlinearity="tanh",
                    cell=False, head=None, dtype=np.float64):
    """A :class:`~fastrnn.io.Spec` from a PyTorch ``state_dict`` held as numpy arrays.

    Parameters
    ----------
    kind : {"rnn", "lstm", "gru"}
    state : mapping name -> ndarray
        ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, … (``…_reverse``
        for the reverse direction; no ``_l{k}`` for a cell).  Missing biases are zeros.
    num_layers, bidirectional, nonlinearity, cell
        The module's options.
    head : mapping, optional
        A ``torch.nn.Linear`` state (``weight (n_y, D·n_a)``, optional ``bias (n_y,)``).
    dtype : float32 or float64
    """
    directions = ("forward", "reverse") if bidirectional else ("forward",)
    layers = []
    for k in range(num_layers):
        layer = []
        for d in directions:
            suffix = "" if cell else f"_l{k}" + ("_reverse" if d == "reverse" else "")
            layer.append(layer_parameters(kind, _gates(kind, state, suffix, dtype)))
        layers.append(layer)
    hp = None if head is None else head_parameters(
        kind, np.asarray(head["weight"], dtype=dtype),
        None if head.get("bias") is None else np.asarray(head["bias"], dtype=dtype))
    return Spec(kind, layers, directions=directions, activation=nonlinearity, head=hp,
                cell=cell, dtype=dtype)


def module_config(module):
    """(kind, options) of a torch recurrent module, refusing what fastrnn cannot compute."""
    import torch.nn as nn

    kinds = ((nn.LSTM, "lstm", False), (nn.GRU, "gru", False), (nn.RNN, "rnn", False),
             (nn.LSTMCell, "lstm", True), (nn.GRUCell, "gru", True),
             (nn.RNNCell, "rnn", True))
    for cls, kind, cell in kinds:
        if type(module) is cls:  # subclasses may change forward: refuse rather than guess
            break
    else:
        raise TypeError("module must be a torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell or "
                        f"GRUCell, got {type(module).__module__}.{type(module).__name__}")
    options = {"kind": kind, "cell": cell,
               "nonlinearity": getattr(module, "nonlinearity", "tanh")}
    if options["nonlinearity"] not in ("tanh", "relu"):
        raise ValueError(f"module.nonlinearity must be 'tanh' or 'relu', got "
                         f"{options['nonlinearity']!r}")
    if not cell:
        if getattr(module, "proj_size", 0):
            raise ValueError(f"LSTM proj_size={module.proj_size} (projected hidden states) is "
                             f"not supported; only proj_size=0")
        options.update(num_layers=module.num_layers, bidirectional=module.bidirectional)
    return options


def from_torch(module, head=None):
    """A fastrnn model computing what a trained PyTorch recurrent module computes.

    Parameters
    ----------
    module : torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell
        Any ``num_layers``, ``bidirectional``, ``batch_first``, ``bias``, ``nonlinearity``; ``dropout`` is accepted (inference does none).  ``proj_size`` is refused.
        float32 or float64 weights (the model computes in that dtype).
    head : torch.nn.Linear, optional
        An output layer on the last layer's states: the model's ``y`` is
        ``softmax(head(h))`` over classes.

    Returns
    -------
    fastrnn.io.Imported
        ``forward(x, lengths=None, h0=None, c0=None)`` with ``x (n_x, m, T_x)`` returns
        ``(a (D·n_a, m, T_x), y (n_y, m, T_x) or None, final states)``; states are
        ``(num_layers·D, n_a, m)`` (torch's with the last two axes swapped).  Cells:
        ``step(xt, state=None) -> (state, y)`` with ``h`` or ``(h, c)`` of shape ``(n_a, m)``.
    """
    from fastrnn.io._model import Imported
    return Imported(torch_spec(module, head))


def torch_spec(module, head=None):
    """The :class:`~fastrnn.io.Spec` of a torch module (and head): what :func:`from_torch`
    runs."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module (RNN, LSTM, GRU or a cell), got "
                        f"{type(module).__name__}")
    options = module_config(module)
    dtypes = {p.dtype for p in module.parameters()}
    if dtypes - {torch.float32} and dtypes - {torch.float64}:
        raise TypeError(f"module weights must all be float32 or all float64, got "
                        f"{sorted(map(str, dtypes))}")
    dtype = np.float32 if dtypes == {torch.float32} else np.float64
    head_state = None
    if head is not None:
        if type(head) is not torch.nn.Linear:
            raise TypeError(f"head must be a torch.nn.Linear or None, got "
                            f"{type(head).__name__}")
        head_state = _numpy_state(head)
    return spec_from_state(state=_numpy_state(module), head=head_state, dtype=dtype, **options)


def _numpy_state(module):
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
