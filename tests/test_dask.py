"""fastrnn.dask.forward on a real two-process LocalCluster: the results equal model.forward on
the whole array for chunkings along every axis, the model reaches each worker once, and bad
input fails before any task runs."""
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="fastrnn.dask needs dask (pip install "
                         "'fastrnn[dask]')")
distributed = pytest.importorskip("distributed", reason="the cluster tests need "
                                  "dask.distributed (pip install 'fastrnn[dask]')")
import dask  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.dask as fdask  # noqa: E402
from _util import layer_params, lstm_params, rnn_params  # noqa: E402

# float64 to 1e-12, float32 to 1e-5: a chunk's BLAS calls may block (and so round) the sums
# differently from the whole batch's; nothing else differs.
TOL = {np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-12},
       np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-5}}

N_X, N_A, N_Y, M, T = 5, 6, 3, 11, 7

# chunks of x (n_x, m, T_x): along m only, along every axis, along n_x / T_x only, one chunk,
# an empty chunk among others
CHUNKINGS = [(-1, 4, -1), (2, (3, 1, 5, 2), 3), (1, -1, -1), (-1, -1, 2), (-1, 1, -1),
             (-1, -1, -1), (-1, (4, 0, 7), -1)]

UNPICKLED = 0


class CountingLSTM(fastrnn.LSTM):
    """An LSTM that counts how often this process unpickles one."""

    def __setstate__(self, state):
        global UNPICKLED
        UNPICKLED += 1
        super().__setstate__(state)


def unpickled():
    return sys.modules[__name__].UNPICKLED


class MaskedRNN:
    """A model of another structure: a ``lengths`` argument, a final state (n_a, m) and a
    None among its results (as models with ``return_state`` or ``lengths`` have)."""

    def __init__(self, rnn):
        self.rnn, self.n_x = rnn, rnn.n_x

    def forward(self, x, a0=None, *, lengths=None, scale=1.0, n_threads=1):
        a, y = self.rnn.forward(x, a0, n_threads=n_threads)
        steps = np.arange(x.shape[2])
        if lengths is not None:
            y = np.where(steps < np.asarray(lengths)[:, None], y, 0.0)
        return a, None, y * scale, a[:, :, -1].copy()


@pytest.fixture(scope="module")
def client():
    # Without the active memory manager, which may drop a copy of the model from a worker
    # between two of its tasks (it is then fetched again): the count below is then exact.
    with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0",
                                  silence_logs=40) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def make(kind, dtype, cls=None):
    params = (rnn_params if kind == "rnn" else lstm_params)(
        np.random.default_rng(0), N_X, N_A, N_Y)
    return (cls or {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM}[kind])(params, dtype=dtype)


