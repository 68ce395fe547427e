"""``fastrnn bench``: options (all checked before any work), the run, the report.

Exit status: 0 done; 1 an implementation's outputs disagreed with the float64 reference
(MISMATCH rows); 2 bad options or a missing optional dependency (one line on stderr).
"""
import argparse
import json
import math
import os
import sys
import time

import fastrnn
from fastrnn._bench import sweep as sweep_mod
from fastrnn._bench.cases import DTYPES, QUICK_SHAPES, REFERENCE_BUDGET, SHAPE_NOTES, SHAPES
from fastrnn._bench.environment import _load_average, environment, format_environment
from fastrnn._bench.impls import PEER_NAMES, PEERS
from fastrnn._bench.kinds import MODELS
from fastrnn._bench.memory import peak_memory
from fastrnn._bench.peer_ort import import_ort
from fastrnn._bench.peer_torch import import_torch
from fastrnn._bench.report import (
    format_case, format_footer, format_gemm, format_summary, format_table_header, json_safe)
from fastrnn._bench.suite import MATCH_ATOL, _progress_printer, run_case
from fastrnn._bench.timing import gemm_rate, madd_peak, torch_gemm_rate
from fastrnn._bench.workloads import WORKLOADS

PLOT_SUFFIXES = (".png", ".pdf", ".svg")
# fastrnn bench --dask: the shapes and kinds fastrnn._dask_bench runs
DASK_SHAPES = ("mid", "fastrnns")
DASK_MODELS = ("rnn", "lstm")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit status 2): a wrong option is not a traceback."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parse_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(bad) or '(none given)'}; choose from "
            f"{', '.join(allowed)}")
    return items


def int_list(text):
    """An argparse type: comma-separated positive integers."""
    try:
        items = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        items = []
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers >= 1, got {text!r}")
    return sorted(set(items))


def int_at_least(low):
    """An argparse type: an integer >= ``low``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    return parse


def seconds(text):
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected finite seconds >= 0, got {text!r}")
    return value


def writable_file_problem(path):
    """Why ``path`` cannot be written (a sentence), or None when it can."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        return f"{path} is a directory"
    if not os.path.isdir(folder):
        return f"directory {folder} does not exist"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"{path} is not writable"
    elif not os.access(folder, os.W_OK | os.X_OK):
        return f"directory {folder} is not writable"
    return None


def shape_table():
    """The public suite's shapes with their sizes, one per line (for --help)."""
    lines = ["shapes (n_x, n_a, n_y, m, T_x):"]
    for name, s in SHAPES.items():
        note = SHAPE_NOTES.get(name, "")
        lines.append(f"  {name:<10} {s.n_x:>4} {s.n_a:>5} {s.n_y:>4} {s.m:>3} {s.T_x:>4}"
                     + (f"   {note}" if note else ""))
    return "\n".join(lines)


DESCRIPTION = """\
Time fastrnn's drop-in functions and packed models beside the numpy reference and the
peers that are installed (PyTorch; ONNX Runtime, float32 only), on the same arrays, after
checking every output against the float64 reference.  The public suite runs one case per
shape x model x dtype; --sweep runs a grid of hidden sizes x batch sizes instead.  The
report starts with the environment (CPU, fastrnn's SIMD level, the BLAS kernel, the
variables that change what runs) and the machine's GEMM rate measured in the same run;
every ratio comes with its spread over the timed rounds (min-max)."""


