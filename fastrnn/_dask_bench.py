"""The Dask benchmark (``fastrnn bench --dask``): fastrnn.dask.forward on worker processes
against one process, and the per-chunk overhead.

For each case (a shape x RNN/LSTM x dtype):

- **one process**: ``model.forward`` (one thread, single-threaded BLAS) over the chunks of
  the data set, one after the other, in this process, keeping the results (the same work
  as the Dask run's);
- **Dask**: ``fastrnn.dask.forward`` on a cluster of worker processes (one thread each), the
  input already in the workers' memory (generated there by ``dask.array.random``), the
  results persisted on the workers (as before writing them out); the model travels in the
  timed region.  The median of ``repeat`` runs after one warm-up run.  The chunk size is
  ``fastrnn.dask.chunk_size``'s (about 0.5 s of work) unless given, and the chunks a whole
  number per worker;
- **plain**: the same chunks shared by as many plain processes (no Dask) started together:
  what the machine allows (shared caches and memory bandwidth, clock);
- **overhead**: the share of the cluster's CPU time (every worker process, and this process,
  which holds the client and a LocalCluster's scheduler) not spent in ``model.forward`` (whose
  CPU time the tasks count, fastrnn.dask._forward_cpu), and the speed-up it allows on idle
  cores (``workers * (1 - overhead)``).  It includes the cluster's idle CPU use (heartbeats,
  monitors; measured over 2 s without tasks, once the workers have settled, and shown as the share it would take of the
  run) for as long as the run lasts, so other jobs on the machine, stretching the run,
  raise it: an upper bound.  The wall-clock throughputs are reported as measured.
- **chunk-size sweep**: the same at chunk sizes 1 to 512 (about a second of work each), and
  the smallest chunk size from which the overhead stays under 5%.  The CPU cost of an empty
  task is reported too.

The cluster's scheduler runs in this process (LocalCluster), so on a machine with as many
cores as workers it competes with them: the figures are what a user of such a machine sees.
The LocalCluster runs without a dashboard, without the workers' statistical profiler and with
slower monitors (``QUIET``), which take most of an idle cluster's CPU otherwise.
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
SWEEP_CHUNKS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# The LocalCluster's settings: on a machine with as many cores as workers, the scheduler, the
# nannies and the workers' own housekeeping compete with the tasks for the cores.  Idle, with
# Dask's defaults, the cluster takes about 130 ms of CPU per second (the workers' statistical
# profiler samples every thread every 10 ms; event-loop and system monitors tick every 20 and
# 500 ms); with these, about 15 ms.
QUIET = {"distributed.worker.profile.enabled": False,
         "distributed.admin.tick.interval": "1s",
         "distributed.admin.system-monitor.interval": "1s",
         "distributed.worker.memory.monitor-interval": "1s"}


def _shape(name):
    """(n_x, n_a, n_y, T_x) of a shape of ``SHAPES`` or of the benchmark suite."""
    if name in SHAPES:
        return SHAPES[name]
    from fastrnn._bench import SHAPES as SUITE
    if name not in SUITE:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join({**SHAPES, **SUITE})}")
    s = SUITE[name]
    return s.n_x, s.n_a, s.n_y, s.T_x


def _params(kind, n_x, n_a, n_y, seed=0):
    from fastrnn._bench import make_params
    return make_params(kind, np.random.default_rng(seed), n_x, n_a, n_y)


class _Clock:
    """Wall and CPU seconds of a region: the CPU of this process (the client, and a
    LocalCluster's scheduler) and of every worker process, so that the share of the work
    spent outside ``model.forward`` can be measured on a machine other jobs keep busy."""

    def __init__(self, client=None):
        self.client = client

    def _cpu(self):
        """CPU seconds so far: all of them, and those the tasks spent in model.forward."""
        if self.client is None:
            return time.process_time(), 0.0
        from fastrnn.dask import _forward_cpu
        workers = self.client.run(time.process_time)
        forward = self.client.run(_forward_cpu)
        return time.process_time() + sum(workers.values()), sum(forward.values())

    def __enter__(self):
        self.cpu, self.forward_cpu = self._cpu()
        self.busy = _machine_busy()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.busy = _machine_busy() - self.busy
        cpu, forward = self._cpu()
        self.cpu, self.forward_cpu = cpu - self.cpu, forward - self.forward_cpu
        # the share of the machine's CPU capacity other jobs took meanwhile (NaN if unknown)
        self.others = max(0.0, self.busy - self.cpu) / (self.wall * (os.cpu_count() or 1))


def _machine_busy():
    """CPU seconds all processes of the machine have run so far (Linux: /proc/stat; else
    NaN): other jobs on the machine stretch the wall times of the runs they overlap."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _one_process_time(model, chunks, repeat=1):
    """(wall, CPU) seconds of model.forward over ``chunks`` (arrays), one after the other,
    on this thread with one-thread BLAS: medians of ``repeat`` runs; and the largest share
    of the machine other jobs took meanwhile.  The results are kept
    until the end of a run, as the Dask run keeps them (persisted on the workers): results
    dropped at once would let each call reuse the last one's memory, and skip the page
    faults of fresh memory (about 10% of an LSTM's time at the fastrnns shape), which any
    run that keeps its results pays."""
    from fastrnn.dask import _single_threaded_blas
    walls, cpus, others = [], [], []
    with _single_threaded_blas():
        for _ in range(repeat):
            kept = []
            with _Clock() as clock:
                for x in chunks:
                    kept.append(model.forward(x, n_threads=1))
            del kept
            walls.append(clock.wall)
            cpus.append(clock.cpu)
            others.append(clock.others)
    return statistics.median(walls), statistics.median(cpus), max(others)


def _plain_worker(barrier, results, kind, shape, dtype, sizes, seed):
    """One of the plain processes of :func:`_plain_processes_time`: model.forward over chunks
    of ``sizes`` sequences, one after the other, keeping the results, timed from a start
    shared with the others."""
    from fastrnn.dask import _single_threaded_blas
    n_x, n_a, n_y, T = shape
    cls = fastrnn.RNN if kind == "rnn" else fastrnn.LSTM
    model = cls(_params(kind, n_x, n_a, n_y), dtype=dtype)
    rng = np.random.default_rng(seed)
    chunks = [rng.standard_normal((n_x, c, T)).astype(dtype) for c in sizes]
    with _single_threaded_blas():
        model.forward(chunks[0][:, :1], n_threads=1)  # warm up (work buffers, imports)
        barrier.wait()
        start = time.monotonic()
        kept = [model.forward(x, n_threads=1) for x in chunks]  # kept, as the others keep them
        results.put((start, time.monotonic()))
        del kept


def _plain_processes_time(kind, shape, dtype, sizes, workers):
    """Wall seconds of ``workers`` plain processes (no Dask) splitting the chunks of ``sizes``
    sequences between them, all started together: the machine's own limit on the speed-up
    (shared caches, memory bandwidth, clock), which no scheduler can beat."""
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_plain_worker, args=(barrier, results, kind, shape, dtype,
                                                     sizes[k::workers], 10 + k))
             for k in range(workers)]
    for p in procs:
        p.start()
    spans = [results.get() for _ in procs]
    for p in procs:
        p.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


