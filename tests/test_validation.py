"""Input validation: every malformed input is a ValueError, TypeError or
KeyError raised before any kernel runs, whose message names the argument, the expected shape
(with the symbolic names n_x, n_a, n_y, m, T_x) and what was given.

"Before any kernel runs" is enforced for every test of this file by an autouse fixture that
replaces every entry point of ``fastrnn._kernels._core`` with a function that raises
``KernelRan`` (not a ValueError/TypeError/KeyError, so ``pytest.raises`` would not accept it).
"""
import re
import types
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import pytest

import fastrnn
from fastrnn._kernels import _core
from _util import LSTM_KEYS, RNN_KEYS, f64, lstm_params, ref, rnn_params

# n_x, n_a, n_y, m, T_x: all different, so every message's numbers identify the dimension
N_X, N_A, N_Y, M, T = 3, 5, 2, 4, 6

ARGS = {
    "rnn_cell_forward": ("xt", "a_prev", "parameters"),
    "rnn_forward": ("x", "a0", "parameters"),
    "lstm_cell_forward": ("xt", "a_prev", "c_prev", "parameters"),
    "lstm_forward": ("x", "a0", "parameters"),
}
FUNCTIONS = list(ARGS)

SYMBOLIC = {
    "x": "(n_x, m, T_x)", "xt": "(n_x, m)", "a0": "(n_a, m)", "a_prev": "(n_a, m)",
    "c_prev": "(n_a, m)",
    "Wax": "(n_a, n_x)", "Waa": "(n_a, n_a)", "Wya": "(n_y, n_a)", "ba": "(n_a, 1)",
    "by": "(n_y, 1)", "Wy": "(n_y, n_a)",
    "Wf": "(n_a, n_a + n_x)", "Wi": "(n_a, n_a + n_x)", "Wc": "(n_a, n_a + n_x)",
    "Wo": "(n_a, n_a + n_x)", "bf": "(n_a, 1)", "bi": "(n_a, 1)", "bc": "(n_a, 1)",
    "bo": "(n_a, 1)",
}


class KernelRan(Exception):
    """A kernel was called although the input is invalid."""


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    for name in dir(_core):
        obj = getattr(_core, name)
        if callable(obj) and not name.startswith("_") and not isinstance(obj, type) \
                and not isinstance(obj, types.ModuleType):
            if name.startswith("try_"):
                # The compiled fast path may look at anything, but must decline (None)
                # everything invalid: accepting means its kernel ran.
                def refuse(*args, _name=name, _real=obj, **kwargs):
                    if _real(*args, **kwargs) is not None:
                        raise KernelRan(f"_core.{_name} accepted and ran")
            else:
                def refuse(*args, _name=name, **kwargs):
                    raise KernelRan(f"_core.{_name} ran")
            monkeypatch.setattr(_core, name, refuse)


def _kind(function):
    return "rnn" if function.startswith("rnn") else "lstm"


def base(function, dtype=np.float64):
    """Valid arguments of ``function`` as a dict name -> value."""
    rng = np.random.default_rng(0)
    make = rnn_params if _kind(function) == "rnn" else lstm_params
    p = make(rng, N_X, N_A, N_Y, dtype=dtype)
    x = rng.standard_normal((N_X, M, T)).astype(dtype)
    a0 = rng.standard_normal((N_A, M)).astype(dtype)
    if "cell" in function:
        args = {"xt": x[:, :, 0], "a_prev": a0}
        if _kind(function) == "lstm":
            args["c_prev"] = rng.standard_normal((N_A, M)).astype(dtype)
    else:
        args = {"x": x, "a0": a0}
    args["parameters"] = p
    return args


def call(function, args):
    return getattr(fastrnn, function)(*[args[n] for n in ARGS[function]])


def _norm(text):
    return re.sub(r"\s+", "", text)


def message(exc):
    return exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)


