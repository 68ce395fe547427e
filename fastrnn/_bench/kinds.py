"""The model kinds the benchmark knows, in one table.

A kind plugs in everything the benchmark needs to time it beside its peers: the random
parameters, the fastrnn calls (``fastrnn.<name>_forward``, ``fastrnn.<name>_cell_forward``,
the packed model ``fastrnn.<Model>`` with ``.forward``/``.step``; the reference's functions
of the same names), the PyTorch module and the ONNX operator with their weight conversions.

Adding a kind is one :class:`Kind` entry in :data:`KINDS`, given its
parameter generator and the two weight conversions (``parameters`` -> PyTorch's
``weight_ih``/``weight_hh``/``bias_ih``/``bias_hh``/``weight_out``/``bias_out``, and
-> ONNX's ``W``/``R``/``B``/``Wy``/``by``), as long as its calls follow the RNN's or the
LSTM's conventions (``cell_state``):

- sequence: ``fn(x, a0, parameters)`` -> ``(a, y, caches)``, or ``(a, y, c, caches)``;
- one step: ``fn(xt, a_prev, parameters)`` -> ``(a_next, yt, cache)``, or
  ``fn(xt, a_prev, c_prev, parameters)`` -> ``(a_next, c_next, yt, cache)``;
- model: ``forward(x, a0)`` -> ``(a, y)`` or ``(a, y, c)``; ``step(xt, a)`` -> ``(a, y)``,
  or ``step(xt, (a, c))`` -> ``((a, c), y)``.
"""
from dataclasses import dataclass, field
from typing import Callable

from fastrnn._bench import cases, peer_ort, peer_torch


@dataclass(frozen=True)
class Kind:
    """One model kind (see the module docstring)."""

    name: str                 # "rnn": fastrnn.rnn_forward, reference.rnn_forward, ...
    model: str                # the packed model's class name in fastrnn: "RNN"
    gates: int                # G: the recurrent block is (G*n_a, n_a)
    cell_state: bool          # True: an LSTM-style (a, c) state
    params: Callable          # (rng, n_x, n_a, n_y, dtype, **kw) -> parameters
    torch_module: str         # torch.nn.<torch_module> and torch.nn.<torch_module>Cell
    torch_weights: Callable   # parameters -> PyTorch's weights (numpy)
    onnx_op: str              # the ONNX operator: "RNN", "LSTM", "GRU"
    onnx_weights: Callable    # parameters -> W, R, B (ONNX gate order), Wy, by
    torch_kwargs: dict = field(default_factory=dict)
    onnx_attributes: dict = field(default_factory=dict)


KINDS = {
    "rnn": Kind("rnn", "RNN", 1, False, cases.rnn_params, "RNN", peer_torch.torch_weights_rnn,
                "RNN", peer_ort.onnx_weights_rnn, torch_kwargs={"nonlinearity": "tanh"},
                onnx_attributes={"activations": ["Tanh"]}),
    "lstm": Kind("lstm", "LSTM", 4, True, cases.lstm_params, "LSTM",
                 peer_torch.torch_weights_lstm, "LSTM", peer_ort.onnx_weights_lstm),
    # PyTorch's formulation (b_hn inside the reset product): fastrnn's default reset_after=True,
    # ONNX's linear_before_reset=1
    "gru": Kind("gru", "GRU", 3, False, cases.gru_params, "GRU", peer_torch.torch_weights_gru,
                "GRU", peer_ort.onnx_weights_gru, onnx_attributes={"linear_before_reset": 1}),
}
MODELS = tuple(KINDS)


def kind(model):
    """The :class:`Kind` of ``model`` (a name such as "lstm", or a Kind)."""
    if isinstance(model, Kind):
        return model
    try:
        return KINDS[model]
    except KeyError:
        raise ValueError(f"unknown model kind {model!r}; known: {', '.join(KINDS)}") from None
