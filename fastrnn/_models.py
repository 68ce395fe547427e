"""Reusable models: weights validated and packed once, for repeated and streaming calls."""
from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fastrnn import _api, _checked, _pool, _training, reference
from fastrnn._api import Array, Parameters
from fastrnn._kernels import _core
from fastrnn._packing import GATES, GRU_GATES, all_finite, pack
from fastrnn._validation import (GATE_COUNT, GRU_WEIGHTS, LSTM_WEIGHTS, RNN_WEIGHTS,
                                 check_inputs, check_lengths, result_dtype,
                                 validate_parameters)

__all__ = ["RNN", "LSTM", "GRU"]


class _Model:
    _kind = None
    _weights = None

    def __init__(self, parameters: Parameters, dtype: DTypeLike | None = None) -> None:
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
        # n_y is 0 for parameters without an output layer (see has_head)
        self.n_x, self.n_a, self.n_y = dims["n_x"], dims["n_a"], dims["n_y"]
        self._packed = pack(self._kind, weights, dtype, merge=True, copy=True)
        self._finite = all_finite(self._packed.w)
        # Per-thread work buffers (gate and state buffers) of the last batch shape, reused by
        # the next call of that shape: see fastrnn._kernels._core.scratch_array.
        self._scratch = threading.local()

    def _one_state_forward(self, x, a0, lengths, n_threads):
        """``forward`` of a model whose state is one array (RNN, GRU): the compiled fast path
        when it can take the call, else the validated route."""
        fast = self._fast_forward(x, (a0,), lengths, n_threads)
        if fast is not None:
            return fast[0], fast[1]
        a, y, _ = self._run_forward(x, [("a0", a0)], lengths, n_threads)
        return a, y

    def _fast_forward(self, x, states, lengths, n_threads):
        """``forward`` by the compiled fast path (:meth:`_try`): a, y and c (None unless an
        LSTM), or None when it cannot take the call.  With ``lengths`` below T_x (an integer
        array; zero initial states) the batch runs in order of length, the padding skipped,
        and goes back to the caller's order, as on the validated route: one compiled call
        before the kernel's and one after (_core.sorted_batch, _core.unsort)."""
        steps = None
        if lengths is not None:
            if (not self._compiled(_api.threads_count(n_threads))
                    or type(x) is not np.ndarray or x.ndim != 3 or x.dtype != self.dtype
                    or not x.flags.c_contiguous or any(v is not None for v in states)):
                return None
            steps = _core.sorted_batch(lengths, x, self._slots("sorting", 2), self.n_a)
            if steps is None:
                return None
            if steps[5]:
                steps = None  # whole sequences: no padding
        if steps is None:
            fast = self._try(x, states, True, n_threads)
        else:
            xs, order, srt, active, in_order, _, out, _ = steps
            fast = self._try(xs, states, True, n_threads, active, False, out)
        if fast is None:
            return None
        a, y, c = fast[0], fast[1] if self.has_head else None, (
            fast[2] if self._kind == "lstm" else None)
        if steps is None:
            return a, y, c
        return tuple(_core.unsort([a, y, c], [False, True, False], order, srt, in_order))

    def _slots(self, name, n):
        """This thread's list ``name`` of n work-array slots, which the compiled calls fill
        and reuse between calls (the kernels' buffers; the sorted input and output of a batch
        with lengths: see _core.sorted_batch)."""
        slots = getattr(self._scratch, name, None)
        if slots is None:
            slots = [None] * n
            setattr(self._scratch, name, slots)
        return slots

    def _one_state_step(self, xt, state, reference_cell):
        """``step`` of a model whose state is one array (RNN, GRU): the compiled fast path,
        or validation and the kernel; checked against ``reference_cell`` in checked mode."""
        fast = self._try(xt, (state,), False)
        if fast is not None:
            return fast[0], (fast[1] if self.has_head else None)
        m, (xt, a_prev) = self._inputs([("xt", xt), ("state", state)], sequence=False)
        a, y, _ = self._kernel(xt.reshape(self.n_x, m, 1), [a_prev])
        return self._verify("step", ("a_next", "yt_pred"),
                            (a[:, :, 0], None if y is None else y[:, :, 0]),
                            reference_cell, xt, a_prev)

    def _buffer(self, name, shape):
        """A work array of the model's dtype and ``shape``, this thread's, kept between calls
        (whatever it held is overwritten)."""
        arrays = self._scratch.__dict__.setdefault("arrays", {})
        arr = arrays.get(name)
        if arr is None or arr.shape != shape:
            arr = arrays[name] = np.empty(shape, dtype=self.dtype)
        return arr

    def _weights_changed(self):
        """Drop what every thread keeps derived from the weights (the packed recurrent block
        cached with the work buffers): called after the weights change in place."""
        self._scratch = threading.local()

    def __getstate__(self):
        # Pickles without the per-thread work buffers (a thread-local cannot be pickled).
        state = dict(self.__dict__)
        del state["_scratch"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._scratch = threading.local()

    @property
    def has_head(self):
        """False when the parameters had no output layer: the model then returns the hidden
        states and None in the predictions' place."""
        return self._packed.head

    def __repr__(self):
        n_y = self.n_y if self.has_head else None
        options = "".join(f", {k}={v!r}" for k, v in self._cell_options().items())
        return (f"fastrnn.{type(self).__name__}(n_x={self.n_x}, n_a={self.n_a}, "
                f"n_y={n_y}, dtype={self.dtype.name}{options})")

    def parameters(self):
        """The weights as the lessons' ``parameters`` dict (new arrays, the model's dtype)."""
        return _training.parameters(self)

    def apply_gradients(self, grads, lr, clip=None):
        """Gradient-descent step in place: ``W -= lr * clip(grads["d" + key])`` for every
        parameter key (as :meth:`loss_and_grads` returns them; other keys are ignored).

        Parameters
        ----------
        grads : mapping
            ``"d" + key`` for every parameter key, each of that parameter's shape.
        lr : float
            Learning rate.
        clip : float, optional
            Clip every gradient value to ``[-clip, clip]`` first (the lessons' ``clip``).
        """
        _training.apply_gradients(self, grads, lr, clip)

    def save(self, path):
        """Write the model to ``path``: an ``.npz`` of its parameters under the lessons' keys
        and a JSON header, read back by :func:`fastrnn.load` (no pickle)."""
        from fastrnn.io import save
        save(self, path)

    def _reference_parameters(self):
        """The packed weights as a float64 ``parameters`` dict (for checked mode)."""
        p = self._packed
        f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
        n_a = self.n_a
        if self._kind == "rnn":
            params = {"Wax": f64(p.w[0]), "Waa": f64(p.w[1]), "ba": f64(p.b)[:, None]}
        elif self._kind == "gru":
            params = {}
            for k, g in enumerate(GRU_GATES):
                rows = slice(k * n_a, (k + 1) * n_a)
                params[f"W{g}x"], params[f"W{g}a"] = f64(p.w[0][rows]), f64(p.w[1][rows])
                params[f"b{g}x"] = f64(p.b[0][rows])[:, None]
                params[f"b{g}a"] = f64(p.b[1][rows])[:, None]
        else:
            params = {}
            for g, w, b in zip(GATES, p.w, p.b):
                params["W" + g], params["b" + g] = f64(w), f64(b)[:, None]
        if p.head:
            params["Wya" if self._kind == "rnn" else "Wy"] = f64(p.wy)
            params["by"] = f64(p.by)[:, None]
        return params

    def _cell_options(self):
        """Keyword options of the reference cell (the RNN's ``nonlinearity``, the GRU's
        ``reset_after``)."""
        return {}

    def _kernel(self, x, states, n_threads=1, active=None, reverse=False, out=None):
        """Run the kernel on validated inputs; returns a, y (None without an output layer)
        and c (None unless an LSTM), each (rows, m, T_x).  ``active``: the examples still
        running at each step of a batch sorted by length (see :class:`_Lengths`).
        ``reverse``: the steps from the last (with ``active``, each example from its own
        last step); ``out``: an (n_a, m, T_x) array to hold a."""
        p = self._packed
        m, T = x.shape[1], x.shape[2]
        fast = self._try(x, states, True, n_threads, active, reverse, out)
        if fast is not None:  # one thread: the per-thread work buffers are reused
            a, y, c = fast[0], fast[1], fast[2] if self._kind == "lstm" else None
        elif self._kind == "rnn":
            # the state and gate buffers are work arrays here (nothing returns them)
            a, y, _ = _api.run_rnn(p, x, states[0], n_threads, self.nonlinearity, active,
                                   reverse, out, self._buffer("z", (m, T, self.n_a)))
            c = None
        elif self._kind == "gru":
            a, y, _, _ = _api.run_gru(p, x, states[0], n_threads, self.reset_after, active,
                                      self._buffer("z", (m, T, 3 * self.n_a)),
                                      self._buffer("s", (m, T, self.n_a)), reverse, out,
                                      caches=False)
            c = None
        else:
            a, y, c, _, _ = _api.run_lstm(p, x, states[0], states[1], n_threads, active,
                                          reverse, out)
        return a, (y if p.head else None), c

    def _sequence(self, x, states, lengths=None, reverse=False, n_threads=1, out=None):
        """One direction over validated inputs, with ``lengths`` (validated, or None).

        ``x`` (n_x, m, T_x) and ``states`` (a list of (n_a, m)) are C-contiguous arrays of
        the model's dtype; ``lengths`` an (m,) intp array, or a :class:`_Lengths` of it (made
        once per call and shared by every layer and direction of a stack).  ``reverse``
        reads each example backwards from its own last step.  ``out``: None, or a
        C-contiguous (n_a, m, T_x) array to hold a (a bidirectional layer's half).
        Returns a, y, c (as :meth:`_kernel`, in the input's time order, zero past each
        example's length) and the list of final states (a, and c for an LSTM), each (n_a, m):
        every example's state after its own last step.

        With lengths below T_x the batch runs sorted by length, the padding skipped (see
        :meth:`_sorted_sequence`); else the kernel runs every step of every example, the
        reverse direction from the last step (the kernels run backwards themselves).
        """
        m, T = x.shape[1], x.shape[2]
        if lengths is not None and not isinstance(lengths, _Lengths):
            lengths = _Lengths(lengths, T)
        if lengths is not None and not lengths.full:  # then m, T > 0
            a, y, c, last = self._sorted_sequence(x, states, lengths, reverse, n_threads, out)
        else:
            a, y, c = self._kernel(x, states, n_threads, None, reverse, out)
            # the final states: after step 0 backwards, after step T_x - 1 forwards
            end = 0 if reverse else T - 1
            last = ([np.array(v) for v in states] if T == 0 else
                    [np.array(v[:, :, end]) for v in (a, c) if v is not None])
        if out is not None and a is not out:
            out[...] = a
            a = out
        return a, y, c, last

    def _sorted_sequence(self, x, states, lengths, reverse, n_threads, out):
        """:meth:`_sequence` with the padding skipped (``lengths`` a :class:`_Lengths`): the
        batch goes in longest first (one copy; none when it already is in that order), each
        step runs only the examples still going (the reverse direction each from its own last
        step), and the outputs come back with one more copy (into ``out`` when given).  Any
        number of states (a; a and c)."""
        in_place = lengths.in_order  # the kernel's order is the caller's
        # the sorted input, and the sorted states before they are put back, are work arrays
        # kept between calls (a fresh large array costs a page fault per 4 KiB)
        xs = x if in_place else lengths.gather(x, self._buffer("x", x.shape))
        a_out = out if in_place else self._buffer("a", (self.n_a,) + x.shape[1:])
        a, y, c = self._kernel(xs, [lengths.sort(v) for v in states], n_threads,
                               lengths.active, reverse, a_out)
        last = [_core.last_states([v], [reverse], *lengths.sorting)[0]
                for v in (a, c) if v is not None]
        return lengths.restore(a, y, c, out) + (last,)

    def _run_forward(self, x, states, lengths, n_threads):
        """The validated route of ``forward``: returns a, y, c (see :meth:`_sequence`)."""
        _, arrays = self._inputs([("x", x)] + states, sequence=True)
        x, *state_arrays = arrays
        lengths = check_lengths(lengths, x.shape[1], x.shape[2])
        a, y, c, _ = self._sequence(x, state_arrays, lengths, False, n_threads)
        if _checked.is_checked():
            names = ("a", "y", "c")
            _api._check(
                f"{type(self).__name__}.forward", _api._outputs(names, (a, y, c)),
                lambda: _api._outputs(names, reference.layer_forward(
                    self._kind, np.asarray(x, dtype=np.float64),
                    self._reference_parameters(), lengths, False,
                    *[np.asarray(v, dtype=np.float64) for v in state_arrays],
                    **self._cell_options())[:3]))
        return a, y, c

    def _verify(self, method, names, got, reference_function, *args):
        """In checked mode, compare ``got`` with ``reference_function(*args, parameters)``
        (a prediction of None, no output layer, is not compared)."""
        if _checked.is_checked():
            _api._check(f"{type(self).__name__}.{method}", _api._outputs(names, got),
                        lambda: _api._outputs(names, reference_function(
                            *[np.asarray(v, dtype=np.float64) for v in args],
                            self._reference_parameters(), **self._cell_options())))
        return got

    def _compiled(self, n_threads):
        """Can the compiled fast path take a call on ``n_threads`` (a count) threads: outside
        checked mode, on one thread (the LSTM's on several)?"""
        return not _checked.is_checked() and (n_threads == 1 or self._kind == "lstm")

    def _try(self, x, states, sequence, n_threads=1, active=None, reverse=False, out=None,
             caches=False):
        """The compiled fast path (fastrnn._kernels._core.try_packed_*) for inputs that are
        already what the kernel takes, outside checked mode (on one thread; the LSTM also on
        several); else None.
        ``active``, ``reverse``, ``out``: as for :meth:`_kernel`.  ``caches``: the LSTM's
        gate and state buffers are wanted (training); without, they may come back as None."""
        n_threads = _api.threads_count(n_threads)
        if not self._compiled(n_threads):
            return None
        return self._call(x, states, sequence, n_threads, active, reverse, out, caches)

    def _call(self, x, states, sequence, n_threads=1, active=None, reverse=False, out=None,
              caches=False):
        """:meth:`_try` once the caller knows the compiled path may take the call (outside
        checked mode; ``n_threads`` a count it allows)."""
        p = self._packed
        scratch = self._slots("buffers", 3)
        if self._kind == "gru":
            return _core.try_packed_gru(x, states[0], p.w[0], p.w[1], p.b[0], p.b[1], p.wy,
                                        p.by, sequence, self.reset_after,
                                        _api.SMALL_BATCH_MAX_M, scratch, active, reverse, out)
        if self._kind == "rnn":
            return _core.try_packed_rnn(x, states[0], p.w[0], p.w[1], p.b, p.wy, p.by,
                                        sequence, _api.SMALL_BATCH_MAX_M, scratch,
                                        self.nonlinearity == "relu", active, reverse, out)
        # several threads: the batch in slices, each on its own thread (None where the
        # kernel cannot split this call: the general threaded route then runs it)
        return _core.try_packed_lstm(x, states[0], states[1], p.blocks[0], p.blocks[1], p.wy,
                                     p.by, sequence, _api.SMALL_BATCH_MAX_M, scratch, caches,
                                     active, n_threads, _api.run_slices,
                                     _api._MIN_THREADED_WORK, reverse, out)

    def _inputs(self, inputs, sequence):
        """Validate inputs against the model; states given as None become zeros.

        Returns m and the inputs as C-contiguous arrays of the model's dtype.
        """
        dims = {"n_x": self.n_x, "n_a": self.n_a, "n_y": self.n_y}
        # the input is always checked (None is an error); omitted states become zeros
        given = inputs[:1] + [(name, value) for name, value in inputs[1:] if value is not None]
        arrays = check_inputs(given, dims, sequence, GATE_COUNT[self._kind])
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
        ``by`` (n_y, 1); without ``Wya`` and ``by``, no output layer (the predictions are
        None; ``n_y`` is 0).  Copied: later changes to these arrays do not affect the model.
    dtype : {None, float32, float64}
        Computation dtype; by default float32 when every weight is float32, else float64.
        Inputs are converted to it.
    nonlinearity : {"tanh", "relu"}
        The lessons' tanh, or ``max(z, 0)`` (PyTorch's ``nn.RNN(nonlinearity="relu")``).

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

    def __init__(self, parameters: Parameters, dtype: DTypeLike = None, *,
                 nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(parameters, dtype)

    def __setstate__(self, state):
        state.setdefault("nonlinearity", "tanh")  # pickled before the option existed
        super().__setstate__(state)

    def _cell_options(self):
        return {} if self.nonlinearity == "tanh" else {"nonlinearity": self.nonlinearity}

    def forward(self, x: ArrayLike, a0: ArrayLike | None = None, *,
                lengths: ArrayLike | None = None, n_threads: int = 1
                ) -> tuple[Array, Array | None]:
        """Run a sequence.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        a0 : array_like (n_a, m), optional
            Initial hidden state; zeros when omitted.
        lengths : array_like of m ints in [1, T_x], optional
            Example j has ``lengths[j]`` steps (PyTorch's ``pack_padded_sequence``): its
            states and predictions past them are 0.
        n_threads : int
            Split the batch into this many slices run on separate threads for the whole
            sequence (each slice calls BLAS on its own thread).

        Returns
        -------
        a : ndarray (n_a, m, T_x)
        y_pred : ndarray (n_y, m, T_x), or None without an output layer
        """
        return self._one_state_forward(x, a0, lengths, n_threads)

    def loss_and_grads(self, x, targets, a0=None):
        """Summed cross-entropy over a sequence and the gradients of every parameter.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        targets : integer array_like (m, T_x)
            Class index in [0, n_y) of every example and step.
        a0 : array_like (n_a, m), optional
            Initial hidden state; zeros when omitted.

        Returns
        -------
        loss : float
            ``-sum_{j,t} log y_pred[targets[j, t], j, t]`` (summed, not averaged).
        grads : dict
            ``dWax, dWaa, dWya, dba, dby`` (the parameters' shapes) and ``da0`` (n_a, m).
        """
        return _training.loss_and_grads(self, x, targets, (a0,))

    def step(self, xt: ArrayLike, state: ArrayLike | None = None) -> tuple[Array, Array]:
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
        yt_pred : ndarray (n_y, m), or None without an output layer
        """
        return self._one_state_step(xt, state, reference.rnn_cell_forward)


class LSTM(_Model):
    """An LSTM whose four gates are validated and packed once into one block.

    Parameters
    ----------
    parameters : mapping
        ``Wf``, ``Wi``, ``Wc``, ``Wo`` (n_a, n_a + n_x); ``bf``, ``bi``, ``bc``, ``bo``
        (n_a, 1); ``Wy`` (n_y, n_a); ``by`` (n_y, 1) (without ``Wy`` and ``by``, no output
        layer).  Copied when packed.
    dtype : {None, float32, float64}
        As for :class:`RNN`.
    """

    _kind = "lstm"
    _weights = LSTM_WEIGHTS

    def forward(self, x: ArrayLike, a0: ArrayLike | None = None, c0: ArrayLike | None = None,
                *, lengths: ArrayLike | None = None, n_threads: int = 1
                ) -> tuple[Array, Array | None, Array]:
        """Run a sequence.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        a0, c0 : array_like (n_a, m), optional
            Initial hidden and cell state; zeros when omitted.
        lengths, n_threads :
            As for :meth:`RNN.forward`.

        Returns
        -------
        a : ndarray (n_a, m, T_x)
        y : ndarray (n_y, m, T_x), or None without an output layer
        c : ndarray (n_a, m, T_x)
        """
        fast = self._fast_forward(x, (a0, c0), lengths, n_threads)
        if fast is not None:
            return fast
        a, y, c = self._run_forward(x, [("a0", a0), ("c0", c0)], lengths, n_threads)
        return a, y, c

    def loss_and_grads(self, x, targets, a0=None, c0=None):
        """Summed cross-entropy over a sequence and the gradients of every parameter.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        targets : integer array_like (m, T_x)
            Class index in [0, n_y) of every example and step.
        a0, c0 : array_like (n_a, m), optional
            Initial hidden and cell state; zeros when omitted.

        Returns
        -------
        loss : float
            ``-sum_{j,t} log y[targets[j, t], j, t]`` (summed, not averaged).
        grads : dict
            ``dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo, dWy, dby`` (the parameters' shapes)
            and ``da0``, ``dc0`` (n_a, m).
        """
        return _training.loss_and_grads(self, x, targets, (a0, c0))

    def step(self, xt: ArrayLike,
             state: tuple[ArrayLike, ArrayLike] | None = None
             ) -> tuple[tuple[Array, Array], Array]:
        """Advance one step.

        Parameters
        ----------
        xt : array_like (n_x, m)
        state : tuple (a_prev, c_prev) of array_like (n_a, m), optional
            Zeros when omitted (the start of a stream).

        Returns
        -------
        state : tuple (a_next, c_next) of ndarray (n_a, m)
        yt_pred : ndarray (n_y, m), or None without an output layer
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
            return (fast[0], fast[2]), (fast[1] if self.has_head else None)
        m, (xt, a_prev, c_prev) = self._inputs(
            [("xt", xt), ("a_prev", a_prev), ("c_prev", c_prev)], sequence=False)
        a, y, c = self._kernel(xt.reshape(self.n_x, m, 1), [a_prev, c_prev])
        a_next, c_next, yt = self._verify(
            "step", ("a_next", "c_next", "yt_pred"),
            (a[:, :, 0], c[:, :, 0], None if y is None else y[:, :, 0]),
            reference.lstm_cell_forward, xt, a_prev, c_prev)
        return (a_next, c_next), yt



class GRU(_Model):
    """A GRU (PyTorch's and Keras's default formulation) whose weights are validated and
    packed once: the three gates' input weights into one (3n_a, n_x) block, their recurrent
    weights into one (3n_a, n_a) block (one recurrent product per step).

    Parameters
    ----------
    parameters : mapping
        ``Wrx``, ``Wzx``, ``Wnx`` (n_a, n_x); ``Wra``, ``Wza``, ``Wna`` (n_a, n_a); ``brx``,
        ``bzx``, ``bnx``, ``bra``, ``bza``, ``bna`` (n_a, 1); ``Wy`` (n_y, n_a) and ``by``
        (n_y, 1), or neither (no output layer).  See :func:`fastrnn.gru_cell_forward`.
        Copied when packed.
    dtype : {None, float32, float64}
        As for :class:`RNN`.
    reset_after : bool
        True (PyTorch; Keras's default ``reset_after=True``; ONNX's
        ``linear_before_reset=1``): ``nt = tanh(Wnx@xt + bnx + rt * (Wna@a_prev + bna))``.
        False (Keras's ``reset_after=False``; ONNX's default ``linear_before_reset=0``):
        ``nt = tanh(Wnx@xt + bnx + Wna@(rt * a_prev) + bna)``.
    """

    _kind = "gru"
    _weights = GRU_WEIGHTS

    def __init__(self, parameters, dtype=None, *, reset_after=True):
        self.reset_after = _api._flag(reset_after, "reset_after")
        super().__init__(parameters, dtype)

    def _cell_options(self):
        return {"reset_after": self.reset_after}

    def forward(self, x, a0=None, *, lengths=None, n_threads=1):
        """Run a sequence.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        a0 : array_like (n_a, m), optional
            Initial hidden state; zeros when omitted.
        lengths, n_threads :
            As for :meth:`RNN.forward`.

        Returns
        -------
        a : ndarray (n_a, m, T_x)
        y_pred : ndarray (n_y, m, T_x), or None without an output layer
        """
        return self._one_state_forward(x, a0, lengths, n_threads)

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
        yt_pred : ndarray (n_y, m), or None without an output layer
        """
        return self._one_state_step(xt, state, reference.gru_cell_forward)


class _Lengths:
    """Validated lengths of a batch and what the kernels need of them, computed once per call
    and shared by every layer and direction.

    ``values`` the (m,) intp lengths; ``full`` True when no example ends before T_x.  The
    kernels skip the padding of a batch sorted by length, longest first (``in_order``: it
    already is): ``active`` (T_x,) C ints counts the examples still running at each step
    (the kernels' ``active``); :meth:`gather` puts a (rows, m, T_x) sequence in that order
    and :meth:`scatter` puts the kernel's outputs back (with ``zero_padding``, each
    example's steps past its length set to 0: a head's predictions there;
    :meth:`zero_padding` does that to a sequence in the caller's order); :meth:`sort`
    orders an initial state (rows, m); ``sorting`` is what ``_core.last_states`` needs to
    pick each example's state after its own last step from a kernel output, in the
    caller's order.  Any number of states; no per-example loop.
    """

    def __init__(self, values, T):
        # one counting sort (compiled: a few microseconds whatever m and T_x), which also
        # gives the lengths as a C-contiguous intp array
        self.values, self._order, self._sorted, self.active, self.in_order = (
            _core.sort_lengths(values, T) if len(values) else
            (values, values, values, np.zeros(T, dtype=np.intc), True))
        self.full = not len(values) or int(self._sorted[-1]) == T

    @property
    def sorting(self):
        """(order, sorted lengths): sorted example q is the caller's example order[q]."""
        return self._order, self._sorted

    def gather(self, seq, out=None):
        if self.in_order:
            return seq
        if out is None:
            out = _pool.empty(seq.shape, seq.dtype)
        _core.permute_steps(seq, out, self._order, self._sorted, False)
        return out

    def scatter(self, seq, out=None, zero_padding=False):
        if self.in_order and out is None:
            return self.zero_padding(seq) if zero_padding else seq
        if out is None:
            out = _pool.empty(seq.shape, seq.dtype)
        _core.permute_steps(seq, out, self._order, self._sorted, True, zero_padding)
        return out

    def restore(self, a, y, c, out=None):
        """A kernel's outputs a, y, c (y, c may be None) in sorted order back in the caller's
        (a into ``out`` when given, unless it already is ``out``), y's padding zeroed: the
        kernel zeroed the states past each length, the predictions there are not meaningful
        until zeroed here."""
        if a is not out:
            a = self.scatter(a, out)
        y = None if y is None else self.scatter(y, zero_padding=True)
        c = None if c is None else self.scatter(c)
        return a, y, c

    def sort(self, state):
        return state if self.in_order else np.ascontiguousarray(state[:, self._order])

    def zero_padding(self, seq):
        """seq (rows, m, T_x) in the caller's order with each example's steps past its own
        length set to 0, in place."""
        return _core.zero_past(seq, self.values)
