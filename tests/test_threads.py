"""Threads.

- Many Python threads calling at once (on shared and on distinct inputs) get exactly the
  serial results, bit for bit, for all four drop-in functions, both dtypes and both recurrent
  paths; likewise for shared model objects.
- The kernels release the GIL: the main thread runs Python code while a kernel call is in
  progress in another thread (an order of events, never a speed).
- Checked mode is per thread.
- ``n_threads=2`` gives the ``n_threads=1`` result within the dtype's tolerance.
"""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastrnn
from _util import assert_close, layer_params, lstm_params, rnn_params
from fastrnn import reference
from fastrnn._kernels import _core

FUNCS = ("rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward")
DTYPES = (np.float64, np.float32)
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}
N_THREADS = 8
N_CALLS = 20




@pytest.fixture(params=["blas-1-thread", "blas-as-configured"])
def blas_threads(request):
    """Run with BLAS pinned to one thread, and with BLAS as the environment configures it."""
    if request.param == "blas-1-thread":
        with threadpool_limits(1):
            yield request.param
    else:
        yield request.param


def make_args(name, dtype, seed, n_x=7, n_a=16, n_y=5, m=6, T_x=12):
    rng = np.random.default_rng(seed)
    params = (lstm_params if name.startswith("lstm") else rnn_params)(
        rng, n_x, n_a, n_y, dtype=dtype)
    cell = name.endswith("cell_forward")
    args = [rng.standard_normal((n_x, m) if cell else (n_x, m, T_x)).astype(dtype),
            rng.standard_normal((n_a, m)).astype(dtype)]
    if name == "lstm_cell_forward":
        args.append(rng.standard_normal((n_a, m)).astype(dtype))
    return args + [params]


def outputs(name, args):
    """The call's arrays: outputs, and for sequences the last step's cache arrays too (built
    lazily, in the calling thread)."""
    out = getattr(fastrnn, name)(*args)
    arrays = list(out[:N_OUT[name]])
    if not name.endswith("cell_forward"):
        steps = out[N_OUT[name]][0]
        arrays += [v for v in steps[len(steps) - 1] if isinstance(v, np.ndarray)]
    return arrays


def run_in_threads(work, n_threads=N_THREADS):
    """Run work(k) in n_threads threads started together; return their results by k, and
    re-raise the first exception any of them met."""
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def target(k):
        try:
            barrier.wait()
            results[k] = work(k)
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]
    return results


def assert_bitwise(got, want, what):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}: array {k}"
        assert np.array_equal(g, w), (
            f"{what}: array {k} differs from the serial result (max |diff| "
            f"{np.abs(g.astype(np.float64) - w).max():.3g})")


