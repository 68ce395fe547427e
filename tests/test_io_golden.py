"""The importers' layout maps against stored framework outputs: runs without torch, Keras or
ONNX (the golden files are written by tests/golden/make_golden.py where they are installed).

Each file holds a framework's own weights (a torch state_dict, Keras kernels, ONNX W/R/B);
they go through the same map functions from_torch, from_keras and from_onnx use, and the
resulting model must reproduce the framework's outputs.  A mutated map must not.
"""
import glob
import json
import os

import numpy as np
import pytest

import _io_oracle
from fastrnn.io import Imported, _keras, _onnx, _torch

HERE = os.path.join(os.path.dirname(__file__), "golden")
FILES = sorted(glob.glob(os.path.join(HERE, "*.npz")))
# Keras computes a float64 layer's products in float32 and ONNX Runtime's recurrent kernels
# are float32: their golden outputs are float32-accurate.
TOL = {"float64": {"rtol": 1e-10, "atol": 1e-10}, "float32": {"rtol": 1e-4, "atol": 1e-5}}


def read(path):
    with np.load(path, allow_pickle=False) as f:
        config = json.loads(str(f["config"]))
        group = lambda p: {k[len(p):]: f[k] for k in f.files if k.startswith(p)}  # noqa: E731
        return config, group("w/"), group("in/"), group("out/")


def spec_of(config, w):
    """The Spec the importer builds from these framework weights."""
    kind, dtype = config["kind"], np.dtype(config["dtype"])
    if config["framework"] == "torch":
        state = {k: v for k, v in w.items() if not k.startswith("head.")}
        head = {k[5:]: v for k, v in w.items() if k.startswith("head.")} or None
        return _torch.spec_from_state(kind, state, num_layers=config["num_layers"],
                                      bidirectional=config["bidirectional"],
                                      nonlinearity=config["nonlinearity"], head=head,
                                      cell=config.get("cell", False), dtype=dtype)
    if config["framework"] == "keras":
        dirs = [(w[f"{d}/kernel"], w[f"{d}/recurrent_kernel"], w[f"{d}/bias"])
                for d in range(config["directions"])]
        return _keras.spec_from_weights(kind, dirs, reset_after=config["reset_after"],
                                        dtype=dtype)
    return _onnx.spec_from_arrays(kind, w["W"], w["R"], w["B"], direction=config["direction"],
                                  linear_before_reset=config["linear_before_reset"])


def compare(got, out, tol, what):
    for name in ("a", "y", "h_n", "c_n"):
        if name in out:
            np.testing.assert_allclose(np.asarray(got[name], dtype=np.float64), out[name],
                                       **tol, err_msg=f"{what}: {name}")


def test_golden_files_present():
    assert len(FILES) >= 6, f"golden files missing from {HERE}"
    for path in FILES:
        assert os.path.getsize(path) < 16_000, f"{path} should stay small"


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-4] for p in FILES])
def test_golden(path):
    config, w, inp, out = read(path)
    spec = spec_of(config, w)
    tol = TOL[config["dtype"] if config["framework"] == "torch" else "float32"]
    args = (inp["x"], inp.get("lengths"), inp.get("h0"), inp.get("c0"))
    a, y, h_n, c_n = _io_oracle.run(spec, *args)
    compare({"a": a, "y": y, "h_n": h_n, "c_n": c_n}, out, tol, "map")
    a, y, state = Imported(spec).forward(*args)
    assert a.dtype == spec.dtype
    h_n, c_n = state if spec.kind == "lstm" else (state, None)
    compare({"a": a, "y": y, "h_n": h_n, "c_n": c_n}, out, tol, "model")


MUTANTS = {
    "torch gate order": (_torch.TORCH_GATES, {"lstm": ("f", "i", "c", "o"),
                                              "gru": ("z", "r", "n")}),
    "keras gate order": (_keras.KERAS_GATES, {"lstm": ("i", "f", "o", "c"),
                                              "gru": ("r", "z", "n")}),
    "onnx gate order": (_onnx.ONNX_GATES, {"lstm": ("i", "f", "o", "c"),
                                           "gru": ("r", "z", "n")}),
}


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-4] for p in FILES])
def test_golden_mutants_fail(path, monkeypatch):
    """A wrong gate order, or a dropped recurrent bias, no longer reproduces the file."""
    config, w, inp, out = read(path)
    args = (inp["x"], inp.get("lengths"), inp.get("h0"), inp.get("c0"))
    tol = TOL["float32"]
    mutants = []
    if config["kind"] != "rnn":
        table, orders = MUTANTS[f"{config['framework']} gate order"]
        mutants.append(lambda mp: mp.setitem(table, config["kind"], orders[config["kind"]]))
    for bias in ("bias_hh_l0", "bias_hh"):
        if config["framework"] == "torch" and bias in w:
            mutants.append(lambda mp, b=bias: w.__setitem__(b, 0 * w[b]))
    if config["framework"] == "onnx":
        mutants.append(lambda mp: w.__setitem__("B", np.concatenate(
            [w["B"][:, :w["B"].shape[1] // 2], 0 * w["B"][:, w["B"].shape[1] // 2:]], axis=1)))
    if config["framework"] == "keras":
        mutants.append(lambda mp: w.__setitem__("0/bias", 0 * w["0/bias"]))
    if config["kind"] == "rnn" and "weight_hh_l0" in w:
        mutants.append(lambda mp: w.__setitem__("weight_hh_l0", w["weight_hh_l0"].T.copy()))
    assert mutants
    for mutate in mutants:
        with monkeypatch.context() as mp:
            original = dict(w)
            mutate(mp)
            a, y, h_n, c_n = _io_oracle.run(spec_of(config, w), *args)
            w.clear()
            w.update(original)
        got = {"a": a, "y": y, "h_n": h_n, "c_n": c_n}
        worst = max(np.max(np.abs(got[k] - out[k]) - tol["rtol"] * np.abs(out[k]))
                    for k in out)
        assert worst > tol["atol"], f"{os.path.basename(path)}: a mutant went undetected"
