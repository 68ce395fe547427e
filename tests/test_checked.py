"""Checked mode: every public call also runs the reference and raises
``fastrnn.CheckError`` (an AssertionError) naming the output that disagrees beyond the dtype's
tolerance.  Switched by ``set_checked``, the ``checked()`` context manager, or
``FASTRNN_CHECKED`` in the environment (read at import: 1/true/yes/on, 0/false/no/off or
empty, any case; anything else is an error).

Discrepancies are injected on either side: the kernel side by wrapping
``fastrnn._api.run_rnn`` / ``run_lstm`` (and perturbing one entry of one output), the reference
side by wrapping the ``fastrnn.reference`` functions or its ``softmax``.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn
import fastrnn._api as api
from fastrnn import reference
from _util import lstm_params, rnn_params

FUNCTIONS = ["rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward"]
DTYPES = [np.float64, np.float32]
OUTPUTS = {
    "rnn_cell_forward": ("a_next", "yt_pred"),
    "rnn_forward": ("a", "y_pred"),
    "lstm_cell_forward": ("a_next", "c_next", "yt_pred"),
    "lstm_forward": ("a", "y", "c"),
}
# index of each output in the tuple run_rnn (a, y) / run_lstm (a, y, c, z) returns
RUN_INDEX = {"a_next": 0, "a": 0, "yt_pred": 1, "y_pred": 1, "y": 1, "c_next": 2, "c": 2}
# a perturbation well beyond the dtype's tolerance (rtol 1e-9 / 1e-4)
DELTA = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-2}


@pytest.fixture(autouse=True)
def known_state():
    """Start every test with checked mode off (whatever FASTRNN_CHECKED says) and restore
    the previous state afterwards."""
    before = fastrnn.is_checked()
    fastrnn.set_checked(False)
    yield
    fastrnn.set_checked(before)


def _kind(function):
    return "rnn" if function.startswith("rnn") else "lstm"


def make_args(function, dtype=np.float64, dims=(3, 5, 4, 6, 7), seed=0, scale=None):
    n_x, n_a, n_y, m, T = dims
    rng = np.random.default_rng(seed)
    make = rnn_params if _kind(function) == "rnn" else lstm_params
    p = make(rng, n_x, n_a, n_y, dtype=dtype, scale=scale)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    if function == "rnn_cell_forward":
        return (x[:, :, 0], a0, p)
    if function == "lstm_cell_forward":
        return (x[:, :, 0], a0, rng.standard_normal((n_a, m)).astype(dtype), p)
    return (x, a0, p)


def names_output(name):
    """A regex that finds the output's name quoted in a message."""
    return rf"['\"`]{name}['\"`]"


def perturb_kernel_side(monkeypatch, function, output, delta):
    """Wrap both kernel routes -- run_rnn/run_lstm (validated, packed) and the compiled
    fast path _core.try_rnn/try_lstm, which return their outputs in the same order -- so
    that one entry of ``output`` is off by ``delta`` (relative)."""
    kind = _kind(function)
    k = RUN_INDEX[output]

    def perturbing(real):
        def wrapped(*args, **kwargs):
            out = real(*args, **kwargs)
            if out is None:  # the fast path declined; the validated route runs instead
                return out
            arr = out[k]
            idx = (arr.shape[0] - 1,) + (0,) * (arr.ndim - 1)
            arr[idx] += delta * (1 + abs(arr[idx]))
            return out
        return wrapped

    for module, name in ((api, "run_" + kind), (api._core, "try_" + kind)):
        monkeypatch.setattr(module, name, perturbing(getattr(module, name)))


def perturb_reference_side(monkeypatch, function, output, delta):
    """Wrap reference.<function> so that its ``output`` is off by ``delta`` (relative)."""
    real = getattr(reference, function)
    k = OUTPUTS[function].index(output)

    def wrapped(*args):
        out = list(real(*args))
        arr = np.array(out[k], dtype=np.float64)
        idx = (0,) * arr.ndim
        arr[idx] += delta * (1 + abs(arr[idx]))
        out[k] = arr
        return tuple(out)

    monkeypatch.setattr(reference, function, wrapped)


OUTPUT_CASES = [(f, o) for f in FUNCTIONS for o in OUTPUTS[f]]


# ------------------------------------------------------------------ catching discrepancies

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function,output", OUTPUT_CASES)
def test_catches_kernel_side_discrepancy(monkeypatch, function, output, dtype):
    args = make_args(function, dtype)
    perturb_kernel_side(monkeypatch, function, output, DELTA[np.dtype(dtype)])
    # unchecked, the corrupted result goes through (the injection is real, nothing compares)
    corrupted = getattr(fastrnn, function)(*args)
    assert len(corrupted) == len(OUTPUTS[function]) + 1
    with fastrnn.checked():
        with pytest.raises(fastrnn.CheckError, match=names_output(output)) as info:
            getattr(fastrnn, function)(*args)
    assert isinstance(info.value, AssertionError)
    assert function in str(info.value)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function,output", OUTPUT_CASES)
