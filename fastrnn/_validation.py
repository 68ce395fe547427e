"""Input validation and the dtype policy: the one place where user input is checked.

Everything a kernel relies on is established here, before any kernel runs: argument types and
dtypes, every shape in terms of n_x, n_a, n_y, m, T_x, and sizes that a BLAS ``int`` can hold.
Errors name the argument, the expected shape (symbolic and with the numbers it implies) and
what was given.
"""
from collections.abc import Mapping

import numpy as np

__all__ = ["RNN_WEIGHTS", "LSTM_WEIGHTS", "GRU_WEIGHTS", "WEIGHTS", "GATE_COUNT", "Dims",
           "validate", "validate_parameters", "check_inputs", "check_lengths",
           "check_layer_states", "validate_head", "result_dtype"]

INT_MAX = 2**31 - 1

# (key, symbolic shape).  The output layer (the first and the last entry) is optional: the
# output weight is listed first so that, when given, n_y and n_a are read from it, as the
# lessons' rnn_forward/lstm_forward do; without it n_a comes from the next weight.
RNN_WEIGHTS = (
    ("Wya", ("n_y", "n_a")),
    ("Wax", ("n_a", "n_x")),
    ("Waa", ("n_a", "n_a")),
    ("ba", ("n_a", "1")),
    ("by", ("n_y", "1")),
)
LSTM_WEIGHTS = (
    ("Wy", ("n_y", "n_a")),
    ("Wf", ("n_a", "n_a + n_x")),
    ("Wi", ("n_a", "n_a + n_x")),
    ("Wc", ("n_a", "n_a + n_x")),
    ("Wo", ("n_a", "n_a + n_x")),
    ("bf", ("n_a", "1")),
    ("bi", ("n_a", "1")),
    ("bc", ("n_a", "1")),
    ("bo", ("n_a", "1")),
    ("by", ("n_y", "1")),
)
# The GRU as PyTorch and Keras compute it by default (fastrnn.reference.gru_cell_forward):
# input weights W?x, recurrent weights W?a and both biases of each gate r, z, n.
GRU_WEIGHTS = (
    ("Wy", ("n_y", "n_a")),
    ("Wrx", ("n_a", "n_x")),
    ("Wzx", ("n_a", "n_x")),
    ("Wnx", ("n_a", "n_x")),
    ("Wra", ("n_a", "n_a")),
    ("Wza", ("n_a", "n_a")),
    ("Wna", ("n_a", "n_a")),
    ("brx", ("n_a", "1")),
    ("bzx", ("n_a", "1")),
    ("bnx", ("n_a", "1")),
    ("bra", ("n_a", "1")),
    ("bza", ("n_a", "1")),
    ("bna", ("n_a", "1")),
    ("by", ("n_y", "1")),
)
WEIGHTS = {"rnn": RNN_WEIGHTS, "lstm": LSTM_WEIGHTS, "gru": GRU_WEIGHTS}
# gate blocks of n_a rows in each kind's recurrent product
GATE_COUNT = {"rnn": 1, "lstm": 4, "gru": 3}


class Dims:
    """Sizes of one call: n_x, n_a, n_y, m, T_x (T_x is None for a single step)."""

    __slots__ = ("n_x", "n_a", "n_y", "m", "T_x")

    def __init__(self, n_x, n_a, n_y, m, T_x):
        self.n_x, self.n_a, self.n_y, self.m, self.T_x = n_x, n_a, n_y, m, T_x

    def __repr__(self):
        return (f"Dims(n_x={self.n_x}, n_a={self.n_a}, n_y={self.n_y}, m={self.m}, "
                f"T_x={self.T_x})")


def _as_array(value, name, symbols, dims):
    """``value`` as an ndarray of real numbers (no copy when it already is one); errors name
    the expected shape ``symbols`` (with the sizes ``dims`` already implies)."""
    expected = _shape_text(symbols, dims)
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers of shape {expected}, "
                        f"got None")
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be an array of shape {expected}, but could not be "
                             f"read as an array: {exc}") from None
    kind = arr.dtype.kind
    if kind not in "fiu":
        what = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(
            kind, str(arr.dtype))
        raise TypeError(
            f"{name} must hold real numbers (float32, float64 or integers) of shape "
            f"{expected}, got {what} data (dtype {arr.dtype})")
    return arr


def _shape_text(symbols, dims):
    sym = "(" + ", ".join(symbols) + ")"
    try:
        num = tuple(_eval(s, dims) for s in symbols)
    except KeyError:
        return sym
    return f"{sym} = {num}"


def _eval(symbol, dims):
    return sum(int(p) if p.isdigit() else dims[p] for p in symbol.split(" + "))


