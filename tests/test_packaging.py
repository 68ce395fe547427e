"""The installed package: version, typing marker, licence, public type hints, and a clear
error when the package is imported from an unbuilt source tree."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import typing

import pytest

import fastrnn

PUBLIC_CALLABLES = [fastrnn.rnn_cell_forward, fastrnn.rnn_forward, fastrnn.lstm_cell_forward,
                    fastrnn.lstm_forward, fastrnn.RNN.__init__, fastrnn.RNN.forward,
                    fastrnn.RNN.step, fastrnn.LSTM.__init__, fastrnn.LSTM.forward,
                    fastrnn.LSTM.step, fastrnn.checked, fastrnn.set_checked, fastrnn.is_checked]


def test_version_is_single_sourced():
    """fastrnn.__version__ is what the installed metadata says (pyproject.toml reads it)."""
    assert fastrnn.__version__ == importlib.metadata.version("fastrnn")


def test_typing_marker_is_installed():
    assert os.path.isfile(os.path.join(os.path.dirname(fastrnn.__file__), "py.typed"))


def test_license_is_in_the_installed_metadata():
    dist = importlib.metadata.distribution("fastrnn")
    assert dist.metadata["License-Expression"] == "BSD-3-Clause"
    licenses = [f for f in dist.files or () if f.name == "LICENSE"]
    assert licenses, "LICENSE is not installed with the package metadata"
    text = licenses[0].read_text()
    assert "BSD 3-Clause" in text and "the fastrnn developers" in text


@pytest.mark.parametrize("fn", PUBLIC_CALLABLES, ids=lambda f: f.__qualname__)
def test_public_api_has_type_hints(fn):
    hints = typing.get_type_hints(fn)
    assert "return" in hints
    params = [p for p in fn.__code__.co_varnames[:fn.__code__.co_argcount
                                                 + fn.__code__.co_kwonlyargcount]
              if p != "self"]
    assert set(params) <= set(hints), f"{fn.__qualname__}: no hint for {set(params) - set(hints)}"


def test_unbuilt_source_tree_says_how_to_build(tmp_path):
    """``python -c "import fastrnn"`` in a checkout that was never built (Python puts the
    current directory first on sys.path) once failed with ``cannot import name '_core'``."""
    src = os.path.dirname(os.path.abspath(fastrnn.__file__))
    shutil.copytree(src, tmp_path / "fastrnn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    proc = subprocess.run([sys.executable, "-c", "import fastrnn"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=""))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:"), proc.stderr
    for piece in ("pip install .", "pip install -e .", "build_ext --inplace",
                  "no compiled module"):
        assert piece in last, last


SETUP_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


@pytest.mark.skipif(not os.path.isfile(SETUP_PY), reason="needs the source tree's setup.py")
def test_build_switches_are_spelt_like_fastrnn_checked(monkeypatch):
    """FASTRNN_DEBUG / FASTRNN_NATIVE once took anything but "" and "0" as on ("off" made a
    debug build)."""
    import ast

    with open(SETUP_PY) as f:
        tree = ast.parse(f.read())
    flag = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_flag")
    namespace = {"os": os}
    exec(compile(ast.Module([flag], []), SETUP_PY, "exec"), namespace)
    for value, on in (("1", True), ("ON", True), ("yes", True), ("off", False),
                      ("False", False), ("0", False), ("", False)):
        monkeypatch.setenv("FASTRNN_DEBUG", value)
        assert namespace["_flag"]("FASTRNN_DEBUG") is on, value
    monkeypatch.setenv("FASTRNN_DEBUG", "disabled")
    with pytest.raises(SystemExit, match="FASTRNN_DEBUG='disabled'"):
        namespace["_flag"]("FASTRNN_DEBUG")
