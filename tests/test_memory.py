"""Memory: many calls leave the resident set flat; caches free their memory when dropped.

Resident memory is read from /proc/self/statm (Linux).  Each test warms up first (allocator
arenas, BLAS buffers, lazily built module state), then measures the growth over the calls
against a tolerance that is a fraction of what a leak of *one output per call* would add (the
smallest output, so any leaked output array would exceed it).
"""
import gc
import os
import resource
import sys
import weakref

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastrnn
from _util import layer_params, lstm_params, rnn_params

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="needs Linux /proc/self/statm")

PAGE = resource.getpagesize()
MiB = 2.0**20
FUNCS = ("rnn_cell_forward", "rnn_forward", "lstm_cell_forward", "lstm_forward")
N_OUT = {"rnn_cell_forward": 2, "rnn_forward": 2, "lstm_cell_forward": 3, "lstm_forward": 3}


def rss():
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def settled_rss():
    gc.collect()
    return rss()


def make_call(name, n_x, n_a, n_y, m, T_x, seed=0):
    """A zero-argument closure making one call of ``name`` (its inputs built once), and the
    size in bytes of the smallest output array of that call (what leaking one output per call
    would leak at least, data plus array object)."""
    rng = np.random.default_rng(seed)
    params = (lstm_params if name.startswith("lstm") else rnn_params)(rng, n_x, n_a, n_y)
    cell = name.endswith("cell_forward")
    args = [rng.standard_normal((n_x, m) if cell else (n_x, m, T_x)),
            rng.standard_normal((n_a, m))]
    if name == "lstm_cell_forward":
        args.append(rng.standard_normal((n_a, m)))
    fn = getattr(fastrnn, name)

    def call(touch_caches=False):
        out = fn(*args, params)
        if touch_caches:  # build cache items lazily, as a backward pass would
            cache = out[N_OUT[name]]
            if cell:
                assert len(cache) in (4, 10)
            else:
                steps = cache[0]
                for item in steps:
                    assert item[0].shape == (n_a, m)
        return out

    # data plus the array object (outputs may be views, so not sys.getsizeof alone)
    smallest = min(o.nbytes for o in call()[:N_OUT[name]]) + sys.getsizeof(np.empty(0))
    call.caller_arrays = args + list(params.values())
    return call, smallest


def test_100000_small_calls_leave_memory_flat():
    """The lessons' size (n_x=3, n_a=5, n_y=2, m=10, T_x=4), 25,000 calls of each function,
    every other call also building its caches."""
    calls, smallest = [], []
    for name in FUNCS:
        call, size = make_call(name, 3, 5, 2, 10, 4)
        calls.append(call)
        smallest.append(size)
    n_calls = 100_000
    for i in range(4_000):  # warm-up
        calls[i % 4](touch_caches=i % 8 < 4)
    before = settled_rss()
    for i in range(n_calls):
        calls[i % 4](touch_caches=i % 8 < 4)
    after = settled_rss()
    leak_one_output = sum(smallest) / 4 * n_calls
    tolerance = 0.25 * leak_one_output
    growth = after - before
    print(f"\nsmall calls: RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB "
          f"(growth {growth / MiB:.2f} MiB; leaking one output per call would add "
          f"{leak_one_output / MiB:.1f} MiB; tolerance {tolerance / MiB:.1f} MiB)")
    assert growth < tolerance, (
        f"RSS grew by {growth / MiB:.2f} MiB over {n_calls} small calls (tolerance "
        f"{tolerance / MiB:.1f} MiB, a quarter of a one-output-per-call leak)")


