"""Input validation and the dtype policy: the one place where user input is checked.

Everything a kernel relies on is established here, before any kernel runs: argument types and
dtypes, every shape in terms of n_x, n_a, n_y, m, T_x, and sizes that a BLAS ``int`` can hold.
Errors name the argument, the expected shape (symbolic and with the numbers it implies, each
with where it came from) and what was given.

Who is blamed: a drop-in call takes n_x, m, T_x from ``x`` and n_a from ``a0`` (what the user
passed for this call) and n_y from the output weight; a parameter is blamed when it disagrees
with them or with the other parameters.  Only when the parameters agree among themselves on a
size (at least two of them) against ``x`` or ``a0`` is the input blamed instead.  Messages
about ``x`` suggest the transpose that fixes common layouts (PyTorch's (T_x, m, n_x),
batch-first (m, T_x, n_x)) when one fits.
"""
from collections.abc import Mapping

import numpy as np

__all__ = ["RNN_WEIGHTS", "LSTM_WEIGHTS", "GRU_WEIGHTS", "WEIGHTS", "GATE_COUNT", "Dims",
           "validate", "validate_parameters", "check_inputs", "check_lengths",
           "check_layer_states", "validate_head", "result_dtype", "CACHE_ITEMS",
           "validate_backward", "check_targets", "check_gradients"]

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


class Sizes(dict):
    """The sizes bound so far (symbol -> int), and in ``source`` where each came from
    (``"x.shape[0]"``), for the messages."""

    def __init__(self, sizes=(), source=None):
        super().__init__(sizes)
        self.source = dict(source or {})
        self.x_name = self.x_shape = None  # the call's input, for layout hints

    def bind(self, symbol, size, source):
        self[symbol] = size
        self.source[symbol] = source


STATE = ("n_a", "m")


