"""Input validation and the dtype policy: the one place where user input is checked.

Everything a kernel relies on is established here, before any kernel runs: argument types and
dtypes, every shape in terms of n_x, n_a, n_y, m, T_x, and sizes that a BLAS ``int`` can hold.
Errors name the argument, the expected shape (symbolic and with the numbers it implies) and
what was given.
"""
from collections.abc import Mapping

import numpy as np

__all__ = ["RNN_WEIGHTS", "LSTM_WEIGHTS", "Dims", "validate", "validate_parameters",
           "check_inputs", "result_dtype", "CACHE_ITEMS", "validate_backward", "check_targets",
           "check_gradients"]

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


# ------------------------------------------------------------------ backward passes

# The arrays of one cell cache, in the lessons' order; the parameters mapping follows them.
CACHE_ITEMS = {
    "rnn": ("a_next", "a_prev", "xt"),
    "lstm": ("a_next", "c_next", "a_prev", "c_prev", "ft", "it", "cct", "ot", "xt"),
}


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def _cache_tuple(value, label, kind):
    """One cell cache: a tuple (or list) of the lessons' items plus the parameters."""
    items = CACHE_ITEMS[kind]
    forward = "rnn_cell_forward" if kind == "rnn" else "lstm_cell_forward"
    expected = f"({', '.join(items)}, parameters)"
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{label} must be a cache tuple {expected} as {forward} returns, got "
                        f"{_describe(value)}")
    if len(value) != len(items) + 1:
        raise ValueError(f"{label} must be a cache tuple {expected} of {len(items) + 1} items "
                         f"as {forward} returns, got {len(value)} items")
    return value


def validate_backward(kind, upstream, caches, *, sequence):
    """Validate one drop-in backward call.

    Parameters
    ----------
    kind : "rnn" or "lstm"
    upstream : list of (name, value): ``da`` (n_a, m, T_x) for a sequence; ``da_next``
        (and ``dc_next`` for an LSTM) (n_a, m) for one step.
    caches : a sequence's ``(list of cell caches, x)``, or one cell's cache tuple.
    sequence : bool

    Returns
    -------
    dims : Dims (T_x read from ``da``; None for one step)
    dtype : the result dtype
    upstream : list of the upstream arrays (not converted)
    steps : list of the first T_x caches' arrays (lists in the order of CACHE_ITEMS)
    weights : dict key -> ndarray (not converted), from the caches' parameters
    """
    spec = RNN_WEIGHTS if kind == "rnn" else LSTM_WEIGHTS
    forward = f"{kind}_forward"
    items = CACHE_ITEMS[kind]
    dims = {}
    up_name, up_value = upstream[0]
    if sequence:
        da = _as_array(up_value, up_name, ("n_a", "m", "T_x"), dims)
        if da.ndim != 3:
            raise ValueError(f"{up_name} must be 3-dimensional with shape (n_a, m, T_x), got a "
                             f"{da.ndim}-dimensional array of shape {da.shape}")
        T = dims["T_x"] = da.shape[2]
        if not isinstance(caches, (tuple, list)) or len(caches) != 2:
            raise TypeError(f"caches must be the pair (list of T_x cell caches, x) that "
                            f"{forward} returns, got {_describe(caches)}")
        steps_in = caches[0]
        try:
            n_steps = len(steps_in)
        except TypeError:
            raise TypeError(f"caches[0] must be the list of cell caches that {forward} "
                            f"returns, got {type(steps_in).__name__}") from None
        if isinstance(steps_in, (str, bytes)) or isinstance(steps_in, np.ndarray):
            raise TypeError(f"caches[0] must be the list of cell caches that {forward} "
                            f"returns, got {_describe(steps_in)}")
        if n_steps < max(T, 1):
            raise ValueError(
                f"{up_name} has shape (n_a, m, T_x) = {da.shape}: it covers T_x = {T} steps "
                f"but caches hold {n_steps} (a sequence backward needs at least one cache and "
                f"at most as many steps of {up_name} as caches)")
        labels = [f"caches[0][{t}]" for t in range(max(T, 1))]
        tuples = [_cache_tuple(steps_in[t], label, kind) for t, label in enumerate(labels)]
    else:
        labels = ["cache"]
        tuples = [_cache_tuple(caches, "cache", kind)]
    parameters = tuples[0][-1]
    weights, dims = validate_parameters(parameters, spec, dims)
    steps = []
    for label, tup in zip(labels, tuples):
        if tup[-1] is not parameters:
            other, _ = validate_parameters(tup[-1], spec, dict(dims))
            if not all(np.array_equal(weights[k], other[k]) for k in weights):
                raise ValueError(f"{label} holds other parameters than {labels[0]}: the caches "
                                 f"must come from one forward pass")
        arrays = []
        for k, name in enumerate(items):
            symbols = ("n_x", "m") if name == "xt" else ("n_a", "m")
            what = f"{label}[{k}] ({name})"
            arr = _as_array(tup[k], what, symbols, dims)
            _check_shape(arr, what, symbols, dims)
            arrays.append(arr)
        steps.append(arrays)
    ups = []
    for name, value in upstream:
        symbols = ("n_a", "m", "T_x") if sequence and name == up_name else ("n_a", "m")
        arr = _as_array(value, name, symbols, dims)
        _check_shape(arr, name, symbols, dims)
        ups.append(arr)
    _check_blas_sizes(dims, 1 if kind == "rnn" else 4)
    if sequence:
        steps = steps[:T]
    dtype = result_dtype(ups + [a for arrays in steps for a in arrays] + list(weights.values()))
    return (Dims(dims["n_x"], dims["n_a"], dims["n_y"], dims["m"], dims.get("T_x")), dtype,
            ups, steps, weights)