def check_raises(function, args, exc, name, *pieces):
    """``function(**args)`` raises ``exc`` whose message names ``name`` and contains every
    one of ``pieces`` (compared without whitespace)."""
    with pytest.raises(exc, match=re.escape(name)) as info:
        call(function, args)
    text = _norm(message(info.value))
    for piece in pieces:
        assert _norm(piece) in text, f"{piece!r} not in message {message(info.value)!r}"
    return message(info.value)


def test_fixture_stops_every_kernel():
    """Sanity: with valid input the patched kernels are reached (so the tests below prove
    that invalid input is refused *before* them)."""
    for function in FUNCTIONS:
        with pytest.raises(KernelRan):
            call(function, base(function))


# ------------------------------------------------------------------ wrong ndim

NDIM_CASES = []
for _f in FUNCTIONS:
    for _arg in ARGS[_f][:-1]:
        NDIM_CASES += [(_f, _arg, "drop"), (_f, _arg, "add"), (_f, _arg, "scalar")]


@pytest.mark.parametrize("function,arg,how", NDIM_CASES)
def test_wrong_ndim(function, arg, how):
    args = base(function)
    value = args[arg]
    if how == "drop":
        value = value[..., 0]
    elif how == "add":
        value = value[..., None]
    else:
        value = np.float64(1.5)
    args[arg] = value
    check_raises(function, args, ValueError, arg, SYMBOLIC[arg], str(np.shape(value)))


# ------------------------------------------------------------------ mismatched dimensions

@pytest.mark.parametrize("function", FUNCTIONS)
def test_state_rows_and_columns(function):
    for arg in ARGS[function][1:-1]:
        for shape in ((N_A + 1, M), (N_A - 1, M), (N_A, M + 1), (N_A, M - 1)):
            args = base(function)
            args[arg] = np.zeros(shape)
            check_raises(function, args, ValueError, arg, "(n_a, m)", f"({N_A}, {M})",
                         str(shape))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_input_rows_mismatch_the_weights(function):
    """x defines n_x, m (and T_x); a wrong n_x is reported against the input weights."""
    args = base(function)
    arg = ARGS[function][0]
    args[arg] = np.concatenate([args[arg], args[arg][:1]], axis=0)
    with pytest.raises(ValueError, match="n_x") as info:
        call(function, args)
    text = message(info.value)
    assert re.search(r"\bx\b|\bxt\b|Wax|Wf|Wi|Wc|Wo", text), text
    assert _norm(f"({N_X + 1}") in _norm(text) or _norm(f", {N_X})") in _norm(text) \
        or _norm(f"{N_A + N_X}") in _norm(text), text


def _weight_cases(function):
    keys = RNN_KEYS if _kind(function) == "rnn" else LSTM_KEYS
    out_key = "Wya" if _kind(function) == "rnn" else "Wy"
    cases = []
    for key in keys:
        if key == out_key:
            continue  # n_y and n_a are read from it (test_output_weight_defines_sizes)
        r, c = base(function)["parameters"][key].shape
        for shape in ((r + 1, c), (r, c + 1)):
            if key == "by" and shape == (r + 1, c):
                continue  # n_y is defined by the output weight; covered just below
            cases.append((function, key, shape))
        if key == "by":
            cases.append((function, key, (r - 1, c)))
    return cases


WEIGHT_CASES = [c for f in FUNCTIONS for c in _weight_cases(f)]


