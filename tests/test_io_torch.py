"""fastrnn.from_torch against PyTorch itself: every module, option and state, with mutants.

Each case checks two things: the layout map (the Spec run by the literal numpy oracle in
tests/_io_oracle.py equals torch's output) and the returned model (fastrnn.io.Imported
equals torch's output).
"""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch importer tests need torch")

import _io_oracle  # noqa: E402
import fastrnn  # noqa: E402
from fastrnn.io import _spec, _torch  # noqa: E402

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-10}, np.float32: {"rtol": 1e-4, "atol": 1e-5}}
MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def make(kind, n_x, n_a, *, dtype=np.float64, scale=1.0, seed=0, **options):
    torch.manual_seed(seed)
    module = MODULES[kind](n_x, n_a, **options)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(scale)
    module.eval()
    return module.double() if dtype == np.float64 else module


def torch_run(module, x, lengths=None, h0=None, c0=None, head=None):
    """torch's outputs in fastrnn's layouts: a (D·n_a, m, T), y, h_n (L·D, n_a, m), c_n."""
    bf = module.batch_first
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose((1, 2, 0) if bf else (2, 1, 0))))
    T = x.shape[2]
    if lengths is not None:
        xt = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.from_numpy(lengths),
                                                     batch_first=bf, enforce_sorted=False)
    state = None
    if h0 is not None:
        h = torch.from_numpy(np.ascontiguousarray(h0.transpose(0, 2, 1)))
        state = h if c0 is None else (h, torch.from_numpy(np.ascontiguousarray(
            c0.transpose(0, 2, 1))))
    with torch.no_grad():
        out, hn = module(xt, state)
        if lengths is not None:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=bf,
                                                            total_length=T)
        y = None if head is None else torch.softmax(head(out), dim=-1)
    perm = (2, 0, 1) if bf else (2, 1, 0)
    a = out.numpy().transpose(perm)
    y = None if y is None else y.numpy().transpose(perm)
    if y is not None and lengths is not None:  # fastrnn's predictions past a length are 0
        y[:, np.arange(T)[None, :] >= lengths[:, None]] = 0
    hn, cn = hn if isinstance(hn, tuple) else (hn, None)
    return a, y, hn.numpy().transpose(0, 2, 1), None if cn is None else \
        cn.numpy().transpose(0, 2, 1)


def assert_same(got, want, dtype, what):
    for g, w, name in zip(got, want, ("a", "y", "h_n", "c_n")):
        if w is None:
            assert g is None, f"{what}: {name} should be None"
            continue
        assert g.shape == w.shape, f"{what}: {name} shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, **TOL[dtype],
                                   err_msg=f"{what}: {name}")


def assert_differs(got, want, dtype):
    """A mutant: some output must be outside the tolerance."""
    tol = TOL[dtype]
    worst = max(np.max(np.abs(np.asarray(g, np.float64) - w) - tol["rtol"] * np.abs(w))
                for g, w in zip(got, want) if w is not None and g is not None)
    assert worst > tol["atol"], "the mutated map was not detected"


def flat(result):
    """Imported.forward's (a, y, state) as (a, y, h_n, c_n)."""
    a, y, s = result
    return (a, y) + (tuple(s) if isinstance(s, tuple) else (s, None))


def check(module, x, *, lengths=None, h0=None, c0=None, head=None, what=""):
    """The map (oracle) and the model against torch."""
    dtype = np.float64 if next(module.parameters()).dtype == torch.float64 else np.float32
    want = torch_run(module, x, lengths, h0, c0, head)
    spec = _torch.torch_spec(module, head)
    assert spec.dtype == dtype
    assert_same(_io_oracle.run(spec, x, lengths, h0, c0), want, dtype, "map " + what)
    model = fastrnn.from_torch(module, head)
    got = flat(model.forward(x, lengths=lengths, h0=h0, c0=c0))
    assert got[0].dtype == dtype and got[0].flags.c_contiguous
    assert_same(got, want, dtype, "model " + what)
    if spec.num_directions == 2:  # both directions on two threads
        got = flat(model.forward(x, lengths=lengths, h0=h0, c0=c0, n_threads=2))
        assert_same(got, want, dtype, "model, two threads " + what)
    return want