def check_targets(targets, m, T_x, n_y):
    """``targets`` as a C-contiguous intp array (m, T_x) of class indices in [0, n_y)."""
    expected = f"(m, T_x) = ({m}, {T_x})"
    if targets is None:
        raise TypeError(f"targets must be an integer array of class indices of shape "
                        f"{expected}, got None")
    arr = np.asarray(targets)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"targets must hold integer class indices in [0, n_y) = [0, {n_y}) of "
                        f"shape {expected}, got {arr.dtype} data")
    if arr.shape != (m, T_x):
        raise ValueError(f"targets must have shape {expected}, got {arr.shape}")
    if arr.size:
        low, high = arr.min(), arr.max()
        if low < 0 or high >= n_y:
            bad = low if low < 0 else high
            idx = tuple(int(i) for i in np.argwhere(arr == bad)[0])
            raise ValueError(f"targets must hold class indices in [0, n_y) = [0, {n_y}), got "
                             f"{int(bad)} at index {idx}")
    return np.ascontiguousarray(arr, dtype=np.intp)


def check_gradients(grads, shapes):
    """The arrays ``grads["d" + key]`` for every (key, shape) of ``shapes``, each checked
    against the parameter's shape (real numbers; not converted)."""
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a mapping with keys {['d' + k for k, _ in shapes]}, "
                        f"got {type(grads).__name__}")
    out = {}
    for key, shape in shapes:
        name = "d" + key
        arr = grads.get(name)
        if type(arr) is np.ndarray and arr.shape == tuple(shape) and arr.dtype.kind == "f":
            out[key] = arr  # the common case, as loss_and_grads returns them
            continue
        if name not in grads:
            raise KeyError(f"grads is missing {name!r}, expected an array of shape {shape}")
        arr = _as_array(grads[name], f"grads[{name!r}]", tuple(str(s) for s in shape), {})
        if arr.shape != tuple(shape):
            raise ValueError(f"grads[{name!r}] must have shape {tuple(shape)} (that of "
                             f"parameter {key!r}), got {arr.shape}")
        out[key] = arr
    return out
