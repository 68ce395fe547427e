"""Weight packing: the one place where ``parameters`` become the kernels' weight arrays.

The LSTM's four gate matrices (each (n_a, n_a + n_x), acting on ``concat = [a_prev; xt]``)
are stacked in the gate order ``GATES`` into one (4n_a, n_a + n_x) block ("merged"): its
first n_a columns are the recurrent block and the rest the input block, so a step makes one
recurrent product for all four gates and the input projection is one GEMM.  The kernel reads
the per-gate views of that block; unmerged, it takes the caller's four matrices as they are
and makes one product per gate, which saves the copy for a single step.
"""
import numpy as np

from fastrnn._kernels import _core

__all__ = ["GATES", "GRU_GATES", "Packed", "pack", "as_c"]

# Row-block order of the LSTM gates in the kernel.  Sigmoid gates first so the kernel
# activates 3*n_a contiguous values in one pass; the caches read the blocks back by this order,
# and the compiled fast path (_kernels/_core.pyx, _LSTM_GATE_KEYS) spells it out again.
GATES = ("f", "i", "o", "c")
# Row-block order of the GRU gates (PyTorch's), in both of its blocks.
GRU_GATES = ("r", "z", "n")


class Packed:
    """Weights of one model in one dtype, as the kernels take them.

    Attributes
    ----------
    w : tuple of C-contiguous arrays
        RNN: ``(Wax (n_a, n_x), Waa (n_a, n_a))``.  LSTM: the four gate matrices
        (n_a, n_a + n_x) in ``GATES`` order (row views of one block when merged).  GRU:
        ``(W_x (3n_a, n_x), W_a (3n_a, n_a))``, gates in ``GRU_GATES`` order.
    b : RNN: ``ba`` as (n_a,); LSTM: tuple of the four (n_a,) gate biases; GRU:
        ``(b_x (3n_a,), b_a (3n_a,))``.
    wy : (n_y, n_a) output weight
    by : (n_y,) output bias
    blocks : merged LSTM only: ``(W (4n_a, n_a + n_x), b (4n_a,))``, the arrays ``w`` and
        ``b`` are views of; else None.
    head : bool
        False for parameters without an output layer.  Then ``wy``, ``by`` have no rows
        (``wy`` (0, n_a)), and the kernels skip the output layer.
    """

    __slots__ = ("w", "b", "wy", "by", "blocks", "head")

    def __init__(self, w, b, wy, by, blocks=None, head=True):
        self.w, self.b, self.wy, self.by, self.blocks = w, b, wy, by, blocks
        self.head = head

    def __reduce__(self):
        # Every protocol (0 and 1 refuse __slots__ without this) and copy.deepcopy.  Each
        # memory owner is pickled once and every field as a view of it, so a merged LSTM's
        # gate views stay views (not copies at twice the size) after the round trip.
        roots, fields = [], []
        for name in self.__slots__:
            fields.append(_encode(getattr(self, name), roots))
        return (_unpickle_packed, (roots, tuple(fields)))