def data(shape=(N_X, M, T), seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def assert_matches(got, want, dtype, err_msg=""):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert g.shape == w.shape and g.dtype == w.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, w, err_msg=err_msg, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_equals_forward_on_the_whole_array(client, kind, dtype):
    model = make(kind, dtype)
    xn = data()
    want = model.forward(xn)
    lazy = []
    for chunks in CHUNKINGS:  # one compute for all chunkings: one round trip
        x = da.from_array(xn, chunks=chunks)
        out = fdask.forward(model, x)
        for arr in out:
            assert arr.chunks[1] == x.chunks[1]
            assert all(len(c) == 1 for axis, c in enumerate(arr.chunks) if axis != 1)
        lazy.append(out)
    for chunks, got in zip(CHUNKINGS, dask.compute(*lazy)):
        assert_matches(got, want, dtype, f"chunks {chunks}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_initial_states_are_split_along_m(client, dtype):
    model = make("lstm", dtype)
    xn, a0, c0 = data(), data((N_A, M), 2), data((N_A, M), 3)
    x = da.from_array(xn, chunks=(-1, 4, 3))
    # a dask state chunked otherwise than x, and a NumPy one: both follow x's chunks
    out = fdask.forward(model, x, a0=da.from_array(a0, chunks=(2, 5)), c0=c0)
    assert_matches(dask.compute(*out), model.forward(xn, a0, c0), dtype)


def test_lengths_final_state_and_none_results(client):
    model = MaskedRNN(make("rnn", np.float64))
    xn, a0 = data(), data((N_A, M), 2)
    lengths = np.random.default_rng(4).integers(1, T + 1, size=M)
    x = da.from_array(xn, chunks=(-1, (5, 6), -1))
    out = fdask.forward(model, x, a0=a0, lengths=da.from_array(lengths, chunks=3), scale=2.0)
    assert out[1] is None
    assert out[3].shape == (N_A, M) and out[3].chunks == ((N_A,), (5, 6))
    assert_matches(dask.compute(out[0], out[2], out[3]),
                   [r for r in model.forward(xn, a0, lengths=lengths, scale=2.0)
                    if r is not None], np.float64)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stacks_states_lengths_and_nested_results(client, kind):
    """A stack (a bidirectional layer, then a forward one, as imported models are): its
    initial states (L*D, n_a, m) split along their last axis, lengths, the final states
    (L*D, n_a, m) chunked along theirs, an LSTM's (h_n, c_n) pair given back as a pair."""
    rng = np.random.default_rng(6)
    n_a = 4

    def layer(n_in):
        return layer_params(kind, rng, n_in, n_a)

    cls = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind]
    stack = fastrnn.Stack([fastrnn.Bidirectional(cls(layer(N_X)), cls(layer(N_X))),
                           cls(layer(2 * n_a))])
    xn = data()
    states = {"h0": rng.standard_normal((3, n_a, M))}
    if kind == "lstm":
        states["c0"] = rng.standard_normal((3, n_a, M))
    lengths = rng.integers(1, T + 1, size=M)
    want = stack.forward(xn, lengths, **states)
    x = da.from_array(xn, chunks=(-1, (4, 0, 7), -1))
    out = fdask.forward(stack, x, lengths=lengths,
                        **{k: da.from_array(v, chunks=(1, 2, 5)) for k, v in states.items()})
    assert out[1] is None
    assert isinstance(out[2], tuple) == isinstance(want[2], tuple) == (kind == "lstm")
    finals = out[2] if kind == "lstm" else (out[2],)
    for f in finals:
        assert f.shape == (3, n_a, M) and f.chunks == ((3,), (n_a,), (4, 0, 7))
    got = dask.compute(out)[0]
    flat = (lambda r: [r[0]] + (list(r[2]) if kind == "lstm" else [r[2]]))
    assert_matches(flat(got), flat(want), np.float64)


def test_integer_input_is_converted_like_model_forward(client):
    model = make("rnn", np.float32)
    xn = np.random.default_rng(5).integers(-2, 3, size=(N_X, M, T))
    out = fdask.forward(model, da.from_array(xn, chunks=(-1, 6, -1)))
    assert_matches(dask.compute(*out), model.forward(xn), np.float32)


def run_tasks(graph):
    """The keys of the graph's tasks that run model.forward on a chunk."""
    return [k for k, v in graph.items() if getattr(v, "func", None) is fdask._run_chunk]


def test_model_is_scattered_to_each_worker_once(client):
    """With a distributed client current, forward sends the model to every worker once
    (no task carries it): each worker unpickles it once, however many chunks it runs."""
    model = make("lstm", np.float64, cls=CountingLSTM)
    n_chunks = 8
    x = da.from_array(data((N_X, 4 * n_chunks, T)), chunks=(-1, 4, -1))
    before = client.run(unpickled)
    out = fdask.forward(model, x)
    graph = dict(out[0].__dask_graph__())
    assert not [k for k, v in graph.items() if isinstance(getattr(v, "value", v), CountingLSTM)]
    runs = run_tasks(graph)
    assert len(runs) == n_chunks
    model_keys = {dep for k in runs for dep in graph[k].dependencies if "LSTM" in str(dep)}
    assert len(model_keys) == 1 and model_keys.isdisjoint(graph)  # a future, not a task
    dask.compute(*out)
    counts = {w: client.run(unpickled)[w] - before[w] for w in before}
    assert len(counts) == 2 and all(c == 1 for c in counts.values()), counts


def test_without_a_client_the_model_is_one_node_of_the_graph():
    model = make("lstm", np.float64, cls=CountingLSTM)
    n_chunks = 5
    xn = data((N_X, 3 * n_chunks, T))
    with dask.config.set(scheduler="sync"):
        out = fdask.forward(model, da.from_array(xn, chunks=(-1, 3, -1)))
        graph = dict(out[0].__dask_graph__())
        holders = [k for k, v in graph.items()
                   if isinstance(getattr(v, "value", v), CountingLSTM)]
        assert len(holders) == 1
        runs = run_tasks(graph)
        assert len(runs) == n_chunks
        assert all(holders[0] in graph[k].dependencies for k in runs)
        assert_matches(dask.compute(*out), model.forward(xn), np.float64)


def test_one_task_per_chunk_and_one_light_layer_per_result():
    """The graph: x, one layer with one model.forward task per chunk of examples (returning
    all results as one tuple), and one layer per result picking its array out of it; when
    one result alone is computed, the pick fuses into the chunk's task."""
    model = make("lstm", np.float32)
    x = da.from_array(data(), chunks=(-1, 4, -1))  # 3 chunks along m
    with dask.config.set(scheduler="sync"):
        a, y, c = fdask.forward(model, x)
    layers = dict(y.dask.layers)
    ours = sorted(name for name in layers if name.startswith("fastrnn-forward-"))
    assert len(ours) == 2 and {len(layers[name]) for name in ours} == {3}
    assert set(layers) == set(ours) | {x.name, next(n for n in layers
                                                    if n.startswith("fastrnn-model-"))}
    (run_layer,) = set(ours) & set(a.dask.layers)  # the run layer, which a and y share
    assert len(run_tasks(dict(layers[run_layer]))) == 3
    (fused,) = dask.optimize(y)
    fused_graph = dict(fused.__dask_graph__())
    assert len([k for k in fused_graph if k[0] == fused.name]) == 3
    assert len(run_tasks(fused_graph)) == 0  # model.forward runs inside the 3 tasks of y
    np.testing.assert_allclose(fused.compute(scheduler="sync"), model.forward(data())[1],
                               rtol=1e-6, atol=1e-6)


def test_chunk_size_from_a_probe():
    model = make("lstm", np.float32)
    for x in (da.zeros((N_X, 1000, T), chunks=(-1, 10, -1)), np.zeros((N_X, 1000, T))):
        with no_tasks():
            c = fdask.chunk_size(model, x)
        assert isinstance(c, int) and 1 <= c <= 1000
    # at the bounds: never more than m, never less than one
    assert fdask.chunk_size(model, np.zeros((N_X, 3, T)), seconds=1e6) == 3
    assert fdask.chunk_size(model, np.zeros((N_X, 0, T)), seconds=1e6) == 1
    assert fdask.chunk_size(model, np.zeros((N_X, 1000, T)), seconds=1e-12) == 1
    with pytest.raises(ValueError, match="seconds must be positive"):
        fdask.chunk_size(model, np.zeros((N_X, 3, T)), seconds=0)
    with pytest.raises(ValueError, match=r"\(n_x, m, T_x\)"):
        fdask.chunk_size(model, np.zeros((N_X, 3)))


def test_model_survives_the_clusters_pickling_routes(client):
    """Scattered (the route of large arguments: protocol 5, out-of-band buffers) and back."""
    model = make("lstm", np.float32)
    xn = data((N_X, 3, T))
    [remote] = client.scatter([model], broadcast=True)
    got = client.submit(lambda mod, x: mod.forward(x), remote, xn).result()
    assert_matches(got, model.forward(xn), np.float32)
    back = client.gather(client.submit(lambda mod: mod, remote))
    assert_matches(back.forward(xn), model.forward(xn), np.float32)


# ------------------------------------------------------------------ bad input (no cluster)

def no_tasks():
    """A scheduler that fails the test if anything is computed."""
    def get(*args, **kwargs):
        raise AssertionError("a task ran")
    return dask.config.set(scheduler=get)


@pytest.mark.parametrize("x, error, words", [
    (np.zeros((N_X, M, T)), TypeError, ["dask array", "ndarray", "model.forward"]),
    (da.zeros((N_X, M), chunks=3), ValueError, ["(n_x, m, T_x)", "2-d"]),
    (da.zeros((1, N_X, M, T), chunks=3), ValueError, ["(n_x, m, T_x)", "4-d"]),
    (da.zeros((N_X, M, T), dtype=complex, chunks=3), TypeError, ["real numbers",
                                                                 "complex"]),
    (da.zeros((N_X, M, T), dtype=bool, chunks=3), TypeError, ["real numbers", "bool"]),
    (da.zeros((N_X + 1, M, T), chunks=3), ValueError, ["n_x = 5", f"({N_X + 1}, {M}, {T})"]),
], ids=["numpy", "2d", "4d", "complex", "bool", "n_x"])
def test_bad_x_is_refused_before_any_task(x, error, words):
    with no_tasks(), pytest.raises(error) as info:
        fdask.forward(make("rnn", np.float64), x)
    for word in words:
        assert word in str(info.value)


def test_unknown_chunk_sizes_along_m_are_refused_before_any_task():
    x = da.from_array(data(), chunks=(-1, 4, -1))
    x = x[:, x[0, :, 0] > 0]  # boolean indexing: m is unknown until computed
    assert np.isnan(x.shape[1])
    with no_tasks(), pytest.raises(ValueError, match="unknown chunk sizes along m"):
        fdask.forward(make("rnn", np.float64), x)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"a0": np.zeros((N_A, M + 1))}, ValueError, "m = 11"),
    ({"a0": np.zeros((N_A + 1, M))}, ValueError, "a0"),
    ({"lenghts": np.ones(M, int)}, TypeError, "lenghts"),
    ({"n_threads": 0}, ValueError, "n_threads"),
], ids=["a0-m", "a0-n_a", "unknown-kwarg", "n_threads"])
def test_bad_keyword_arguments_are_refused_before_any_task(kwargs, error, match):
    with no_tasks(), pytest.raises(error, match=match):
        fdask.forward(make("rnn", np.float64), da.from_array(data(), chunks=(-1, 4, -1)),
                      **kwargs)


