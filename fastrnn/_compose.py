"""Composed models: stacked layers, bidirectional layers, an optional output layer on top.

A layer is a packed single-direction model (``RNN``, ``LSTM``, ``GRU``, without an output
layer) or a :class:`Bidirectional` pair of them.  Every layer reads the previous layer's
hidden-state sequence; ``lengths`` (PyTorch's ``pack_padded_sequence``) reach every layer,
so each example's states past its length are 0 in every layer.  The layers run the same
kernels as the single models (see ``fastrnn._models._Model._sequence``).
"""
import numpy as np

from fastrnn import _api, _checked, _pool, reference
from fastrnn._kernels import _core
from fastrnn._models import _Lengths, _Model
from fastrnn._packing import as_c
from fastrnn._validation import (GATE_COUNT, check_inputs, check_layer_states, check_lengths,
                                 validate_head)

__all__ = ["Bidirectional", "Stack"]


def _direction(model, what):
    if not isinstance(model, _Model):
        raise TypeError(f"{what} must be a fastrnn.RNN, LSTM or GRU, got "
                        f"{type(model).__name__}")
    if model.has_head:
        raise ValueError(f"{what} has an output layer (n_y = {model.n_y}): a layer inside a "
                         f"Bidirectional or Stack must have none; give the output layer to "
                         f"Stack(head=...)")
    return model