def _check_shape(arr, name, symbols, dims):
    """Check arr against a symbolic shape, binding symbols not yet in ``dims``."""
    if arr.ndim != len(symbols):
        raise ValueError(
            f"{name} must be {len(symbols)}-dimensional with shape "
            f"{_shape_text(symbols, dims)}, got a {arr.ndim}-dimensional array of shape "
            f"{arr.shape}")
    for sym, size in zip(symbols, arr.shape):
        if sym in dims or " + " in sym or sym.isdigit():
            if _eval(sym, dims) != size:
                raise ValueError(
                    f"{name} must have shape {_shape_text(symbols, dims)}, got {arr.shape}")
        else:
            dims[sym] = size


def result_dtype(arrays):
    """float32 only when every array is float32 (either byte order); anything else, integers
    included, is float64."""
    for arr in arrays:
        dt = arr.dtype
        if dt.kind != "f" or dt.itemsize != 4:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def validate_parameters(parameters, weights, dims=None):
    """Check a ``parameters`` mapping against ``weights`` (one of ``WEIGHTS``' values).

    The output layer (the first and the last key) is optional: without both keys the dict
    returned lacks them and n_y is 0.  Returns a dict key -> ndarray (not yet converted) and
    the ``dims`` dict it filled in (n_y and n_a from the output weight, or n_a from the next
    weight; n_x too when ``dims`` did not already give it and the weights determine it).
    """
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"parameters must be a mapping (dict) of weight arrays with keys "
            f"{[k for k, _ in weights]}, got {type(parameters).__name__}")
    dims = {} if dims is None else dims
    arrays = {}
    head_w, head_b = weights[0][0], weights[-1][0]
    has_head = head_w in parameters or head_b in parameters
    if not has_head:
        weights = weights[1:-1]
        dims["n_y"] = 0
    for key, symbols in weights:
        if key not in parameters:
            raise KeyError(
                f"parameters is missing {key!r}, expected an array of shape "
                f"{_shape_text(symbols, dims)}")
        arr = _as_array(parameters[key], f"parameters[{key!r}]", symbols, dims)
        if "n_a" not in dims and symbols[0] == "n_a" and arr.ndim == 2:
            dims["n_a"] = arr.shape[0]
        if "n_x" not in dims and symbols[1] == "n_a + n_x" and "n_a" in dims \
                and arr.ndim == 2:
            dims["n_x"] = arr.shape[1] - dims["n_a"]
            if dims["n_x"] < 0:
                raise ValueError(
                    f"parameters[{key!r}] must have shape (n_a, n_a + n_x) with n_a = "
                    f"{dims['n_a']}, got {arr.shape}")
        _check_shape(arr, f"parameters[{key!r}]", symbols, dims)
        arrays[key] = arr
    if has_head and dims["n_y"] < 1:
        raise ValueError(
            f"n_y (the rows of parameters[{head_w!r}]) must be at least 1: the softmax "
            f"over an empty axis is undefined (got shape {arrays[head_w].shape}); for no "
            f"output layer, leave out both {head_w!r} and {head_b!r}")
    _check_blas_sizes(dims, _gates(weights))
    return arrays, dims


def _gates(weights):
    keys = {k for k, _ in weights}
    return 4 if "Wf" in keys else 3 if "Wra" in keys else 1


def _check_blas_sizes(dims, gates):
    """Refuse sizes a 32-bit BLAS index cannot hold (those of the inputs once m is known)."""
    G = gates * dims["n_a"]
    T = dims.get("T_x") or 1
    m = dims.get("m", 1)
    for what, value in (("n_x", dims["n_x"]), (f"{gates}*n_a" if gates > 1 else "n_a", G),
                        ("n_a + n_x", dims["n_a"] + dims["n_x"]), ("n_y", dims["n_y"]),
                        ("m*T_x", m * T), ("T_x*n_a*gates", T * G)):
        if value > INT_MAX:
            raise ValueError(
                f"{what} = {value} exceeds the largest size BLAS can index ({INT_MAX}); "
                f"split the batch or the sequence")


def check_inputs(inputs, dims, sequence, gates):
    """Check the input and state arrays of one call against ``dims`` (filled in further).

    ``inputs`` is a list of (name, value): the input (x or xt) first, then states of shape
    (n_a, m).  Returns the arrays (as given, not converted) in the same order.
    """
    x_name, x_value = inputs[0]
    x_symbols = ("n_x", "m", "T_x") if sequence else ("n_x", "m")
    x = _as_array(x_value, x_name, x_symbols, dims)
    _check_shape(x, x_name, x_symbols, dims)
    arrays = [x]
    for name, value in inputs[1:]:
        arr = _as_array(value, name, ("n_a", "m"), dims)
        _check_shape(arr, name, ("n_a", "m"), dims)
        arrays.append(arr)
    _check_blas_sizes(dims, gates)
    return arrays