def inputs(n_x, n_a, m, T, LD, rng, *, lengths=False, states=False, lstm=False, dtype=np.float64):
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    L = rng.integers(1, T + 1, size=m) if lengths else None
    h0 = rng.standard_normal((LD, n_a, m)).astype(dtype) if states else None
    c0 = rng.standard_normal((LD, n_a, m)).astype(dtype) if states and lstm else None
    return x, L, h0, c0


KINDS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
STRUCTURES = list(itertools.product((1, 2), (False, True), (True, False), (False, True)))


@pytest.mark.parametrize("kind,nonlinearity", KINDS)
@pytest.mark.parametrize("num_layers,bidirectional,bias,batch_first", STRUCTURES)
def test_every_structure(kind, nonlinearity, num_layers, bidirectional, bias, batch_first):
    options = dict(num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                   batch_first=batch_first)
    if kind == "rnn":
        options["nonlinearity"] = nonlinearity
    module = make(kind, 3, 5, **options)
    rng = np.random.default_rng(num_layers + 2 * bidirectional)
    D = 2 if bidirectional else 1
    for lengths, states in ((False, False), (True, True), (True, False)):
        x, L, h0, c0 = inputs(3, 5, 4, 6, num_layers * D, rng, lengths=lengths,
                              states=states, lstm=kind == "lstm")
        check(module, x, lengths=L, h0=h0, c0=c0, what=f"{options} {lengths} {states}")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_saturating_and_head(kind, dtype):
    rng = np.random.default_rng(7)
    module = make(kind, 7, 4, num_layers=2, bidirectional=True, dtype=dtype, scale=6.0)
    head = torch.nn.Linear(8, 3)
    if dtype == np.float64:
        head = head.double()
    x, L, h0, c0 = inputs(7, 4, 5, 9, 4, rng, lengths=True, states=True, lstm=kind == "lstm",
                          dtype=dtype)
    x = x * 3
    check(module, x, lengths=L, h0=h0, c0=c0, head=head, what="saturating")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_long_sequence(kind):
    rng = np.random.default_rng(1)
    module = make(kind, 2, 3, bidirectional=True)
    x, L, h0, c0 = inputs(2, 3, 2, 1000, 2, rng, lengths=True, states=True,
                          lstm=kind == "lstm")
    check(module, x, lengths=L, h0=h0, c0=c0, what="T=1000")


def test_sizes_of_one_and_dropout():
    rng = np.random.default_rng(2)
    module = make("lstm", 1, 1, num_layers=3, dropout=0.5)
    x, L, h0, c0 = inputs(1, 1, 1, 1, 3, rng, lengths=True, states=True, lstm=True)
    check(module, x, lengths=L, h0=h0, c0=c0, what="sizes of one")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cells(kind, dtype):
    torch.manual_seed(3)
    cell = CELLS[kind](3, 4)
    cell = cell.double() if dtype == np.float64 else cell
    spec = _torch.torch_spec(cell)
    assert spec.cell and spec.num_layers == 1
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((5, 3, 2)).astype(dtype)  # 5 steps of (n_x, m)
    h = torch.zeros(2, 4, dtype=cell.weight_ih.dtype)
    state = (h, h) if kind == "lstm" else h
    model = fastrnn.from_torch(cell)
    ours = None
    for xt in xs:
        with torch.no_grad():
            state = cell(torch.from_numpy(xt.T.copy()), state)
        want = [s.numpy().T for s in (state if kind == "lstm" else (state,))]
        ours, y = model.step(xt, ours)
        assert y is None
        got = ours if kind == "lstm" else (ours,)
        for g, w in zip(got, want):
            assert g.shape == (4, 2)
            np.testing.assert_allclose(g, w, **TOL[dtype])
    # the whole sequence, via the oracle (map) and forward
    x = xs.transpose(1, 2, 0)
    a, _, h_n, _ = _io_oracle.run(spec, x)
    np.testing.assert_allclose(h_n[0], want[0], **TOL[dtype])


# -- mutants: each wrong map must be caught by the comparison above --------------------------

