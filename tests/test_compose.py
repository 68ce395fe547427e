"""Optional output layers, variable lengths, initial states, stacked and bidirectional layers.

Every result is compared with a composition of the literal reference written here, one
layer and one direction at a time (``fastrnn.reference.layer_forward``, itself one example
and one step at a time), at the dtype's tolerance; and with PyTorch (``pack_padded_sequence``,
``num_layers``, ``bidirectional``, ``h_0``/``c_0``) when it is installed.  Bad lengths and
states are refused with errors naming the argument and the expected shape.
"""
import numpy as np
import pytest

import fastrnn
from _util import assert_close, f64, layer_params, ref
from fastrnn import reference

DTYPES = [np.float64, np.float32]
KINDS = ["rnn", "lstm", "gru"]
MODEL = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}
FUNCTION = {"rnn": "rnn_forward", "lstm": "lstm_forward", "gru": "gru_forward"}


# ------------------------------------------------------------------ optional output layers

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_no_output_layer_returns_states_and_none(kind, dtype):
    rng = np.random.default_rng(0)
    p = layer_params(kind, rng, 4, 6, 3, dtype)
    bare = layer_params(kind, rng, 4, 6, 0, dtype)
    bare.update({k: v for k, v in p.items() if k in bare})  # the same layer, no head
    x = rng.standard_normal((4, 5, 7)).astype(dtype)
    a0 = rng.standard_normal((6, 5)).astype(dtype)
    fn = getattr(fastrnn, FUNCTION[kind])
    with_head, without = fn(x, a0, p), fn(x, a0, bare)
    assert without[1] is None
    np.testing.assert_array_equal(without[0], with_head[0])
    assert_close(without[0], ref(FUNCTION[kind], x, a0, bare)[0], dtype)
    cell = getattr(fastrnn, FUNCTION[kind].replace("_forward", "_cell_forward"))
    states = (x[:, :, 0], a0) + ((a0,) if kind == "lstm" else ())
    out = cell(*states, bare)
    assert out[2 if kind == "lstm" else 1] is None
    model = MODEL[kind](bare)
    assert not model.has_head and model.n_y == 0
    out = model.forward(x, a0)
    assert out[1] is None
    np.testing.assert_array_equal(out[0], with_head[0])
    _, yt = model.step(x[:, :, 0])
    assert yt is None
    with fastrnn.checked():
        model.forward(x, a0)
        fn(x, a0, bare)


# ------------------------------------------------------------------ one layer, lengths

def _x_lengths(rng, n_x, m, T, dtype):
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=m)
    lengths[0] = T
    if m > 1:
        lengths[1] = 1
    return x, lengths


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_y", [0, 3])
@pytest.mark.parametrize("size", [(5, 7, 6, 9), (80, 112, 12, 40), (700, 24, 3, 120)],
                         ids=["small", "split", "chunks"])
def test_layer_lengths_match_reference(states_out, kind, dtype, n_y, size):
    # "split": input projections of 4M multiply-adds and more (the RNN's, and the GRU's
    # below 16 examples) run per example over its own steps only; "chunks": X^T of one
    # example's steps takes several of the projection's chunks (24 columns of 700 float64
    # inputs, 72 float32), with lengths and without
    rng = np.random.default_rng(1)
    n_x, n_a, m, T = size
    p = layer_params(kind, rng, n_x, n_a, n_y, dtype)
    x, lengths = _x_lengths(rng, n_x, m, T, dtype)
    x[:, 1, 1:] = np.nan  # padding never reaches a result
    states = [rng.standard_normal((n_a, m)).astype(dtype)
              for _ in range(2 if kind == "lstm" else 1)]
    out = MODEL[kind](p).forward(x, *states, lengths=lengths)
    a, y, c, _, _ = reference.layer_forward(kind, f64(x), f64(p), lengths, False,
                                            *map(f64, states))
    assert_close(out[0], a, dtype)
    if n_y:
        assert_close(out[1], y, dtype)
    else:
        assert out[1] is None
    if kind == "lstm":
        assert_close(out[2], c, dtype)
    assert not np.isnan(out[0]).any()
    if size[0] == 700:
        xs = x[:, :1]
        got = MODEL[kind](p).forward(xs, *[v[:, :1] for v in states])
        want = reference.layer_forward(kind, f64(xs), f64(p), None, False,
                                       *[f64(v[:, :1]) for v in states])
        assert_close(got[0], want[0], dtype)
    with fastrnn.checked():
        MODEL[kind](p).forward(x, *states, lengths=lengths)
    # full lengths are the padded call
    full = MODEL[kind](p).forward(x[:, :1], *[s[:, :1] for s in states], lengths=[T])
    np.testing.assert_array_equal(
        full[0], MODEL[kind](p).forward(x[:, :1], *[s[:, :1] for s in states])[0])


# ------------------------------------------------------------------ stacks

def _make_stack(kind, rng, n_x, n_a, layers, bidirectional, dtype, n_y=0):
    """A Stack and its parameters: [(fwd params, bwd params or None)] per layer, head."""
    return _stack_of(kind, rng, n_x, [(n_a, bidirectional)] * layers, dtype, n_y)


def _mixed_stack(kind, rng, n_x, dtype, n_y=0):
    """A Stack of a bidirectional layer (n_a 4), a single direction (5) and a bidirectional
    layer (2), with its parameters as _make_stack gives them."""
    return _stack_of(kind, rng, n_x, [(4, True), (5, False), (2, True)], dtype, n_y)


def _stack_of(kind, rng, n_x, layers, dtype, n_y):
    """_make_stack of layers given as (n_a, bidirectional) pairs."""
    made, params, n_in = [], [], n_x
    for n_a, both in layers:
        pf = layer_params(kind, rng, n_in, n_a, 0, dtype)
        pb = layer_params(kind, rng, n_in, n_a, 0, dtype) if both else None
        params.append((pf, pb))
        made.append(fastrnn.Bidirectional(MODEL[kind](pf), MODEL[kind](pb)) if both
                    else MODEL[kind](pf))
        n_in = n_a * (2 if both else 1)
    head = None
    if n_y:
        head = {"Wy": rng.standard_normal((n_y, n_in)).astype(dtype),
                "by": rng.standard_normal((n_y, 1)).astype(dtype)}
    return fastrnn.Stack(made, head=head), params, head