@pytest.mark.parametrize("function,key,shape", WEIGHT_CASES)
def test_misshapen_weight(function, key, shape):
    args = base(function)
    args["parameters"] = dict(args["parameters"])
    args["parameters"][key] = np.zeros(shape)
    expected = args["parameters"][key].shape
    good = base(function)["parameters"][key].shape
    check_raises(function, args, ValueError, key, SYMBOLIC[key], str(good), str(expected))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_output_weight_defines_sizes(function):
    """The output weight (Wya / Wy) gives n_y (n_a comes from a0): a wrong one is reported
    as an inconsistency with a0 or the other weights, naming n_a/n_y."""
    key = "Wya" if _kind(function) == "rnn" else "Wy"
    for shape, sym in (((N_Y, N_A + 1), "n_a"), ((N_Y + 1, N_A), "n_y")):
        args = base(function)
        args["parameters"] = dict(args["parameters"])
        args["parameters"][key] = np.zeros(shape)
        with pytest.raises(ValueError, match=sym) as info:
            call(function, args)
        text = message(info.value)
        assert re.search(r"W\w+|b\w|a0|a_prev", text), text


@pytest.mark.parametrize("function", FUNCTIONS)
def test_zero_outputs(function):
    """n_y = 0: the softmax over an empty axis is undefined."""
    key = "Wya" if _kind(function) == "rnn" else "Wy"
    args = base(function)
    args["parameters"] = dict(args["parameters"])
    args["parameters"][key] = np.zeros((0, N_A))
    args["parameters"]["by"] = np.zeros((0, 1))
    check_raises(function, args, ValueError, key, "n_y")


# ------------------------------------------------------------------ keys

KEY_CASES = [(f, k) for f in FUNCTIONS
             for k in (RNN_KEYS if _kind(f) == "rnn" else LSTM_KEYS)]


@pytest.mark.parametrize("function,key", KEY_CASES)
def test_missing_key(function, key):
    args = base(function)
    args["parameters"] = {k: v for k, v in args["parameters"].items() if k != key}
    check_raises(function, args, KeyError, key, SYMBOLIC[key])


@pytest.mark.parametrize("function,key", KEY_CASES)
def test_extra_dimensional_or_flat_weight(function, key):
    """A bias given as (n,) or (n, 1, 1), a matrix given with an extra axis or flattened."""
    good = base(function)["parameters"][key]
    for value in (good.reshape(-1), good[..., None], good[None]):
        args = base(function)
        args["parameters"] = dict(args["parameters"])
        args["parameters"][key] = value
        check_raises(function, args, ValueError, key, SYMBOLIC[key], str(value.shape))


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("given,type_name", [([1, 2], "list"), (None, "NoneType"),
                                             (np.zeros((3, 3)), "ndarray"), ("Wax", "str"),
                                             ((("Wax", 1),), "tuple")])
def test_parameters_not_a_mapping(function, given, type_name):
    args = base(function)
    args["parameters"] = given
    check_raises(function, args, TypeError, "parameters", type_name)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_any_mapping_and_extra_keys_are_accepted(function, monkeypatch):
    """Not an error: a read-only mapping, an OrderedDict, a custom Mapping, extra keys (the
    lessons' dicts may carry more) all work and give the dict's result."""
    monkeypatch.undo()  # this test runs the kernels
    args = base(function)
    p = args["parameters"]
    want = call(function, args)

    class Params(Mapping):
        def __init__(self, d):
            self._d = d

        def __getitem__(self, k):
            return self._d[k]

        def __iter__(self):
            return iter(self._d)

        def __len__(self):
            return len(self._d)

    extra = dict(p, gradients=None, Wfoo=np.zeros(7), learning_rate=0.1)
    for given in (types.MappingProxyType(p), OrderedDict(p), Params(p), extra):
        args["parameters"] = given
        got = call(function, args)
        for g, w in zip(got[:-1], want[:-1]):
            np.testing.assert_array_equal(g, w)
        assert got[-1][-1] is given if "cell" in function else got[-1][0][0][-1] is given


# ------------------------------------------------------------------ None and bad data types

NONE_CASES = [(f, a) for f in FUNCTIONS for a in ARGS[f][:-1]] + [
    (f, k) for f in FUNCTIONS for k in (("Wax", "by") if _kind(f) == "rnn" else ("Wc", "bo"))]


