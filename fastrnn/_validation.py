"""Input validation and the dtype policy: the one place where user input is checked.

Everything a kernel relies on is established here, before any kernel runs: argument types and
dtypes, every shape in terms of n_x, n_a, n_y, m, T_x, and sizes that a BLAS ``int`` can hold.
Errors name the argument, the expected shape (symbolic and with the numbers it implies) and
what was given.
"""
from collections.abc import Mapping

import numpy as np

__all__ = ["RNN_WEIGHTS", "LSTM_WEIGHTS", "Dims", "validate", "validate_parameters",
           "check_inputs", "result_dtype"]

INT_MAX = 2**31 - 1

# (key, symbolic shape).  The output weight is listed first: n_y and n_a are read from it,
# as the lessons' rnn_forward/lstm_forward do.
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
    """Check a ``parameters`` mapping against ``weights`` (RNN_WEIGHTS or LSTM_WEIGHTS).

    Returns a dict key -> ndarray (not yet converted) and the ``dims`` dict it filled in
    (n_y and n_a from the output weight; n_x too when ``dims`` did not already give it and the
    weights determine it).
    """
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"parameters must be a mapping (dict) of weight arrays with keys "
            f"{[k for k, _ in weights]}, got {type(parameters).__name__}")
    dims = {} if dims is None else dims
    arrays = {}
    for key, symbols in weights:
        if key not in parameters:
            raise KeyError(
                f"parameters is missing {key!r}, expected an array of shape "
                f"{_shape_text(symbols, dims)}")
        arr = _as_array(parameters[key], f"parameters[{key!r}]", symbols, dims)
        if "n_x" not in dims and symbols[1] == "n_a + n_x" and "n_a" in dims \
                and arr.ndim == 2:
            dims["n_x"] = arr.shape[1] - dims["n_a"]
            if dims["n_x"] < 0:
                raise ValueError(
                    f"parameters[{key!r}] must have shape (n_a, n_a + n_x) with n_a = "
                    f"{dims['n_a']}, got {arr.shape}")
        _check_shape(arr, f"parameters[{key!r}]", symbols, dims)
        arrays[key] = arr
    if dims["n_y"] < 1:
        raise ValueError(
            f"n_y (the rows of parameters[{weights[0][0]!r}]) must be at least 1: the softmax "
            f"over an empty axis is undefined (got shape {arrays[weights[0][0]].shape})")
    _check_blas_sizes(dims, 1 if weights is RNN_WEIGHTS else 4)
    return arrays, dims


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
    kind : "rnn" or "lstm"
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
    spec = RNN_WEIGHTS if kind == "rnn" else LSTM_WEIGHTS
    x_name, x_value = inputs[0]
    x_symbols = ("n_x", "m", "T_x") if sequence else ("n_x", "m")
    dims = {}
    x = _as_array(x_value, x_name, x_symbols, dims)
    _check_shape(x, x_name, x_symbols, dims)  # binds n_x, m (and T_x) from the input
    weights, dims = validate_parameters(parameters, spec, dims)
    arrays = check_inputs([(x_name, x)] + list(inputs[1:]), dims, sequence,
                          1 if kind == "rnn" else 4)
    dtype = result_dtype(arrays + list(weights.values()))
    return (Dims(dims["n_x"], dims["n_a"], dims["n_y"], dims["m"], dims.get("T_x")), dtype,
            arrays, weights)