def test_catches_reference_side_discrepancy(monkeypatch, function, output, dtype):
    args = make_args(function, dtype)
    perturb_reference_side(monkeypatch, function, output, DELTA[np.dtype(dtype)])
    getattr(fastrnn, function)(*args)  # unchecked: the reference is not consulted
    fastrnn.set_checked(True)
    with pytest.raises(fastrnn.CheckError, match=names_output(output)):
        getattr(fastrnn, function)(*args)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_catches_perturbed_reference_softmax(monkeypatch, function):
    real = reference.softmax
    monkeypatch.setattr(reference, "softmax", lambda z: real(z) * (1 + 1e-6))
    args = make_args(function)
    y_name = {"rnn_cell_forward": "yt_pred", "rnn_forward": "y_pred",
              "lstm_cell_forward": "yt_pred", "lstm_forward": "y"}[function]
    with fastrnn.checked():
        with pytest.raises(fastrnn.CheckError, match=names_output(y_name)):
            getattr(fastrnn, function)(*args)


def test_check_error_is_public_assertion_error():
    assert issubclass(fastrnn.CheckError, AssertionError)
    assert "CheckError" in fastrnn.__all__


# ------------------------------------------------------------------ agreeing results

def _count_reference_calls(monkeypatch, function):
    calls = []
    real = getattr(reference, function)

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(reference, function, spy)
    return calls