def test_building_the_graph_runs_no_task_and_empty_batches_work():
    model = make("lstm", np.float32)
    with no_tasks(), pytest.raises(AssertionError, match="a task ran"):
        da.ones(3).sum().compute()  # the guard works
    with no_tasks():
        a, y, c = fdask.forward(model, da.from_array(data(), chunks=(-1, 4, -1)))
    assert (a.shape, y.shape, c.shape) == ((N_A, M, T), (N_Y, M, T), (N_A, M, T))
    assert a.dtype == np.float32
    empty = fdask.forward(model, da.zeros((N_X, 0, T), chunks=-1))
    assert [e.shape for e in empty] == [(N_A, 0, T), (N_Y, 0, T), (N_A, 0, T)]


def test_benchmark_runs_on_a_given_scheduler(client):
    """`fastrnn bench --dask` (fastrnn._dask_bench) end to end at a tiny size: its rows and
    table are complete (the figures themselves are the benchmark's business, not a test's)."""
    from fastrnn import _dask_bench
    result = _dask_bench.run(["lesson"], ["rnn"], ["float64"], chunk=2, sequences=6,
                             sweep_m=2, repeat=1, empty_tasks=2, plain=False,
                             scheduler=client.scheduler.address)
    assert result["workers"] == 2
    [case] = result["cases"]
    assert (case["m"], case["chunk"], case["chunks"]) == (6, 2, 3)
    assert [r["chunk"] for r in result["sweep"]] == [1, 2]
    text = _dask_bench.format_table(result)
    assert "lesson" in text and "overhead under 5% from chunk" in text
    assert len(text.splitlines()) == 8 + 1 + 1 + 1 + 2 + 1
    assert case["speedup_range"][0] <= case["speedup"] <= case["speedup_range"][1]


def test_benchmark_plain_processes_run():
    """The benchmark's no-Dask reference: plain processes share the chunks and start
    together (the wall time covers both; its value is the benchmark's business)."""
    from fastrnn import _dask_bench
    wall = _dask_bench._plain_processes_time("rnn", (3, 4, 2, 5), "float64", [2, 3, 1], 2)
    assert wall > 0 and np.isfinite(wall)