def validate(kind, inputs, parameters, *, sequence):
    """Validate one drop-in call.

    Parameters
    ----------
    kind : "rnn", "lstm" or "gru"
    inputs : list of (name, value) in order: the input (x or xt) first, then the states
        (a0 / a_prev, and c_prev for an LSTM step).
    parameters : the weights mapping
    sequence : True for (n_x, m, T_x) input, False for one step (n_x, m)

    Returns
    -------
    dims : Dims
    dtype : numpy dtype of the computation and results
    arrays : list of the input ndarrays (as given, not converted), in the order of ``inputs``
    weights : dict key -> ndarray (not converted)
    """
    spec = WEIGHTS[kind]
    x_name, x_value = inputs[0]
    x_symbols = ("n_x", "m", "T_x") if sequence else ("n_x", "m")
    dims = {}
    x = _as_array(x_value, x_name, x_symbols, dims)
    _check_shape(x, x_name, x_symbols, dims)  # binds n_x, m (and T_x) from the input
    weights, dims = validate_parameters(parameters, spec, dims)
    arrays = check_inputs([(x_name, x)] + list(inputs[1:]), dims, sequence,
                          GATE_COUNT[kind])
    dtype = result_dtype(arrays + list(weights.values()))
    return (Dims(dims["n_x"], dims["n_a"], dims["n_y"], dims["m"], dims.get("T_x")), dtype,
            arrays, weights)


def check_lengths(lengths, m, T_x):
    """``lengths`` (None, or m ints in [1, T_x]) as a new (m,) intp array, or None."""
    if lengths is None:
        return None
    expected = f"(m,) = ({m},) integers in [1, T_x] = [1, {T_x}]"
    try:
        arr = np.asarray(lengths)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"lengths must be {expected}, but could not be read as an array: "
                         f"{exc}") from None
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be {expected}, got {arr.dtype} data")
    if arr.shape != (m,):
        raise ValueError(f"lengths must have shape {expected}, got shape {arr.shape}")
    if m and (arr.min() < 1 or arr.max() > T_x):
        raise ValueError(f"lengths must be {expected}, got values from {arr.min()} to "
                         f"{arr.max()}")
    return arr.astype(np.intp)


def check_layer_states(name, value, sizes, m):
    """Initial states of a stack: None, or one (n_a, m) array per layer and direction.

    ``sizes`` lists n_a of each (layer, direction), layer by layer, forward direction first
    (PyTorch's order).  ``value`` is an array (L*D, n_a, m) (when every n_a is the same) or a
    sequence of L*D arrays (n_a, m).  Returns a list of L*D arrays (as given, not converted)
    or of Nones.
    """
    count = len(sizes)
    if value is None:
        return [None] * count
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} must hold {count} arrays (one per layer and "
                             f"direction, L*D = {count}), got {len(value)}")
        out = []
        for k, (v, n_a) in enumerate(zip(value, sizes)):
            arr = _as_array(v, f"{name}[{k}]", ("n_a", "m"), {"n_a": n_a, "m": m})
            _check_shape(arr, f"{name}[{k}]", ("n_a", "m"), {"n_a": n_a, "m": m})
            out.append(arr)
        return out
    if len(set(sizes)) != 1:
        raise TypeError(f"{name} must be a list of {count} arrays (n_a, m) with n_a = "
                        f"{list(sizes)} (the layers differ in n_a), got "
                        f"{type(value).__name__}")
    dims = {"L*D": count, "n_a": sizes[0], "m": m}
    arr = _as_array(value, name, ("L*D", "n_a", "m"), dims)
    if arr.shape != (count, sizes[0], m):
        raise ValueError(f"{name} must have shape (L*D, n_a, m) = {(count, sizes[0], m)}, "
                         f"got {arr.shape}")
    return list(arr)


def validate_head(head, n_out):
    """An output layer on top of a stack: a mapping with ``Wy`` (n_y, n_out), ``by``
    (n_y, 1).  Returns the two arrays (not converted)."""
    if not isinstance(head, Mapping):
        raise TypeError(f"head must be None or a mapping with Wy (n_y, n_out) = (n_y, {n_out}) "
                        f"and by (n_y, 1), got {type(head).__name__}")
    dims = {"n_out": n_out}
    out = []
    for key, symbols in (("Wy", ("n_y", "n_out")), ("by", ("n_y", "1"))):
        if key not in head:
            raise KeyError(f"head is missing {key!r}, expected an array of shape "
                           f"{_shape_text(symbols, dims)}")
        arr = _as_array(head[key], f"head[{key!r}]", symbols, dims)
        _check_shape(arr, f"head[{key!r}]", symbols, dims)
        out.append(arr)
    if dims["n_y"] < 1:
        raise ValueError(f"n_y (the rows of head['Wy']) must be at least 1, got shape "
                         f"{out[0].shape}; for no output layer, pass head=None")
    return out
