"""Weight packing: the one place where ``parameters`` become the kernels' contiguous blocks.

The LSTM's four gate matrices (each (n_a, n_a + n_x), acting on ``concat = [a_prev; xt]``)
are split at column n_a and stacked in the gate order ``GATES``: one (4n_a, n_a) recurrent
block and one (4n_a, n_x) input block, so a step needs one recurrent product for all gates.
"""
import numpy as np

__all__ = ["GATES", "Packed", "pack"]

# Row-block order of the packed LSTM gates.  Sigmoid gates first so the kernel activates
# 3*n_a contiguous values with one call; the caches read the blocks back by this order.
GATES = ("f", "i", "o", "c")


class Packed:
    """Contiguous weights of one model in one dtype.

    Attributes
    ----------
    wx : (G*n_a, n_x) input block
    wa : (G*n_a, n_a) recurrent block
    b : (G*n_a,) bias
    wy : (n_y, n_a) output weight
    by : (n_y,) output bias
    """

    __slots__ = ("wx", "wa", "b", "wy", "by")

    def __init__(self, wx, wa, b, wy, by):
        self.wx, self.wa, self.b, self.wy, self.by = wx, wa, b, wy, by


def _block(arrays, dtype, cols):
    """Stack ``arr[:, cols]`` of each array into one new C-contiguous block."""
    rows = sum(a.shape[0] for a in arrays)
    out = np.empty((rows, cols.stop - cols.start), dtype=dtype)
    r = 0
    for a in arrays:
        out[r:r + a.shape[0]] = a[:, cols]
        r += a.shape[0]
    return out


def _vector(arrays, dtype):
    return np.concatenate([np.asarray(a, dtype=dtype).reshape(-1) for a in arrays])


def pack(kind, weights, n_a, dtype):
    """Pack validated weights (see fastrnn._validation) into a :class:`Packed` of ``dtype``.

    Every block is a new array, so later changes to the caller's arrays cannot reach a packed
    model, and the kernels never see the caller's memory layout.
    """
    if kind == "rnn":
        wx = np.array(weights["Wax"], dtype=dtype, order="C", copy=True)
        wa = np.array(weights["Waa"], dtype=dtype, order="C", copy=True)
        b = _vector([weights["ba"]], dtype)
        wy, by = weights["Wya"], weights["by"]
    else:
        mats = [weights["W" + g] for g in GATES]
        n_all = mats[0].shape[1]
        wa = _block(mats, dtype, slice(0, n_a))
        wx = _block(mats, dtype, slice(n_a, n_all))
        b = _vector([weights["b" + g] for g in GATES], dtype)
        wy, by = weights["Wy"], weights["by"]
    wy = np.array(wy, dtype=dtype, order="C", copy=True)
    return Packed(wx, wa, b, wy, _vector([by], dtype))