@pytest.mark.parametrize("scale", [None, 30.0, 1000.0], ids=["default", "saturating", "huge"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_silent_when_results_agree(monkeypatch, function, dtype, scale):
    """Checked mode raises nothing (and, with filterwarnings=error, warns nothing even when
    the reference's sigmoid overflows) when the results agree, really runs the reference,
    and returns exactly what an unchecked call returns."""
    dims = (3, 5, 4, 6, 7 if scale is None else 3)
    args = make_args(function, dtype, dims=dims, scale=scale)
    plain = getattr(fastrnn, function)(*args)
    calls = _count_reference_calls(monkeypatch, function)
    with fastrnn.checked():
        got = getattr(fastrnn, function)(*args)
    assert len(calls) == 1
    for g, p_ in zip(got[:-1], plain[:-1]):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, p_)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_silent_with_nan_and_inf(function):
    """NaN must match NaN and inf match inf: special values alone are no discrepancy."""
    args = [np.array(a) if isinstance(a, np.ndarray) else a for a in make_args(function)]
    x = args[0]
    x[(0,) * x.ndim] = np.nan
    x[(1,) * x.ndim] = np.inf
    args[1][2, 2] = -np.inf
    with fastrnn.checked():
        out = getattr(fastrnn, function)(*args)
    assert any(np.isnan(o).any() for o in out[:-1])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_unchecked_does_not_run_the_reference(monkeypatch, function):
    def boom(*args):
        raise AssertionError("the reference ran in unchecked mode")

    monkeypatch.setattr(reference, function, boom)
    getattr(fastrnn, function)(*make_args(function))
    with fastrnn.checked(False):
        getattr(fastrnn, function)(*make_args(function))


# ------------------------------------------------------------------ switching

def test_set_checked():
    assert fastrnn.is_checked() is False
    fastrnn.set_checked(True)
    assert fastrnn.is_checked() is True
    fastrnn.set_checked(False)
    assert fastrnn.is_checked() is False
    fastrnn.set_checked()  # enabled by default
    assert fastrnn.is_checked() is True


def test_context_manager_restores_previous_state():
    assert not fastrnn.is_checked()
    with fastrnn.checked():
        assert fastrnn.is_checked()
        with fastrnn.checked(False):
            assert not fastrnn.is_checked()
        assert fastrnn.is_checked()
    assert not fastrnn.is_checked()

    fastrnn.set_checked(True)
    with fastrnn.checked(False):
        assert not fastrnn.is_checked()
    assert fastrnn.is_checked()
    with fastrnn.checked():
        assert fastrnn.is_checked()
    assert fastrnn.is_checked()


def test_context_manager_restores_on_exception(monkeypatch):
    args = make_args("rnn_forward")
    perturb_kernel_side(monkeypatch, "rnn_forward", "a", 1e-6)
    with pytest.raises(fastrnn.CheckError):
        with fastrnn.checked():
            fastrnn.rnn_forward(*args)
    assert not fastrnn.is_checked()
    fastrnn.rnn_forward(*args)  # unchecked again: the corrupted result passes


def test_context_manager_tolerance_is_restored(monkeypatch):
    args = make_args("rnn_forward")
    perturb_kernel_side(monkeypatch, "rnn_forward", "a", 1e-6)
    with fastrnn.checked(rtol=1e-3):
        fastrnn.rnn_forward(*args)
    with fastrnn.checked():  # default tolerance again
        with pytest.raises(fastrnn.CheckError):
            fastrnn.rnn_forward(*args)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_custom_tolerances(monkeypatch, function):
    """rtol/atol given to set_checked / checked replace the dtype's defaults."""
    args64 = make_args(function, np.float64)
    args32 = make_args(function, np.float32)
    out = OUTPUTS[function][0]
    perturb_kernel_side(monkeypatch, function, out, 1e-6)
    # float64: 1e-6 relative is caught by the default rtol=1e-9 ...
    with fastrnn.checked():
        with pytest.raises(fastrnn.CheckError, match=names_output(out)):
            getattr(fastrnn, function)(*args64)
    # ... and accepted with a looser rtol or atol
    with fastrnn.checked(rtol=1e-4):
        getattr(fastrnn, function)(*args64)
    with fastrnn.checked(atol=1e-4):
        getattr(fastrnn, function)(*args64)
    fastrnn.set_checked(True, rtol=1e-4, atol=0)
    getattr(fastrnn, function)(*args64)
    # float32: the same perturbation passes the default rtol=1e-4 ...
    fastrnn.set_checked(True)
    getattr(fastrnn, function)(*args32)
    # ... and is caught with a tighter custom tolerance
    fastrnn.set_checked(True, rtol=1e-8, atol=0)
    with pytest.raises(fastrnn.CheckError, match=names_output(out)):
        getattr(fastrnn, function)(*args32)
    with fastrnn.checked(rtol=1e-8, atol=0):
        with pytest.raises(fastrnn.CheckError, match=names_output(out)):
            getattr(fastrnn, function)(*args32)


# ------------------------------------------------------------------ environment variable

_SCRIPT = textwrap.dedent("""
    import numpy as np
    import fastrnn, fastrnn._api as api
    print("checked", fastrnn.is_checked())
    rng = np.random.default_rng(0)
    p = {"Wax": rng.standard_normal((5, 3)), "Waa": rng.standard_normal((5, 5)) / 3,
         "Wya": rng.standard_normal((2, 5)), "ba": rng.standard_normal((5, 1)),
         "by": rng.standard_normal((2, 1))}
    x, a0 = rng.standard_normal((3, 4, 6)), rng.standard_normal((5, 4))
    fastrnn.rnn_forward(x, a0, p)
    real = api.run_rnn
    def bad(*args, **kwargs):
        out = real(*args, **kwargs)  # (a, y, ...)
        out[1][0, 0, 0] += 1e-3
        return out
    api.run_rnn = bad
    api._core.try_rnn = lambda *args: None  # decline the fast path: run_rnn runs
    try:
        fastrnn.rnn_forward(x, a0, p)
        print("raised none")
    except fastrnn.CheckError as exc:
        print("raised CheckError", "'y_pred'" in str(exc))
""")


def _run_script(env_value):
    env = dict(os.environ)
    env.pop("FASTRNN_CHECKED", None)
    if env_value is not None:
        env["FASTRNN_CHECKED"] = env_value
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # cwd: tests/, so that a source checkout in the cwd cannot shadow the fastrnn under test
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")


def test_environment_variable_enables_checked_mode():
    lines = _run_script("1")
    assert lines[0] == "checked True"
    assert lines[1] == "raised CheckError True"


@pytest.mark.parametrize("value", [None, "0"], ids=["unset", "zero"])
def test_environment_variable_off(value):
    lines = _run_script(value)
    assert lines[0] == "checked False"
    assert lines[1] == "raised none"


# The usual spellings, in any letter case and with surrounding blanks; an empty value is off.
ENV_ON = ["1", "true", "True", "TRUE", "yes", "Yes", "on", "ON", " on "]
ENV_OFF = ["0", "false", "False", "no", "NO", "off", "Off", "", "  "]
# Values that once switched checked mode on although they mean off, and other junk.
ENV_BAD = ["none", "None", "0.0", "disabled", "enabled", "2", "-1", "y", "n", "offf", "t"]


@pytest.mark.parametrize("value", ENV_ON)
def test_environment_spellings_on(value):
    assert fastrnn._checked.env_flag(value) is True


@pytest.mark.parametrize("value", ENV_OFF + [None])
def test_environment_spellings_off(value):
    assert fastrnn._checked.env_flag(value) is False


@pytest.mark.parametrize("value", ENV_BAD)
def test_environment_other_values_are_an_error_naming_the_variable(value):
    with pytest.raises(ValueError, match="FASTRNN_CHECKED") as info:
        fastrnn._checked.env_flag(value)
    assert repr(value) in str(info.value)


def test_environment_variable_off_spelling_at_import():
    """The import reads the variable through the same rule: "OFF" is off."""
    lines = _run_script("OFF")
    assert lines[0] == "checked False"


def test_environment_variable_unknown_value_fails_the_import():
    env = dict(os.environ, FASTRNN_CHECKED="disabled")
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", "import fastrnn"], env=env,
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode != 0
    assert "FASTRNN_CHECKED='disabled'" in proc.stderr, proc.stderr
