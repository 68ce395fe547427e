"""The Dask benchmark (``fastrnn bench --dask``): fastrnn.dask.forward on worker processes
against one process, and the per-chunk overhead.

For each case (a shape x RNN/LSTM x dtype):

- **one process**: ``model.forward`` (one thread, single-threaded BLAS) over the chunks of
  the data set, one after the other, in this process;
- **Dask**: ``fastrnn.dask.forward`` on a cluster of worker processes (one thread each), the
  input already in the workers' memory (generated there by ``dask.array.random``), the
  results persisted on the workers (as before writing them out); the model travels in the
  timed region.  The median of ``repeat`` runs after one warm-up run.
- **overhead sweep**: the same at several chunk sizes c (about a second of work); the
  per-chunk overhead is the fraction of the workers' time not spent in ``model.forward``,
  ``1 - t_one_process / (workers * t_dask)``, and ``c_5%`` is the smallest chunk size at which
  it is under 5%.  The scheduler's cost per task alone (tiny tasks) is reported too.

The cluster's scheduler runs in this process (LocalCluster), so on a machine with as many
cores as workers it competes with them: the figures are what a user of such a machine sees.
"""
import argparse
import gc
import math
import os
import statistics
import sys
import time

import numpy as np

import fastrnn

__all__ = ["run", "format_table", "add_arguments", "main"]

# name: (n_x, n_a, n_y, T_x) of the benchmark suite's shapes (m is chosen here: many more
# sequences than the suite's batch, so the data set spans many chunks)
SHAPES = {"mid": (128, 256, 32, 100), "fastrnns": (512, 512, 64, 100)}
SWEEP_CHUNKS = (1, 2, 4, 8, 16, 32, 64, 128)


def _params(kind, n_x, n_a, n_y, seed=0):
    from fastrnn._bench import make_params
    return make_params(kind, np.random.default_rng(seed), n_x, n_a, n_y)


def _one_process_time(model, chunks, repeat=1):
    """Seconds for model.forward over ``chunks`` (arrays), one after the other."""
    from fastrnn.dask import _single_threaded_blas
    times = []
    with _single_threaded_blas():
        for _ in range(repeat):
            t0 = time.perf_counter()
            for x in chunks:
                model.forward(x, n_threads=1)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _dask_time(client, model, x, repeat):
    """Median seconds of ``repeat`` runs of fastrnn.dask.forward(model, x), persisted."""
    from distributed import wait

    import fastrnn.dask as fdask
    times = []
    for k in range(repeat + 1):  # the first run warms the workers up (imports, buffers)
        gc.collect()
        t0 = time.perf_counter()
        out = client.persist([r for r in fdask.forward(model, x) if r is not None])
        wait(out)
        if k:
            times.append(time.perf_counter() - t0)
        del out
    return statistics.median(times)


def _task_overhead(client, workers, n_tasks=2000):
    """Seconds of worker time per task for tasks that do nothing."""
    import dask.array as da
    from distributed import wait
    x = da.zeros((n_tasks,), chunks=1)
    times = []
    for k in range(3):
        t0 = time.perf_counter()
        y = client.persist(x + 1)
        wait(y)
        if k:
            times.append(time.perf_counter() - t0)
        del y
    return min(times) * workers / n_tasks


def run(shapes=("mid", "fastrnns"), kinds=("rnn", "lstm"), dtypes=("float32",), *,
        workers=2, chunk=64, sequences=None, target_seconds=4.0, sweep=True, sweep_m=None,
        repeat=3, scheduler=None, progress=None):
    """Run the Dask benchmark; returns ``{"cases": [...], "sweep": [...], "task": ...}``.

    Parameters
    ----------
    shapes : names in ``SHAPES``
    kinds : "rnn" and/or "lstm"
    dtypes : "float32" and/or "float64"
    workers : number of worker processes of the LocalCluster (one thread each)
    chunk : sequences per chunk for the throughput comparison
    sequences : m of the data set; by default as many chunks as make the one-process run
        last about ``target_seconds`` (at least 4 chunks per worker)
    sweep : run the chunk-size sweep (on ``sweep_m`` sequences; by default about a second
        of one-process work)
    scheduler : address of an existing scheduler instead of a LocalCluster
    progress : callable(str) told what runs, or None
    """
    import dask.array as da
    from distributed import Client, LocalCluster

    say = progress or (lambda s: None)
    if scheduler:
        cluster, client = None, Client(scheduler)
        workers = len(client.scheduler_info()["workers"])
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=":0", silence_logs=40)
        client = Client(cluster)
    result = {"cases": [], "sweep": [], "workers": workers}
    try:
        result["task"] = _task_overhead(client, workers)
        for name in shapes:
            n_x, n_a, n_y, T = SHAPES[name]
            for kind in kinds:
                for dtype in dtypes:
                    say(f"{name} {kind} {dtype}")
                    cls = fastrnn.RNN if kind == "rnn" else fastrnn.LSTM
                    model = cls(_params(kind, n_x, n_a, n_y), dtype=dtype)
                    rng = np.random.default_rng(1)
                    probe = rng.standard_normal((n_x, chunk, T)).astype(dtype)
                    per_chunk = _one_process_time(model, [probe], repeat=3)
                    n_chunks = max(4 * workers, math.ceil(target_seconds / per_chunk))
                    m = sequences or n_chunks * chunk
                    n_chunks = math.ceil(m / chunk)
                    local = [rng.standard_normal((n_x, min(chunk, m - k * chunk), T))
                             .astype(dtype) for k in range(n_chunks)]
                    t_one = _one_process_time(model, local)
                    del local
                    x = da.random.default_rng(2).standard_normal(
                        (n_x, m, T), chunks=(-1, chunk, -1), dtype=dtype)
                    x = client.persist(x)
                    t_dask = _dask_time(client, model, x, repeat)
                    del x
                    result["cases"].append({
                        "shape": name, "kind": kind, "dtype": dtype, "m": m, "chunk": chunk,
                        "one_process_s": t_one, "dask_s": t_dask,
                        "one_process_rate": m / t_one, "dask_rate": m / t_dask,
                        "speedup": t_one / t_dask})
                    if not sweep:
                        continue
                    # about a second of one-process work per chunk size
                    m_sweep = sweep_m or int(min(max(chunk / per_chunk, 64), 1024))
                    for c in SWEEP_CHUNKS:
                        if c > m_sweep:
                            break
                        say(f"{name} {kind} {dtype} sweep chunk {c}")
                        n_c = math.ceil(m_sweep / c)
                        chunks = [rng.standard_normal((n_x, c, T)).astype(dtype)
                                  for _ in range(min(n_c, 64))]
                        # one-process time of all n_c chunks, from (at most) 64 of them
                        t1 = _one_process_time(model, chunks) * n_c / len(chunks)
                        x = client.persist(da.random.default_rng(3).standard_normal(
                            (n_x, n_c * c, T), chunks=(-1, c, -1), dtype=dtype))
                        td = _dask_time(client, model, x, 1)
                        del x
                        result["sweep"].append({
                            "shape": name, "kind": kind, "dtype": dtype, "chunk": c,
                            "chunks": n_c, "one_process_s": t1, "dask_s": td,
                            "overhead": 1 - t1 / (workers * td),
                            "per_chunk_ms": 1e3 * (workers * td - t1) / n_c})
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return result


