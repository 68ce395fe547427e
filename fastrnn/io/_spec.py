"""What every importer produces: a framework-neutral description of a trained network.

A converter reads a framework's weights into *gates*: for each gate of each direction of each
layer, ``(Wx (n_a, n_in), Wh (n_a, n_a), bx (n_a,), bh (n_a,))`` — the input weight, the
recurrent weight and the two biases, in the framework's own values but in fastrnn's gate names
(RNN ``a``; LSTM ``f, i, c, o``; GRU ``r, z, n``).  :func:`layer_parameters` turns one
direction's gates into the lessons' ``parameters`` keys, the only place where the
``[a_prev; xt]`` column order and the bias sums are decided.  A :class:`Spec` holds those
dicts for every layer and direction plus the optional softmax head; it is what
``fastrnn.io.save`` writes and what :class:`fastrnn.io.Imported` runs.
"""
import numpy as np

__all__ = ["GATES", "Spec", "layer_parameters", "head_parameters", "KEYS"]

# fastrnn's gate names per cell kind, in the order the lessons list them.
GATES = {"rnn": ("a",), "lstm": ("f", "i", "c", "o"), "gru": ("r", "z", "n")}

# The lessons' parameter keys of one direction (no head), per cell kind.
KEYS = {
    "rnn": ("Wax", "Waa", "ba"),
    "lstm": ("Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo"),
    # GRU: every gate keeps its input and recurrent products (and biases) apart, because r
    # multiplies the candidate's recurrent product including its bias b_hn.
    "gru": ("Wrx", "Wzx", "Wnx", "Wra", "Wza", "Wna", "brx", "bzx", "bnx", "bra", "bza",
            "bna"),
}

# The head's keys, per cell kind (the lessons name the RNN's output weight Wya).
HEAD_KEYS = {"rnn": ("Wya", "by"), "lstm": ("Wy", "by"), "gru": ("Wy", "by")}

ACTIVATIONS = ("tanh", "relu")
DIRECTIONS = (("forward",), ("reverse",), ("forward", "reverse"))


def _stack(Wh, Wx):
    """The lessons' column order: a gate acting on ``[a_prev; xt]`` (a_prev on top)."""
    return np.hstack([Wh, Wx])


def layer_parameters(kind, gates):
    """One direction's gates as the lessons' ``parameters`` keys.

    Parameters
    ----------
    kind : {"rnn", "lstm", "gru"}
    gates : dict gate name -> (Wx (n_a, n_in), Wh (n_a, n_a), bx (n_a,), bh (n_a,))

    Returns
    -------
    dict
        RNN ``Wax (n_a, n_in), Waa (n_a, n_a), ba (n_a, 1)``; LSTM ``W{f,i,c,o}
        (n_a, n_a + n_in), b{f,i,c,o} (n_a, 1)``; GRU ``W{r,z,n}x (n_a, n_in),
        W{r,z,n}a (n_a, n_a), b{r,z,n}x, b{r,z,n}a (n_a, 1)``.  An RNN's or LSTM's two biases
        are summed; the GRU keeps them apart (its ``b_hn`` stays inside the reset product).
    """
    col = lambda b: np.asarray(b).reshape(-1, 1)  # noqa: E731
    if kind == "rnn":
        Wx, Wh, bx, bh = gates["a"]
        return {"Wax": Wx, "Waa": Wh, "ba": col(bx + bh)}
    out = {}
    for g in GATES[kind]:
        Wx, Wh, bx, bh = gates[g]
        if kind == "gru":
            out.update({f"W{g}x": Wx, f"W{g}a": Wh, f"b{g}x": col(bx), f"b{g}a": col(bh)})
        else:
            out["W" + g], out["b" + g] = _stack(Wh, Wx), col(bx + bh)
    return {k: out[k] for k in KEYS[kind]}


def head_parameters(kind, W, b):
    """A softmax head ``y = softmax(W @ a + b)`` as the lessons' keys (``b`` may be None)."""
    W = np.asarray(W)
    b = np.zeros(W.shape[0], dtype=W.dtype) if b is None else np.asarray(b)
    wk, bk = HEAD_KEYS[kind]
    return {wk: W, bk: b.reshape(-1, 1)}


def sizes(kind, params):
    """(n_in, n_a) of one direction's parameters."""
    if kind == "rnn":
        n_a, n_in = params["Wax"].shape
    elif kind == "lstm":
        n_a, n = params["Wf"].shape
        n_in = n - n_a
    else:
        n_a, n_in = params["Wnx"].shape
    return n_in, n_a