@pytest.mark.parametrize("sharing", ["shared-inputs", "distinct-inputs"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCS)
def test_concurrent_calls_give_the_serial_results(name, dtype, sharing, recurrent_path,
                                                  blas_threads):
    if sharing == "shared-inputs":
        args = [make_args(name, dtype, seed=0)] * N_THREADS
    else:
        args = [make_args(name, dtype, seed=100 + k) for k in range(N_THREADS)]
    serial = [outputs(name, a) for a in args]
    results = run_in_threads(lambda k: [outputs(name, args[k]) for _ in range(N_CALLS)])
    for k, per_thread in enumerate(results):
        assert len(per_thread) == N_CALLS
        for call, got in enumerate(per_thread):
            assert_bitwise(got, serial[k], f"{name}, thread {k}, call {call}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_all_four_functions_at_once_give_the_serial_results(dtype, blas_threads):
    """Eight threads, each cycling through all four functions on its own inputs."""
    cases = [(name, make_args(name, dtype, seed=200 + k))
             for k in range(N_THREADS // len(FUNCS)) for name in FUNCS]
    serial = [outputs(name, a) for name, a in cases]

    def work(k):
        got = []
        for i in range(N_CALLS):
            name, a = cases[(k + i) % len(cases)]
            got.append(((k + i) % len(cases), outputs(name, a)))
        return got

    for k, per_thread in enumerate(run_in_threads(work)):
        for idx, got in per_thread:
            assert_bitwise(got, serial[idx], f"{cases[idx][0]}, thread {k}")


# ------------------------------------------------------------------ the GIL
#
# A kernel that releases the GIL lets this (the main) thread run Python code while the kernel
# is still running in another thread.  That is shown as an order of events, never a speed:
# the kernel writes its buffers in a known order (the gate/state buffer early, the returned
# ``a`` at the very end; an LSTM's state buffer step by step), the buffers start as NaN, and
# the main thread polls them.  Seeing the early buffer written while the late one still holds
# NaN means the main thread ran Python code between the kernel's start and its end, which a
# kernel holding the GIL makes impossible (this thread needs the GIL to look).  The call is
# repeated on fresh buffers until that is seen (on an idle machine, at the first call), so a
# busy machine that keeps the main thread off the CPU for a whole call only costs a retry.

ATTEMPTS = 500


def _seen_mid_call(run, fresh, in_progress):
    """Call ``run(buffers)`` in another thread, each time on ``fresh()`` buffers, while this
    thread polls ``in_progress(buffers)``; True once it returned True (then the calls stop)."""
    current, seen, done, errors = [None], threading.Event(), threading.Event(), []

    def worker():
        try:
            for _ in range(ATTEMPTS):
                buffers = fresh()
                current[0] = buffers  # published complete: a new object every call
                run(buffers)
                if seen.is_set():
                    return
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        while not done.is_set():
            buffers = current[0]
            if buffers is not None and in_progress(buffers):
                seen.set()
                break
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return seen.is_set()


def _kernel_case(kind, dtype):
    rng = np.random.default_rng(4)
    n_x, n_a, n_y, m, T_x = 32, 64, 8, 8, 200
    weights = (lstm_params if kind == "lstm" else rnn_params)(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T_x)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    return weights, x, a0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_kernels_release_the_gil(kind, dtype):
    """The kernel entry points (what the drop-ins and batch-parallel models run): the main
    thread sees the gate buffer z written while the output ``a`` (written last) is not."""
    from fastrnn._packing import pack
    from fastrnn._validation import LSTM_WEIGHTS, RNN_WEIGHTS, validate_parameters

    weights, x, a0 = _kernel_case(kind, dtype)
    spec = RNN_WEIGHTS if kind == "rnn" else LSTM_WEIGHTS
    p = pack(kind, validate_parameters(weights, spec)[0], np.dtype(dtype), merge=True)
    n_x, m, T_x = x.shape
    n_a, n_y = a0.shape[0], p.wy.shape[0]
    G = n_a if kind == "rnn" else 4 * n_a

    def fresh():
        nan = lambda *shape: np.full(shape, np.nan, dtype=dtype)  # noqa: E731
        bufs = {"a": nan(n_a, m, T_x), "y": nan(n_y, m, T_x), "z": nan(m, T_x, G)}
        if kind == "lstm":
            bufs.update(c=nan(n_a, m, T_x), s=nan(m, T_x, 2 * n_a))
        return bufs

    def run(b):
        if kind == "rnn":
            _core.rnn_forward(x, a0, p.w[0], p.w[1], p.b, p.wy, p.by, b["a"], b["y"], b["z"],
                              0, m, 4)
        else:
            _core.lstm_forward(x, a0, np.zeros_like(a0), p.w, p.b, p.wy, p.by, b["a"],
                               b["c"], b["y"], b["z"], b["s"], 0, m, 4)

    def in_progress(b):
        # read in this order: started (z written first), then not finished (a written last)
        return not np.isnan(b["z"][0, 0, 0]) and np.isnan(b["a"][-1, -1, -1])

    with threadpool_limits(1):
        assert _seen_mid_call(run, fresh, in_progress), (
            f"in {ATTEMPTS} {kind} kernel calls the main thread never ran while one was in "
            f"progress: the kernel holds the GIL")
        # the buffers really are written in that order: a finished call has both
        b = fresh()
        run(b)
        assert not np.isnan(b["z"]).any() and not np.isnan(b["a"]).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_model_fast_path_releases_the_gil(dtype):
    """The compiled fast path (a model's one-thread forward, the drop-ins' exact-array call):
    the LSTM writes its state buffer step by step; the main thread sees step 0 written while
    the last step is not.  The state buffer is the model's per-thread scratch, replaced by a
    fresh NaN array before each call (the model reuses a scratch array of the right shape).
    The call keeps every step's states (as for training: ``forward`` itself keeps a few steps
    in a ring, in the same released-GIL kernel call)."""
    weights, x, a0 = _kernel_case("lstm", dtype)
    model = fastrnn.LSTM(weights)
    n_x, m, T_x = x.shape
    n_a = a0.shape[0]
    scratch = []

    def fresh():
        return np.full((m, T_x, 2 * n_a), np.nan, dtype=dtype)

    def forward():
        return model._try(x, (a0, np.zeros_like(a0)), True, caches=True)

    def run(s):
        if not scratch:  # the calling thread's scratch list, made by its first call
            assert forward() is not None, "not the compiled fast path"
            scratch.append(model._scratch.buffers)
        assert scratch[0][1].shape == s.shape
        scratch[0][1] = s
        forward()
        assert scratch[0][1] is s, "the model did not run on the given state buffer"

    def in_progress(s):
        return not np.isnan(s[0, 0, 0]) and np.isnan(s[-1, -1, -1])

    with threadpool_limits(1):
        assert _seen_mid_call(run, fresh, in_progress), (
            f"in {ATTEMPTS} LSTM.forward calls the main thread never ran while one was in "
            f"progress: the fast path holds the GIL")


# ------------------------------------------------------------------ checked mode per thread

def test_checked_mode_is_per_thread(monkeypatch):
    """A ``with fastrnn.checked():`` block in one thread runs the reference for that thread's
    calls only; a thread that never switched it on, and the main thread, are unaffected."""
    calls = []
    original = reference.rnn_forward

    def spy(*args, **kwargs):
        calls.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(reference, "rnn_forward", spy)
    args = make_args("rnn_forward", np.float64, seed=5)
    inside = threading.Barrier(2)
    done = threading.Barrier(2)
    seen, idents = {}, {}

    def checked_thread():
        idents["checked"] = threading.get_ident()
        with fastrnn.checked():
            inside.wait()
            seen["checked"] = fastrnn.is_checked()
            fastrnn.rnn_forward(*args)
            done.wait()
        seen["checked-after"] = fastrnn.is_checked()

    def plain_thread():
        idents["plain"] = threading.get_ident()
        inside.wait()  # the other thread is inside its checked() block now
        seen["plain"] = fastrnn.is_checked()
        fastrnn.rnn_forward(*args)
        done.wait()

    assert not fastrnn.is_checked()
    threads = [threading.Thread(target=checked_thread), threading.Thread(target=plain_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == {"checked": True, "checked-after": False, "plain": False}
    assert calls == [idents["checked"]]
    assert not fastrnn.is_checked()
    fastrnn.rnn_forward(*args)
    assert calls == [idents["checked"]]


def test_set_checked_in_a_thread_does_not_leak(monkeypatch):
    calls = []
    original = reference.lstm_forward

    def spy(*args, **kwargs):
        calls.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(reference, "lstm_forward", spy)
    args = make_args("lstm_forward", np.float32, seed=6)
    switched = threading.Event()
    finish = threading.Event()
    state = {}

    def switcher():
        fastrnn.set_checked(True)
        state["ident"] = threading.get_ident()
        fastrnn.lstm_forward(*args)
        switched.set()
        finish.wait(60)

    t = threading.Thread(target=switcher)
    t.start()
    try:
        assert switched.wait(60)
        assert not fastrnn.is_checked()  # main thread: still off while the other has it on
        fastrnn.lstm_forward(*args)
    finally:
        finish.set()
        t.join(60)
    assert calls == [state["ident"]]
    # a new thread starts with checked mode off too
    fresh = run_in_threads(lambda k: fastrnn.is_checked(), n_threads=2)
    assert fresh == [False, False]


def test_checked_main_thread_does_not_check_other_threads(monkeypatch):
    calls = []
    original = reference.rnn_cell_forward

    def spy(*args, **kwargs):
        calls.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(reference, "rnn_cell_forward", spy)
    args = make_args("rnn_cell_forward", np.float64, seed=7)
    with fastrnn.checked():
        flags = run_in_threads(lambda k: (fastrnn.is_checked(),
                                          fastrnn.rnn_cell_forward(*args))[0], n_threads=4)
        assert calls == []
        fastrnn.rnn_cell_forward(*args)
    assert flags == [False] * 4
    assert calls == [threading.get_ident()]


# ------------------------------------------------------------------ models

def _model(kind, dtype, seed, n_x=7, n_a=16, n_y=5):
    rng = np.random.default_rng(seed)
    params = (lstm_params if kind == "lstm" else rnn_params)(rng, n_x, n_a, n_y, dtype=dtype)
    return (fastrnn.LSTM if kind == "lstm" else fastrnn.RNN)(params)


def _model_inputs(kind, dtype, seed, m, n_x=7, n_a=16, T_x=12):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_x, m, T_x)).astype(dtype)
    states = [rng.standard_normal((n_a, m)).astype(dtype)
              for _ in range(2 if kind == "lstm" else 1)]
    return x, states


@pytest.mark.parametrize("m", [1, 2, 5, 8, 33])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_model_n_threads_2_matches_n_threads_1(kind, dtype, m, recurrent_path):
    model = _model(kind, dtype, seed=8)
    x, states = _model_inputs(kind, dtype, seed=9, m=m)
    one = model.forward(x, *states, n_threads=1)
    for n in (2, 3):
        many = model.forward(x, *states, n_threads=n)
        assert len(many) == len(one)
        for g, w in zip(many, one):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert_close(g, w.astype(np.float64), dtype,
                         err_msg=f"{kind} forward, n_threads={n} vs 1, m={m}")


@pytest.mark.parametrize("m", [2, 13])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_lstm_model_slices_on_threads_match_the_reference(dtype, m, recurrent_path):
    """An LSTM call large enough for threads (the batch in slices, each slice on its own
    thread with its own ring buffers, the packed block shared): n_threads = 2 and 3 give the
    reference's result, call after call (buffers reused), with a0 and c0 given or not."""
    n_x, n_a, n_y, T = 20, 96, 7, 20
    assert m * T * n_a * (4 * (n_a + n_x) + n_y) >= fastrnn._api._MIN_THREADED_WORK or m == 2
    rng = np.random.default_rng(m)
    p = lstm_params(rng, n_x, n_a, n_y, dtype=dtype)
    model = fastrnn.LSTM(p)
    x = rng.standard_normal((n_x, m, 2 * T if m == 2 else T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    want = reference.lstm_forward(x.astype(np.float64), a0.astype(np.float64),
                                  {k: v.astype(np.float64) for k, v in p.items()})
    for n in (2, 3, 2):
        a, y, c = model.forward(x, a0, n_threads=n)
        assert_close(a, want[0], dtype)
        assert_close(y, want[1], dtype)
        assert_close(c, want[2], dtype)
    zero_a0 = model.forward(x, n_threads=2)
    assert_close(zero_a0[0], model.forward(x, np.zeros_like(a0))[0].astype(np.float64), dtype)


@pytest.mark.parametrize("m", [30, 31, 33, 47])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_gru_model_slices_on_threads_match_the_reference(simd_level, dtype, m):
    """A GRU call large enough for threads: each slice of the batch decides by its own width
    whether it keeps one step of gates (a ring, from _core.GRU_RING_MIN_M examples on where
    the panel GEMM runs) or every step's, in one shared gate buffer.  Batches whose slices
    fall on both sides of that width (31 on two threads: 15 + 16; 47 on three: 15 + 16 + 16)
    and on one side (30: 15 + 15; 33: 16 + 17) give the reference's result on 2 and 3
    threads, call after call (a slice's ring in another slice's steps had given errors above
    1 on states in [-1, 1])."""
    n_x, n_a, n_y, T = 30, 29, 3, 16
    assert m * T * n_a * (3 * (n_a + n_x) + n_y) >= fastrnn._api._MIN_THREADED_WORK
    assert _core.GRU_RING_MIN == 16
    rng = np.random.default_rng(m)
    p = layer_params("gru", rng, n_x, n_a, n_y, dtype=dtype)
    model = fastrnn.GRU(p)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    want = reference.gru_forward(x.astype(np.float64), a0.astype(np.float64),
                                 {k: v.astype(np.float64) for k, v in p.items()})
    for n in (2, 3, 2):
        a, y = model.forward(x, a0, n_threads=n)
        assert_close(a, want[0], dtype, err_msg=f"n_threads={n}")
        assert_close(y, want[1], dtype, err_msg=f"n_threads={n}")


@pytest.mark.parametrize("slices", [[(0, 15), (15, 31)], [(0, 16), (16, 31)],
                                    [(0, 15), (15, 31), (31, 47)]])
def test_gru_slice_writes_only_its_own_part_of_the_gate_buffer(simd_level, slices):
    """The same as a layout, whatever the threads' timing: a slice run alone (without
    caches: a ring of one step from GRU_RING_MIN_M examples on, where the panel GEMM runs,
    else every step's gates) writes z (m, T, 3n_a) only within its own examples' part,
    so slices run at once on other threads cannot overwrite each other's gates."""
    n_x, n_a, n_y, T = 30, 29, 3, 16
    m = slices[-1][1]
    assert _core.GRU_RING_MIN == 16  # slices of 15 and of 16-17 examples
    rng = np.random.default_rng(m)
    model = fastrnn.GRU(layer_params("gru", rng, n_x, n_a, n_y, dtype=np.float64))
    pk = model._packed
    x = rng.standard_normal((n_x, m, T))
    a0 = rng.standard_normal((n_a, m))
    for j0, j1 in slices:
        outs = [np.full(shape, np.nan) for shape in
                [(n_a, m, T), (n_y, m, T), (m, T, 3 * n_a), (m, T, n_a)]]
        _core.gru_forward(x, a0, *pk.w, *pk.b, pk.wy, pk.by, *outs, True, None, j0, j1,
                          fastrnn._api.SMALL_BATCH_MAX_M, caches=False)
        z = outs[2]
        assert np.isnan(z[:j0]).all() and np.isnan(z[j1:]).all(), (j0, j1)
        assert not np.isnan(outs[0][:, j0:j1]).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_shared_model_used_concurrently_gives_serial_results(kind, dtype, recurrent_path,
                                                             blas_threads):
    model = _model(kind, dtype, seed=10)
    inputs = [_model_inputs(kind, dtype, seed=300 + k, m=6) for k in range(N_THREADS)]

    def calls(k):
        x, states = inputs[k]
        a_fwd = model.forward(x, *states)
        if kind == "lstm":
            (a_next, c_next), yt = model.step(x[:, :, 0], tuple(states))
            stepped = [a_next, c_next, yt]
        else:
            stepped = list(model.step(x[:, :, 0], states[0]))
        return list(a_fwd) + stepped

    serial = [calls(k) for k in range(N_THREADS)]
    results = run_in_threads(lambda k: [calls(k) for _ in range(N_CALLS)])
    for k, per_thread in enumerate(results):
        for i, got in enumerate(per_thread):
            assert_bitwise(got, serial[k], f"{kind} model, thread {k}, call {i}")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_batch_parallel_models_called_from_several_threads(kind):
    """n_threads=2 inside each of four concurrent callers: each caller's result equals its own
    serial n_threads=2 result bit for bit."""
    model = _model(kind, np.float64, seed=11)
    inputs = [_model_inputs(kind, np.float64, seed=400 + k, m=9) for k in range(4)]
    serial = [list(model.forward(x, *s, n_threads=2)) for x, s in inputs]
    results = run_in_threads(
        lambda k: [list(model.forward(inputs[k][0], *inputs[k][1], n_threads=2))
                   for _ in range(10)], n_threads=4)
    for k, per_thread in enumerate(results):
        for got in per_thread:
            assert_bitwise(got, serial[k], f"{kind} model n_threads=2, caller {k}")


def test_streaming_state_is_per_caller():
    """Two threads streaming through one LSTM model with their own states get the same states
    as streaming serially: the model keeps no hidden per-call state."""
    model = _model("lstm", np.float64, seed=12)
    streams = [_model_inputs("lstm", np.float64, seed=500 + k, m=3, T_x=40)[0]
               for k in range(2)]

    def stream(k):
        state, ys = None, []
        for t in range(streams[k].shape[2]):
            state, yt = model.step(streams[k][:, :, t], state)
            ys.append(yt)
        return [state[0], state[1], np.stack(ys)]

    serial = [stream(k) for k in range(2)]
    for k, got in enumerate(run_in_threads(stream, n_threads=2)):
        assert_bitwise(got, serial[k], f"stream {k}")



@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "stack"])
def test_n_threads_is_validated_and_any_count_works(kind):
    """n_threads: a huge count runs (a batch splits into at most m slices; it once overflowed
    the kernels' C integer with an OverflowError), and bools and floats are refused with a
    TypeError naming it on every route (a stack's compiled route once took True and 1.0)."""
    rng = np.random.default_rng(10)
    n_x, n_a, m, T = 6, 64, 40, 12  # enough work for the threaded routes
    if kind == "stack":
        model = fastrnn.Stack([fastrnn.Bidirectional(
            fastrnn.LSTM(layer_params("lstm", rng, n_x, n_a)),
            fastrnn.LSTM(layer_params("lstm", rng, n_x, n_a)))])
    else:
        model = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind](
            layer_params(kind, rng, n_x, n_a, 3))
    x = rng.standard_normal((n_x, m, T))
    def leaves(out):
        return [v for o in out for v in (o if isinstance(o, tuple) else (o,))]

    one = leaves(model.forward(x, n_threads=1))
    huge = leaves(model.forward(x, n_threads=2 ** 70))
    assert len(huge) == len(one)
    for g, w in zip(huge, one):
        if w is None:
            assert g is None
        else:
            assert_close(g, w, np.float64)
    for bad in (True, 1.0, np.float64(2.0), "2"):
        with pytest.raises(TypeError, match="n_threads"):
            model.forward(x, n_threads=bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_threads"):
            model.forward(x, n_threads=bad)