def format_table(result):
    """The result of :func:`run` as text."""
    w = result["workers"]
    lines = [f"fastrnn.dask: {w} worker processes (1 thread each) vs one process "
             f"(1 thread); {os.cpu_count()} logical CPUs, load average "
             f"{_load()} at the end",
             f"{'shape':9} {'model':5} {'dtype':7} {'m':>6} {'chunk':>5} "
             f"{'1 proc seq/s':>12} {'dask seq/s':>11} {'speed-up':>8}"]
    for r in result["cases"]:
        lines.append(f"{r['shape']:9} {r['kind']:5} {r['dtype']:7} {r['m']:6d} "
                     f"{r['chunk']:5d} {r['one_process_rate']:12.1f} {r['dask_rate']:11.1f} "
                     f"{r['speedup']:7.2f}x")
    if result.get("task") is not None:
        lines.append(f"scheduler cost of an empty task: {1e3 * result['task']:.2f} ms of "
                     f"worker time")
    if result["sweep"]:
        lines.append("per-chunk overhead (share of worker time outside model.forward):")
        lines.append(f"{'shape':9} {'model':5} {'dtype':7} {'chunk':>5} {'chunks':>6} "
                     f"{'1 proc s':>8} {'dask s':>7} {'overhead':>8} {'ms/chunk':>8}")
        for r in result["sweep"]:
            lines.append(f"{r['shape']:9} {r['kind']:5} {r['dtype']:7} {r['chunk']:5d} "
                         f"{r['chunks']:6d} {r['one_process_s']:8.3f} {r['dask_s']:7.3f} "
                         f"{100 * r['overhead']:7.1f}% {r['per_chunk_ms']:8.2f}")
        groups = {}
        for r in result["sweep"]:
            groups.setdefault((r["shape"], r["kind"], r["dtype"]), []).append(r)
        for (shape, kind, dtype), rows in groups.items():
            under = [r["chunk"] for r in rows if r["overhead"] < 0.05]
            lines.append(f"  {shape} {kind} {dtype}: overhead under 5% from chunk "
                         f"{min(under) if under else '> ' + str(rows[-1]['chunk'])}")
    return "\n".join(lines)


def _load():
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def add_arguments(parser):
    """The options of ``fastrnn bench --dask`` (for a parser of its own or the bench's)."""
    parser.add_argument("--shapes", default="mid,fastrnns",
                        help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--models", default="rnn,lstm", help="rnn, lstm or both")
    parser.add_argument("--dtypes", default="float32", help="float32, float64 or both")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--chunk", type=int, default=64, help="sequences per chunk")
    parser.add_argument("--sequences", type=int, default=None,
                        help="sequences in the data set (default: ~4 s of one process)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the chunk-size sweep")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running scheduler instead of a LocalCluster")
    return parser


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m fastrnn._dask_bench", description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    for name in args.shapes.split(","):
        if name not in SHAPES:
            parser.error(f"--shapes: unknown shape {name!r} (known: {', '.join(SHAPES)})")
    if args.workers < 1 or args.chunk < 1 or (args.sequences is not None
                                              and args.sequences < 1):
        parser.error("--workers, --chunk and --sequences must be positive")
    result = run(args.shapes.split(","), args.models.split(","), args.dtypes.split(","),
                 workers=args.workers, chunk=args.chunk, sequences=args.sequences,
                 sweep=not args.no_sweep, scheduler=args.scheduler,
                 progress=lambda s: print("...", s, file=sys.stderr, flush=True))
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