def mutant_outputs(module, monkeypatch, mutate_state=None, patch=None):
    state = _torch._numpy_state(module)
    if mutate_state is not None:
        mutate_state(state)
    if patch is not None:
        patch(monkeypatch)
    options = _torch.module_config(module)
    spec = _torch.spec_from_state(state=state, dtype=np.float64, **options)
    return spec


def _block(n, j):
    return slice(j * n, (j + 1) * n)


MUTANTS = {
    "lstm gates i,f swapped": ("lstm", None, lambda mp: mp.setitem(
        _torch.TORCH_GATES, "lstm", ("f", "i", "c", "o"))),
    "gru gates r,z swapped": ("gru", None, lambda mp: mp.setitem(
        _torch.TORCH_GATES, "gru", ("z", "r", "n"))),
    "lstm bias_hh dropped": ("lstm", lambda s: s.pop("bias_hh_l0"), None),
    "rnn bias_ih dropped": ("rnn", lambda s: s.pop("bias_ih_l1"), None),
    "gru b_hn folded into b_in": ("gru", lambda s: [
        s["bias_ih_l0"].__setitem__(_block(5, 2), s["bias_ih_l0"][_block(5, 2)]
                                    + s["bias_hh_l0"][_block(5, 2)]),
        s["bias_hh_l0"].__setitem__(_block(5, 2), 0)], None),
    "rnn weight_hh transposed": ("rnn", lambda s: s.__setitem__(
        "weight_hh_l0", s["weight_hh_l0"].T.copy()), None),
    "lstm _reverse forgotten": ("lstm", lambda s: [
        s.__setitem__(k, s[k.replace("_reverse", "")]) for k in list(s) if "_reverse" in k],
        None),
    "gru weight_ih and weight_hh swapped": ("gru", lambda s: s.update(
        weight_ih_l0=s["weight_hh_l0"], weight_hh_l0=s["weight_ih_l0"]), None),
    "gru bias_hh dropped": ("gru", lambda s: s.pop("bias_hh_l1_reverse"), None),
    "lstm [x; a_prev] column order": ("lstm", None, lambda mp: mp.setattr(
        _spec, "_stack", lambda Wh, Wx: np.hstack([Wx, Wh]))),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutants_fail(name, monkeypatch):
    kind, mutate_state, patch = MUTANTS[name]
    module = make(kind, 5, 5, num_layers=2, bidirectional=True, scale=1.5)
    rng = np.random.default_rng(4)
    x, L, h0, c0 = inputs(5, 5, 3, 6, 4, rng, lengths=True, states=True, lstm=kind == "lstm")
    want = torch_run(module, x, L, h0, c0)
    spec = mutant_outputs(module, monkeypatch, mutate_state, patch)
    a, y, h_n, c_n = _io_oracle.run(spec, x, L, h0, c0)
    assert_differs((a, h_n), want[::2], np.float64)


def test_mutant_through_the_model(monkeypatch):
    """The model path (not only the oracle) catches a swapped gate too."""
    module = make("lstm", 3, 4, bidirectional=True)
    x = np.random.default_rng(5).standard_normal((3, 2, 5))
    want = torch_run(module, x)
    monkeypatch.setitem(_torch.TORCH_GATES, "lstm", ("i", "f", "o", "c"))
    assert_differs(flat(fastrnn.from_torch(module).forward(x))[::2], want[::2], np.float64)


# -- bad input -------------------------------------------------------------------------------

def test_refuses_unsupported_modules():
    with pytest.raises(ValueError, match="proj_size"):
        fastrnn.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match="torch.nn.RNN, LSTM, GRU"):
        fastrnn.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fastrnn.from_torch("lstm")
    with pytest.raises(TypeError, match="float32 or all float64"):
        fastrnn.from_torch(torch.nn.LSTM(3, 4).half())
    with pytest.raises(TypeError, match="head must be a torch.nn.Linear"):
        fastrnn.from_torch(torch.nn.LSTM(3, 4), head=torch.nn.ReLU())
    with pytest.raises(ValueError, match="head must be"):
        _torch.torch_spec(torch.nn.LSTM(3, 4, bidirectional=True), head=torch.nn.Linear(4, 2))