def test_50000_streaming_model_steps_leave_memory_flat():
    """A stream through fastrnn.RNN and fastrnn.LSTM, one step per call at the lessons' size,
    each call's state fed to the next (25,000 steps each), plus a forward every 50 steps."""
    rng = np.random.default_rng(1)
    rnn = fastrnn.RNN(rnn_params(rng, 3, 5, 2))
    lstm = fastrnn.LSTM(lstm_params(rng, 3, 5, 2))
    xs = rng.standard_normal((3, 10, 50))

    def stream(n_steps):
        r_state = l_state = None
        for i in range(n_steps):
            xt = xs[:, :, i % 50]
            r_state, _ = rnn.step(xt, r_state)
            l_state, _ = lstm.step(xt, l_state)
            if i % 50 == 0:
                rnn.forward(xs[:, :, :4], r_state)
                lstm.forward(xs[:, :, :4], *l_state)
        return r_state, l_state

    stream(2_000)  # warm-up
    before = settled_rss()
    stream(25_000)
    after = settled_rss()
    smallest = 2 * 10 * 8 + sys.getsizeof(np.empty(0))  # yt_pred (n_y, m) float64
    leak_one_output = 2 * 25_000 * smallest
    tolerance = 0.25 * leak_one_output
    growth = after - before
    print(f"\nstreaming steps: RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB (growth "
          f"{growth / MiB:.2f} MiB; leaking one output per call would add "
          f"{leak_one_output / MiB:.1f} MiB; tolerance {tolerance / MiB:.1f} MiB)")
    assert growth < tolerance


# Sizes whose hidden-state output is 4 MiB (float64): few hidden units, many columns, so the
# calls are cheap for their memory traffic.
LARGE = {
    "rnn_cell_forward": (2, 8, 2, 65536, 1),
    "rnn_forward": (2, 8, 2, 512, 128),
    "lstm_cell_forward": (2, 8, 2, 65536, 1),
    "lstm_forward": (2, 8, 2, 512, 128),
}


def test_1000_large_calls_leave_memory_flat():
    """250 calls of each function with a 4 MiB output; a leak of one output per call would add
    at least 1000 x the smallest output.  RSS is read after every call *without* forcing a
    garbage collection (memory that only a cyclic collection would free is memory a loop of
    calls keeps resident), and the test stops at the first excess, so a real leak ends early."""
    with threadpool_limits(1):  # memory does not depend on it; time does, a lot, on 2 cores
        calls, smallest = [], []
        for name, sizes in LARGE.items():
            call, size = make_call(name, *sizes)
            out = call()
            assert max(o.nbytes for o in out[:N_OUT[name]]) >= 4 * 2**20
            del out
            calls.append(call)
            smallest.append(size)
        # Warm-up until the C allocator has settled on its working set (large blocks cycle
        # between the heap and mmap before it does); the baseline is the resident high-water
        # mark of the last warm-up round.
        warm = []
        for i in range(40):
            calls[i % 4](touch_caches=i % 8 < 4)
            warm.append(rss())
        n_calls = 1000
        leak_one_output = sum(smallest) / 4 * n_calls
        tolerance = 0.02 * leak_one_output
        before = max(warm[-8:])
        peak = 0
        for i in range(n_calls):
            calls[i % 4](touch_caches=i % 8 < 4)
            peak = max(peak, rss() - before)
            assert peak < tolerance, (
                f"RSS grew by {peak / MiB:.1f} MiB after {i + 1} large calls (tolerance "
                f"{tolerance / MiB:.1f} MiB; one output is at least {smallest[i % 4] / MiB:.1f} "
                f"MiB)")
        after = settled_rss()
    growth = after - before
    print(f"\nlarge calls: RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB "
          f"(peak growth {peak / MiB:.2f} MiB, after gc {growth / MiB:.2f} MiB; leaking one "
          f"output per call would add {leak_one_output / MiB:.0f} MiB; tolerance "
          f"{tolerance / MiB:.1f} MiB)")
    assert growth < tolerance


@pytest.mark.parametrize("name", FUNCS)
def test_dropped_outputs_and_caches_are_freed_at_once(name):
    """With the cyclic garbage collector off, dropping the outputs and the caches (after
    building every cache item) frees every array fastrnn made: nothing is kept alive by a
    reference cycle or a module-level store."""
    call, _ = make_call(name, 3, 5, 2, 10, 6)
    mine = call.caller_arrays  # the caller's inputs and weights stay alive, legitimately

    def made_by_fastrnn(arr):
        return not any(arr is v or arr.base is v for v in mine)

    out = call(touch_caches=True)
    cache = out[N_OUT[name]]
    items = [cache] if name.endswith("cell_forward") else list(cache[0])
    arrays = list(out[:N_OUT[name]]) + [v for item in items for v in item
                                         if isinstance(v, np.ndarray)]
    arrays += [v.base for v in arrays if isinstance(v.base, np.ndarray)]
    refs = [weakref.ref(v) for v in arrays if made_by_fastrnn(v)]
    assert len(refs) >= N_OUT[name]
    del items, arrays
    gc.disable()
    try:
        del out, cache
        alive = sum(r() is not None for r in refs)
    finally:
        gc.enable()
    assert alive == 0, f"{alive} of {len(refs)} arrays outlive their outputs and caches"