@pytest.mark.parametrize("function,arg", NONE_CASES)
def test_none(function, arg):
    args = base(function)
    if arg in args:
        args[arg] = None
    else:
        args["parameters"] = dict(args["parameters"], **{arg: None})
    check_raises(function, args, TypeError, arg, "None")


BAD_KINDS = {
    "complex": lambda a: a.astype(np.complex128),
    "complex list": lambda a: (a + 1j).tolist(),
    "object": lambda a: a.astype(object),
    "bool": lambda a: a > 0,
    "bool list": lambda a: (a > 0).tolist(),
    "str": lambda a: a.astype(str),
    "bytes": lambda a: a.astype("S8"),
}
BAD_WORD = {"complex": "complex", "complex list": "complex", "object": "object",
            "bool": "bool", "bool list": "bool", "str": "str", "bytes": "bytes"}
DTYPE_CASES = [(f, a, k) for f in FUNCTIONS
               for a in list(ARGS[f][:-1]) + list(RNN_KEYS if _kind(f) == "rnn" else LSTM_KEYS)
               for k in BAD_KINDS]


@pytest.mark.parametrize("function,arg,bad", DTYPE_CASES)
def test_bad_data_type(function, arg, bad):
    args = base(function)
    if arg in args:
        args[arg] = BAD_KINDS[bad](args[arg])
    else:
        p = dict(args["parameters"])
        p[arg] = BAD_KINDS[bad](p[arg])
        args["parameters"] = p
    with pytest.raises(TypeError, match=re.escape(arg)) as info:
        call(function, args)
    text = message(info.value).lower()
    word = BAD_WORD[bad]
    assert word in text or (word == "str" and "string" in text) or \
        (word == "bytes" and "byte" in text), text


# ------------------------------------------------------------------ ragged lists

def _ragged(value):
    """A nested list like value.tolist(), with one innermost list one element short."""
    lst = value.tolist()
    inner = lst
    while isinstance(inner[-1], list) and isinstance(inner[-1][-1], list):
        inner = inner[-1]
    inner[-1] = inner[-1][:-1]
    return lst


RAGGED_CASES = [(f, a) for f in FUNCTIONS for a in ARGS[f][:-1]] + [
    (f, k) for f in FUNCTIONS for k in (("Waa", "ba") if _kind(f) == "rnn" else ("Wi", "by"))]


def _apply_ragged(function, arg):
    args = base(function)
    if arg in args:
        args[arg] = _ragged(args[arg])
    else:
        args["parameters"] = dict(args["parameters"], **{arg: _ragged(args["parameters"][arg])})
    return args


@pytest.mark.parametrize("function,arg", RAGGED_CASES)
def test_ragged_list(function, arg):
    check_raises(function, _apply_ragged(function, arg), ValueError, arg)


@pytest.mark.parametrize("function,arg", [("rnn_forward", "x"), ("lstm_cell_forward", "c_prev"),
                                          ("rnn_cell_forward", "ba"), ("lstm_forward", "Wi")])
def test_ragged_list_message_gives_expected_shape(function, arg):
    """The message names the expected shape with the symbolic names, also when
    the given value is not even a rectangular array."""
    check_raises(function, _apply_ragged(function, arg), ValueError, arg, SYMBOLIC[arg])


# ------------------------------------------------------------------ valid edge cases