def test_bad_call_arguments():
    model = fastrnn.from_torch(make("lstm", 3, 4, num_layers=2))
    x = np.zeros((3, 5, 6))
    with pytest.raises(ValueError, match=r"h0 must have shape \(L\*D, n_a, m\) = "
                                         r"\(2, 4, 5\)"):
        model.forward(x, h0=np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="c0 must have shape"):
        model.forward(x, c0=np.zeros((1, 4, 5)))
    with pytest.raises(ValueError, match=r"x must have shape \(n_x, m, T_x\)"):
        model.forward(np.zeros((4, 5, 6)))
    with pytest.raises(ValueError, match=r"lengths must have shape \(m,\)"):
        model.forward(x, lengths=np.ones(4, dtype=int))
    with pytest.raises(ValueError, match=r"lengths must be .* in \[1, T_x\] = \[1, 6\]"):
        model.forward(x, lengths=np.array([1, 2, 3, 7, 1]))
    with pytest.raises(ValueError, match="lengths must be"):
        model.forward(x, lengths=np.array([0, 2, 3, 6, 1]))
    with pytest.raises(TypeError, match="lengths must be"):
        model.forward(x, lengths=np.ones(5))
    with pytest.raises(TypeError, match="h0 must hold real numbers"):
        model.forward(x, h0=np.zeros((2, 4, 5), dtype=complex))
    with pytest.raises(TypeError, match="step needs a one-layer forward model"):
        model.step(x[:, :, 0])
    rnn = fastrnn.from_torch(make("rnn", 3, 4))
    with pytest.raises(TypeError, match="c0 is for LSTM layers only"):
        rnn.forward(x, c0=np.zeros((1, 4, 5)))
    with pytest.raises(ValueError, match=r"state must have shape \(n_a, m\) = \(4, 5\)"):
        rnn.step(x[:, :, 0], np.zeros((5, 4)))
    cell = fastrnn.from_torch(torch.nn.LSTMCell(3, 4).double())
    with pytest.raises(TypeError, match=r"state must be a pair"):
        cell.step(x[:, :, 0], np.zeros((4, 5)))


def test_empty_sequence_returns_initial_states():
    model = fastrnn.from_torch(make("lstm", 3, 4, bidirectional=True))
    h0 = np.random.default_rng(0).standard_normal((2, 4, 2))
    a, y, (h, c) = model.forward(np.zeros((3, 2, 0)), h0=h0)
    assert a.shape == (8, 2, 0) and y is None
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, 0)


def test_torch_not_needed_to_run(tmp_path):
    """The model holds numpy arrays only: it saves and runs without touching torch."""
    module = make("lstm", 3, 4, num_layers=2, bidirectional=True)
    model = fastrnn.from_torch(module, torch.nn.Linear(8, 2).double())
    for layer in model.spec.layers:
        for p in layer:
            assert all(type(v) is np.ndarray for v in p.values())
    model.save(tmp_path / "m.npz")
    x = np.random.default_rng(0).standard_normal((3, 2, 4))
    want = flat(model.forward(x))
    got = flat(fastrnn.load(tmp_path / "m.npz").forward(x))
    for g, w in zip(got, want):
        if w is not None:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cell_with_head_steps_and_runs_sequences(kind):
    torch.manual_seed(6)
    cell = CELLS[kind](3, 4).double()
    head = torch.nn.Linear(4, 2).double()
    model = fastrnn.from_torch(cell, head)
    x = np.random.default_rng(6).standard_normal((3, 2, 4))
    state, h = None, None
    for t in range(4):
        with torch.no_grad():
            h = cell(torch.from_numpy(x[:, :, t].T.copy()), h)
            want_y = torch.softmax(head(h[0] if kind == "lstm" else h), dim=-1).numpy().T
        state, y = model.step(x[:, :, t], state)
        np.testing.assert_allclose(y, want_y, **TOL[np.float64])
    a, y_seq, final = model.forward(x)
    np.testing.assert_allclose(y_seq[:, :, -1], want_y, **TOL[np.float64])
    want_h = (h[0] if kind == "lstm" else h).numpy().T
    np.testing.assert_allclose(a[:, :, -1], want_h, **TOL[np.float64])
    np.testing.assert_allclose((final[0] if kind == "lstm" else final)[0], want_h,
                               **TOL[np.float64])