def _dask_time(client, model, x, repeat, warm_up=True):
    """(wall, CPU, CPU in model.forward, (fastest, slowest wall)) seconds of
    fastrnn.dask.forward(model, x) persisted on the workers: the run of median wall time of
    ``repeat`` runs, after a warm-up run (imports, work buffers) if ``warm_up``; and the
    largest share of the machine other jobs took during a run."""
    from distributed import wait

    import fastrnn.dask as fdask
    runs = []
    settled = _n_keys(client)
    for k in range(0 if warm_up else 1, repeat + 1):
        gc.collect()
        with _Clock(client) as clock, client.as_current():  # forward scatters through it
            out = client.persist([r for r in fdask.forward(model, x) if r is not None])
            wait(out)
        del out
        # the results released before the next run: freeing them is this run's work, not
        # the next one's (the one-process run frees its results off the clock too)
        for _ in range(100):
            if _n_keys(client) <= settled:
                break
            time.sleep(0.02)
        client.run(gc.collect)
        if k:
            runs.append((clock.wall, clock.cpu, clock.forward_cpu, clock.others))
    runs.sort()
    return runs[(len(runs) - 1) // 2][:3] + ((runs[0][0], runs[-1][0]),
                                             max(r[3] for r in runs))


def _n_keys(client):
    """The number of keys the scheduler knows."""
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def _task_overhead(client, n_tasks):
    """CPU seconds (workers and scheduler) per task for tasks that do nothing."""
    import dask.array as da
    from distributed import wait
    x = da.zeros((n_tasks,), chunks=1)
    cpus = []
    for k in range(3):
        with _Clock(client) as clock:
            y = client.persist(x + 1)
            wait(y)
        del y
        if k:
            cpus.append(clock.cpu)
    return min(cpus) / n_tasks