class Spec:
    """A trained recurrent network in the lessons' parameter keys.

    Attributes
    ----------
    kind : {"rnn", "lstm", "gru"}
    activation : {"tanh", "relu"}
        The RNN's nonlinearity (always "tanh" for the LSTM and GRU).
    directions : tuple
        ``("forward",)``, ``("reverse",)`` or ``("forward", "reverse")``, the same for every
        layer.
    layers : list of list of dict
        ``layers[l][d]`` the parameters of direction ``d`` of layer ``l`` (lessons' keys, no
        head).  Layer 0 reads ``n_x`` features, later layers ``D·n_a``.
    head : dict or None
        ``Wy``/``Wya (n_y, D·n_a)``, ``by (n_y, 1)``: ``y = softmax(Wy @ a + by)`` per column.
    cell : bool
        Imported from a single-step cell (``torch.nn.LSTMCell`` …).
    reset_after : bool
        The GRU's formulation (see :class:`fastrnn.GRU`): True, PyTorch's (``r`` multiplies
        the candidate's recurrent product), or False, Keras's ``reset_after=False`` and ONNX's
        ``linear_before_reset=0`` (``r`` multiplies the state before the product).
    dtype : numpy dtype (float32 or float64)
    """

    def __init__(self, kind, layers, *, directions=("forward",), activation="tanh", head=None,
                 cell=False, reset_after=True, dtype=None):
        if kind not in GATES:
            raise ValueError(f"kind must be one of {sorted(GATES)}, got {kind!r}")
        if activation not in ACTIVATIONS or (activation != "tanh" and kind != "rnn"):
            raise ValueError(f"activation must be 'tanh' (or 'relu' for an RNN), got "
                             f"{activation!r}")
        directions = tuple(directions)
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
        if not layers or any(len(layer) != len(directions) for layer in layers):
            raise ValueError(f"layers must hold at least one layer of {len(directions)} "
                             f"direction(s)")
        self.kind, self.activation, self.directions = kind, activation, directions
        self.cell = bool(cell)
        if not isinstance(reset_after, (bool, np.bool_)) or (kind != "gru" and not reset_after):
            raise ValueError(f"reset_after must be True or False (False for a GRU only), got "
                             f"{reset_after!r}")
        self.reset_after = bool(reset_after)
        self.dtype = np.dtype(np.float64 if dtype is None else dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.layers = [[{k: self._array(p, k, f"layers[{l}][{d}]") for k in KEYS[kind]}
                        for d, p in enumerate(layer)] for l, layer in enumerate(layers)]
        self.n_x, self.n_a = sizes(kind, self.layers[0][0])
        D = len(directions)
        for l, layer in enumerate(self.layers):
            for p in layer:
                want = (self.n_x if l == 0 else D * self.n_a, self.n_a)
                if sizes(kind, p) != want:
                    raise ValueError(
                        f"layer {l} must read {want[0]} features with n_a = {self.n_a}, "
                        f"got (n_in, n_a) = {sizes(kind, p)}")
        self.head = None
        self.n_y = 0
        if head is not None:
            wk, bk = HEAD_KEYS[kind]
            self.head = {k: self._array(head, k, "head") for k in (wk, bk)}
            self.n_y = self.head[wk].shape[0]
            if self.head[wk].shape != (self.n_y, D * self.n_a) or \
                    self.head[bk].shape != (self.n_y, 1):
                raise ValueError(
                    f"head must be {wk} (n_y, D*n_a) = (n_y, {D * self.n_a}) and {bk} "
                    f"(n_y, 1), got {self.head[wk].shape} and {self.head[bk].shape}")

    def _array(self, params, key, where):
        if key not in params:
            raise KeyError(f"{where} is missing {key!r}")
        arr = np.asarray(params[key])
        if arr.dtype.kind not in "fiu" or arr.ndim != 2:
            raise TypeError(f"{where}[{key!r}] must be a 2-D real array, got dtype "
                            f"{arr.dtype}, shape {arr.shape}")
        return np.array(arr, dtype=self.dtype, order="C")  # a copy: the spec owns its weights

    @property
    def num_layers(self):
        return len(self.layers)

    @property
    def num_directions(self):
        return len(self.directions)

    def __repr__(self):
        return (f"Spec(kind={self.kind!r}, n_x={self.n_x}, n_a={self.n_a}, n_y={self.n_y}, "
                f"layers={self.num_layers}, directions={self.directions}, "
                f"activation={self.activation!r}, cell={self.cell}, "
                f"reset_after={self.reset_after}, dtype={self.dtype.name})")
