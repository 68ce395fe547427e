"""model.save / fastrnn.load: every model kind round-trips exactly, without pickle."""
import io
import json

import numpy as np
import pytest

import fastrnn
from fastrnn.io import Imported, Spec
from fastrnn.io._spec import KEYS

RNG = np.random.default_rng(0)


def params(kind, n_x, n_a, n_y=0, dtype=np.float64):
    """Random lessons' parameters (with a head when n_y > 0)."""
    shapes = {"rnn": {"Wax": (n_a, n_x), "Waa": (n_a, n_a), "ba": (n_a, 1)},
              "lstm": {**{"W" + g: (n_a, n_a + n_x) for g in "fico"},
                       **{"b" + g: (n_a, 1) for g in "fico"}},
              "gru": {**{f"W{g}x": (n_a, n_x) for g in "rzn"},
                      **{f"W{g}a": (n_a, n_a) for g in "rzn"},
                      **{f"b{g}{s}": (n_a, 1) for g in "rzn" for s in "xa"}}}[kind]
    p = {k: (RNG.standard_normal(s) / np.sqrt(n_a + n_x)).astype(dtype)
         for k, s in shapes.items()}
    if n_y:
        p["Wya" if kind == "rnn" else "Wy"] = RNG.standard_normal((n_y, n_a)).astype(dtype)
        p["by"] = RNG.standard_normal((n_y, 1)).astype(dtype)
    return p


def outputs(model, x):
    out = model.forward(x)
    flat = []
    for o in out:
        for v in (o if isinstance(o, tuple) else (o,)):
            flat.extend(v if isinstance(v, list) else (v,))  # per-layer states of unequal n_a
    return flat