def test_caches_release_memory_when_dropped():
    """A large lstm_forward with every cache item built holds tens of MiB, cut from fastrnn's
    pool of large arrays; once the outputs and the caches are dropped, all of that memory is
    unused at once (no garbage collection) and ``fastrnn.release_memory()`` returns exactly
    it.  Measured with tracemalloc (numpy reports its data buffers to it), which counts live
    allocations exactly, whatever the C allocator keeps resident for reuse
    (test_1000_large_calls_leave_memory_flat covers residency)."""
    import tracemalloc

    from fastrnn import _pool

    one_output = 4 * 2**20
    for name in ("lstm_forward", "rnn_forward"):
        call, _ = make_call(name, *LARGE[name])
        with threadpool_limits(1):
            for _ in range(3):  # warm-up
                call(touch_caches=True)
            fastrnn.release_memory()
            tracemalloc.start()
            try:
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                out = call(touch_caches=True)
                cache = out[N_OUT[name]]
                held_items = [cache[0][t] for t in range(len(cache[0]))]
                holding = tracemalloc.get_traced_memory()[0]
                pooled = _pool.held_bytes()
                in_use = fastrnn.release_memory()  # every block is still in use
                del out, held_items, cache
                released = fastrnn.release_memory()  # no gc.collect: unused at once
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
        print(f"\n{name} caches: traced {before / MiB:.1f} MiB, holding caches "
              f"{holding / MiB:.1f} MiB ({pooled / MiB:.1f} MiB pooled), released "
              f"{released / MiB:.1f} MiB, then {after / MiB:.1f} MiB")
        # the caches really did hold memory (the states, for the LSTM the gate buffer, ...)
        assert holding - before > one_output
        assert pooled > one_output and in_use == 0 and released == pooled
        assert _pool.held_bytes() == 0
        assert after - before < one_output / 4, (
            f"{name}: {(after - before) / MiB:.1f} MiB still allocated after dropping the "
            f"outputs and caches")


def test_pool_reuses_dropped_outputs_and_never_one_still_in_use():
    """Large outputs of a call that were dropped are reused by the next call of the same size
    (the pool does not grow); an output still referred to -- by itself, by a view of it, or by
    a buffer made from it -- keeps its memory: the next calls write elsewhere."""
    from fastrnn import _pool

    fastrnn.release_memory()
    call, _ = make_call("lstm_forward", *LARGE["lstm_forward"])
    with threadpool_limits(1):
        call()
        held = _pool.held_bytes()
        assert held >= 4 * 2**20
        for _ in range(3):
            call()
        assert _pool.held_bytes() == held
        a, y, c, _ = call()
        keep = [a[:, 1:, ::2], memoryview(y), np.asarray(memoryview(c))]
        want = [np.array(v) for v in keep]
        del a, y, c
        for _ in range(3):
            out = call()
            for v in keep:
                assert not any(np.shares_memory(v, o) for o in out[:3])
            del out
        for v, w in zip(keep, want):
            np.testing.assert_array_equal(np.asarray(v), w)
        assert _pool.held_bytes() > held
        del keep, v
        assert fastrnn.release_memory() > 0


@pytest.mark.parametrize("call", ["bidirectional", "bidirectional lengths", "stack",
                                  "model lengths", "model threads"])