def run(shapes=("mid", "fastrnns"), kinds=("rnn", "lstm"), dtypes=("float32",), *,
        workers=2, chunk=None, sequences=None, target_seconds=6.0, sweep=True, sweep_m=None,
        repeat=3, empty_tasks=1000, scheduler=None, plain=True, progress=None):
    """Run the Dask benchmark; returns ``{"cases": [...], "sweep": [...], ...}``.

    Parameters
    ----------
    shapes : names in ``SHAPES`` or in the benchmark suite's shapes (fastrnn._bench)
    kinds : "rnn" and/or "lstm"
    dtypes : "float32" and/or "float64"
    workers : number of worker processes of the LocalCluster (one thread each)
    chunk : sequences per chunk for the throughput comparison; by default
        ``fastrnn.dask.chunk_size`` (about 0.5 s of model.forward on one thread)
    sequences : m of the data set; by default as many chunks as make the one-process run
        last about ``target_seconds`` (at least 4 chunks per worker)
    sweep : run the chunk-size sweep (on ``sweep_m`` sequences; by default about a second
        of one-process work)
    repeat : timed runs per case (after a warm-up run)
    empty_tasks : tasks of the empty-task measurement (0: skip it)
    scheduler : address of an existing scheduler instead of a LocalCluster (its CPU time is
        then not counted)
    plain : also time ``workers`` plain processes (no Dask) sharing the same chunks: the
        speed-up the machine allows
    progress : callable(str) told what runs, or None
    """
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastrnn.dask as fdask

    say = progress or (lambda s: None)
    if scheduler:
        cluster, client = None, Client(scheduler)
        workers = len(client.scheduler_info()["workers"])
    else:
        with dask.config.set(QUIET):  # read as the scheduler and the workers start
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   # any free port for the scheduler's HTTP routes (its
                                   # default, 8787, may be taken by another cluster)
                                   host="127.0.0.1", dashboard_address=":0",
                                   silence_logs=40)
        client = Client(cluster)
    result = {"cases": [], "sweep": [], "workers": workers, "task": None,
              "load_start": _load()}
    try:
        # the cluster's own CPU use while idle (heartbeats, monitors), per wall second: a run
        # pays it for as long as it lasts, which on a busy machine is longer.  (Once the
        # workers have settled and imported fastrnn.dask, which the clock's first reading
        # makes them do: a quarter of a CPU-second each.)
        _Clock(client)._cpu()
        time.sleep(1.0)
        with _Clock(client) as idle:
            time.sleep(2.0)
        result["idle_cpu"] = idle_rate = idle.cpu / idle.wall
        if empty_tasks:
            result["task"] = _task_overhead(client, empty_tasks)
        for name in shapes:
            n_x, n_a, n_y, T = _shape(name)
            for kind in kinds:
                for dtype in dtypes:
                    say(f"{name} {kind} {dtype}")
                    cls = fastrnn.RNN if kind == "rnn" else fastrnn.LSTM
                    model = cls(_params(kind, n_x, n_a, n_y), dtype=dtype)
                    rng = np.random.default_rng(1)
                    # (the shape of a data set of any size: a view of one number)
                    c = chunk or fdask.chunk_size(
                        model, np.broadcast_to(np.zeros((), dtype), (n_x, 2**30, T)))
                    probe = rng.standard_normal((n_x, c, T)).astype(dtype)
                    per_chunk = _one_process_time(model, [probe], repeat=1)[1]
                    # a whole number of chunks per worker, so that they all finish together
                    n_chunks = workers * max(2, math.ceil(target_seconds / per_chunk / workers))
                    m = sequences or n_chunks * c
                    n_chunks = math.ceil(m / c)
                    local = [rng.standard_normal((n_x, min(c, m - k * c), T))
                             .astype(dtype) for k in range(n_chunks)]
                    wall_one, cpu_one, others_one = _one_process_time(model, local)
                    del local
                    wall_plain = (_plain_processes_time(
                        kind, (n_x, n_a, n_y, T), dtype, [c] * n_chunks, workers)
                        if plain else math.nan)
                    x = client.persist(da.random.default_rng(2).standard_normal(
                        (n_x, m, T), chunks=(-1, c, -1), dtype=dtype))
                    wait(x)  # the input is made before the clock starts
                    wall_dask, cpu_dask, cpu_fwd, walls, others = _dask_time(client, model, x,
                                                                             repeat)
                    del x
                    result["cases"].append(_row(
                        shape=name, kind=kind, dtype=dtype, m=m, chunk=c, chunks=n_chunks,
                        workers=workers, wall_one=wall_one, cpu_one=cpu_one,
                        wall_dask=wall_dask, cpu_dask=cpu_dask, cpu_forward=cpu_fwd,
                        idle_rate=idle_rate, wall_plain=wall_plain, walls_dask=walls,
                        others=max(others_one, others)))
                    if not sweep:
                        continue
                    # about a second of one-process work per chunk size
                    m_sweep = sweep_m or int(min(max(c / per_chunk, 64), 1024))
                    for c in SWEEP_CHUNKS:
                        if c > m_sweep:
                            break
                        say(f"{name} {kind} {dtype} sweep chunk {c}")
                        n_c = math.ceil(m_sweep / c)
                        chunks = [rng.standard_normal((n_x, c, T)).astype(dtype)
                                  for _ in range(min(n_c, 64))]
                        # one-process time of all n_c chunks, from (at most) 64 of them
                        wall_1, cpu_1, others_1 = _one_process_time(model, chunks)
                        wall_1, cpu_1 = (t * n_c / len(chunks) for t in (wall_1, cpu_1))
                        x = client.persist(da.random.default_rng(3).standard_normal(
                            (n_x, n_c * c, T), chunks=(-1, c, -1), dtype=dtype))
                        wait(x)
                        wall_d, cpu_d, cpu_f, walls, others = _dask_time(client, model, x, 1,
                                                                         warm_up=False)
                        del x
                        result["sweep"].append(_row(
                            shape=name, kind=kind, dtype=dtype, m=n_c * c, chunk=c,
                            chunks=n_c, workers=workers, wall_one=wall_1, cpu_one=cpu_1,
                            wall_dask=wall_d, cpu_dask=cpu_d, cpu_forward=cpu_f,
                            idle_rate=idle_rate, wall_plain=math.nan, walls_dask=walls,
                            others=max(others_1, others)))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    result["load_end"] = _load()
    return result