def refuse_masked(value, name):
    """TypeError for a numpy masked array: the kernels compute on every value, so its mask
    would be dropped without a word."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array, whose mask fastrnn would ignore (it "
                        f"computes on every value): pass np.ma.filled({name}, fill_value) or "
                        f"{name}.data for the values, or lengths= for sequences that end early")


def _as_array(value, name, symbols, dims):
    """``value`` as an ndarray of real numbers (no copy when it already is one); errors name
    the expected shape ``symbols`` (with the sizes ``dims`` already implies)."""
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers of shape "
                        f"{_shape_text(symbols, dims)}, got None")
    refuse_masked(value, name)
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be an array of shape {_shape_text(symbols, dims)}, "
                             f"but could not be read as an array: {exc}") from None
    kind = arr.dtype.kind
    if kind not in "fiu":
        what = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(
            kind, str(arr.dtype))
        raise TypeError(
            f"{name} must hold real numbers (float32, float64 or integers) of shape "
            f"{_shape_text(symbols, dims)}, got {what} data (dtype {arr.dtype})")
    return arr


def _symbols_in(symbols):
    out = []
    for s in symbols:
        out += [p for p in s.split(" + ") if not p.isdigit() and p not in out]
    return out


def _shape_text(symbols, dims):
    """``(n_a, n_x) = (5, 10), where n_a = 5 from a0.shape[0] and n_x = 10 from x.shape[0]``
    (as much of it as ``dims`` knows)."""
    sym = "(" + ", ".join(symbols) + ")"
    source = getattr(dims, "source", {})
    where = [f"{s} = {dims[s]} from {source[s]}" for s in _symbols_in(symbols)
             if s in dims and s in source]
    where = f", where {' and '.join(where)}" if where else ""
    try:
        num = tuple(_eval(s, dims) for s in symbols)
    except KeyError:
        return sym + where
    return f"{sym} = {num}{where}"


def _eval(symbol, dims):
    return sum(int(p) if p.isdigit() else dims[p] for p in symbol.split(" + "))


def _check_ndim(arr, name, symbols, dims):
    if arr.ndim != len(symbols):
        raise ValueError(
            f"{name} must be {len(symbols)}-dimensional with shape "
            f"{_shape_text(symbols, dims)}, got a {arr.ndim}-dimensional array of shape "
            f"{arr.shape}")


def _check_shape(arr, name, symbols, dims, hint=None):
    """Check arr against a symbolic shape, binding symbols not yet in ``dims`` (a
    :class:`Sizes`) with ``name.shape[i]`` as their source.  ``hint()`` may add a sentence to
    the message."""
    _check_ndim(arr, name, symbols, dims)
    for i, (sym, size) in enumerate(zip(symbols, arr.shape)):
        if sym in dims or " + " in sym or sym.isdigit():
            if _eval(sym, dims) != size:
                extra = hint() if hint is not None else ""
                raise ValueError(f"{name} must have shape {_shape_text(symbols, dims)}; got "
                                 f"{arr.shape}{'. ' + extra if extra else ''}")
        else:
            dims.bind(sym, size, f"{name}.shape[{i}]")


# ------------------------------------------------------------------ layout hints

# (axes, what the input looks like): x.transpose(axes) is (n_x, m, T_x) for x in that layout.
_LAYOUTS = {
    3: (((2, 1, 0), "PyTorch's (T_x, m, n_x) layout"),
        ((2, 0, 1), "the batch-first (m, T_x, n_x) layout"),
        ((1, 0, 2), "(m, n_x, T_x)"),
        ((0, 2, 1), "(n_x, T_x, m)"),
        ((1, 2, 0), "(T_x, n_x, m)")),
    2: (((1, 0), "(m, n_x)"),),
}


def _layout_hint(name, shape, n_x, m, generic):
    """A sentence suggesting the transpose of input ``name`` (of ``shape``) that gives n_x rows
    (and m columns when m is known); the usual layouts in general when none fits and
    ``generic``; else ""."""
    for axes, what in _LAYOUTS.get(len(shape), ()):
        new = tuple(shape[k] for k in axes)
        if new[0] == n_x and (m is None or new[1] == m):
            fix = f"{name}.T" if len(shape) == 2 else f"{name}.transpose{axes}"
            return (f"{name} looks like {what}: {fix} has shape {new}, the expected "
                    f"{'(n_x, m, T_x)' if len(shape) == 3 else '(n_x, m)'}")
    if not generic:
        return ""
    if len(shape) == 3:
        return (f"fastrnn takes {name} as (n_x, m, T_x), time on the last axis: from "
                f"PyTorch's (T_x, m, n_x) layout pass {name}.transpose(2, 1, 0), from "
                f"batch-first (m, T_x, n_x) {name}.transpose(2, 0, 1)")
    return f"fastrnn takes {name} as (n_x, m), one example per column: from (m, n_x) pass {name}.T"


# ------------------------------------------------------------------ parameters

def _weight_arrays(parameters, weights):
    """The weights of ``parameters`` as 2-d real arrays (key -> ndarray, not converted)."""
    if not isinstance(parameters, Mapping):
        raise TypeError(
            f"parameters must be a mapping (dict) of weight arrays with keys "
            f"{[k for k, _ in weights]}, got {type(parameters).__name__}")
    arrays = {}
    for key, symbols in weights:
        if key not in parameters:
            raise KeyError(
                f"parameters is missing {key!r}, expected an array of shape "
                f"({', '.join(symbols)})")
        name = f"parameters[{key!r}]"
        arr = _as_array(parameters[key], name, symbols, {})
        _check_ndim(arr, name, symbols, {})
        arrays[key] = arr
    return arrays


def _implied(arrays, weights):
    """What the weights say by themselves: symbol -> [(size, source)] for n_y, n_a and n_x
    (n_x of an LSTM gate is its width minus the n_a the weights agree on)."""
    out = {"n_y": [], "n_a": [], "n_x": []}
    for key, symbols in weights:
        for i, sym in enumerate(symbols):
            if sym in out:
                out[sym].append((arrays[key].shape[i], f"parameters[{key!r}].shape[{i}]"))
    n_a = _agreed(out["n_a"], 1)
    if n_a is not None:
        for key, symbols in weights:
            if symbols[1] == "n_a + n_x":
                out["n_x"].append((arrays[key].shape[1] - n_a,
                                   f"parameters[{key!r}].shape[1] - n_a"))
    return out


def _agreed(found, at_least):
    """The size when at least ``at_least`` sources give one and the same size, else None."""
    sizes = {size for size, _ in found}
    return sizes.pop() if len(found) >= at_least and len(sizes) == 1 else None


def _sources(found, most=3):
    names = [src for _, src in found]
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def _given(parameters, weights):
    """``weights`` without the output layer (its first and last key) when ``parameters`` has
    neither of its keys; else ``weights`` itself."""
    if isinstance(parameters, Mapping) and weights[0][0] not in parameters \
            and weights[-1][0] not in parameters:
        return weights[1:-1]
    return weights


def validate_parameters(parameters, weights, dims=None):
    """Check a ``parameters`` mapping against ``weights`` (one of ``WEIGHTS``' values).

    The output layer (the first and the last key) is optional: without both keys the dict
    returned lacks them and n_y is 0.  Returns a dict key -> ndarray (not yet converted) and
    the :class:`Sizes` it filled in: those ``dims`` already held (taken as given), n_y from
    the output weight, and for a model (no ``dims``) n_a from the output weight (without one,
    from the first gate weight) and n_x from the input weights.
    """
    head_w, head_b = weights[0][0], weights[-1][0]
    weights = _given(parameters, weights)
    has_head = weights[0][1][0] == "n_y"
    arrays = _weight_arrays(parameters, weights)
    dims = Sizes() if dims is None else dims
    if not has_head:
        dims.bind("n_y", 0, f"no output layer (neither {head_w!r} nor {head_b!r} given)")
    gate = next((k for k, symbols in weights if symbols[1] == "n_a + n_x"), None)
    if "n_x" not in dims and "n_a" not in dims and gate is not None:
        if has_head:
            dims.bind("n_a", arrays[head_w].shape[1], f"parameters[{head_w!r}].shape[1]")
        else:
            dims.bind("n_a", arrays[gate].shape[0], f"parameters[{gate!r}].shape[0]")
        n_x = arrays[gate].shape[1] - dims["n_a"]
        if n_x < 0:
            raise ValueError(
                f"parameters[{gate!r}] must have shape (n_a, n_a + n_x) with n_a = "
                f"{dims['n_a']} from {dims.source['n_a']}, got {arrays[gate].shape}")
        dims.bind("n_x", n_x, f"parameters[{gate!r}].shape[1] - n_a")
    implied = _implied(arrays, weights)

    def hint():
        # the parameters may be right and x laid out differently
        n_x = _agreed(implied["n_x"], 1)
        if dims.x_shape is None or n_x is None:
            return ""
        text = _layout_hint(dims.x_name, dims.x_shape, n_x, dims.get("m"), generic=False)
        return f"If the parameters are right: {text}" if text else ""

    for key, symbols in weights:
        _check_shape(arrays[key], f"parameters[{key!r}]", symbols, dims,
                     hint if "n_x" in symbols[1] else None)
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


def result_dtype(arrays):
    """float32 only when every array is float32 (either byte order); anything else, integers
    included, is float64."""
    for arr in arrays:
        dt = arr.dtype
        if dt.kind != "f" or dt.itemsize != 4:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


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
    """Check the input and state arrays of one model call against ``dims`` (the model's n_x,
    n_a, n_y; m and T_x are filled in from the input).

    ``inputs`` is a list of (name, value): the input (x or xt) first, then states of shape
    (n_a, m).  Returns the arrays (as given, not converted) in the same order.
    """
    sizes = dims if isinstance(dims, Sizes) else Sizes(
        dims, dict.fromkeys(dims, "the model's weights"))
    arrays = _input_arrays(inputs, sequence)
    x_name, x = inputs[0][0], arrays[0]
    if x.shape[0] != sizes["n_x"]:
        raise ValueError(
            f"{x_name} must have shape {_shape_text(_x_symbols(sequence), sizes)}; got "
            f"{x.shape}. " + _layout_hint(x_name, x.shape, sizes["n_x"], None, generic=True))
    _bind_input(sizes, x_name, x, sequence)
    _check_states(inputs, arrays, sizes, sizes["n_x"])
    _check_blas_sizes(sizes, gates)
    if sizes is not dims:
        dims.update(sizes)
    return arrays


def _x_symbols(sequence):
    return ("n_x", "m", "T_x") if sequence else ("n_x", "m")


def _input_arrays(inputs, sequence):
    """The input and the states as real arrays of the right number of dimensions."""
    arrays = []
    for k, (name, value) in enumerate(inputs):
        symbols = _x_symbols(sequence) if k == 0 else STATE
        arr = _as_array(value, name, symbols, {})
        _check_ndim(arr, name, symbols, {})
        arrays.append(arr)
    return arrays


def _bind_input(sizes, name, x, sequence):
    for i, sym in enumerate(_x_symbols(sequence)):
        sizes.bind(sym, x.shape[i], f"{name}.shape[{i}]")
    sizes.x_name, sizes.x_shape = name, x.shape


def _check_states(inputs, arrays, sizes, n_x):
    """Every state (n_a, m) with the sizes bound so far; a state whose m disagrees with x's
    gets the layout hint for x (``n_x`` as the parameters say, or None)."""
    x_name, x = inputs[0][0], arrays[0]
    for (name, _), arr in zip(inputs[1:], arrays[1:]):
        def hint(name=name, arr=arr):
            if arr.shape == (sizes.get("m"), sizes.get("n_a")) and arr.shape[0] != arr.shape[1]:
                return f"{name} looks transposed: pass {name}.T"
            if n_x is None or arr.shape[0] != sizes.get("n_a"):
                return ""
            return _layout_hint(x_name, x.shape, n_x, arr.shape[1], generic=False)
        _check_shape(arr, name, STATE, sizes, hint)


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
    spec = _given(parameters, WEIGHTS[kind])
    arrays = _input_arrays(inputs, sequence)
    weights = _weight_arrays(parameters, spec)
    (x_name, _), (a_name, _) = inputs[0], inputs[1]
    x, a = arrays[0], arrays[1]
    # The sizes of this call: n_x, m (T_x) from the input, n_a from the first state.
    sizes = Sizes()
    _bind_input(sizes, x_name, x, sequence)
    sizes.bind("n_a", a.shape[0], f"{a_name}.shape[0]")
    # ... unless the parameters agree among themselves against them.
    implied = _implied(weights, spec)
    n_a = _agreed(implied["n_a"], 2)
    n_x = _agreed(implied["n_x"], 2)
    if n_x is not None and n_x != sizes["n_x"]:
        raise ValueError(
            f"{x_name} must have shape {_shape_text(_x_symbols(sequence), {})} with n_x = "
            f"{n_x}, on which the parameters agree ({_sources(implied['n_x'])}); got "
            f"{x.shape}. " + _layout_hint(x_name, x.shape, n_x, a.shape[1], generic=True))
    if n_a is not None and n_a != sizes["n_a"]:
        hint = ""
        if a.shape == (sizes["m"], n_a):
            hint = f". {a_name} looks transposed: pass {a_name}.T"
        raise ValueError(
            f"{a_name} must have shape (n_a, m) = {(n_a, sizes['m'])}, where n_a = {n_a} "
            f"as the parameters agree ({_sources(implied['n_a'])}) and m = {sizes['m']} from "
            f"{sizes.source['m']}; got {a.shape}{hint}")
    _check_states(inputs, arrays, sizes, _agreed(implied["n_x"], 1))
    weights, sizes = validate_parameters(weights, spec, sizes)
    dtype = result_dtype(arrays + list(weights.values()))
    return (Dims(sizes["n_x"], sizes["n_a"], sizes["n_y"], sizes["m"], sizes.get("T_x")),
            dtype, arrays, weights)


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
    spec = WEIGHTS[kind]
    forward = f"{kind}_forward"
    items = CACHE_ITEMS[kind]
    dims = Sizes()
    up_name, up_value = upstream[0]
    if sequence:
        da = _as_array(up_value, up_name, ("n_a", "m", "T_x"), dims)
        if da.ndim != 3:
            raise ValueError(f"{up_name} must be 3-dimensional with shape (n_a, m, T_x), got a "
                             f"{da.ndim}-dimensional array of shape {da.shape}")
        T = da.shape[2]
        dims.bind("T_x", T, f"{up_name}.shape[2]")
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
            other, _ = validate_parameters(tup[-1], spec, Sizes(dims, dims.source))
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
    _check_blas_sizes(dims, GATE_COUNT[kind])
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
    refuse_masked(targets, "targets")
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


def check_lengths(lengths, m, T_x):
    """``lengths`` (None, or m ints in [1, T_x]) as a new (m,) intp array, or None."""
    if lengths is None:
        return None
    expected = f"(m,) = ({m},) integers in [1, T_x] = [1, {T_x}]"
    refuse_masked(lengths, "lengths")
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
    dims = Sizes({"n_out": n_out}, {"n_out": "the layers below"})
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