def test_composed_and_routed_outputs_come_from_the_pool(call, monkeypatch):
    """The large outputs of a Bidirectional layer or a Stack (with lengths too, whose sorted
    work copy and the outputs put back in the caller's order are large as well), of a model
    called with lengths, and of a model's threaded route are cut from the pool's blocks: a
    dropped output's block serves the next call (the pool does not grow, no fresh mapping is
    faulted in again), and every large array returned lies in a block of the pool."""
    from fastrnn import _api, _pool

    monkeypatch.setattr(_api, "_MIN_THREADED_WORK", 0)  # the threaded route at this size
    rng = np.random.default_rng(5)
    n_x, n_a, m, T = 8, 64, 32, 80  # an (n_a, m, T) float64 sequence: 1.3 MB, pooled
    assert n_a * m * T * 8 >= _pool.MIN_BYTES

    def layer():
        return fastrnn.RNN(layer_params("rnn", rng, n_x, n_a))

    x = rng.standard_normal((n_x, m, T))
    lengths = rng.integers(1, T + 1, m)
    lengths[0] = T  # not in order: the batch is sorted, run and put back
    bidir = fastrnn.Bidirectional(layer(), layer())
    single = layer()
    stack = fastrnn.Stack([layer(), fastrnn.RNN(layer_params("rnn", rng, n_a, n_a))])
    run = {"bidirectional": lambda: bidir.forward(x)[0],
           "bidirectional lengths": lambda: bidir.forward(x, lengths=lengths)[0],
           "stack": lambda: stack.forward(x)[0],
           "model lengths": lambda: single.forward(x, lengths=lengths)[0],
           "model threads": lambda: single.forward(x, n_threads=2)[0]}[call]

    def in_pool(arr):
        return any(np.shares_memory(arr, block) for block in _pool._blocks)

    fastrnn.release_memory()
    with threadpool_limits(1):
        first = run()
        assert first.nbytes >= _pool.MIN_BYTES and in_pool(first)
        del first
        run()
        held = _pool.held_bytes()
        for _ in range(3):
            out = run()
            assert in_pool(out)
            del out
        assert _pool.held_bytes() == held