def _row(**r):
    """A result row, with the derived figures: throughputs (sequences per wall second), the
    measured speed-up, the overhead (share of the run's CPU time, on the workers and the
    scheduler, spent outside model.forward), its CPU milliseconds per chunk, and the
    speed-up it allows on ``workers`` otherwise idle cores (``workers * (1 - overhead)``).
    The overhead includes the cluster's idle CPU use over the run's wall time (``idle_rate``
    per second): an upper bound, which a busy machine, stretching the wall time, raises."""
    r["one_rate"] = r["m"] / r["wall_one"]
    r["dask_rate"] = r["m"] / r["wall_dask"]
    r["speedup"] = r["wall_one"] / r["wall_dask"]
    r["plain_speedup"] = r["wall_one"] / r["wall_plain"]
    r["speedup_range"] = [r["wall_one"] / w for w in r["walls_dask"][::-1]]
    r["overhead"] = 1 - r["cpu_forward"] / r["cpu_dask"]
    r["overhead_ms"] = 1e3 * (r["cpu_dask"] - r["cpu_forward"]) / r["chunks"]
    r["idle_share"] = r["idle_rate"] * r["wall_dask"] / r["cpu_dask"]
    r["cpu_speedup"] = r["workers"] * (1 - r["overhead"])
    # the speed-up if the cluster had its cores to itself and kept them busy: the one-process
    # run's CPU time over the cluster's per worker (which counts the scheduler, the tasks'
    # overhead, and model.forward running slower beside another one); CPU times hardly
    # depend on other jobs, so this holds on a busy machine, where wall times do not
    r["cpu_ratio"] = r["workers"] * r["cpu_one"] / r["cpu_dask"]
    return r


