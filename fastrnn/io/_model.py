"""The model an importer returns: a :class:`~fastrnn.io._spec.Spec` run by fastrnn's models.

Each direction of each layer becomes a packed ``fastrnn.RNN``, ``LSTM`` or ``GRU``; the layers
are composed by ``fastrnn.Bidirectional`` and ``fastrnn.Stack``, whose conventions are the
frameworks': states of every layer and direction stacked as ``(num_layers·D, n_a, m)``
(PyTorch's ``h0`` with its last two axes swapped), variable lengths with
``pack_padded_sequence`` semantics, a bidirectional layer's rows forward then reverse.
"""
import numpy as np

import fastrnn
from fastrnn import _api, _checked, reference
from fastrnn._validation import GATE_COUNT, check_inputs, check_layer_states, check_lengths
from fastrnn.io._spec import HEAD_KEYS, Spec

__all__ = ["Imported"]


class Imported:
    """A trained recurrent network imported from PyTorch, Keras or ONNX.

    Built by :func:`fastrnn.from_torch`, :func:`fastrnn.from_keras`, :func:`fastrnn.from_onnx`
    or :func:`fastrnn.load`; needs none of those frameworks to run.

    Attributes
    ----------
    spec : fastrnn.io.Spec
        The weights in the lessons' keys, per layer and direction, and the head.
    kind, n_x, n_a, n_y, num_layers, num_directions, dtype
        As in ``spec`` (``n_y`` is 0 without a head).
    """

    def __init__(self, spec):
        if not isinstance(spec, Spec):
            raise TypeError(f"spec must be a fastrnn.io.Spec, got {type(spec).__name__}")
        if spec.directions == ("reverse",) and (spec.num_layers != 1 or spec.head is not None):
            raise ValueError("a reverse-only model has one layer and no head")
        self.spec = spec
        cls = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[spec.kind]
        self._cls = cls
        self._options = ({"reset_after": spec.reset_after} if spec.kind == "gru" else
                         {"nonlinearity": spec.activation} if spec.kind == "rnn" else {})
        dirs = [[cls(p, dtype=spec.dtype, **self._options) for p in layer]
                for layer in spec.layers]
        self._reverse = None
        if spec.directions == ("reverse",):
            # one reverse direction (ONNX direction="reverse"): no Stack layer for it
            self._reverse = dirs[0][0]
            self._stack = None
        else:
            head = None
            if spec.head is not None:  # the Stack's head keys, whatever the cell kind
                wk, bk = HEAD_KEYS[spec.kind]
                head = {"Wy": spec.head[wk], "by": spec.head[bk]}
            self._stack = fastrnn.Stack(
                [d[0] if len(d) == 1 else fastrnn.Bidirectional(*d) for d in dirs], head=head)
        self._cell = None  # built by the first step()

    kind = property(lambda self: self.spec.kind)
    n_x = property(lambda self: self.spec.n_x)
    n_a = property(lambda self: self.spec.n_a)
    n_y = property(lambda self: self.spec.n_y)
    dtype = property(lambda self: self.spec.dtype)
    num_layers = property(lambda self: self.spec.num_layers)
    num_directions = property(lambda self: self.spec.num_directions)

    def __repr__(self):
        s = self.spec
        return (f"fastrnn.io.Imported({s.kind}, n_x={s.n_x}, n_a={s.n_a}, n_y={s.n_y}, "
                f"num_layers={s.num_layers}, directions={'+'.join(s.directions)}, "
                f"dtype={s.dtype.name})")

    def save(self, path):
        """Write the model to ``path`` (an ``.npz``; see :func:`fastrnn.load`)."""
        from fastrnn.io._serial import save
        save(self, path)

    def forward(self, x, lengths=None, h0=None, c0=None, *, n_threads=1):
        """Run a batch of sequences.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
            The lessons' layout (time last, examples as columns), whatever layout the
            framework used.
        lengths : array_like of int (m,), optional
            Each example's length in ``[1, T_x]``; steps past it are padding (PyTorch's
            ``pack_padded_sequence``): their states and predictions are 0, a reverse
            direction starts at the example's own last step, final states are taken at it.
        h0 : array_like (num_layers·D, n_a, m), optional
            Initial hidden states, layer by layer, forward direction first; zeros when
            omitted.
        c0 : array_like (num_layers·D, n_a, m), optional
            Initial cell states (LSTM only); zeros when omitted.
        n_threads : int
            Threads (see :meth:`fastrnn.Stack.forward`).

        Returns
        -------
        a : ndarray (D·n_a, m, T_x)
            The last layer's hidden states, forward direction's rows first.
        y : ndarray (n_y, m, T_x) or None
            ``softmax(Wy @ a + by)`` per column, or None without a head.
        state : ndarray (num_layers·D, n_a, m), or a pair of them (h_n, c_n) for an LSTM
            Each layer's and direction's final state, at each example's own last step.
        """
        if self._stack is not None:
            return self._stack.forward(x, lengths, h0, c0, n_threads=n_threads)
        model = self._reverse
        dims = {"n_x": self.n_x, "n_a": self.n_a, "n_y": 0}
        (x_arr,) = check_inputs([("x", x)], dims, True, GATE_COUNT[self.kind])
        m, T = dims["m"], dims["T_x"]
        lengths = check_lengths(lengths, m, T)
        states = check_layer_states("h0", h0, [self.n_a], m)
        if self.kind == "lstm":
            states += check_layer_states("c0", c0, [self.n_a], m)
        elif c0 is not None:
            raise TypeError(f"c0 is for LSTM layers only; this model is a "
                            f"{self.kind.upper()}")
        _api.threads_count(n_threads)
        arrays = _api.kernel_inputs([x_arr] + [v for v in states if v is not None],
                                    self.dtype, model._finite)
        x_c, given = arrays[0], iter(arrays[1:])
        states = [np.zeros((self.n_a, m), self.dtype) if v is None else next(given)
                  for v in states]
        a, _, _, last = model._sequence(x_c, states, lengths, True, n_threads)
        names = ("a", "h_n", "c_n")
        if _checked.is_checked():
            def reference_call():
                f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
                out = reference.layer_forward(
                    self.kind, f64(x_c), model._reference_parameters(), lengths, True,
                    *map(f64, states), **model._cell_options())
                return _api._outputs(names, (out[0], out[3], out[4]))
            _api._check("Imported.forward",
                        _api._outputs(names, (a, last[0], last[1] if len(last) > 1 else None)),
                        reference_call)
        final = [v[None] for v in last]
        return a, None, (tuple(final) if self.kind == "lstm" else final[0])

    def step(self, xt, state=None):
        """Advance a one-layer forward model (a cell) by one step.

        Parameters
        ----------
        xt : array_like (n_x, m)
        state : array_like (n_a, m), or a pair (h, c) of them for an LSTM; optional
            Zeros when omitted (the start of a stream).

        Returns
        -------
        state : ndarray (n_a, m), or a pair (h, c) for an LSTM
        y : ndarray (n_y, m) or None
        """
        if self.num_layers != 1 or self.spec.directions != ("forward",):
            raise TypeError("step needs a one-layer forward model (a cell); use forward for "
                            f"{self.num_layers} layer(s) {'+'.join(self.spec.directions)}")
        if self._cell is None:
            self._cell = self._cls(dict(self.spec.layers[0][0], **(self.spec.head or {})),
                                   dtype=self.dtype, **self._options)
        return self._cell.step(xt, state)