def _ref_stack(kind, params, head, x, lengths, h0, c0):
    """The stack composed from reference.layer_forward: h, y, h_n (, c_n)."""
    h, k, h_n, c_n = f64(x), 0, [], []
    for pf, pb in params:
        outs = []
        for p, reverse in ((pf, False), (pb, True)):
            if p is None:
                continue
            a, _, _, a_last, c_last = reference.layer_forward(
                kind, h, f64(p), lengths, reverse, None if h0 is None else f64(h0[k]),
                None if c0 is None else f64(c0[k]))
            outs.append(a)
            h_n.append(a_last)
            c_n.append(c_last)
            k += 1
        h = np.concatenate(outs, axis=0)
    y = None
    if head is not None:
        T = h.shape[2]
        y = np.zeros((head["Wy"].shape[0],) + h.shape[1:])
        for t in range(T):
            y[:, :, t] = reference.softmax(f64(head["Wy"]) @ h[:, :, t] + f64(head["by"]))
        if lengths is not None:
            y[:, np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = 0
    same = len({v.shape for v in h_n}) == 1
    h_n, c_n = (np.stack(h_n), np.stack(c_n) if kind == "lstm" else None) if same else (h_n, c_n)
    return h, y, h_n, (c_n if kind == "lstm" else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_matches_reference(kind, dtype, bidirectional):
    rng = np.random.default_rng(2)
    n_x, n_a, m, T, L = 3, 5, 4, 7, 2
    D = 2 if bidirectional else 1
    stack, params, head = _make_stack(kind, rng, n_x, n_a, L, bidirectional, dtype, n_y=4)
    x, lengths = _x_lengths(rng, n_x, m, T, dtype)
    h0 = rng.standard_normal((L * D, n_a, m)).astype(dtype)
    c0 = rng.standard_normal((L * D, n_a, m)).astype(dtype) if kind == "lstm" else None
    for lens in (None, lengths):
        h, y, state = stack.forward(x, lens, h0, c0)
        want = _ref_stack(kind, params, head, x, lens, h0, c0)
        assert h.shape == (D * n_a, m, T) and y.shape == (4, m, T)
        assert_close(h, want[0], dtype)
        assert_close(y, want[1], dtype)
        if kind == "lstm":
            assert_close(state[0], want[2], dtype)
            assert_close(state[1], want[3], dtype)
        else:
            assert_close(state, want[2], dtype)
        # h0 as a list of per-layer arrays; two threads
        h2, _, _ = stack.forward(x, lens, list(h0), None if c0 is None else list(c0),
                                 n_threads=2)
        assert_close(h2, want[0], dtype)
        with fastrnn.checked():
            stack.forward(x, lens, h0, c0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lengths", ["none", "unsorted", "sorted", "full", "int32", "list"])
def test_stack_fast_chain_is_the_validated_route(kind, dtype, lengths):
    # forward(x[, lengths]) alone takes the compiled chain (the batch sorted by length once
    # for every layer); checked mode takes the validated route (each direction sorting,
    # and reversing within lengths, for itself): the same bits, and the reference's values
    rng = np.random.default_rng(11)
    n_x, n_a, m, T = 3, 5, 6, 7
    lens = {"none": None, "unsorted": np.array([3, 7, 1, 7, 2, 5]),
            "sorted": np.array([7, 6, 6, 4, 2, 1]), "full": np.full(m, T),
            "int32": np.array([2, 7, 1, 3, 3, 6], dtype=np.int32),
            "list": [4, 7, 2, 1, 6, 5]}[lengths]
    bidir, bidir_params, head = _make_stack(kind, rng, n_x, n_a, 2, True, dtype, n_y=4)
    deep, deep_params, _ = _make_stack(kind, rng, n_x, n_a, 3, False, dtype)
    # layers of both sorts and of different sizes: the final states come back as a list
    mixed, mixed_params, mixed_head = _mixed_stack(kind, rng, n_x, dtype, n_y=3)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    for s, p, hd in ((bidir, bidir_params, head), (deep, deep_params, None),
                     (mixed, mixed_params, mixed_head)):
        fast = s.forward(x, lens)
        # the compiled chain takes an integer array (a list goes the validated route)
        assert (s._chain(x, 1, lens) is None) == isinstance(lens, list)
        with fastrnn.checked():
            slow = s.forward(x, lens)
        want = _ref_stack(kind, p, hd, x, lens, None, None)
        got = [fast[0], fast[1]] + (list(fast[2]) if kind == "lstm" else [fast[2]])
        for k, (g, v, w) in enumerate(zip(got, [slow[0], slow[1]] + (
                list(slow[2]) if kind == "lstm" else [slow[2]]), want)):
            if w is None:
                assert g is None and v is None
                continue
            # final states of layers of different sizes: a list of (n_a, m) arrays
            for gg, vv, ww in (zip(g, v, w) if isinstance(g, list) else ((g, v, w),)):
                np.testing.assert_array_equal(gg, vv, err_msg=f"output {k}")
                assert_close(gg, ww, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_y", [0, 3])
def test_model_lengths_fast_route_is_the_validated_route(kind, dtype, n_y):
    # forward(x, lengths=...) with zero initial states takes the compiled route (the batch
    # sorted by length and back); checked mode the validated one: the same bits
    rng = np.random.default_rng(12)
    n_x, n_a, m, T = 4, 6, 5, 8
    model = MODEL[kind](layer_params(kind, rng, n_x, n_a, n_y, dtype))
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    for lengths in (np.array([3, 8, 1, 8, 5]), np.array([8, 8, 6, 2, 1], dtype=np.int32),
                    np.full(m, T), [2, 8, 3, 3, 7]):
        fast = model.forward(x, lengths=lengths)
        # the compiled route takes an integer array (a list goes the validated route)
        states = (None,) * (2 if kind == "lstm" else 1)
        assert (model._fast_forward(x, states, lengths, 1) is None) == isinstance(lengths, list)
        with fastrnn.checked():
            slow = model.forward(x, lengths=lengths)
        assert len(fast) == len(slow) == (3 if kind == "lstm" else 2)
        for k, (g, v) in enumerate(zip(fast, slow)):
            if n_y == 0 and k == 1:
                assert g is None and v is None
            else:
                np.testing.assert_array_equal(g, v, err_msg=f"output {k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_lengths_fast_route_returns_none_of_its_work_arrays(kind, dtype):
    # The compiled route keeps the sorted input and output in per-thread work arrays: two
    # calls in a row with other unsorted lengths leave the first call's outputs as they were;
    # the LSTM also on two threads (its slices write the sorted output's work array), the
    # same bits as on one and as the validated route.
    rng = np.random.default_rng(29)
    n_x, n_a, m, T = 3, 40, 24, 16
    model = MODEL[kind](layer_params(kind, rng, n_x, n_a, 3, dtype))
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    first_lengths, second_lengths = rng.integers(1, T + 1, m), rng.integers(1, T + 1, m)
    states = (None,) * (2 if kind == "lstm" else 1)
    for lengths in (first_lengths, second_lengths):
        assert model._fast_forward(x, states, lengths, 1) is not None
    first = model.forward(x, lengths=first_lengths)
    kept = [v.copy() for v in first]
    second = model.forward(x, lengths=second_lengths)
    with fastrnn.checked():
        want = model.forward(x, lengths=first_lengths)
    for k, (g, v, w) in enumerate(zip(first, kept, want)):
        np.testing.assert_array_equal(g, v, err_msg=f"output {k} changed by the next call")
        np.testing.assert_array_equal(g, w, err_msg=f"output {k}")
    assert not any(np.shares_memory(u, v) for u in first for v in second)
    if kind == "lstm":
        # (the LSTM's threaded slices need the panel GEMM: not at the SSE2 level)
        from fastrnn._kernels import _core
        threaded = model._fast_forward(x, states, second_lengths, 2)
        assert (threaded is not None) == _core.panel_gemm_enabled()
        two = model.forward(x, lengths=second_lengths, n_threads=2)
        for k, (g, w) in enumerate(zip(two, second)):
            if threaded is not None:  # the same kernels on slices: the same bits
                np.testing.assert_array_equal(g, w, err_msg=f"output {k}, two threads")
            else:  # the validated route's slices go to BLAS, whose sums vary with the slice
                assert_close(g, w, dtype, err_msg=f"output {k}, two threads")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_bidirectional_two_threads_is_bitwise_one_thread(dtype, kind):
    # (enough work for the second thread: see test_bidirectional_directions_run_on_two_threads)
    rng = np.random.default_rng(3)
    stack, _, _ = _make_stack(kind, rng, 6, 64, 1, True, dtype)
    layer = stack.layers[0]
    x, lengths = _x_lengths(rng, 6, 5, 90, dtype)
    one = layer.forward(x, lengths)
    two = layer.forward(x, lengths, n_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[2], two[2])
    assert one[1] is None


_MANY_THREADS = """
import numpy as np, fastrnn
rng = np.random.default_rng(5)
def p():
    return {"Wax": rng.standard_normal((64, 5)), "Waa": rng.standard_normal((64, 64)) * 0.1,
            "ba": rng.standard_normal((64, 1))}
layer = fastrnn.Bidirectional(fastrnn.RNN(p()), fastrnn.RNN(p()))
x = rng.standard_normal((5, 40, 12))
one = layer.forward(x)[0]
for n in (2, 3, 4, 5, 6, 8):  # (without the panel GEMM, slices go to BLAS: other sums)
    np.testing.assert_allclose(layer.forward(x, n_threads=n)[0], one, rtol=1e-12,
                               atol=1e-12, err_msg=f"n_threads={n}")
print("done")
"""


def test_bidirectional_on_many_threads_finishes(tmp_path):
    """Both directions split their batches (n_threads 4 and 5 once deadlocked: the backward
    direction, a pool task itself, waited for its slices queued behind it on the same
    one-worker pool).  In a child process, so that a deadlock fails the test instead of
    hanging the run; the bound is for a hang, not a speed."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _MANY_THREADS], capture_output=True,
                         text=True, timeout=180, cwd=tmp_path)  # the installed package
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"


def test_long_bidirectional_stack_with_lengths():
    rng = np.random.default_rng(4)
    stack, params, _ = _make_stack("gru", rng, 3, 4, 2, True, np.float64)
    x = rng.standard_normal((3, 3, 1000))
    lengths = np.array([1000, 1, 537])
    h, _, h_n = stack.forward(x, lengths)
    want = _ref_stack("gru", params, None, x, lengths, None, None)
    assert_close(h, want[0], np.float64)
    assert_close(h_n, want[2], np.float64)


def test_layers_of_different_sizes():
    rng = np.random.default_rng(5)
    p0 = layer_params("lstm", rng, 3, 6, 0)
    p1 = layer_params("lstm", rng, 6, 2, 0)
    stack = fastrnn.Stack([fastrnn.LSTM(p0), fastrnn.LSTM(p1)])
    x = rng.standard_normal((3, 2, 5))
    h0 = [rng.standard_normal((6, 2)), rng.standard_normal((2, 2))]
    h, y, (h_n, c_n) = stack.forward(x, None, h0)
    want = _ref_stack("lstm", [(p0, None), (p1, None)], None, x, None, h0, None)
    assert y is None and isinstance(h_n, list) and isinstance(c_n, list)
    assert_close(h, want[0], np.float64)
    for got, wanted in zip(h_n + c_n, want[2] + want[3]):
        assert_close(got, wanted, np.float64)
    with pytest.raises(TypeError,
                       match=r"h0 must be a list of 2 arrays \(n_a, m\) with n_a = \[6, 2\]"):
        stack.forward(x, None, np.zeros((2, 6, 2)))


# ------------------------------------------------------------------ PyTorch

def _torch_stack(torch, kind, params, n_x, n_a, bidirectional, tdtype):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    module = cls(n_x, n_a, num_layers=len(params), bidirectional=bidirectional).to(tdtype)
    state = {}
    for k, pair in enumerate(params):
        for p, sfx in zip(pair, (f"_l{k}", f"_l{k}_reverse")):
            if p is None:
                continue
            p = {key: np.asarray(v, dtype=np.float64) for key, v in p.items()}
            if kind == "rnn":
                w_ih, w_hh, b_ih = p["Wax"], p["Waa"], p["ba"][:, 0]
                b_hh = np.zeros_like(b_ih)
            elif kind == "gru":
                w_ih = np.concatenate([p[f"W{g}x"] for g in "rzn"])
                w_hh = np.concatenate([p[f"W{g}a"] for g in "rzn"])
                b_ih = np.concatenate([p[f"b{g}x"] for g in "rzn"])[:, 0]
                b_hh = np.concatenate([p[f"b{g}a"] for g in "rzn"])[:, 0]
            else:
                n = p["Wf"].shape[0]
                w = np.concatenate([p[f"W{g}"] for g in "ifco"])
                w_ih, w_hh = w[:, n:], w[:, :n]
                b_ih = np.concatenate([p[f"b{g}"] for g in "ifco"])[:, 0]
                b_hh = np.zeros_like(b_ih)
            for name, v in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih),
                            ("bias_hh", b_hh)):
                state[name + sfx] = torch.tensor(v, dtype=tdtype)
    module.load_state_dict(state)
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_stack_matches_torch_packed_sequences(kind, dtype):
    torch = pytest.importorskip("torch", reason="torch is the optional peer for stacks")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    rng = np.random.default_rng(6)
    n_x, n_a, m, T = 4, 6, 5, 8
    stack, params, _ = _make_stack(kind, rng, n_x, n_a, 2, True, dtype)
    x, lengths = _x_lengths(rng, n_x, m, T, dtype)
    h0 = rng.standard_normal((4, n_a, m)).astype(dtype)
    c0 = rng.standard_normal((4, n_a, m)).astype(dtype)
    module = _torch_stack(torch, kind, params, n_x, n_a, True, tdtype)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(x.transpose(2, 1, 0).copy()), torch.tensor(lengths), enforce_sorted=False)
    th0, tc0 = (torch.tensor(v.transpose(0, 2, 1).copy()) for v in (h0, c0))
    with torch.no_grad():
        out, hn = module(packed, (th0, tc0) if kind == "lstm" else th0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    h, y, state = stack.forward(x, lengths, h0, c0 if kind == "lstm" else None)
    assert y is None
    assert_close(h, f64(out.numpy().transpose(2, 1, 0)), dtype)
    if kind == "lstm":
        assert_close(state[0], f64(hn[0].numpy().transpose(0, 2, 1)), dtype)
        assert_close(state[1], f64(hn[1].numpy().transpose(0, 2, 1)), dtype)
    else:
        assert_close(state, f64(hn.numpy().transpose(0, 2, 1)), dtype)


# ------------------------------------------------------------------ bad input

def test_bad_lengths_are_named():
    rng = np.random.default_rng(7)
    model = fastrnn.GRU(layer_params("gru", rng, 3, 4))
    stack = fastrnn.Stack([model])
    x = rng.standard_normal((3, 5, 6))
    for run in (lambda L: model.forward(x, lengths=L), lambda L: stack.forward(x, L)):
        with pytest.raises(ValueError, match=r"lengths.*\[1, T_x\] = \[1, 6\].*0"):
            run([0, 1, 2, 3, 4])
        with pytest.raises(ValueError, match=r"lengths.*\[1, T_x\] = \[1, 6\].*7"):
            run([1, 1, 2, 3, 7])
        with pytest.raises(ValueError, match=r"lengths must have shape \(m,\) = \(5,\).*\(4,\)"):
            run([1, 1, 2, 3])
        with pytest.raises(ValueError, match=r"lengths must have shape \(m,\) = \(5,\)"):
            run(np.ones((5, 1), dtype=int))
        with pytest.raises(TypeError, match="lengths.*float64"):
            run(np.ones(5))
        with pytest.raises(TypeError, match="lengths.*bool"):
            run(np.ones(5, dtype=bool))


def test_bad_states_and_layers_are_named():
    rng = np.random.default_rng(8)
    gru = fastrnn.GRU(layer_params("gru", rng, 3, 4))
    lstm = fastrnn.LSTM(layer_params("lstm", rng, 3, 4))
    bi = fastrnn.Bidirectional(lstm, fastrnn.LSTM(layer_params("lstm", rng, 3, 4)))
    x = rng.standard_normal((3, 5, 6))
    with pytest.raises(ValueError, match=r"h0 must have shape \(L\*D, n_a, m\) = \(2, 4, 5\)"):
        bi.forward(x, h0=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"c0\[1\] must have shape \(n_a, m\) = \(4, 5\)"):
        bi.forward(x, c0=[np.zeros((4, 5)), np.zeros((5, 4))])
    with pytest.raises(ValueError, match="h0 must hold 2 arrays"):
        bi.forward(x, h0=[np.zeros((4, 5))])
    with pytest.raises(TypeError, match="c0 is for LSTM"):
        fastrnn.Stack([gru]).forward(x, c0=np.zeros((1, 4, 5)))
    with pytest.raises(ValueError, match=r"a0 must have shape \(n_a, m\) = \(4, 5\)"):
        gru.forward(x, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="output layer"):
        fastrnn.Stack([fastrnn.GRU(layer_params("gru", rng, 3, 4, 2))])
    with pytest.raises(ValueError, match="same kind"):
        fastrnn.Bidirectional(gru, lstm)
    with pytest.raises(ValueError, match=r"layers\[1\] must take n_x = 8"):
        fastrnn.Stack([bi, lstm])
    with pytest.raises(ValueError, match="one kind"):
        fastrnn.Stack([gru, fastrnn.LSTM(layer_params("lstm", rng, 4, 4))])
    with pytest.raises(ValueError, match=r"head\['Wy'\] must have shape \(n_y, n_out\)"):
        fastrnn.Stack([bi], head={"Wy": np.zeros((2, 4)), "by": np.zeros((2, 1))})
    with pytest.raises(KeyError, match="by"):
        fastrnn.Stack([bi], head={"Wy": np.zeros((2, 8))})
    with pytest.raises(TypeError, match="RNN, LSTM or GRU"):
        fastrnn.Stack(["gru"])


# ------------------------------------------------------------------ checked mode, threads

def _perturbed(real, index, delta):
    def wrapped(*args, **kwargs):
        out = list(real(*args, **kwargs))
        out[index] = out[index].copy()
        out[index].flat[0] += delta * (1 + abs(out[index].flat[0]))
        return tuple(out)
    return wrapped


@pytest.mark.parametrize("dtype", DTYPES)
def test_checked_mode_catches_disagreement(monkeypatch, dtype):
    rng = np.random.default_rng(9)
    p = layer_params("gru", rng, 3, 4, 2, dtype)
    x, lengths = _x_lengths(rng, 3, 5, 6, dtype)
    a0 = rng.standard_normal((4, 5)).astype(dtype)
    model = fastrnn.GRU(p)
    stack, _, _ = _make_stack("lstm", rng, 3, 4, 2, True, dtype, n_y=2)
    calls = {
        "gru_forward": lambda: fastrnn.gru_forward(x, a0, p),
        "gru_cell_forward": lambda: fastrnn.gru_cell_forward(x[:, :, 0], a0, p),
        "GRU.step": lambda: model.step(x[:, :, 0], a0),
        "GRU.forward": lambda: model.forward(x, a0, lengths=lengths),
        "Stack.forward": lambda: stack.forward(x, lengths),
    }
    targets = {"gru_forward": ("gru_forward", 0), "gru_cell_forward": ("gru_cell_forward", 1),
               "GRU.step": ("gru_cell_forward", 0), "GRU.forward": ("layer_forward", 0),
               "Stack.forward": ("layer_forward", 3)}
    for name, call in calls.items():
        with fastrnn.checked():
            call()  # agrees
        ref_name, index = targets[name]
        with monkeypatch.context() as mp:
            mp.setattr(reference, ref_name, _perturbed(getattr(reference, ref_name), index,
                                                       1e-6 if dtype == np.float64 else 1e-2))
            call()  # unchecked: the reference is not consulted
            with fastrnn.checked(), pytest.raises(fastrnn.CheckError, match=name):
                call()


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_directions_run_on_two_threads(monkeypatch, kind):
    # With n_threads=2 the backward direction is handed to a second thread before the
    # forward one starts on the calling thread (events, not times, are asserted); a layer
    # with less work than a hand-off costs stays on the calling thread.
    import threading
    from fastrnn import _api, _models
    rng = np.random.default_rng(10)
    n_x, n_a, m, T = 3, 48, 8, 80
    stack, _, _ = _make_stack(kind, rng, n_x, n_a, 1, True, np.float64)
    assert m * T * 2 * n_a * (n_a + n_x) >= _api._MIN_THREADED_WORK  # even for the RNN
    x = rng.standard_normal((n_x, m, T))
    events = []
    real = _models._Model._call  # every route's kernel call for these inputs

    def spy(self, x, states, sequence, n_threads=1, active=None, reverse=False, *args, **kw):
        events.append(("backward" if reverse else "forward", threading.get_ident()))
        return real(self, x, states, sequence, n_threads, active, reverse, *args, **kw)

    monkeypatch.setattr(_models._Model, "_call", spy)
    stack.forward(x, n_threads=2)
    directions = dict(events)
    assert set(directions) == {"forward", "backward"}
    assert directions["forward"] == threading.get_ident()
    assert directions["backward"] != threading.get_ident()
    events.clear()
    stack.forward(x)
    assert dict(events) == {"forward": threading.get_ident(), "backward": threading.get_ident()}
    events.clear()
    stack.forward(x[:, :1, :2], n_threads=2)
    assert dict(events) == {"forward": threading.get_ident(), "backward": threading.get_ident()}


def test_models_and_stacks_pickle():
    import copy
    import pickle
    rng = np.random.default_rng(11)
    stack, _, _ = _make_stack("lstm", rng, 3, 4, 2, True, np.float32, n_y=2)
    layer = stack.layers[0]
    x, lengths = _x_lengths(rng, 3, 4, 5, np.float32)

    def same(got, want):
        np.testing.assert_array_equal(got[0], want[0])
        for g, w in zip(got[1:], want[1:]):  # y (or None), then the final states
            if w is None:
                assert g is None
                continue
            for gg, ww in zip(g if isinstance(g, tuple) else (g,),
                              w if isinstance(w, tuple) else (w,)):
                np.testing.assert_array_equal(gg, ww)

    for obj in (stack, layer):
        for lens in (None, lengths):
            want = obj.forward(x, lens)
            same(pickle.loads(pickle.dumps(obj)).forward(x, lens), want)
            same(copy.deepcopy(obj).forward(x, lens), want)
            # as pickled by an earlier version: without the state made at construction (a
            # Bidirectional with or without the Stack it made on its first call)
            for drop in (("_plan", "_starts"),) if obj is stack else ((), ("_stack",)):
                old = {k: v for k, v in vars(obj).items() if k not in drop}
                if obj is layer and not drop:
                    old["_stack"] = fastrnn.Stack([layer])
                    for k in ("_plan", "_starts"):
                        del old["_stack"].__dict__[k]
                fresh = object.__new__(type(obj))
                fresh.__setstate__(old)
                same(fresh.forward(x, lens), want)
    # a Bidirectional's Stack does not refer back to it: freed without the collector
    import gc
    import weakref
    gc.disable()
    try:
        probe = fastrnn.Bidirectional(*layer.directions)
        ref_ = weakref.ref(probe)
        del probe
        assert ref_() is None
    finally:
        gc.enable()
    gru = fastrnn.GRU(layer_params("gru", rng, 3, 4, 0))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(gru)).forward(x)[0],
                                  gru.forward(x)[0])


# ------------------------------------------------------------------ ReLU RNN

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_y", [0, 3])
def test_relu_rnn_matches_reference_and_torch(dtype, n_y):
    rng = np.random.default_rng(12)
    n_x, n_a, m, T = 5, 7, 4, 9
    p = layer_params("rnn", rng, n_x, n_a, n_y, dtype)
    x, lengths = _x_lengths(rng, n_x, m, T, dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    model = fastrnn.RNN(p, nonlinearity="relu")
    assert "relu" in repr(model)
    a, y = model.forward(x, a0)
    a_ref, y_ref, _ = ref("rnn_forward", x, a0, p, "relu")
    assert (a_ref == 0).any() and (a_ref > 0).any()  # both sides of the kink
    assert_close(a, a_ref, dtype)
    if n_y:
        assert_close(y, y_ref, dtype)
    a_tanh = ref("rnn_forward", x, a0, p)[0]
    assert not np.allclose(f64(a), a_tanh, rtol=1e-4, atol=1e-5)
    a2, _ = model.forward(x, a0, n_threads=2)
    assert_close(a2, a_ref, dtype)
    state, _ = model.step(x[:, :, 0], a0)
    assert_close(state, a_ref[:, :, 0], dtype)
    out = model.forward(x, a0, lengths=lengths)
    want = reference.layer_forward("rnn", f64(x), f64(p), lengths, False, f64(a0),
                                   nonlinearity="relu")
    assert_close(out[0], want[0], dtype)
    with fastrnn.checked():
        model.forward(x, a0)
        model.forward(x, a0, lengths=lengths)
        model.step(x[:, :, 0], a0)
        fastrnn.Stack([fastrnn.Bidirectional(fastrnn.RNN(layer_params("rnn", rng, n_x, n_a),
                                                         nonlinearity="relu"),
                                             fastrnn.RNN(layer_params("rnn", rng, n_x, n_a),
                                                         nonlinearity="relu"))]
                      ).forward(x, lengths)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        fastrnn.RNN(p, nonlinearity="sigmoid")
    torch = pytest.importorskip("torch", reason="torch is the optional peer")
    if n_y:
        return
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    module = torch.nn.RNN(n_x, n_a, nonlinearity="relu").to(tdtype)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(p["Wax"]))
        module.weight_hh_l0.copy_(torch.tensor(p["Waa"]))
        module.bias_ih_l0.copy_(torch.tensor(p["ba"][:, 0]))
        module.bias_hh_l0.zero_()
        out, _ = module(torch.tensor(x.transpose(2, 1, 0).copy()),
                        torch.tensor(a0.T.copy())[None])
    assert_close(a, f64(out.numpy().transpose(2, 1, 0)), dtype)


# ------------------------------------------------------------------ lengths in the RNN kernel

RNN_LENGTHS = {  # T_x, lengths
    "ties": (8, [3, 8, 1, 5, 8, 2, 7, 1, 4]),  # ties at T_x and at 1, every mt from 9 to 1
    "all_T": (6, [6, 6, 6]),                   # the padded call
    "all_short": (6, [4, 4, 4, 4]),            # every example ends before T_x
    "m=1": (5, [2]),
    "m=1_T": (5, [5]),
    "ones": (4, [1, 1, 4]),                    # a single step for most examples
    "in_order": (7, [7, 6, 6, 4, 2, 1]),       # already longest first: no copy forwards
}


def _rnn_lengths_case(name, dtype, n_y, rng):
    T, lengths = RNN_LENGTHS[name]
    lengths = np.array(lengths)
    n_x, n_a, m = 5, 37, len(lengths)  # n_a not a multiple of the panel height
    p = layer_params("rnn", rng, n_x, n_a, n_y, dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    x[:, np.arange(T)[None, :] >= lengths[:, None]] = np.nan  # never reaches a result
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    return p, x, a0, lengths


@pytest.mark.parametrize("name", RNN_LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_lengths_skip_the_padding(simd_level, recurrent_path, monkeypatch, dtype, name):
    # The RNN runs only the examples still going at each step (batch sorted by length):
    # both directions, tanh and ReLU, with and without an output layer, one and two threads,
    # NaN in the padding, every SIMD level and recurrent path, against the reference one
    # example and one step at a time.
    from fastrnn import _models
    rng = np.random.default_rng(15)
    seen = []
    real = _models._Model._kernel

    def spy(self, x, states, n_threads=1, active=None, reverse=False, out=None):
        seen.append(active)
        return real(self, x, states, n_threads, active, reverse, out)

    monkeypatch.setattr(_models._Model, "_kernel", spy)
    for nonlinearity, n_y in (("tanh", 3), ("relu", 0)):
        p, x, a0, lengths = _rnn_lengths_case(name, dtype, n_y, rng)
        model = fastrnn.RNN(p, nonlinearity=nonlinearity)
        for reverse in (False, True):
            want = reference.layer_forward("rnn", f64(x), f64(p), lengths, reverse, f64(a0),
                                           nonlinearity=nonlinearity)
            for n_threads, out in ((1, None), (2, None), (1, True), (2, True)):
                if out:  # a bidirectional layer's half
                    out = np.full((2,) + a0.shape + x.shape[2:], np.nan, dtype)[1]
                seen.clear()
                a, y, _, (last,) = model._sequence(x, [a0], lengths, reverse, n_threads, out)
                # the padding is skipped exactly when some example ends before T_x
                assert [v is not None for v in seen] == [lengths.min() < x.shape[2]]
                assert out is None or a is out
                assert_close(a, want[0], dtype)
                assert_close(last, want[3], dtype)
                if n_y:
                    assert_close(y, want[1], dtype)
                else:
                    assert y is None
        a, y = model.forward(x, a0, lengths=lengths)
        assert_close(a, reference.layer_forward("rnn", f64(x), f64(p), lengths, False,
                                                f64(a0), nonlinearity=nonlinearity)[0], dtype)
        assert not np.isnan(a).any() and (y is None or not np.isnan(y).any())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, T", [(9, 7), (16, 37)])
def test_rnn_kernel_active_slices(simd_level, recurrent_path, states_out, dtype, m, T):
    # The kernel's ``active`` over a sorted batch, forwards and backwards (each example from
    # its own last step, from its a0), run as one call and as two slices (the second starts
    # at example j0 = 4 of the whole batch, as a second thread does): the same bits; the
    # padding's states are 0 (at 16 x 37, the last steps run no example: a goes out line by
    # line there too); bad counts are refused before any work.
    from fastrnn._kernels import _core
    rng = np.random.default_rng(16)
    n_x, n_a, n_y = 3, 21, 2
    p = layer_params("rnn", rng, n_x, n_a, n_y, dtype)
    lengths = (np.array([7, 7, 6, 5, 5, 3, 2, 1, 1]) if m == 9
               else np.sort(rng.integers(1, T - 6, size=m))[::-1])
    active = (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1).astype(np.intc)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    weights = [p["Wax"], p["Waa"], p["ba"][:, 0].copy(), p["Wya"], p["by"][:, 0].copy()]

    def run(slices, **options):
        out = [np.full(s, -1, dtype) for s in [(n_a, m, T), (n_y, m, T), (m, T, n_a)]]
        for j0, j1 in slices:
            _core.rnn_forward(x, a0, *weights, *out, j0, j1, _api.SMALL_BATCH_MAX_M,
                              active=active, **options)
        return out
    from fastrnn import _api
    for relu, reverse in ((False, False), (True, False), (False, True), (True, True)):
        whole = run([(0, m)], relu=relu, reverse=reverse)
        split = run([(0, 4), (4, m)], relu=relu, reverse=reverse)
        for w, s in zip(whole, split):
            np.testing.assert_array_equal(w, s)
        pad = np.arange(T)[None, :] >= lengths[:, None]
        assert (whole[0][:, pad] == 0).all() and (whole[2][pad] == 0).all()
        want = reference.layer_forward("rnn", f64(x), f64(p), lengths, reverse, f64(a0),
                                       nonlinearity="relu" if relu else "tanh")
        assert_close(whole[0], want[0], dtype)
        assert_close(whole[1][:, ~pad], want[1][:, ~pad], dtype)
    if m != 9:
        return
    out = [np.zeros(s, dtype) for s in [(n_a, m, T), (n_y, m, T), (m, T, n_a)]]
    for bad in (np.array([9, 9, 8, 10, 5, 3, 1], np.intc), np.array([9, 9, 8, 5, 3, 1, -1], np.intc),
                np.array([9, 9, 8, 5, 3, 1], np.intc), active.astype(np.int64)):
        with pytest.raises(ValueError, match="active"):
            _core.rnn_forward(x, a0, *weights, *out, 0, m, 4, active=bad)
        with pytest.raises(ValueError, match="active"):
            _core.try_packed_rnn(x, a0, *weights, True, 4, [None] * 3, False, bad)
    for bad in (out[0][:, :, :-1], out[0].astype(np.float16), out[0][::-1]):
        with pytest.raises(ValueError, match="out"):
            _core.try_packed_rnn(x, a0, *weights, True, 4, [None] * 3, False, None, True, bad)
    assert (out[0] == 0).all()


def test_sort_lengths_is_a_stable_sort_longest_first():
    # The counting sort behind the kernels' ``active`` against numpy's stable argsort, with
    # ties, lengths of 1 and of T_x, m = 1, a batch already in order; bad lengths refused.
    from fastrnn._kernels import _core
    rng = np.random.default_rng(19)
    cases = [rng.integers(1, T + 1, size=m) for T in (1, 3, 8) for m in (1, 2, 9)
             for _ in range(5)] + [np.array([7, 7, 3, 1]), np.array([2, 2]), np.array([1])]
    for v in cases:
        v = v.astype(np.intp)
        T = int(v.max()) + (len(v) % 2)  # some batches have no example of length T_x
        values, order, srt, active, in_order = _core.sort_lengths(v, T)
        assert values is v  # already C-contiguous intp: not copied
        np.testing.assert_array_equal(order, np.argsort(-v, kind="stable"))
        np.testing.assert_array_equal(srt, v[order])
        np.testing.assert_array_equal(active, (v[None, :] > np.arange(T)[:, None]).sum(axis=1))
        assert active.dtype == np.intc and active.shape == (T,)
        assert in_order == bool((np.diff(v) <= 0).all())
    # other integer dtypes and strides are converted (values unchanged); bad values, dtypes
    # that do not cast safely to intp, and non-integers are refused
    for other in (np.array([1, 3, 2], np.int32), np.array([1, 0, 3, 0, 2], np.uint8)[::2],
                  np.array([3, 1, 2], np.int16)):
        values, order, *_ = _core.sort_lengths(other, 3)
        assert values.dtype == np.intp and values.flags.c_contiguous
        np.testing.assert_array_equal(values, other)
        np.testing.assert_array_equal(order, np.argsort(-other, kind="stable"))
    for bad in (np.array([0, 1], np.intp), np.array([4, 1], np.intp), np.array([1, 4], np.int32)):
        with pytest.raises(ValueError, match="sort_lengths"):
            _core.sort_lengths(bad, 3)
    for bad in (np.array([1, 2], np.uint64), np.array([True, True]), np.array([1.0, 2.0]),
                np.ones((2, 1), np.intp)):
        with pytest.raises(TypeError):
            _core.sort_lengths(bad, 3)


# Steps per example: a few (a small array, copied in loops with the GIL held) and many (over
# _core.PERMUTE_LARGE bytes: memcpy, prefetches, the GIL released; the tests check that their
# arrays are on either side of it).
PERMUTE_STEPS = (5, 2000)


def _permute_path(arr, T):
    # the path the permutation of arr takes is the one its number of steps stands for
    from fastrnn._kernels import _core
    assert (arr.nbytes >= _core.PERMUTE_LARGE) == (T == PERMUTE_STEPS[1]), (arr.nbytes, T)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", PERMUTE_STEPS)
def test_permute_steps_sorts_and_restores_the_batch(dtype, T):
    # The copy into the kernels' order (longest first) against the same permutation written
    # with numpy indexing, and back; bad orders and lengths are refused before any copy.
    from fastrnn._kernels import _core
    rng = np.random.default_rng(18)
    rows, m = 3, 6
    src = rng.standard_normal((rows, m, T)).astype(dtype)
    order = np.array([4, 0, 5, 2, 1, 3], dtype=np.intp)
    lengths = np.array([T, T, 4, 2, 1, 1], dtype=np.intp)
    _permute_path(src, T)
    got = np.full_like(src, np.nan)
    _core.permute_steps(src, got, order, lengths, False)
    np.testing.assert_array_equal(got, src[:, order])
    back = np.full_like(src, np.nan)
    _core.permute_steps(got, back, order, lengths, True)
    np.testing.assert_array_equal(back, src)
    dst = np.zeros_like(src)
    for bad_order, bad_lengths in ((order + 1, lengths), (order, lengths + 1),
                                   (order - 1, lengths), (order[:5], lengths),
                                   (order.astype(np.int32), lengths)):
        with pytest.raises(ValueError, match="permute_steps"):
            _core.permute_steps(src, dst, bad_order, bad_lengths, False)
    with pytest.raises(ValueError, match="dst"):
        _core.permute_steps(src, dst[:, :, :4], order, lengths, False)
    assert (dst == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", PERMUTE_STEPS)
def test_permute_steps_zeroes_the_padding(dtype, T):
    # zero_padding: each example's steps past its own length become 0 on the way back to the
    # caller's order (a head's predictions there), and in place for a batch already in order;
    # in place is refused for any other order or without the zeroing.
    from fastrnn._kernels import _core
    rng = np.random.default_rng(19)
    rows, m = 2, 5
    src = rng.standard_normal((rows, m, T)).astype(dtype)
    order = np.array([3, 0, 4, 1, 2], dtype=np.intp)
    lengths = np.array([T, T - 2, T - 2, 2, 1], dtype=np.intp)
    t = np.arange(T)
    want = np.empty_like(src)
    for k in range(m):
        want[:, order[k]] = np.where(t < lengths[k], src[:, k], 0)
    _permute_path(src, T)
    got = np.full_like(src, np.nan)
    _core.permute_steps(src, got, order, lengths, True, True)
    np.testing.assert_array_equal(got, want)
    identity = np.arange(m, dtype=np.intp)
    inplace = src.copy()
    _core.permute_steps(inplace, inplace, identity, lengths, True, True)
    np.testing.assert_array_equal(inplace, np.where(t < lengths[None, :, None], src, 0))
    for bad_order, zero in ((order, True), (identity, False)):
        with pytest.raises(ValueError, match="dst may be src"):
            _core.permute_steps(inplace, inplace, bad_order, lengths, True, zero)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1, PERMUTE_STEPS[1] // 5])
def test_sorted_batch_and_unsort_are_the_compiled_paths_lengths(dtype, scale):
    # sorted_batch: the sort of sort_lengths and x gathered in its order (into the scratch
    # slots, reused by the next call of the shape), nothing gathered for a batch in order or
    # without padding, None for lengths the validated route must name; unsort: the outputs
    # back in the caller's order, a head's padding zeroed; zero_past: that zeroing in place.
    from fastrnn._kernels import _core
    rng = np.random.default_rng(23)
    n_x, n_a, m, T = 3, 4, 6, 5 * scale
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    lengths = np.array([2, 5, 1, 4, 4, 3]) * scale
    scratch = [None, None]
    xs, order, srt, active, in_order, full, out, values = _core.sorted_batch(
        lengths, x, scratch, n_a)
    want = _core.sort_lengths(lengths.astype(np.intp), T)
    for got, w in zip((values, order, srt, active), want[:4]):
        np.testing.assert_array_equal(got, w)
    assert not in_order and not full and in_order == want[4]
    np.testing.assert_array_equal(xs, x[:, order])
    assert out.shape == (n_a, m, T) and out.dtype == x.dtype
    assert xs is scratch[0] and out is scratch[1]
    again = _core.sorted_batch(lengths.astype(np.int32), x, scratch, n_a)
    assert again[0] is xs and again[6] is out
    # back: a and a head's y (zeroed past each length) in the caller's order; None passes
    a_sorted = rng.standard_normal((n_a, m, T)).astype(dtype)
    y_sorted = rng.standard_normal((2, m, T)).astype(dtype)
    _permute_path(x, T)
    _permute_path(y_sorted, T)
    a, y, none = _core.unsort([a_sorted, y_sorted, None], [False, True, False], order, srt,
                              False)
    assert none is None
    np.testing.assert_array_equal(a[:, order], a_sorted)
    past = np.arange(T)[None, :] >= lengths[:, None]  # (m, T): the padding
    np.testing.assert_array_equal(y[:, order][:, ~past[order]], y_sorted[:, ~past[order]])
    assert (y[:, past] == 0).all()
    y_past = y_sorted.copy()
    assert _core.zero_past(y_past, values) is y_past
    np.testing.assert_array_equal(y_past, np.where(past[None], 0, y_sorted))
    # a batch in order: x itself, no work array; unsort then zeroes in place
    in_order_lengths = np.array([5, 4, 4, 3, 2, 1]) * scale
    xs, order, srt, _, in_order, full, out, _ = _core.sorted_batch(in_order_lengths, x,
                                                                   scratch, n_a)
    assert xs is x and out is None and in_order and not full
    y2 = y_sorted.copy()
    (back,) = _core.unsort([y2], [True], order, srt, True)
    assert back is y2 and (y2[:, np.arange(T)[None, :] >= in_order_lengths[:, None]] == 0).all()
    full_batch = _core.sorted_batch(np.full(m, T), x, scratch, n_a)
    assert full_batch[0] is x and full_batch[5] and full_batch[6] is None
    # any integer type that casts safely to intp, any byte order and strides: the values
    # (copied: what is checked is what is used)
    order0 = _core.sorted_batch(lengths, x)[1]
    for other in (lengths.astype(np.uint8 if T < 256 else np.uint16), lengths.astype(">i8"),
                  lengths.astype("<i4"), np.repeat(lengths, 2)[::2], lengths.astype(np.int16)):
        got = _core.sorted_batch(other, x)
        np.testing.assert_array_equal(got[1], order0)
        np.testing.assert_array_equal(got[7], lengths)
        assert got[7].dtype == np.intp and got[7] is not other
    # lengths or inputs the compiled paths do not take: None (never an error, never a copy)
    for bad in ([2, 5, 1, 4, 4, 3], lengths.astype(float), lengths.astype(np.uint64),
                lengths[:5], lengths.reshape(2, 3), np.where(lengths == scale, 0, lengths),
                np.where(lengths == T, T + 1, lengths),
                np.where(lengths == T, 1 << 40, lengths).astype(">i8"), lengths > 2):
        assert _core.sorted_batch(bad, x, scratch, n_a) is None, bad
    for bad_x in (x[:, :, ::-1], x.astype(np.float16), x[0]):
        assert _core.sorted_batch(lengths, bad_x, scratch, n_a) is None
    for short in ([], [None]):  # too few slots for x (and the output): refused, not read past
        with pytest.raises(ValueError, match="scratch"):
            _core.sorted_batch(lengths, x, short, n_a)
    # a work array the kernels cannot write whole is not reused
    for bad_slot in (np.zeros((n_x, m, T + 1), dtype)[:, :, :T], np.broadcast_to(x, x.shape)):
        scratch[0] = bad_slot
        xs = _core.sorted_batch(lengths, x, scratch, n_a)[0]
        assert xs is not bad_slot and xs is scratch[0] and xs.flags.c_contiguous
        np.testing.assert_array_equal(xs, x[:, order0])
    # unsort and zero_past refuse what they cannot take, before writing anything
    order = order0
    a_before = a_sorted.copy()
    for bad_order, bad_lengths, ordered in ((order + 1, srt, False), (order, srt + T, False),
                                            (order[::-1].copy(), srt, True),
                                            (np.where(order == 0, 1, order), srt, False),
                                            (order.astype(np.int32), srt, False),
                                            (order[:5], srt, False)):
        with pytest.raises(ValueError):
            _core.unsort([a_sorted, y_sorted], [True, True], bad_order, bad_lengths, ordered)
        np.testing.assert_array_equal(a_sorted, a_before)
    identity = np.arange(m, dtype=np.intp)
    with pytest.raises(ValueError):  # the second sequence is refused: the first not zeroed
        _core.unsort([a_sorted, a_sorted[:, :5]], [True, False], identity, srt, True)
    np.testing.assert_array_equal(a_sorted, a_before)
    with pytest.raises(ValueError):
        _core.unsort([a_sorted], [False, True], order, srt, False)
    with pytest.raises(ValueError, match="1-d"):
        _core.unsort([], [], np.array(0), np.array(0), True)
    for bad in (values + T, values - T, values[:5], values.astype(np.int32)):
        with pytest.raises(ValueError, match="zero_past"):
            _core.zero_past(y_sorted.copy(), bad)


@pytest.mark.parametrize("name", ["ties", "m=1", "ones"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_lengths_match_torch(dtype, name):
    # pack_padded_sequence through a bidirectional torch.nn.RNN (tanh and ReLU): outputs and
    # final states of both directions.
    torch = pytest.importorskip("torch", reason="torch is the optional peer for lengths")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    rng = np.random.default_rng(17)
    for nonlinearity in ("tanh", "relu"):
        pf, x, a0, lengths = _rnn_lengths_case(name, dtype, 0, rng)
        pb = layer_params("rnn", rng, x.shape[0], pf["Waa"].shape[0], 0, dtype)
        n_x, n_a = pf["Wax"].shape[1], pf["Waa"].shape[0]
        h0 = np.stack([a0, rng.standard_normal(a0.shape).astype(dtype)])
        layer = fastrnn.Bidirectional(fastrnn.RNN(pf, nonlinearity=nonlinearity),
                                      fastrnn.RNN(pb, nonlinearity=nonlinearity))
        module = torch.nn.RNN(n_x, n_a, nonlinearity=nonlinearity, bidirectional=True).to(tdtype)
        with torch.no_grad():
            for sfx, p in (("_l0", pf), ("_l0_reverse", pb)):
                getattr(module, "weight_ih" + sfx).copy_(torch.tensor(p["Wax"]))
                getattr(module, "weight_hh" + sfx).copy_(torch.tensor(p["Waa"]))
                getattr(module, "bias_ih" + sfx).copy_(torch.tensor(p["ba"][:, 0]))
                getattr(module, "bias_hh" + sfx).zero_()
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                torch.tensor(np.nan_to_num(x).transpose(2, 1, 0).copy()), torch.tensor(lengths),
                enforce_sorted=False)
            out, hn = module(packed, torch.tensor(h0.transpose(0, 2, 1).copy()))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[2])
        for n_threads in (1, 2):
            h, _, state = layer.forward(x, lengths, h0, n_threads=n_threads)
            assert_close(h, f64(out.numpy().transpose(2, 1, 0)), dtype)
            assert_close(state, f64(hn.numpy().transpose(0, 2, 1)), dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batches_and_sequences(kind):
    rng = np.random.default_rng(13)
    stack, params, head = _make_stack(kind, rng, 3, 4, 2, True, np.float64, n_y=2)
    for shape in [(3, 0, 5), (3, 2, 0), (3, 0, 0)]:
        x = np.zeros(shape)
        h0 = rng.standard_normal((4, 4, shape[1]))
        c0 = h0 if kind == "lstm" else None
        h, y, state = stack.forward(x, None, h0, c0)
        want = _ref_stack(kind, params, head, x, None, h0, c0)
        assert h.shape == (8,) + shape[1:] and y.shape == (2,) + shape[1:]
        # no step: the final states are the initial ones
        np.testing.assert_array_equal(state[0] if kind == "lstm" else state, want[2])
        lengths = np.zeros(0, dtype=int) if shape[1] == 0 else None
        a = MODEL[kind](params[0][0]).forward(x, lengths=lengths)[0]
        assert a.shape == (4,) + shape[1:]


def test_mixed_dtypes_follow_the_model():
    rng = np.random.default_rng(14)
    stack, params, _ = _make_stack("gru", rng, 3, 4, 1, True, np.float32)
    x = rng.standard_normal((3, 2, 5))  # float64 input, float32 model
    h, _, h_n = stack.forward(x, [5, 2], np.zeros((2, 4, 2)))
    assert h.dtype == np.float32 and h_n.dtype == np.float32
    want = _ref_stack("gru", params, None, x.astype(np.float32), [5, 2], None, None)
    assert_close(h, want[0], np.float32)


@pytest.mark.parametrize("m, T", [(5, 37), (16, 37), (2, 19), (9, 1)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, options", [("lstm", {}), ("gru", {"reset_after": True}),
                                           ("gru", {"reset_after": False})])
def test_backward_direction_runs_in_the_kernel(simd_level, recurrent_path, states_out, kind,
                                               options, dtype, m, T):
    # A backward direction over whole sequences runs backwards in the LSTM's and the GRU's
    # kernel itself, every output at its own step (the LSTM's state blocks go out with a
    # negative step stride): several state blocks and a partial one, the LSTM's ring buffers
    # (m >= 4; at 16 x 37 every row of a and c starts at the same offset within a cache line,
    # so the ring goes out line by line, each example at its own steps) and caches-sized
    # buffers (m < 4), both GRU variants, an output layer, one and
    # two threads, into a given half of a bidirectional output or not, and the kernel's own
    # entry (one call, and two slices as two threads run them); the checked mode; a run of a
    # batch in order of length.
    from fastrnn import _api, _checked, _models
    from fastrnn._kernels import _core
    rng = np.random.default_rng(m * 100 + T)
    n_x, n_a, n_y = 4, 23, 3
    p = layer_params(kind, rng, n_x, n_a, n_y, dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    c0 = rng.standard_normal((n_a, m)).astype(dtype) if kind == "lstm" else None
    want = reference.layer_forward(kind, f64(x), f64(p), None, True, f64(a0),
                                   None if c0 is None else f64(c0), **options)
    model = (fastrnn.LSTM(p) if kind == "lstm" else fastrnn.GRU(p, **options))
    states = [a0] + ([c0] if kind == "lstm" else [])
    for checked in (False, True):
        for n_threads, out in ((1, None), (2, None), (1, True), (2, True)):
            if out:  # a bidirectional layer's half
                out = np.full((2, n_a, m, T), np.nan, dtype)[1]
            with _checked.checked(checked):
                a, y, c, last = model._sequence(x, states, None, True, n_threads, out)
            assert out is None or a is out
            assert len(last) == (2 if kind == "lstm" else 1)
            for got, w in zip((a, y, c, *last), want[:3] + (want[3], want[4])):
                if w is None:  # a GRU's cell states
                    assert got is None
                else:
                    assert_close(got, w, dtype)
    pk = model._packed
    if kind == "lstm":
        shapes = [(n_a, m, T), (n_a, m, T), (n_y, m, T), (m, T, 4 * n_a), (m, T, 2 * n_a)]
    else:
        shapes = [(n_a, m, T), (n_y, m, T), (m, T, 3 * n_a), (m, T, n_a)]

    def run(slices, active=None):
        outs = [np.full(s, np.nan, dtype) for s in shapes]
        for j0, j1 in slices:
            if kind == "lstm":
                _core.lstm_forward(x, a0, c0, pk.w, pk.b, pk.wy, pk.by, *outs, j0, j1,
                                   _api.SMALL_BATCH_MAX_M, active=active, reverse=True)
            else:
                _core.gru_forward(x, a0, *pk.w, *pk.b, pk.wy, pk.by, *outs,
                                  options["reset_after"], active, j0, j1,
                                  _api.SMALL_BATCH_MAX_M, reverse=True)
        # a, y and the LSTM's c
        return outs[0], outs[1 if kind == "gru" else 2], outs[1] if kind == "lstm" else None
    for slices in ([(0, m)], [(0, m // 2), (m // 2, m)]):
        a, y, _ = run(slices)
        assert_close(a, want[0], dtype)
        assert_close(y, want[1], dtype)
    # The kernels also run a batch in order of length (longest first) backwards, each
    # example from its own last step and its own a0 (and c0), its padding's states 0.
    lengths = np.sort(rng.integers(1, T + 1, size=m))[::-1].copy()
    lengths[0] = T
    active = (np.arange(T)[:, None] < lengths[None, :]).sum(axis=1).astype(np.intc)
    want = reference.layer_forward(kind, f64(x), f64(p), lengths, True, f64(a0),
                                   None if c0 is None else f64(c0), **options)
    for slices in ([(0, m)], [(0, m // 2), (m // 2, m)]):
        a, _, c = run(slices, active)
        assert_close(a, want[0], dtype)
        if kind == "lstm":
            assert_close(c, want[2], dtype)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_backward_direction_states_out(simd_level, states_out, dtype, n_threads):
    # The RNN's backward direction runs backwards in its kernel, every state at its own step;
    # at 16 x 37 every row of a starts at the same offset within a cache line, so with
    # states_out "lines" a goes out line by line as the steps run, from each example's own
    # last step with lengths (the batch sorted by length), on one thread and in two slices.
    rng = np.random.default_rng(37)
    n_x, n_a, n_y, m, T = 3, 21, 2, 16, 37
    p = layer_params("rnn", rng, n_x, n_a, n_y, dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=m)
    lengths[0] = T
    model = fastrnn.RNN(p)
    for lens in (None, lengths):
        want = reference.layer_forward("rnn", f64(x), f64(p), lens, True, f64(a0), None)
        a, y, _, last = model._sequence(x, [a0], lens, True, n_threads)
        assert_close(a, want[0], dtype)
        assert_close(y, want[1], dtype)
        assert_close(last[0], want[3], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_lengths_states_out(states_out, kind, dtype):
    # A bidirectional layer with lengths at 16 x 37 (every row of a at one offset within a
    # cache line): with states_out "lines" each direction's states go out line by line, the
    # reverse one from each example's own last step (the LSTM's from its ring, whose slot
    # lent to the examples joining at a step is zeroed again before its lines go out).
    rng = np.random.default_rng(8)
    stack, params, head = _make_stack(kind, rng, 3, 21, 1, True, dtype, n_y=2)
    x = rng.standard_normal((3, 16, 37)).astype(dtype)
    lengths = rng.integers(1, 38, size=16)
    lengths[0] = 37
    h, y, state = stack.forward(x, lengths)
    want = _ref_stack(kind, params, head, x, lengths, None, None)
    assert_close(h, want[0], dtype)
    assert_close(y, want[1], dtype)
    for got, w in zip(state if kind == "lstm" else [state], want[2:]):
        assert_close(got, w, dtype)