def _root(arr):
    """The ndarray that owns (or first wraps) the memory ``arr`` views."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _address(arr):
    return arr.__array_interface__["data"][0]


def _encode(value, roots):
    """A field of :class:`Packed` (an array, a tuple of them, or a plain value such as None or
    a flag) with its arrays as ("array", root index, byte offset, dtype, shape, strides); new
    roots go to ``roots``."""
    if not isinstance(value, (tuple, np.ndarray)):
        return ("value", value)
    if isinstance(value, tuple):
        return ("tuple", tuple(_encode(v, roots) for v in value))
    root = _root(value)
    index = next((k for k, r in enumerate(roots) if r is root), None)
    if index is None:
        index = len(roots)
        roots.append(root)
    return ("array", index, _address(value) - _address(root), value.dtype, value.shape,
            value.strides)


def _decode(value, roots):
    if value[0] == "value":
        return value[1]
    if value[0] == "tuple":
        return tuple(_decode(v, roots) for v in value[1])
    _, index, offset, dtype, shape, strides = value
    return np.ndarray(shape, dtype, buffer=roots[index], offset=offset, strides=strides)


def _unpickle_packed(roots, fields):
    """Rebuild a :class:`Packed` pickled by ``Packed.__reduce__``.

    The roots may arrive in any alignment and byte order (pickle protocol 5 hands out-of-band
    buffers over as they were received, at any address): the kernels take aligned,
    native-order arrays only, so such a root is copied, keeping its memory layout so the
    recorded offsets and strides still hold.
    """
    native = []
    for root in roots:
        if not root.dtype.isnative:
            root = root.astype(root.dtype.newbyteorder("="), order="K")
        elif not root.flags.aligned:
            root = root.copy(order="K")
        native.append(root)
    return Packed(*(_decode(f, native) for f in fields))


def as_c(arr, dtype, copy=False):
    """``arr`` as an aligned C-contiguous array of ``dtype``: the caller's array itself when it
    already is one (unless ``copy``).  A float64 value beyond the float32 range becomes +-inf, the
    honest float32 value, and one below it 0 or subnormal, whatever the caller's numpy error
    state (``np.seterr``) says: these are fastrnn's conversions, not the caller's."""
    if arr.dtype == dtype:
        if copy:
            return np.array(arr, order="C", copy=True)
        out = np.ascontiguousarray(arr)
        return out if out.flags.aligned else out.copy()  # a new array is aligned
    with np.errstate(all="ignore"):
        return np.array(arr, dtype=dtype, order="C", copy=True)


def _stack(arrays, dtype):
    """The arrays stacked into one new block; returns it and its per-array row views."""
    n = arrays[0].shape[0]
    block = np.empty((len(arrays) * n,) + arrays[0].shape[1:], dtype=dtype)  # C order
    with np.errstate(all="ignore"):  # see as_c
        for k, arr in enumerate(arrays):
            block[k * n:(k + 1) * n] = arr
    return block, tuple(block[k * n:(k + 1) * n] for k in range(len(arrays)))


def pack(kind, weights, dtype, *, merge, copy=False):
    """Weights validated by fastrnn._validation as a :class:`Packed` of ``dtype``.

    Parameters
    ----------
    kind : "rnn", "lstm" or "gru"
    weights : dict key -> ndarray (without the output layer's keys: no output layer)
    dtype : result dtype
    merge : bool
        LSTM only: stack the four gates into one block (one recurrent product per step).
    copy : bool
        Always copy (a model must not see later changes to the caller's arrays).  Without it,
        arrays that are already C-contiguous of ``dtype`` are used in place.
    """
    def vector(v):
        return as_c(v, dtype, copy).reshape(-1)

    head = "by" in weights
    if head:
        wy, by = as_c(weights["Wya" if kind == "rnn" else "Wy"], dtype, copy), \
            vector(weights["by"])
    else:
        n_a = (weights["Waa"] if kind == "rnn" else weights["Wra"] if kind == "gru"
               else weights["Wf"]).shape[0]
        wy, by = np.zeros((0, n_a), dtype=dtype), np.zeros(0, dtype=dtype)
    if kind == "rnn":
        return Packed((as_c(weights["Wax"], dtype, copy), as_c(weights["Waa"], dtype, copy)),
                      vector(weights["ba"]), wy, by, head=head)
    if kind == "gru":
        wx, _ = _stack([weights[f"W{g}x"] for g in GRU_GATES], dtype)
        wa, _ = _stack([weights[f"W{g}a"] for g in GRU_GATES], dtype)
        bx, _ = _stack([weights[f"b{g}x"] for g in GRU_GATES], dtype)
        ba, _ = _stack([weights[f"b{g}a"] for g in GRU_GATES], dtype)
        return Packed((wx, wa), (bx.reshape(-1), ba.reshape(-1)), wy, by, head=head)
    mats = [weights["W" + g] for g in GATES]
    biases = [weights["b" + g] for g in GATES]
    if merge:
        wblock, w = _stack(mats, dtype)
        bblock, b = _stack(biases, dtype)
        return Packed(w, tuple(v.reshape(-1) for v in b), wy, by, (wblock, bblock.reshape(-1)),
                      head=head)
    return Packed(tuple(as_c(w, dtype, copy) for w in mats), tuple(vector(v) for v in biases),
                  wy, by, head=head)


def flush_subnormal(arr, weights_finite):
    """``arr`` (a C-contiguous kernel array) with its subnormal values replaced by zeros.

    Products with subnormal operands take a 10-100x slower path on many CPUs, in BLAS's own
    threads too, whose floating-point modes the kernels cannot set.  Zero instead of a value
    below ~1e-308 (1e-38 in float32) changes a result by less than that, but 0 * inf is NaN
    where tiny * inf is inf: so the flush happens only when ``weights_finite`` (the weights
    this array multiplies hold no inf or NaN).  Returns ``arr`` itself when there is nothing
    to flush, else a new array.
    """
    if not weights_finite or arr.size == 0 or not _core.count_subnormal(arr):
        return arr
    out = arr.copy()
    out[np.abs(out) < np.finfo(out.dtype).tiny] = 0
    return out


def all_finite(arrays):
    """True when no array holds inf or NaN."""
    return all(bool(np.isfinite(a).all()) for a in arrays)