class Bidirectional:
    """A bidirectional layer: ``forward`` reads each sequence from its first step, ``backward``
    from each example's own last step.

    Its output stacks the forward direction's rows, then the backward's:
    ``(n_a_forward + n_a_backward, m, T_x)``, PyTorch's order.

    Parameters
    ----------
    forward, backward : RNN, LSTM or GRU
        Packed models of the same kind, input size and dtype, without an output layer.

    Examples
    --------
    >>> layer = Bidirectional(GRU(p_fwd), GRU(p_bwd))          # doctest: +SKIP
    >>> h, _, h_n = layer.forward(x, lengths=lengths)          # doctest: +SKIP
    """

    def __init__(self, forward, backward):
        fwd = _direction(forward, "forward")
        bwd = _direction(backward, "backward")
        if fwd._kind != bwd._kind or fwd.n_x != bwd.n_x or fwd.dtype != bwd.dtype:
            raise ValueError(
                f"forward and backward must be of the same kind, n_x and dtype, got {fwd!r} "
                f"and {bwd!r}")
        self.directions = (fwd, bwd)
        self._derive()

    def _derive(self):
        # What forward runs, made once (the layer is immutable): a one-layer Stack of a bare
        # copy of this layer (its directions, no Stack of its own), so that no reference
        # cycle keeps the layer and its packed weights alive until the garbage collector runs.
        bare = object.__new__(Bidirectional)
        bare.directions = self.directions
        self._stack = Stack([bare])

    def __getstate__(self):
        return {"directions": self.directions}

    def __setstate__(self, state):
        # also a layer pickled by an earlier version (with or without its Stack)
        self.__dict__.update(state)
        self._derive()

    @property
    def n_x(self):
        return self.directions[0].n_x

    @property
    def n_out(self):
        """Rows of the output: n_a of the forward direction plus n_a of the backward."""
        return self.directions[0].n_a + self.directions[1].n_a

    def __repr__(self):
        return f"fastrnn.Bidirectional({self.directions[0]!r}, {self.directions[1]!r})"

    def save(self, path):
        """Write the model to ``path`` (an ``.npz`` of every direction's parameters and a JSON
        header), read back by :func:`fastrnn.load` (no pickle)."""
        from fastrnn.io import save
        save(self, path)

    def forward(self, x, lengths=None, h0=None, c0=None, *, n_threads=1):
        """Run both directions; as :meth:`Stack.forward` for a stack of this one layer."""
        return self._stack.forward(x, lengths, h0, c0, n_threads=n_threads)

    def _run(self, x, lengths, states, n_threads):
        """Both directions on validated input; with n_threads >= 2 the backward direction
        runs on a second thread (the kernels release the GIL), each direction splitting its
        batch over half the threads.  Each direction's kernel writes its rows of the output
        directly (``out``), with no concatenation afterwards."""
        fwd, bwd = self.directions
        n = _api.threads_count(n_threads)
        h = _pool.empty((fwd.n_a + bwd.n_a,) + x.shape[1:], fwd.dtype)
        out_f, out_b = h[:fwd.n_a], h[fwd.n_a:]
        n_x, m, T = x.shape
        work = m * T * sum(GATE_COUNT[d._kind] * d.n_a * (d.n_a + n_x) for d in self.directions)
        if n >= 2 and work >= _api._MIN_THREADED_WORK:  # else the hand-off costs more
            future = _api._pool(_api.WAITING_WORKERS, waiting=True).submit(
                bwd._sequence, x, states[1], lengths, True, max(1, n // 2), out_b)
            try:
                res_f = fwd._sequence(x, states[0], lengths, False, max(1, n - n // 2), out_f)
            finally:
                res_b = future.result()
        else:
            res_f = fwd._sequence(x, states[0], lengths, False, 1, out_f)
            res_b = bwd._sequence(x, states[1], lengths, True, 1, out_b)
        return h, [res_f[3], res_b[3]]


class Stack:
    """Layers run one after another, with an optional output layer on top.

    Parameters
    ----------
    layers : sequence of RNN, LSTM, GRU or Bidirectional
        All of one kind and dtype, without output layers; layer k + 1's n_x is layer k's
        output rows (n_a, or 2 n_a for a bidirectional layer).
    head : mapping, optional
        ``Wy`` (n_y, n_out) and ``by`` (n_y, 1) on the last layer's output:
        ``y = softmax(Wy @ h + by)`` per column.  Without it the predictions are None.

    Attributes
    ----------
    n_x : int
        Input rows.
    n_out : int
        Rows of the last layer's output.
    n_y : int
        Rows of the predictions (0 without a head).
    """

    def __init__(self, layers, head=None):
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one layer")
        for k, layer in enumerate(layers):
            if not isinstance(layer, Bidirectional):
                _direction(layer, f"layers[{k}]")
        dirs = [d for layer in layers for d in _directions(layer)]
        kinds = {d._kind for d in dirs}
        dtypes = {d.dtype for d in dirs}
        if len(kinds) != 1 or len(dtypes) != 1:
            raise ValueError(f"layers must be of one kind and one dtype, got kinds "
                             f"{sorted(kinds)} and dtypes {sorted(str(d) for d in dtypes)}")
        for k in range(1, len(layers)):
            if layers[k].n_x != _n_out(layers[k - 1]):
                raise ValueError(
                    f"layers[{k}] must take n_x = {_n_out(layers[k - 1])} inputs (the rows of "
                    f"layers[{k - 1}]'s output), got n_x = {layers[k].n_x}")
        self.layers = tuple(layers)
        self.kind = kinds.pop()
        self.dtype = dtypes.pop()
        self.n_x = layers[0].n_x
        self._finite = all(d._finite for d in dirs)
        self.n_out = _n_out(layers[-1])
        # multiply-adds per example and step, all layers and directions (see _chain)
        self._work = sum(GATE_COUNT[d._kind] * d.n_a * (d.n_a + d.n_x) for d in dirs)
        self._derive()
        self._head = None
        self.n_y = 0
        if head is not None:
            wy, by = validate_head(head, self.n_out)
            self._head = (as_c(wy, self.dtype, True), as_c(by, self.dtype, True))
            self.n_y = wy.shape[0]

    def _derive(self):
        # What _chain runs, layer by layer: (model, 0, 0), or for a bidirectional layer
        # ((forward, backward), its output rows, the forward's rows); and per direction,
        # whether its final states are at step 0 (a backward direction).
        self._plan = tuple((layer.directions, layer.n_out, layer.directions[0].n_a)
                           if isinstance(layer, Bidirectional) else (layer, 0, 0)
                           for layer in self.layers)
        self._starts = [reverse for layer in self.layers
                        for reverse in ((False, True) if isinstance(layer, Bidirectional)
                                        else (False,))]

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_plan"], state["_starts"]
        return state

    def __setstate__(self, state):
        # also a stack pickled by an earlier version (without the plan)
        self.__dict__.update(state)
        self._derive()

    def __repr__(self):
        return (f"fastrnn.Stack([{', '.join(map(repr, self.layers))}], "
                f"n_y={self.n_y or None})")

    def save(self, path):
        """Write the model to ``path`` (an ``.npz`` of every direction's parameters and a JSON
        header), read back by :func:`fastrnn.load` (no pickle)."""
        from fastrnn.io import save
        save(self, path)

    def _sizes(self):
        return [d.n_a for layer in self.layers for d in _directions(layer)]

    def forward(self, x, lengths=None, h0=None, c0=None, *, n_threads=1):
        """Run every layer over a batch of sequences.

        Parameters
        ----------
        x : array_like (n_x, m, T_x)
        lengths : array_like of m ints in [1, T_x], optional
            Example j has ``lengths[j]`` steps (PyTorch's ``pack_padded_sequence``): every
            layer's states and the predictions past them are 0, a backward direction starts
            at each example's own last step, and the final states are each example's states
            after its own last step.
        h0, c0 : array_like (L*D, n_a, m) or a sequence of L*D arrays (n_a, m), optional
            Initial hidden (and, for LSTM layers, cell) states per layer and direction,
            layer by layer, forward direction first (PyTorch's ``h_0`` with its last two
            axes swapped); zeros when omitted.
        n_threads : int
            Threads for each layer: a bidirectional layer runs its two directions on two
            threads when this is at least 2; the batch is split over the rest.

        Returns
        -------
        h : ndarray (n_out, m, T_x)
            The last layer's hidden states (forward rows, then backward rows).
        y : ndarray (n_y, m, T_x), or None without a head
        state : ndarray (L*D, n_a, m), or for LSTM layers a pair (h_n, c_n) of them
            The final states, in the order of ``h0`` (a list of (n_a, m) arrays instead of
            one array when the layers differ in n_a).
        """
        if h0 is None and c0 is None:
            fast = self._chain(x, n_threads, lengths)
            if fast is not None:
                return fast
        dims = {"n_x": self.n_x, "n_a": 1, "n_y": 0}
        (x_arr,) = check_inputs([("x", x)], dims, True, GATE_COUNT[self.kind])
        m, T = dims["m"], dims["T_x"]
        lengths = check_lengths(lengths, m, T)
        sizes = self._sizes()
        h0s = check_layer_states("h0", h0, sizes, m)
        if self.kind == "lstm":
            c0s = check_layer_states("c0", c0, sizes, m)
        elif c0 is not None:
            raise TypeError(f"c0 is for LSTM layers only; these layers are {self.kind.upper()}")
        else:
            c0s = [None] * len(sizes)
        _api.threads_count(n_threads)

        (x_c,) = _api.kernel_inputs([x_arr], self.dtype, self._finite)
        # what the kernels need of the lengths, once for every layer and direction
        steps = None if lengths is None else _Lengths(lengths, T)
        finals = []
        h, k = x_c, 0
        for layer in self.layers:
            states = []
            for d in _directions(layer):
                states.append([_zero_or(v, d.n_a, m, self.dtype, d._finite)
                               for v in ((h0s[k], c0s[k]) if self.kind == "lstm"
                                         else (h0s[k],))])
                k += 1
            if isinstance(layer, Bidirectional):
                h, last = layer._run(h, steps, states, n_threads)
            else:
                out = layer._sequence(h, states[0], steps, False, n_threads)
                h, last = out[0], [out[3]]
            finals.extend(last)
        y = self._apply_head(h, steps)
        state = _state(finals, self.kind)
        if _checked.is_checked():
            names = ("h", "y", "h_n", "c_n")
            got = (h, y) + (state if self.kind == "lstm" else (state,))
            _api._check("Stack.forward", _api._outputs(names, map(_joined, got)),
                        lambda: _api._outputs(names, map(_joined, self._reference(
                            x_c, lengths, [_f64(v) for v in h0s], [_f64(v) for v in c0s]))))
        return h, y, state

    def _chain(self, x, n_threads, lengths=None):
        """``forward(x, lengths)`` with zero initial states and one thread's worth of work:
        the directions' compiled calls (``_Model._call``) chained, each layer's output
        (already what the next kernel takes) passed on with no validation in between; a
        bidirectional layer's directions write their halves of one array, the backward one
        running its steps from the last.  With lengths below T_x the batch is put in order
        of length once (unless it already is), runs every layer in that order skipping the
        padding (a backward direction starting each example at its own last step), and goes
        back to the caller's order once.  None when a call cannot take its input as it is (an
        array-like ``x`` or ``lengths``, subnormal values, checked mode, work worth several
        threads): the validated route then runs the whole stack.  At the ``lesson`` shape
        this is most of the call: Python's overhead, not the kernels'."""
        if type(x) is not np.ndarray or x.ndim != 3 or _checked.is_checked():
            return None
        m, T = x.shape[1], x.shape[2]
        if (type(n_threads) is not int or n_threads != 1) and (  # else validated below
                _api.threads_count(n_threads) != 1
                and m * T * self._work >= _api._MIN_THREADED_WORK):
            return None  # else the threaded routes would run on this thread too
        h, active, sorting = x, None, None
        if lengths is not None:
            if not (x.dtype == self.dtype and x.flags.c_contiguous):
                return None
            steps = _core.sorted_batch(lengths, x)
            if steps is None:
                return None
            if not steps[5]:  # else whole sequences: no padding
                h, order, srt, active, in_order, _, _, values = steps
                sorting = order, srt
        lstm = self.kind == "lstm"
        zeros = (None, None) if lstm else (None,)
        # every direction's hidden (and cell) state sequence, in the order of _starts, whose
        # final states one compiled call takes at the end (plain appends, the two directions
        # written out: comprehensions and a loop over a per-layer tuple of the directions had
        # cost about as much as a kernel call at `lesson`)
        hs, cs = [], []
        for layer, rows, split in self._plan:
            if not rows:
                res = layer._call(h, zeros, True, 1, active)
                if res is None:
                    return None
                h = res[0]
                hs.append(h)
                if lstm:
                    cs.append(res[2])
                continue
            out = _pool.empty((rows, m, T), self.dtype)
            res = layer[0]._call(h, zeros, True, 1, active, False, out[:split])
            if res is None:
                return None
            hs.append(res[0])
            if lstm:
                cs.append(res[2])
            res = layer[1]._call(h, zeros, True, 1, active, True, out[split:])
            if res is None:
                return None
            hs.append(res[0])
            if lstm:
                cs.append(res[2])
            h = out
        sort = sorting or ()
        state = h_n = _core.last_states(hs, self._starts, *sort)
        if lstm:
            state = h_n, _core.last_states(cs, self._starts, *sort)
        if sorting is None:
            return h, None if self._head is None else self._apply_head(h, None), state
        if not in_order:  # else the kernels' order is the caller's
            h = _core.unsort([h], [False], *sorting, False)[0]
        if self._head is None:
            return h, None, state
        # the head on the caller's order: the validated route's bits
        return h, _core.zero_past(self._apply_head(h, None), values), state

    def _apply_head(self, h, lengths):
        # lengths: a _Lengths, or None
        if self._head is None:
            return None
        wy, by = self._head
        n_out, m, T = h.shape
        with np.errstate(all="ignore"):  # inf and NaN propagate as in the reference
            y = (wy @ h.reshape(n_out, m * T) + by).reshape(wy.shape[0], m, T)
            if y.size == 0:
                return y
            y -= y.max(axis=0, keepdims=True)
            np.exp(y, out=y)
            y /= y.sum(axis=0, keepdims=True)
        return y if lengths is None else lengths.zero_padding(y)

    def _reference(self, x, lengths, h0s, c0s):
        """The same composition, each direction by ``reference.layer_forward`` (float64)."""
        h, k = _f64(x), 0
        finals_h, finals_c = [], []
        for layer in self.layers:
            outs = []
            for d, reverse in zip(_directions(layer), (False, True)):
                a, _, _, a_last, c_last = reference.layer_forward(
                    self.kind, h, d._reference_parameters(), lengths, reverse,
                    h0s[k], c0s[k], **d._cell_options())
                outs.append(a)
                finals_h.append(a_last)
                finals_c.append(c_last)
                k += 1
            h = np.concatenate(outs, axis=0)
        y = None
        if self._head is not None:
            wy, by = (_f64(v) for v in self._head)
            n_out, m, T = h.shape
            y = np.zeros((wy.shape[0], m, T))
            for t in range(T):
                y[:, :, t] = reference.softmax(wy @ h[:, :, t] + by)
            if lengths is not None:
                y[:, np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = 0
        out = (h, y, _stack_or_list(finals_h))
        return out + ((_stack_or_list(finals_c),) if self.kind == "lstm" else ())


def _directions(layer):
    return layer.directions if isinstance(layer, Bidirectional) else (layer,)


def _n_out(layer):
    return layer.n_out if isinstance(layer, Bidirectional) else layer.n_a


def _zero_or(value, n_a, m, dtype, finite):
    if value is None:
        return np.zeros((n_a, m), dtype=dtype)
    (arr,) = _api.kernel_inputs([value], dtype, finite)
    return arr


def _f64(v):
    return None if v is None else np.asarray(v, dtype=np.float64)


def _joined(v):
    # final states of layers of different n_a (a list) as one array, for comparison
    return np.concatenate(v, axis=0) if isinstance(v, list) else v


def _stack_or_list(arrays):
    if len({a.shape for a in arrays}) == 1:
        return np.array(arrays)  # stacked (a copy): a quarter of np.stack's overhead
    return list(arrays)


def _state(finals, kind):
    h_n = _stack_or_list([f[0] for f in finals])
    if kind == "lstm":
        return h_n, _stack_or_list([f[1] for f in finals])
    return h_n