def test_pool_keeps_at_most_its_limit_of_unused_memory(monkeypatch):
    """Unused blocks beyond KEEP_BYTES go, least recently used first, when a new block is
    made; a block is reused only for a request of half its size or more."""
    from fastrnn import _pool

    fastrnn.release_memory()
    MB, line = 2**20, _pool.LINE  # each block has room to start its array on a cache line
    monkeypatch.setattr(_pool, "KEEP_BYTES", 3 * MB + 2 * line)
    for n in (1 * MB, 2 * MB, 3 * MB):  # each dropped at once, none fits the next
        _pool.empty((n // 8,), np.float64)
    assert _pool.held_bytes() == 6 * MB + 3 * line  # 3 MiB unused until the next block
    _pool.empty((5 * MB // 8,), np.float64)
    # 6 MiB unused before the 5 MiB block: the 1 and 2 MiB blocks went, 3 MiB stay
    assert _pool.held_bytes() == 3 * MB + 5 * MB + 2 * line
    small = _pool.empty((MB // 8,), np.float64)  # the 3 MiB block is more than twice 1 MiB
    # a new 1 MiB block, and 8 MiB unused: the 3 MiB block goes, then the 5 MiB one
    assert _pool.held_bytes() == MB + line
    assert fastrnn.release_memory() == 0  # in use
    del small
    assert fastrnn.release_memory() == MB + line
    assert _pool.held_bytes() == 0


def test_packed_blocks_start_on_huge_page_boundaries_and_free_their_memory():
    """A packed block of HUGE_MIN_BYTES or more starts on a 2 MiB boundary of its own mapping
    (so the kernel can back it with huge pages), is writable, exactly the size asked for, and
    its memory goes back when the array and its views are gone; a smaller one, or any one
    where the advice is missing, an array that starts on a cache line."""
    import mmap

    from fastrnn import _pool

    small = _pool.huge_empty(_pool.HUGE_MIN_BYTES - 1)
    assert small.nbytes == _pool.HUGE_MIN_BYTES - 1 and small.ctypes.data % _pool.LINE == 0
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        pytest.skip("no MADV_HUGEPAGE here: huge_empty is np.empty")
    nbytes = 3 * _pool.HUGE_PAGE + 4096 * 5 + 8  # spans several pages, ends mid-page
    before = settled_rss()
    block = _pool.huge_empty(nbytes)
    assert block.nbytes == nbytes and block.dtype == np.uint8 and block.flags.writeable
    assert block.ctypes.data % _pool.HUGE_PAGE == 0
    block[:] = 7
    view = block[-8:].view(np.float64)
    touched = settled_rss() - before
    assert touched >= nbytes  # resident once written
    del block
    assert view[0] == np.frombuffer(b"\x07" * 8, np.float64)[0]  # a view keeps it alive
    del view
    assert settled_rss() - before < touched / 4


def test_models_pack_their_blocks_on_huge_page_boundaries():
    """A model's packed recurrent block of HUGE_MIN_BYTES or more (kept per thread) and a
    drop-in call's (the thread's arena) come from fastrnn._pool.huge_empty."""
    from fastrnn import _pool
    from fastrnn._kernels import _core

    n_x, n_a, m, T = 8, 160, 3, 4  # 4 * 160 * 168 floats: 430 KB packed
    params = lstm_params(np.random.default_rng(0), n_x, n_a, 2, np.float32)
    x = np.random.default_rng(1).standard_normal((n_x, m, T)).astype(np.float32)
    model = fastrnn.LSTM(params)
    model.forward(x)
    (_, block), = [v for v in model._scratch.buffers[3:] if v is not None]
    assert block.nbytes >= _pool.HUGE_MIN_BYTES
    assert block.ctypes.data % _pool.HUGE_PAGE == 0
    fastrnn.lstm_forward(x, np.zeros((n_a, m), np.float32), params)
    arena = _core._ARENA.panel
    assert arena.nbytes >= block.nbytes and arena.ctypes.data % _pool.HUGE_PAGE == 0


def _arrays(v):
    # every ndarray in a scratch slot (an array, a (key, array) pair, lists of tuples)
    if isinstance(v, np.ndarray):
        yield v
    elif isinstance(v, (tuple, list)):
        for u in v:
            yield from _arrays(u)


@pytest.mark.parametrize("kind", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_buffers_start_on_cache_lines(monkeypatch, kind, dtype):
    """Every buffer the kernels read again and again -- a model's packed block, ring and work
    arrays (its threads' slices too), the drop-in calls' arena, large outputs -- starts on a
    cache line, however small it is (np.empty alone gives 16 bytes, and a vector loaded from
    16 bytes into a line straddles two)."""
    from fastrnn import _api, _pool
    from fastrnn._kernels import _core

    from _util import layer_params

    monkeypatch.setattr(_api, "_MIN_THREADED_WORK", 0)  # the LSTM's slices at any size
    rng = np.random.default_rng(3)
    dropin = {"lstm": fastrnn.lstm_forward, "rnn": fastrnn.rnn_forward,
              "gru": fastrnn.gru_forward}[kind]
    seen = 0
    for n_x, n_a, n_y, m, T in [(3, 5, 2, 1, 3), (7, 33, 5, 2, 9), (27, 100, 27, 1, 50),
                                (5, 24, 3, 16, 40)]:
        params = layer_params(kind, rng, n_x, n_a, n_y, dtype)
        x = rng.standard_normal((n_x, m, T)).astype(dtype)
        model = {"lstm": fastrnn.LSTM, "rnn": fastrnn.RNN, "gru": fastrnn.GRU}[kind](params)
        model.forward(x)
        if kind == "lstm" and m == 16:  # batch slices, each with its own buffers
            model.forward(x, n_threads=2)
            if _core.panel_gemm_enabled():  # (slices run on the panel GEMM's ring only)
                assert len(model._scratch.buffers) > 4 and model._scratch.buffers[4] is not None
        _core._ARENA.__dict__.clear()
        dropin(x, np.zeros((n_a, m), dtype), params)
        found = list(_arrays(model._scratch.buffers)) + [_core._ARENA.work]
        found += [_core._ARENA.panel] if getattr(_core._ARENA, "panel", None) is not None else []
        for arr in found:
            assert arr.ctypes.data % _pool.LINE == 0, (n_a, m, T, arr.shape, arr.dtype)
        seen += len(found)
    assert seen >= 12
    for shape in [(_pool.MIN_BYTES // np.dtype(dtype).itemsize + 3,), (300, 7, 191)]:
        assert _pool.empty(shape, dtype).ctypes.data % _pool.LINE == 0
