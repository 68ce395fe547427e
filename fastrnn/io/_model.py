"""The model an importer returns: a :class:`~fastrnn.io._spec.Spec` run on fastrnn's models.

It speaks the frameworks' conventions where they differ from the lessons' — states of every
layer and direction stacked as ``(num_layers·D, n_a, m)`` (PyTorch's ``h0`` with its last two
axes swapped), variable lengths with ``pack_padded_sequence`` semantics, a bidirectional
layer's rows forward-then-reverse — and leaves the arithmetic to fastrnn's packed models, one
per layer and direction.
"""
import numpy as np

import fastrnn
from fastrnn.io._spec import HEAD_KEYS, Spec

__all__ = ["Imported"]


def _real_array(value, name, expected):
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of shape {expected}, but could not be read "
                         f"as an array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, shape {expected}, got dtype "
                        f"{arr.dtype}")
    return arr


class _Direction:
    """One direction of one layer, run forward in time by a fastrnn model."""

    def __init__(self, spec, params):
        self.kind = spec.kind
        if spec.activation != "tanh":
            raise NotImplementedError(
                f"this fastrnn build computes the RNN with tanh only; a {spec.activation!r} "
                f"RNN cannot be run yet (its weights are read correctly: see fastrnn.io.Spec)")
        n_a = params[next(iter(params))].shape[0]
        # fastrnn's models require an output layer: a one-row zero head, whose output is
        # ignored, keeps their fused kernels usable for hidden states only.
        dummy = np.zeros((1, n_a), dtype=spec.dtype)
        if spec.kind == "rnn":
            self.model = fastrnn.RNN(dict(params, Wya=dummy, by=dummy[:, :1]), dtype=spec.dtype)
        elif spec.kind == "lstm":
            self.model = fastrnn.LSTM(dict(params, Wy=dummy, by=dummy[:, :1]), dtype=spec.dtype)
        else:
            gru = getattr(fastrnn, "GRU", None)
            if gru is None:
                raise NotImplementedError(
                    "this fastrnn build has no GRU model; a GRU cannot be run yet (its weights "
                    "are read correctly: see fastrnn.io.Spec)")
            self.model = gru(dict(params, Wy=dummy, by=dummy[:, :1]), dtype=spec.dtype)

    def run(self, x, h0, c0, n_threads):
        """x (n_in, m, T) -> hidden states (n_a, m, T) and cell states (or None)."""
        if self.kind == "lstm":
            a, _, c = self.model.forward(x, h0, c0, n_threads=n_threads)
            return a, c
        a, _ = self.model.forward(x, h0, n_threads=n_threads)
        return a, None


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
        self.spec = spec
        self._runs = [[_Direction(spec, p) for p in layer] for layer in spec.layers]

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

    # -- input checks ---------------------------------------------------------------------

    def _states(self, value, name, m):
        LD = self.num_layers * self.num_directions
        expected = f"(num_layers*D, n_a, m) = ({LD}, {self.n_a}, {m})"
        if value is None:
            return np.zeros((LD, self.n_a, m), dtype=self.dtype)
        arr = _real_array(value, name, expected)
        if arr.shape != (LD, self.n_a, m):
            raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _lengths(self, lengths, m, T):
        expected = f"(m,) = ({m},) integers in [1, T_x] = [1, {T}]"
        arr = np.asarray(lengths)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"lengths must be {expected}, got dtype {arr.dtype}")
        if arr.shape != (m,):
            raise ValueError(f"lengths must have shape {expected}, got shape {arr.shape}")
        if m and (arr.min() < 1 or arr.max() > T):
            raise ValueError(f"lengths must be {expected}, got values from {arr.min()} to "
                             f"{arr.max()}")
        return arr.astype(np.intp)

    # -- running --------------------------------------------------------------------------

    def forward(self, x, lengths=None, h0=None, c0=None, *, n_threads=1):
        """Run a batch of sequences.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
            The lessons' layout (time last, examples as columns), whatever layout the
            framework used.
        lengths : array_like of int (m,), optional
            Each example's length in ``[1, T_x]``; steps past it are padding (PyTorch's
            ``pack_padded_sequence``): their states are 0, a reverse direction starts at the
            example's own last step, final states are taken at it.
        h0 : array_like (num_layers·D, n_a, m), optional
            Initial hidden states, layer-major then direction; zeros when omitted.
        c0 : array_like (num_layers·D, n_a, m), optional
            Initial cell states (LSTM only); zeros when omitted.
        n_threads : int
            Batch-parallel threads for each layer (see :meth:`fastrnn.RNN.forward`).

        Returns
        -------
        a : ndarray (D·n_a, m, T_x)
            The last layer's hidden states, forward direction's rows first.
        y : ndarray (n_y, m, T_x) or None
            ``softmax(Wy @ a + by)`` per column, or None without a head.
        state : ndarray (num_layers·D, n_a, m), or a pair of them (h_n, c_n) for an LSTM
            Each layer's and direction's final state, at each example's own last step.
        """
        x = _real_array(x, "x", f"(n_x, m, T_x) with n_x = {self.n_x}")
        if x.ndim != 3 or x.shape[0] != self.n_x:
            raise ValueError(f"x must have shape (n_x, m, T_x) with n_x = {self.n_x}, got "
                             f"{x.shape}")
        _, m, T = x.shape
        x = np.ascontiguousarray(x, dtype=self.dtype)
        h0 = self._states(h0, "h0", m)
        if c0 is not None and self.kind != "lstm":
            raise TypeError(f"c0 is the LSTM's initial cell state; a {self.kind.upper()} has "
                            f"none (got an array)")
        c0 = self._states(c0, "c0", m) if self.kind == "lstm" else None
        L = None if lengths is None else self._lengths(lengths, m, T)
        D = self.num_directions
        h_n, c_n = np.empty_like(h0), None if c0 is None else np.empty_like(c0)
        if T == 0:  # nothing runs: the final states are the initial ones
            return (np.zeros((D * self.n_a, m, 0), dtype=self.dtype),
                    None if self.spec.head is None else
                    np.zeros((self.n_y, m, 0), dtype=self.dtype),
                    h0.copy() if c0 is None else (h0.copy(), c0.copy()))
        # time index of step t of each example, read forward or from its own last step
        steps = np.arange(T)
        last = np.full(m, T - 1) if L is None else L - 1
        rows = np.arange(m)[:, None]
        rev = np.where(steps < last[:, None] + 1, last[:, None] - steps, steps)
        valid = None if L is None else (steps < L[:, None])
        inp = x
        for l, layer in enumerate(self._runs):
            outs = []
            for d, (direction, run) in enumerate(zip(self.spec.directions, layer)):
                k = l * D + d
                c_init = None if c0 is None else c0[k]
                xin = inp if direction == "forward" else inp[:, rows, rev]
                a, c = run.run(xin, h0[k], c_init, n_threads)
                h_n[k] = a[:, np.arange(m), last]
                if c is not None:
                    c_n[k] = c[:, np.arange(m), last]
                if direction == "reverse":
                    a = a[:, rows, rev]  # the permutation is its own inverse
                if valid is not None:
                    a = np.where(valid, a, 0).astype(self.dtype, copy=False)
                outs.append(a)
            inp = outs[0] if D == 1 else np.concatenate(outs, axis=0)
        a = np.ascontiguousarray(inp)
        return a, self._head(a), h_n if c_n is None else (h_n, c_n)

    def _head(self, a):
        if self.spec.head is None:
            return None
        wk, bk = HEAD_KEYS[self.kind]
        n, m, T = a.shape
        z = self.spec.head[wk] @ a.reshape(n, m * T) + self.spec.head[bk]
        z = np.exp(z - z.max(axis=0, keepdims=True))
        return (z / z.sum(axis=0, keepdims=True)).reshape(-1, m, T)

    def step(self, xt, state=None):
        """Advance a one-layer, one-direction (forward) model by one step.

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
        xt = _real_array(xt, "xt", f"(n_x, m) with n_x = {self.n_x}")
        if xt.ndim != 2:
            raise ValueError(f"xt must have shape (n_x, m) with n_x = {self.n_x}, got "
                             f"{xt.shape}")
        h = c = None
        if state is not None:
            if self.kind == "lstm":
                try:
                    h, c = state
                except (TypeError, ValueError):
                    raise TypeError("state must be a pair (h, c) of (n_a, m) arrays or None, "
                                    f"got {type(state).__name__}") from None
            else:
                h = state
        m = xt.shape[1]
        h0 = None if h is None else self._step_state(h, "state" if c is None else "state[0]",
                                                     m)
        c0 = None if c is None else self._step_state(c, "state[1]", m)
        a, y, s = self.forward(np.asarray(xt)[:, :, None], None, h0, c0)
        y = None if y is None else y[:, :, 0]
        return ((s[0][0], s[1][0]) if self.kind == "lstm" else s[0]), y

    def _step_state(self, value, name, m):
        expected = f"(n_a, m) = ({self.n_a}, {m})"
        arr = _real_array(value, name, expected)
        if arr.shape != (self.n_a, m):
            raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
        return arr[None]
