"""fastrnn: the step-by-step numpy RNN and LSTM forward passes, as typed Cython/BLAS kernels.

Drop-in::

    from fastrnn import rnn_cell_forward, rnn_forward, lstm_cell_forward, lstm_forward

Beyond the lessons: the GRU (``gru_cell_forward``, ``gru_forward``, ``GRU``), models without
an output layer, ``Stack`` and ``Bidirectional`` layers, variable lengths, initial states.

Same arguments, returns, shapes and caches as the lessons' numpy functions (whose literal
implementation is ``fastrnn.reference``), float32 and float64 computed natively.
"""
from fastrnn._api import (gru_cell_forward, gru_forward, lstm_cell_forward, lstm_forward,
                          rnn_cell_forward, rnn_forward)
from fastrnn._checked import CheckError, checked, is_checked, set_checked
from fastrnn._compose import Bidirectional, Stack
from fastrnn._models import GRU, LSTM, RNN
from fastrnn.io import from_keras, from_onnx, from_torch, load

__version__ = "0.1.0"

__all__ = [
    "rnn_cell_forward",
    "rnn_forward",
    "lstm_cell_forward",
    "lstm_forward",
    "gru_cell_forward",
    "gru_forward",
    "RNN",
    "LSTM",
    "GRU",
    "Stack",
    "Bidirectional",
    "CheckError",
    "checked",
    "is_checked",
    "set_checked",
    "from_torch",
    "from_keras",
    "from_onnx",
    "load",
]