def add_arguments(parser):
    """Add the ``bench`` options to an argparse parser (and its description and epilog)."""
    parser.description = DESCRIPTION
    parser.epilog = shape_table() + "\n\n" + SWEEP_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer repeats, and a subset: shapes {','.join(QUICK_SHAPES)}; "
                             f"or a sample of the sweep's grid")
    parser.add_argument("--shapes", type=lambda s: _parse_list(s, list(SHAPES), "shape"),
                        metavar="LIST", help="comma-separated shapes (listed below; default all)")
    parser.add_argument("--models", type=lambda s: _parse_list(s, list(MODELS), "model"),
                        default=None, metavar="LIST",
                        help=f"comma-separated model kinds: {','.join(MODELS)} (default all; "
                             f"--dask: {','.join(DASK_MODELS)})")
    parser.add_argument("--workloads",
                        type=lambda s: _parse_list(s, list(WORKLOADS), "workload"),
                        default=["forward"], metavar="LIST",
                        help="comma-separated: " + "; ".join(
                            f"{w.name}: {w.description}" for w in WORKLOADS.values())
                        + " (default forward)")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default=None,
                        help="default both (--sweep: float32)")
    parser.add_argument("--threads", type=int_at_least(1), default=1, metavar="N",
                        help="BLAS, PyTorch and ONNX Runtime threads; the packed model's "
                             "batch threads (default 1)")
    parser.add_argument("--repeat", type=int_at_least(1), default=None, metavar="N",
                        help="timed rounds (default 7, --quick and --sweep 5)")
    parser.add_argument("--min-time", type=seconds, default=None, metavar="SECONDS",
                        help="seconds of timed calls per implementation and case, split "
                             "over the rounds (default 1, --quick 0.05; --sweep: from "
                             "--time-cap)")
    parser.add_argument("--reference-budget", type=seconds, default=None, metavar="SECONDS",
                        help=f"seconds of reference calls per case (default "
                             f"{REFERENCE_BUDGET}, --quick 0.5; at least one call)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not time the reference (outputs are then checked against "
                             "the drop-in function's)")
    parser.add_argument("--peers", type=_parse_peers, default=None, metavar="LIST",
                        help="comma-separated peers: torch, ort (ONNX Runtime), or none "
                             "(default: those installed)")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--seed", type=int_at_least(0), default=0, metavar="N",
                        help="random seed of the weights and inputs (default 0)")
    parser.add_argument("--sweep", action="store_true",
                        help="run the batch-size sweep instead of the public suite")
    parser.add_argument("--n-a", type=int_list, default=None, metavar="LIST",
                        help="--sweep: the hidden sizes n_a (default "
                             + ",".join(map(str, sweep_mod.SWEEP_N_A)) + ")")
    parser.add_argument("--batch", type=int_list, default=None, metavar="LIST",
                        help="--sweep: the batch sizes m (default "
                             + ",".join(map(str, sweep_mod.SWEEP_M)) + ")")
    parser.add_argument("--time-cap", type=seconds, default=None, metavar="SECONDS",
                        help=f"--sweep: about how long the whole sweep may take (default "
                             f"{sweep_mod.TIME_CAP:g}, --quick 60)")
    parser.add_argument("--dask", action="store_true",
                        help="run the Dask benchmark instead of the suite: fastrnn.dask.forward "
                             "on worker processes against one process (shapes "
                             + ",".join(DASK_SHAPES) + "; models rnn,lstm; default float32), "
                             "and the per-chunk overhead over chunk sizes (not with --quick); "
                             "needs dask[distributed]")
    parser.add_argument("--workers", type=int_at_least(1), default=None, metavar="N",
                        help="--dask: worker processes, one thread each (default 2)")
    parser.add_argument("--chunk", type=int_at_least(1), default=None, metavar="N",
                        help="--dask: sequences per chunk (default: about 0.5 s of "
                             "model.forward on one thread, from a quick probe)")
    parser.add_argument("--sequences", type=int_at_least(1), default=None, metavar="N",
                        help="--dask: sequences in the data set (default: about 6 s of one "
                             "process, --quick 3 s)")
    parser.add_argument("--json", metavar="FILE", help="write all results and the "
                        "environment to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="the suite: bar charts of the speed-ups; --sweep: heat maps of "
                             "time / peer time (needs matplotlib; .png, .pdf or .svg)")
    parser.set_defaults(func=run)
    return parser


SWEEP_HELP = (
    "--sweep: n_a x m over the lists above, n_x = n_y = max(1, n_a // 2), T_x chosen per "
    "cell\nso that one call takes >= 0.2 ms; for m <= 8 the floor of one step (a read "
    "of the\nrecurrent block from cache) and time per step / floor.")


def _parse_peers(text):
    if text.strip() == "none":
        return []
    return _parse_list(text, list(PEERS), "peer")


def _usage_error(message):
    print(f"fastrnn bench: error: {message}", file=sys.stderr)
    return 2