@pytest.mark.parametrize("function", FUNCTIONS)
def test_lists_and_integers_are_valid(function, monkeypatch):
    """Not errors: nested lists and integer arrays (converted to float64)."""
    monkeypatch.undo()
    args = base(function)
    want = ref(function, *[args[n] for n in ARGS[function]])
    listed = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    got = call(function, listed)
    for g, w in zip(got[:-1], want[:-1]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11)
    ints = dict(args)
    arg0 = ARGS[function][0]
    ints[arg0] = np.round(args[arg0] * 3).astype(np.int32)
    got = call(function, ints)
    want = ref(function, *[f64(ints[n]) if n != "parameters" else ints[n]
                           for n in ARGS[function]])
    for g, w in zip(got[:-1], want[:-1]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------------ who is blamed

def test_transposed_input_is_not_blamed_on_the_weights():
    """The report's case: rnn_forward(x.transpose(1, 0, 2), a0, p) once said
    ``parameters['Wax'] must have shape (n_a, n_x) = (5, 10), got (5, 3)`` without saying that
    n_x came from x.  Now the message says where every size came from and which transpose of
    x fits."""
    args = base("rnn_forward")
    args["x"] = args["x"].transpose(1, 0, 2)  # (m, n_x, T_x)
    text = check_raises("rnn_forward", args, ValueError, "a0", "from x.shape[1]",
                        "x.transpose(1, 0, 2)")
    assert "parameters['Wax']" not in text


LAYOUTS = [((2, 1, 0), "x.transpose(2, 1, 0)", "PyTorch"),
           ((1, 2, 0), "x.transpose(2, 0, 1)", "batch-first")]


@pytest.mark.parametrize("axes,fix,name", LAYOUTS, ids=["pytorch", "batch_first"])
@pytest.mark.parametrize("function", ["rnn_forward", "lstm_forward"])
def test_common_layouts_get_a_hint(function, axes, fix, name):
    """x in PyTorch's (T_x, m, n_x) or batch-first (m, T_x, n_x) layout: the message names
    the layout and the transpose that gives (n_x, m, T_x)."""
    args = base(function)
    args["x"] = np.ascontiguousarray(args["x"].transpose(axes))
    text = check_raises(function, args, ValueError, "x", fix, name)
    assert "from x.shape" in text or "the parameters agree" in text, text


@pytest.mark.parametrize("function", FUNCTIONS)
def test_messages_say_where_each_size_came_from(function):
    """A weight that disagrees with x and a0 is blamed, with the sources of n_a and n_x."""
    key = "Wax" if _kind(function) == "rnn" else "Wf"
    args = base(function)
    args["parameters"] = dict(args["parameters"])
    w = args["parameters"][key]
    args["parameters"][key] = np.zeros((w.shape[0] + 1, w.shape[1]))
    x_name, a_name = ARGS[function][:2]
    check_raises(function, args, ValueError, key, f"n_a = {N_A} from {a_name}.shape[0]",
                 f"n_x = {N_X} from {x_name}.shape[0]")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_state_disagreeing_with_agreeing_parameters_is_blamed(function):
    """a0 with n_a + 1 rows: all the parameters agree on n_a, so a0 is what is wrong (not
    the first weight that disagrees with it); a transposed state is named as such."""
    a_name = ARGS[function][1]
    args = base(function)
    args[a_name] = np.zeros((N_A + 1, M))
    text = check_raises(function, args, ValueError, a_name, "as the parameters agree")
    assert "parameters[" in text  # the sources of n_a
    args[a_name] = np.zeros((M, N_A))
    check_raises(function, args, ValueError, a_name, f"pass {a_name}.T")


@pytest.mark.parametrize("function", ["lstm_forward", "lstm_cell_forward"])
def test_input_disagreeing_with_agreeing_gates_is_blamed(function):
    """The four LSTM gates agree on n_x: an x with another n_x is blamed."""
    x_name = ARGS[function][0]
    args = base(function)
    args[x_name] = np.concatenate([args[x_name], args[x_name]], axis=0)
    check_raises(function, args, ValueError, x_name, f"n_x = {N_X}", "parameters agree")


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_models_say_sizes_come_from_the_model(kind):
    function = "rnn_forward" if kind == "RNN" else "lstm_forward"
    args = base(function)
    model = getattr(fastrnn, kind)(args["parameters"])
    with pytest.raises(ValueError, match=re.escape("x.transpose(2, 1, 0)")) as info:
        model.forward(np.ascontiguousarray(args["x"].transpose(2, 1, 0)))
    assert "from the model" in message(info.value)