def roundtrip(model, tmp_path, x):
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
        header = json.loads(str(f["__fastrnn__"]))
    loaded = fastrnn.load(path)
    assert type(loaded) is type(model)
    dtype = lambda m: m.directions[0].dtype if isinstance(m, fastrnn.Bidirectional) \
        else m.dtype  # noqa: E731
    assert dtype(loaded) == dtype(model)
    for got, want in zip(outputs(loaded, x), outputs(model, x)):
        if want is None:
            assert got is None
        else:
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    return header, path


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_y", [0, 2])
def test_lesson_models(kind, dtype, n_y, tmp_path):
    cls = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind]
    p = params(kind, 3, 4, n_y, dtype)
    x = RNG.standard_normal((3, 2, 5)).astype(dtype)
    header, path = roundtrip(cls(p), tmp_path, x)
    assert header["model"] == cls.__name__ and header["kind"] == kind
    assert header["dtype"] == np.dtype(dtype).name and header["version"] == 1
    with np.load(path, allow_pickle=False) as f:  # the file is the lessons' parameters dict
        assert sorted(k for k in f.files if k != "__fastrnn__") == sorted(p)
        for k, v in p.items():
            np.testing.assert_array_equal(f[k], v)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_stack_and_bidirectional(kind, tmp_path):
    cls = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind]
    bi = fastrnn.Bidirectional(cls(params(kind, 3, 4)), cls(params(kind, 3, 4)))
    x = RNG.standard_normal((3, 2, 5))
    header, _ = roundtrip(bi, tmp_path, x)
    assert header["layers"] == [2]
    stack = fastrnn.Stack([bi, cls(params(kind, 8, 5)), fastrnn.Bidirectional(
        cls(params(kind, 5, 2)), cls(params(kind, 5, 2)))],
        head={"Wy": RNG.standard_normal((3, 4)), "by": RNG.standard_normal((3, 1))})
    header, _ = roundtrip(stack, tmp_path, x)
    assert header["layers"] == [2, 1, 2]
    no_head = fastrnn.Stack([cls(params(kind, 3, 4)), cls(params(kind, 4, 4))])
    roundtrip(no_head, tmp_path, x)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("directions", [("forward",), ("reverse",), ("forward", "reverse")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_imported(kind, directions, dtype, tmp_path):
    D = len(directions)
    layers = [[params(kind, 3, 4) for _ in directions]]
    head = None
    if directions != ("reverse",):
        layers.append([params(kind, 4 * D, 4) for _ in directions])
        head = {"Wya" if kind == "rnn" else "Wy": RNG.standard_normal((2, 4 * D)),
                "by": RNG.standard_normal((2, 1))}
    model = Imported(Spec(kind, layers, directions=directions, head=head, dtype=dtype))
    x = RNG.standard_normal((3, 2, 5)).astype(dtype)
    header, path = roundtrip(model, tmp_path, x)
    assert header["directions"] == list(directions)
    loaded = fastrnn.load(path)
    for l, layer in enumerate(model.spec.layers):
        for d, p in enumerate(layer):
            for k in KEYS[kind]:
                np.testing.assert_array_equal(loaded.spec.layers[l][d][k], p[k])
    with np.load(path, allow_pickle=False) as f:
        names = set(f.files)
    if directions == ("forward", "reverse"):
        assert {"Wax_reverse" if kind == "rnn" else "Wrx_reverse" if kind == "gru"
                else "Wf_reverse", "by"} <= names


def test_file_objects_and_exact_paths(tmp_path):
    model = fastrnn.LSTM(params("lstm", 2, 3, 2))
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    assert isinstance(fastrnn.load(buf), fastrnn.LSTM)
    model.save(tmp_path / "no_extension")  # written as named, no .npz appended
    assert (tmp_path / "no_extension").exists()
    assert isinstance(fastrnn.load(tmp_path / "no_extension"), fastrnn.LSTM)


def test_bad_files(tmp_path):
    np.savez(tmp_path / "plain.npz", Wax=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a fastrnn model file"):
        fastrnn.load(tmp_path / "plain.npz")
    header = {"format": "fastrnn", "version": 99, "model": "RNN", "kind": "rnn",
              "dtype": "float64"}
    np.savez(tmp_path / "future.npz", __fastrnn__=np.array(json.dumps(header)))
    with pytest.raises(ValueError, match="format version 99"):
        fastrnn.load(tmp_path / "future.npz")
    model = Imported(Spec("gru", [[params("gru", 3, 4)]]))
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files if k != "Wza"}
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing the array 'Wza'"):
        fastrnn.load(tmp_path / "missing.npz")
    for bad in ({"format": "fastrnn", "version": 1, "model": "Stack", "kind": "gru",
                 "dtype": "float64", "layers": [3]},
                {"format": "fastrnn", "version": 1, "model": "Imported", "dtype": "float64"},
                ["fastrnn"]):
        np.savez(tmp_path / "bad.npz", __fastrnn__=np.array(json.dumps(bad)))
        with pytest.raises(ValueError, match="fastrnn"):
            fastrnn.load(tmp_path / "bad.npz")
    with pytest.raises(TypeError, match="model must be a fastrnn model"):
        fastrnn.io.save({"Wax": 1}, tmp_path / "x.npz")


def _tampered(tmp_path, model, edit_header=None, drop=(), name="t.npz"):
    """model saved, then its header edited and arrays dropped: the path of the result."""
    model.save(tmp_path / "orig.npz")
    with np.load(tmp_path / "orig.npz") as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    header = json.loads(str(arrays["__fastrnn__"]))
    if edit_header:
        edit_header(header)
    arrays["__fastrnn__"] = np.array(json.dumps(header))
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def test_tampered_files_are_refused(tmp_path):
    """A header and arrays that do not agree load nothing: options of the wrong type (not
    coerced: "false" is not False), arrays missing or left over, a class, kind or layer
    count changed, broken zip or JSON; each a ValueError naming the file."""
    gru = fastrnn.GRU(params("gru", 3, 4, 2), reset_after=False)
    lstm = fastrnn.LSTM(params("lstm", 3, 4, 2))
    stack = fastrnn.Stack([fastrnn.GRU(params("gru", 3, 4)), fastrnn.GRU(params("gru", 4, 4))],
                          head={"Wy": RNG.standard_normal((2, 4)), "by": np.zeros((2, 1))})
    cases = [
        (gru, lambda h: h.update(reset_after="false"), ()),
        (gru, lambda h: h.update(reset_after=[]), ()),
        (gru, lambda h: h.update(reset_after=1), ()),
        (lstm, None, ("Wy", "by")),                         # the head deleted
        (stack, None, ("Wy", "by")),
        (stack, lambda h: h.update(model="GRU"), ()),       # layer 1's arrays left over
        (stack, lambda h: h.update(layers=[True]), ()),
        (stack, lambda h: h.update(layers=[1]), ()),        # layer 1 dropped
        (lstm, lambda h: h.update(kind=["lstm"]), ()),
        (lstm, lambda h: h.update(kind="gru"), ()),
        (lstm, lambda h: h.update(dtype="nonsense"), ()),
        (lstm, lambda h: h.update(dtype=[["a", "b", "c", "d"]]), ()),
        (lstm, lambda h: h.update(version=True), ()),
        (Imported(Spec("gru", [[params("gru", 3, 4)]])), lambda h: h.update(cell="yes"), ()),
        (Imported(Spec("gru", [[params("gru", 3, 4)]])), lambda h: h.update(layers=1.5), ()),
    ]
    for k, (model, edit, drop) in enumerate(cases):
        path = _tampered(tmp_path, model, edit, drop, f"t{k}.npz")
        with pytest.raises(ValueError, match="t{}.npz".format(k)):
            fastrnn.load(path)
    lstm.save(tmp_path / "whole.npz")
    data = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.npz").write_bytes(b"PK" + b"\x00junk" * 50)
    deep = {"__fastrnn__": np.array("[" * 100000 + "]" * 100000)}
    np.savez(tmp_path / "deep.npz", **deep)
    for name in ("cut.npz", "junk.npz", "deep.npz"):
        with pytest.raises(ValueError, match=name):
            fastrnn.load(tmp_path / name)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_files_of_earlier_versions_still_load(kind, tmp_path):
    """Headers written before they recorded the output layer (and, earlier still, the RNN's
    nonlinearity and the GRU's reset_after): the head is whatever arrays there are, the
    options their defaults."""
    x = RNG.standard_normal((3, 2, 5))
    single = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind]
    for n_y in (0, 2):
        model = single(params(kind, 3, 4, n_y))
        layers = [single(params(kind, 3, 4)), single(params(kind, 4, 4))]
        head = {"Wy": RNG.standard_normal((2, 4)), "by": np.zeros((2, 1))} if n_y else None
        for m in (model, fastrnn.Stack(layers, head=head)):
            def old(h):
                for k in ("head", "reset_after", "nonlinearity"):
                    h.pop(k, None)
            loaded = fastrnn.load(_tampered(tmp_path, m, old))
            assert type(loaded) is type(m)
            for got, want in zip(outputs(loaded, x), outputs(m, x)):
                if want is None:
                    assert got is None
                else:
                    np.testing.assert_array_equal(got, want)


def test_gru_formulation_is_kept(tmp_path):
    x = RNG.standard_normal((3, 2, 5))
    gru = fastrnn.GRU(params("gru", 3, 4, 2), reset_after=False)
    header, path = roundtrip(gru, tmp_path, x)
    assert header["reset_after"] is False and fastrnn.load(path).reset_after is False
    stack = fastrnn.Stack([fastrnn.Bidirectional(
        fastrnn.GRU(params("gru", 3, 4), reset_after=False),
        fastrnn.GRU(params("gru", 3, 4), reset_after=False))])
    header, path = roundtrip(stack, tmp_path, x)
    assert header["reset_after"] is False
    assert fastrnn.load(path).layers[0].directions[1].reset_after is False
    imported = Imported(Spec("gru", [[params("gru", 3, 4)]], reset_after=False))
    header, path = roundtrip(imported, tmp_path, x)
    assert fastrnn.load(path).spec.reset_after is False
    # and the formulation matters: the same weights read the other way differ
    other = Imported(Spec("gru", imported.spec.layers, reset_after=True))
    assert np.abs(other.forward(x)[0] - imported.forward(x)[0]).max() > 1e-3


def test_spec_checks_its_weights():
    p = params("lstm", 3, 4)
    with pytest.raises(KeyError, match=r"layers\[1\]\[0\] is missing 'Wf'"):
        Spec("lstm", [[p], [{k: v for k, v in p.items() if k != "Wf"}]])
    with pytest.raises(ValueError, match="layer 1 must read 4 features"):
        Spec("lstm", [[p], [p]])
    with pytest.raises(ValueError, match=r"head must be Wy \(n_y, D\*n_a\) = \(n_y, 8\)"):
        Spec("lstm", [[p, p]], directions=("forward", "reverse"),
             head={"Wy": np.zeros((2, 4)), "by": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="activation must be 'tanh'"):
        Spec("gru", [[params("gru", 3, 4)]], activation="relu")
    with pytest.raises(ValueError, match="reset_after"):
        Spec("lstm", [[p]], reset_after=False)
    with pytest.raises(TypeError, match="must be a 2-D real array"):
        Spec("lstm", [[dict(p, bf=np.zeros(4, dtype=complex))]])


def test_rnn_nonlinearity_is_kept(tmp_path):
    x = RNG.standard_normal((3, 2, 5))
    rnn = fastrnn.RNN(params("rnn", 3, 4, 2), nonlinearity="relu")
    header, path = roundtrip(rnn, tmp_path, x)
    assert header["nonlinearity"] == "relu" and fastrnn.load(path).nonlinearity == "relu"
    stack = fastrnn.Stack([fastrnn.RNN(params("rnn", 3, 4), nonlinearity="relu")])
    _, path = roundtrip(stack, tmp_path, x)
    assert fastrnn.load(path).layers[0].nonlinearity == "relu"
    imported = Imported(Spec("rnn", [[params("rnn", 3, 4)]], activation="relu"))
    _, path = roundtrip(imported, tmp_path, x)
    assert fastrnn.load(path).spec.activation == "relu"
    mixed = fastrnn.Stack([fastrnn.RNN(params("rnn", 3, 4), nonlinearity="relu"),
                           fastrnn.RNN(params("rnn", 4, 4))])
    with pytest.raises(ValueError, match="differ in their cell options"):
        mixed.save(tmp_path / "mixed.npz")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_reverse_only_model_in_checked_mode(kind, monkeypatch):
    """An ONNX-style reverse-only model is checked against the reference, and a wrong
    result is caught."""
    model = Imported(Spec(kind, [[params(kind, 3, 4)]], directions=("reverse",)))
    x = RNG.standard_normal((3, 2, 5))
    L = np.array([5, 2])
    with fastrnn.checked():
        a, _, _ = model.forward(x, lengths=L)
    original = model._reverse._sequence

    def wrong(*args):
        out = original(*args)
        out[0][0, 0, 0] += 1e-3
        return out
    monkeypatch.setattr(model._reverse, "_sequence", wrong)
    with fastrnn.checked(), pytest.raises(fastrnn.CheckError):
        model.forward(x, lengths=L)