def _options_problem(opts):
    """Why the options cannot run (a sentence), or None; filled-in defaults on ``opts``."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return ("needs threadpoolctl to pin and report the BLAS threads "
                "(pip install threadpoolctl, or fastrnn[bench])")
    problem = _dask_problem(opts)
    if problem:
        return problem
    opts.models = opts.models or list(MODELS)
    if opts.sweep and opts.shapes:
        return "--shapes and --sweep exclude each other (the sweep has its own grid)"
    if opts.sweep and opts.workloads != ["forward"]:
        return "--sweep times the forward pass only (no --workloads)"
    for name in ("n_a", "batch", "time_cap"):
        if getattr(opts, name) is not None and not opts.sweep:
            return f"--{name.replace('_', '-')} needs --sweep"
    for option in ("json", "plot"):
        path = getattr(opts, option)
        problem = path is not None and writable_file_problem(path)
        if problem:
            return f"--{option} {path}: {problem}"
    if opts.json and opts.plot and os.path.abspath(opts.json) == os.path.abspath(opts.plot):
        return "--json and --plot name the same file"
    if opts.plot:
        if os.path.splitext(opts.plot)[1].lower() not in PLOT_SUFFIXES:
            return f"--plot {opts.plot}: the file name must end in " + ", ".join(PLOT_SUFFIXES)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return ("--plot needs matplotlib, which is not installed (pip install matplotlib, "
                    "or fastrnn[plot])")
    importers = {"torch": import_torch, "ort": import_ort}
    if opts.peers is None:
        opts.peers = [p for p in PEERS if importers[p]() is not None]
    else:
        for p in opts.peers:
            if importers[p]() is None:
                return (f"--peers {p}: {PEER_NAMES[p]} is not installed (pip install "
                        + ("torch" if p == "torch" else "onnx onnxruntime") + ")")
    if opts.no_torch:
        opts.peers = [p for p in opts.peers if p != "torch"]
    opts.dtype = opts.dtype or ("float32" if opts.sweep else "both")
    opts.repeat = opts.repeat or (5 if opts.quick or opts.sweep else 7)
    if opts.min_time is None and not opts.sweep:
        opts.min_time = 0.05 if opts.quick else 1.0
    if opts.reference_budget is None:
        opts.reference_budget = 0.5 if opts.quick else REFERENCE_BUDGET
    if opts.sweep and opts.time_cap is None:
        opts.time_cap = 60.0 if opts.quick else sweep_mod.TIME_CAP
    return None


def _dask_problem(opts):
    """Why the --dask options cannot run (a sentence), or None."""
    for name in ("workers", "chunk", "sequences"):
        if getattr(opts, name) is not None and not opts.dask:
            return f"--{name} needs --dask"
    if not opts.dask:
        return None
    for option, given in (("--sweep", opts.sweep), ("--plot", opts.plot),
                          ("--workloads", opts.workloads != ["forward"]),
                          ("--no-reference", opts.no_reference), ("--peers", opts.peers),
                          ("--no-torch", opts.no_torch)):
        if given:
            return f"--dask and {option} exclude each other"
    bad = [s for s in opts.shapes or () if s not in DASK_SHAPES]
    if bad:
        return f"--dask runs the shapes {', '.join(DASK_SHAPES)}, not {', '.join(bad)}"
    opts.models = opts.models or list(DASK_MODELS)
    bad = [m for m in opts.models if m not in DASK_MODELS]
    if bad:
        return f"--dask runs the models {', '.join(DASK_MODELS)}, not {', '.join(bad)}"
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        return ("--dask needs dask and distributed, which are not installed "
                "(pip install \"dask[distributed]\")")
    opts.dtype = opts.dtype or "float32"
    return None


def _run_dask(opts, out):
    """``fastrnn bench --dask``: fastrnn._dask_bench's run, its table, the JSON."""
    from fastrnn import _dask_bench

    progress = _progress_printer()
    models = opts.models
    dtypes = ["float64", "float32"] if opts.dtype == "both" else [opts.dtype]
    t_start = time.perf_counter()
    result = _dask_bench.run(
        opts.shapes or list(DASK_SHAPES), models, dtypes, workers=opts.workers or 2,
        chunk=opts.chunk, sequences=opts.sequences,
        target_seconds=3.0 if opts.quick else 6.0, sweep=not opts.quick,
        repeat=opts.repeat or (1 if opts.quick else 3), progress=progress)
    progress(f"done in {time.perf_counter() - t_start:.0f} s", final=True)
    print(_dask_bench.format_table(result), file=out, flush=True)
    if opts.json:
        data = {"kind": "dask", "status": 0, "dask": result,
                "settings": {"workers": result["workers"], "chunk": opts.chunk or "auto",
                             "quick": bool(opts.quick), "dtypes": dtypes, "models": models}}
        try:
            with open(opts.json, "w") as f:
                json.dump(json_safe(data), f, indent=1)
        except OSError as exc:
            return _usage_error(f"--json {opts.json}: {exc}")
    return 0