def format_table(result):
    """The result of :func:`run` as text."""
    w = result["workers"]
    lines = [f"fastrnn.dask: {w} worker processes (1 thread each) vs one process "
             f"(1 thread); {os.cpu_count()} logical CPUs; load average "
             f"{result['load_start']} at the start, {result['load_end']} at the end",
             "speed-up: measured wall-clock ratio (median run; range: slowest and fastest "
             "run); plain: the same chunks on",
             f"{w} plain processes without Dask (the machine's limit); bound: workers x "
             f"(1 - overhead); cpu: workers x one-process CPU time / cluster CPU time,",
             "the speed-up on cores the cluster has to itself (from CPU times, which other "
             "jobs hardly change);",
             "overhead: share of the cluster's CPU time (workers and scheduler) outside "
             "model.forward, and its CPU ms per chunk;",
             f"idle: share of the cluster's CPU time its idle use would take over the run "
             f"({1e3 * result['idle_cpu']:.0f} ms per second here);",
             "others: the largest share of the machine's CPU other jobs took during the "
             "case's timed runs (wall times are only comparable near 0%)",
             f"{'shape':9} {'model':5} {'dtype':7} {'m':>6} {'chunk':>5} {'1 proc seq/s':>12} "
             f"{'dask seq/s':>11} {'speed-up':>8} {'range':>11} {'plain':>6} {'bound':>6} {'cpu':>6} "
             f"{'overhead':>8} {'ms/chunk':>8} {'idle':>6} {'others':>6}"]
    for r in result["cases"]:
        lines.append(_line(r))
    if result.get("task") is not None:
        lines.append(f"CPU cost of an empty task (workers and scheduler): "
                     f"{1e3 * result['task']:.2f} ms")
    if result["sweep"]:
        lines.append("chunk-size sweep:")
        for r in result["sweep"]:
            lines.append(_line(r))
        groups = {}
        for r in result["sweep"]:
            groups.setdefault((r["shape"], r["kind"], r["dtype"]), []).append(r)
        for (shape, kind, dtype), rows in groups.items():
            under = [r["chunk"] for r in rows
                     if all(q["overhead"] < 0.05 for q in rows if q["chunk"] >= r["chunk"])]
            lines.append(f"  {shape} {kind} {dtype}: overhead under 5% from chunk "
                         f"{min(under) if under else '> ' + str(rows[-1]['chunk'])}")
    return "\n".join(lines)


def _line(r):
    return (f"{r['shape']:9} {r['kind']:5} {r['dtype']:7} {r['m']:6d} {r['chunk']:5d} "
            f"{r['one_rate']:12.1f} {r['dask_rate']:11.1f} {r['speedup']:7.2f}x "
            f"{r['speedup_range'][0]:5.2f}-{r['speedup_range'][1]:4.2f}x "
            + (f"{r['plain_speedup']:5.2f}x " if not math.isnan(r["plain_speedup"])
               else f"{'-':>6} ")
            + f"{r['cpu_speedup']:5.2f}x {r['cpu_ratio']:5.2f}x {100 * r['overhead']:7.1f}% "
            f"{r['overhead_ms']:8.2f} "
            f"{100 * r['idle_share']:5.1f}% {100 * r['others']:5.1f}%")


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
    parser.add_argument("--chunk", type=int, default=None,
                        help="sequences per chunk (default: about 0.5 s of work)")
    parser.add_argument("--sequences", type=int, default=None,
                        help="sequences in the data set (default: ~6 s of one process)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the chunk-size sweep")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running scheduler instead of a LocalCluster")
    return parser


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m fastrnn._dask_bench", description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    for name in args.shapes.split(","):
        try:
            _shape(name)
        except ValueError as exc:
            parser.error(f"--shapes: {exc}")
    for kind in args.models.split(","):
        if kind not in ("rnn", "lstm"):
            parser.error(f"--models: unknown model {kind!r} (known: rnn, lstm)")
    for dtype in args.dtypes.split(","):
        if dtype not in ("float32", "float64"):
            parser.error(f"--dtypes: unknown dtype {dtype!r} (known: float32, float64)")
    if args.workers < 1 or (args.chunk is not None and args.chunk < 1) or (args.sequences is not None
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
