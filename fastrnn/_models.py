"""Reusable models: weights validated and packed once, for repeated and streaming calls."""
import threading

import numpy as np

from fastrnn import _api, _checked, reference
from fastrnn._kernels import _core
from fastrnn._packing import GATES, all_finite, pack
from fastrnn._validation import (LSTM_WEIGHTS, RNN_WEIGHTS, check_inputs, result_dtype,
                                 validate_parameters)

__all__ = ["RNN", "LSTM"]


class _Model:
    _kind = None
    _weights = None

    def __init__(self, parameters, dtype=None):
        weights, dims = validate_parameters(parameters, self._weights)
        if dtype is None:
            dtype = result_dtype(list(weights.values()))
        try:
            ok = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
        except TypeError:
            ok = False
        if not ok:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
        dtype = np.dtype(dtype)
        self.dtype = dtype
        self.n_x, self.n_a, self.n_y = dims["n_x"], dims["n_a"], dims["n_y"]
        self._packed = pack(self._kind, weights, dtype, merge=True, copy=True)
        self._finite = all_finite(self._packed.w)
        # Per-thread work buffers (gate and state buffers) of the last batch shape, reused by
        # the next call of that shape: see fastrnn._kernels._core.scratch_array.
        self._scratch = threading.local()

    def __getstate__(self):
        # Pickles without the per-thread work buffers (a thread-local cannot be pickled).
        state = dict(self.__dict__)
        del state["_scratch"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._scratch = threading.local()

    def __repr__(self):
        return (f"fastrnn.{type(self).__name__}(n_x={self.n_x}, n_a={self.n_a}, "
                f"n_y={self.n_y}, dtype={self.dtype.name})")

    def save(self, path):
        """Write the model to ``path``: an ``.npz`` of its parameters under the lessons' keys
        and a JSON header, read back by :func:`fastrnn.load` (no pickle)."""
        from fastrnn.io import save
        save(self, path)

    def _reference_parameters(self):
        """The packed weights as a float64 ``parameters`` dict (for checked mode)."""
        p = self._packed
        f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
        if self._kind == "rnn":
            return {"Wax": f64(p.w[0]), "Waa": f64(p.w[1]), "ba": f64(p.b)[:, None],
                    "Wya": f64(p.wy), "by": f64(p.by)[:, None]}
        params = {"Wy": f64(p.wy), "by": f64(p.by)[:, None]}
        for g, w, b in zip(GATES, p.w, p.b):
            params["W" + g], params["b" + g] = f64(w), f64(b)[:, None]
        return params

    def _verify(self, method, names, got, reference_function, *args):
        """In checked mode, compare ``got`` with ``reference_function(*args, parameters)``."""
        if _checked.is_checked():
            _api._check(f"{type(self).__name__}.{method}", dict(zip(names, got)),
                        lambda: dict(zip(names, reference_function(
                            *[np.asarray(v, dtype=np.float64) for v in args],
                            self._reference_parameters()))))
        return got

    def _try(self, x, states, sequence, n_threads=1):
        """The compiled fast path (fastrnn._kernels._core.try_packed_*) for inputs that are
        already what the kernel takes, on one thread and outside checked mode; else None."""
        if _api.threads_count(n_threads) != 1 or _checked.is_checked():
            return None
        p = self._packed
        scratch = self._scratch.__dict__.setdefault("buffers", [None, None, None])
        if self._kind == "rnn":
            return _core.try_packed_rnn(x, states[0], p.w[0], p.w[1], p.b, p.wy, p.by,
                                        sequence, _api.SMALL_BATCH_MAX_M, scratch)
        return _core.try_packed_lstm(x, states[0], states[1], p.blocks[0], p.blocks[1], p.wy,
                                     p.by, sequence, _api.SMALL_BATCH_MAX_M, scratch)

    def _inputs(self, inputs, sequence):
        """Validate inputs against the model; states given as None become zeros.

        Returns m and the inputs as C-contiguous arrays of the model's dtype.
        """
        dims = {"n_x": self.n_x, "n_a": self.n_a, "n_y": self.n_y}
        # the input is always checked (None is an error); omitted states become zeros
        given = inputs[:1] + [(name, value) for name, value in inputs[1:] if value is not None]
        arrays = check_inputs(given, dims, sequence, 1 if self._kind == "rnn" else 4)
        out = iter(_api.kernel_inputs(arrays, self.dtype, self._finite))
        return dims["m"], [next(out) if k == 0 or value is not None
                           else np.zeros((self.n_a, dims["m"]), dtype=self.dtype)
                           for k, (_, value) in enumerate(inputs)]


class RNN(_Model):
    """A basic RNN whose weights are validated and packed once.

    Parameters
    ----------
    parameters : mapping
        ``Wax`` (n_a, n_x), ``Waa`` (n_a, n_a), ``Wya`` (n_y, n_a), ``ba`` (n_a, 1),
        ``by`` (n_y, 1).  Copied: later changes to these arrays do not affect the model.
    dtype : {None, float32, float64}
        Computation dtype; by default float32 when every weight is float32, else float64.
        Inputs are converted to it.

    Examples
    --------
    >>> model = RNN(parameters)                     # doctest: +SKIP
    >>> a, y_pred = model.forward(x, a0)            # doctest: +SKIP
    >>> state = None
    >>> for xt in stream:                           # doctest: +SKIP
    ...     state, yt = model.step(xt, state)
    """

    _kind = "rnn"
    _weights = RNN_WEIGHTS

    def forward(self, x, a0=None, *, n_threads=1):
        """Run a sequence.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        a0 : array_like (n_a, m), optional
            Initial hidden state; zeros when omitted.
        n_threads : int
            Split the batch into this many slices run on separate threads for the whole
            sequence (each slice calls BLAS on its own thread).

        Returns
        -------
        a : ndarray (n_a, m, T_x)
        y_pred : ndarray (n_y, m, T_x)
        """
        fast = self._try(x, (a0,), True, n_threads)
        if fast is not None:
            return fast[0], fast[1]
        _, (x, a0) = self._inputs([("x", x), ("a0", a0)], sequence=True)
        a, y, _ = _api.run_rnn(self._packed, x, a0, n_threads)
        return self._verify("forward", ("a", "y_pred"), (a, y), reference.rnn_forward, x, a0)

    def step(self, xt, state=None):
        """Advance one step.

        Parameters
        ----------
        xt : array_like (n_x, m)
        state : array_like (n_a, m), optional
            ``a_prev``; zeros when omitted (the start of a stream).

        Returns
        -------
        a_next : ndarray (n_a, m)
            The new state, to pass as ``state`` to the next call.
        yt_pred : ndarray (n_y, m)
        """
        fast = self._try(xt, (state,), False)
        if fast is not None:
            return fast[0], fast[1]
        m, (xt, a_prev) = self._inputs([("xt", xt), ("state", state)], sequence=False)
        a, y, _ = _api.run_rnn(self._packed, xt.reshape(self.n_x, m, 1), a_prev)
        return self._verify("step", ("a_next", "yt_pred"), (a[:, :, 0], y[:, :, 0]),
                            reference.rnn_cell_forward, xt, a_prev)


class LSTM(_Model):
    """An LSTM whose four gates are validated and packed once into one block.

    Parameters
    ----------
    parameters : mapping
        ``Wf``, ``Wi``, ``Wc``, ``Wo`` (n_a, n_a + n_x); ``bf``, ``bi``, ``bc``, ``bo``
        (n_a, 1); ``Wy`` (n_y, n_a); ``by`` (n_y, 1).  Copied when packed.
    dtype : {None, float32, float64}
        As for :class:`RNN`.
    """

    _kind = "lstm"
    _weights = LSTM_WEIGHTS

    def forward(self, x, a0=None, c0=None, *, n_threads=1):
        """Run a sequence.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        a0, c0 : array_like (n_a, m), optional
            Initial hidden and cell state; zeros when omitted.
        n_threads : int
            As for :meth:`RNN.forward`.

        Returns
        -------
        a : ndarray (n_a, m, T_x)
        y : ndarray (n_y, m, T_x)
        c : ndarray (n_a, m, T_x)
        """
        fast = self._try(x, (a0, c0), True, n_threads)
        if fast is not None:
            return fast[:3]
        _, (x, a0, c0) = self._inputs([("x", x), ("a0", a0), ("c0", c0)], sequence=True)
        a, y, c, _, _ = _api.run_lstm(self._packed, x, a0, c0, n_threads)
        # lstm_forward starts from zero cell state; the model may start anywhere
        return self._verify("forward", ("a", "y", "c"), (a, y, c), _lstm_sequence, x, a0, c0)

    def step(self, xt, state=None):
        """Advance one step.

        Parameters
        ----------
        xt : array_like (n_x, m)
        state : tuple (a_prev, c_prev) of array_like (n_a, m), optional
            Zeros when omitted (the start of a stream).

        Returns
        -------
        state : tuple (a_next, c_next) of ndarray (n_a, m)
        yt_pred : ndarray (n_y, m)
        """
        if state is None:
            a_prev = c_prev = None
        else:
            try:
                a_prev, c_prev = state
            except (TypeError, ValueError):
                raise TypeError("state must be a pair (a_prev, c_prev) of (n_a, m) arrays "
                                f"or None, got {type(state).__name__}") from None
            if a_prev is None or c_prev is None:
                raise TypeError("state must hold two arrays (a_prev, c_prev), got None")
        fast = self._try(xt, (a_prev, c_prev), False)
        if fast is not None:
            return (fast[0], fast[2]), fast[1]
        m, (xt, a_prev, c_prev) = self._inputs(
            [("xt", xt), ("a_prev", a_prev), ("c_prev", c_prev)], sequence=False)
        a, y, c, _, _ = _api.run_lstm(self._packed, xt.reshape(self.n_x, m, 1), a_prev,
                                      c_prev)
        a_next, c_next, yt = self._verify(
            "step", ("a_next", "c_next", "yt_pred"), (a[:, :, 0], c[:, :, 0], y[:, :, 0]),
            reference.lstm_cell_forward, xt, a_prev, c_prev)
        return (a_next, c_next), yt


def _lstm_sequence(x, a0, c0, parameters):
    """reference.lstm_cell_forward over a sequence from any (a0, c0), returning a, y, c."""
    n_y = parameters["Wy"].shape[0]
    a = np.zeros(a0.shape + (x.shape[2],))
    c, y = np.zeros_like(a), np.zeros((n_y, x.shape[1], x.shape[2]))
    a_t, c_t = a0, c0
    for t in range(x.shape[2]):
        a_t, c_t, y[:, :, t], _ = reference.lstm_cell_forward(x[:, :, t], a_t, c_t, parameters)
        a[:, :, t], c[:, :, t] = a_t, c_t
    return a, y, c