def run(opts, out=None):
    """Run the benchmark described by parsed options; print the report; return the exit
    status (0 done, 1 a MISMATCH, 2 bad options)."""
    problem = _options_problem(opts)   # everything wrong with the options, before any work
    if problem:
        return _usage_error(problem)
    from threadpoolctl import threadpool_limits

    out = sys.stdout if out is None else out
    if opts.dask:
        return _run_dask(opts, out)
    dtypes = ["float64", "float32"] if opts.dtype == "both" else [opts.dtype]
    torch = import_torch() if "torch" in opts.peers else None
    ort = import_ort() if "ort" in opts.peers else None
    gemm_n = {"float32": 1024, "float64": 768} if opts.quick else {"float32": 2048,
                                                                     "float64": 1536}
    gemm_repeat = 3 if opts.quick else 5
    progress = _progress_printer()
    t_start = time.perf_counter()
    old_torch_threads = torch.get_num_threads() if torch is not None else None
    data = {"kind": "sweep" if opts.sweep else "suite", "match_atol": MATCH_ATOL}
    with threadpool_limits(opts.threads), fastrnn.checked(False):
        if torch is not None:
            torch.set_num_threads(opts.threads)
        try:
            env = environment(torch, opts.threads, ort)
            print(format_environment(env), file=out)
            print("", file=out, flush=True)
            gemm = {}
            for d in dtypes:
                progress(f"GEMM rate: {'sgemm' if d == 'float32' else 'dgemm'} n={gemm_n[d]}")
                gemm[d] = {"n": gemm_n[d], "gflops": gemm_rate(DTYPES[d], gemm_n[d],
                                                               gemm_repeat)}
                progress(f"multiply-add peak: {d}")
                gemm[d]["madd_peak_gflops"] = madd_peak(DTYPES[d], gemm_repeat)
                if opts.threads > 1:
                    with threadpool_limits(1):
                        gemm[d]["one_thread_gflops"] = gemm_rate(DTYPES[d], gemm_n[d],
                                                                 gemm_repeat)
                if torch is not None:
                    progress(f"GEMM rate: torch.mm {d} n={gemm_n[d]}")
                    gemm[d]["torch_gflops"] = torch_gemm_rate(torch, DTYPES[d], gemm_n[d],
                                                              gemm_repeat)
            peaks = {d: v["gflops"] for d, v in gemm.items()}
            madd_peaks = {d: v["madd_peak_gflops"] for d, v in gemm.items()}
            print("GEMM rate    " + format_gemm(gemm) + "\n", file=out, flush=True)
            data.update(environment=env, gemm=gemm)
            if opts.sweep:
                _run_sweep(opts, dtypes, peaks, madd_peaks, progress, out, data)
            else:
                _run_suite(opts, dtypes, peaks, madd_peaks, progress, out, data)
        finally:
            if torch is not None:
                torch.set_num_threads(old_torch_threads)
    elapsed = time.perf_counter() - t_start
    progress(f"done in {elapsed:.0f} s", final=True)
    settings = {k: getattr(opts, k) for k in ("repeat", "min_time", "reference_budget",
                                              "threads", "seed", "no_reference", "peers")}
    settings.update(models=list(opts.models), dtypes=dtypes, quick=bool(opts.quick),
                    workloads=list(opts.workloads),
                    gemm_repeat=gemm_repeat, elapsed_s=elapsed,
                    load_average_end=_load_average(), **data.pop("settings"))
    data["settings"] = settings
    results = data.get("results", []) + data.get("sweep", [])
    data["mismatches"] = [
        {k: res.get(k) for k in ("shape", "model", "dtype", "n_a", "m") if k in res}
        | {"label": r["label"], "max_abs_err_vs_reference": r["max_abs_err_vs_reference"]}
        for res in results for r in res["impls"] if r["mismatch"]]
    status = 1 if data["mismatches"] else 0
    if not opts.sweep:
        print(format_summary(data["results"], opts.peers, WORKLOADS), file=out)
        print("", file=out)
    print(format_footer(data, WORKLOADS), file=out)
    load = settings["load_average_end"]
    note = ""
    if load is not None:
        note = f"; load average {load} at the end"
        if load > opts.threads + 0.5:
            note += " (other processes were competing for the cores: expect noise)"
    print(f"total time {elapsed:.0f} s{note}", file=out, flush=True)
    for bad in data["mismatches"]:
        print("MISMATCH " + " ".join(str(v) for v in bad.values()), file=out)
    data["status"] = status
    if opts.json:
        try:
            with open(opts.json, "w") as f:
                json.dump(json_safe(data), f, indent=1)
        except OSError as exc:   # checked up front; the file system may still refuse
            return _usage_error(f"--json {opts.json}: {exc}")
    if opts.plot:
        from fastrnn._bench import plot
        if opts.sweep:
            plot.plot_sweep(data["sweep"], opts.plot, opts.peers)
        else:
            plot.plot_suite(data["results"], opts.plot)
        print(f"plot written to {opts.plot}", file=out)
    return status


