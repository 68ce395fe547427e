"""fastrnn: the step-by-step numpy RNN and LSTM forward and backward passes, as typed
Cython/BLAS kernels.

Drop-in::

    from fastrnn import rnn_cell_forward, rnn_forward, lstm_cell_forward, lstm_forward

Beyond the lessons: the GRU (``gru_cell_forward``, ``gru_forward``, ``GRU``), models without
an output layer, ``Stack`` and ``Bidirectional`` layers, variable lengths, initial states.

Same arguments, returns, shapes and caches as the lessons' numpy functions (whose literal
implementation is ``fastrnn.reference``), float32 and float64 computed natively.
"""
# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.2.0"


def _require_compiled_kernels():
    """Import the compiled kernels, or say how to build them.

    A source checkout has ``fastrnn/_kernels/_core.pyx`` but no compiled module until it is
    built; Python puts the current directory first on ``sys.path`` for ``python -c`` and
    ``python -m``, so running those from the checkout imports the unbuilt sources even when
    fastrnn is installed.
    """
    import glob
    import os

    try:
        from fastrnn._kernels import _core  # noqa: F401
    except ImportError as exc:
        kernels = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels")
        built = glob.glob(os.path.join(kernels, "_core.*.so")) + glob.glob(
            os.path.join(kernels, "_core.*.pyd"))
        what = (f"a compiled module is in {kernels} but did not load ({exc}): rebuild it"
                if built else
                f"{kernels} holds the sources but no compiled module (an unbuilt source "
                f"tree)")
        raise ImportError(
            f"fastrnn's compiled kernels (fastrnn._kernels._core) could not be imported: "
            f"{what}. Install fastrnn with 'pip install .' (or 'pip install -e .' to work on "
            f"the sources) and run Python from outside the source tree, or build the "
            f"kernels in place with 'python setup.py build_ext --inplace'.") from exc

_require_compiled_kernels()

from fastrnn._api import (  # noqa: E402
    gru_cell_forward, gru_forward, lstm_cell_forward, lstm_forward, rnn_cell_forward,
    rnn_forward)
from fastrnn._backward import (  # noqa: E402
    lstm_backward, lstm_cell_backward, rnn_backward, rnn_cell_backward)
from fastrnn._checked import CheckError, checked, is_checked, set_checked  # noqa: E402
from fastrnn._compose import Bidirectional, Stack  # noqa: E402
from fastrnn._models import GRU, LSTM, RNN  # noqa: E402
from fastrnn._pool import release_memory  # noqa: E402
from fastrnn.io import from_keras, from_onnx, from_torch, load  # noqa: E402

__all__ = [
    "rnn_cell_forward",
    "rnn_forward",
    "lstm_cell_forward",
    "lstm_forward",
    "rnn_cell_backward",
    "rnn_backward",
    "lstm_cell_backward",
    "lstm_backward",
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
    "release_memory",
]