def _run_suite(opts, dtypes, peaks, madd_peaks, progress, out, data):
    shapes = opts.shapes or list(QUICK_SHAPES if opts.quick else SHAPES)
    print(format_table_header(), file=out, flush=True)
    todo = [(s, m, d, w) for s in shapes for w in opts.workloads for m in opts.models
            for d in dtypes if WORKLOADS[w].applies(m, s)]
    results = []
    for k, (s, m, d, w) in enumerate(todo, 1):
        results.append(run_case(s, m, d, opts, opts.peers, peaks, progress,
                                prefix=f"[{k}/{len(todo)}] ", workload=w,
                                madd_peaks=madd_peaks))
        print(format_case(results[-1]), file=out, flush=True)
    memory = []
    if "big" in shapes and "forward" in opts.workloads:
        for m in opts.models:
            for d in dtypes:
                for which in ("fastrnn", "model"):
                    progress(f"peak memory: big {m} {d} {which}")
                    memory.append(peak_memory(m, SHAPES["big"], DTYPES[d], opts.seed, which))
    data.update(results=results, memory=memory, settings={"shapes": shapes})


def _run_sweep(opts, dtypes, peaks, madd_peaks, progress, out, data):
    n_as = opts.n_a or (sweep_mod.QUICK_N_A if opts.quick else sweep_mod.SWEEP_N_A)
    ms = opts.batch or (sweep_mod.QUICK_M if opts.quick else sweep_mod.SWEEP_M)
    print(sweep_mod.sweep_header(opts.peers), file=out, flush=True)
    results = sweep_mod.run_sweep(
        opts, opts.models, dtypes, n_as, ms, peers=opts.peers, peaks=peaks, progress=progress,
        time_cap=opts.time_cap, madd_peaks=madd_peaks,
        on_cell=lambda res: print(sweep_mod.format_cell(res, opts.peers), file=out,
                                  flush=True))
    print("", file=out)
    print(sweep_mod.format_grids(results, opts.peers), file=out)
    print("", file=out)
    data.update(sweep=results, settings={"n_a": list(n_as), "m": list(ms),
                                         "time_cap": opts.time_cap,
                                         "min_call_time": sweep_mod.MIN_CALL_TIME,
                                         "floor_max_m": sweep_mod.FLOOR_MAX_M})


def main(argv=None):
    """``fastrnn bench [options]``; returns the exit status."""
    parser = Parser(prog="fastrnn bench")
    add_arguments(parser)
    return run(parser.parse_args(argv))
