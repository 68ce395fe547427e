"""``fastrnn bench``: options, the run, the report."""
import argparse
import json
import math
import os
import sys
import time

import fastrnn
from fastrnn._bench.cases import (
    DTYPES, MODELS, QUICK_SHAPES, REFERENCE_BUDGET, SHAPE_NOTES, SHAPES)
from fastrnn._bench.environment import environment, format_environment
from fastrnn._bench.memory import peak_memory
from fastrnn._bench.plot import plot
from fastrnn._bench.report import (
    _format_gemm, _json_safe, format_case, format_footer, format_summary, format_table_header)
from fastrnn._bench.environment import _load_average
from fastrnn._bench.suite import _progress_printer, run_case
from fastrnn._bench.timing import gemm_rate, torch_gemm_rate
from fastrnn._bench.torch_peer import import_torch


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


DESCRIPTION = ("Time fastrnn's drop-in functions and packed models beside the numpy "
               "reference and PyTorch (when installed), on the same arrays, one case per "
               "shape x model x dtype. Prints the environment (CPU, SIMD level, BLAS kernel), "
               "the machine's GEMM rate measured in the same run, one row per "
               "implementation and a summary.")


def add_arguments(parser):
    """Add the ``bench`` options to an argparse parser (and its description and epilog)."""
    parser.description = DESCRIPTION
    parser.epilog = shape_table()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true",
                        help=f"a subset ({','.join(QUICK_SHAPES)}) with fewer repeats")
    parser.add_argument("--shapes", type=lambda s: _parse_list(s, list(SHAPES), "shape"),
                        help="comma-separated shapes (listed below; default all)")
    parser.add_argument("--models", type=lambda s: _parse_list(s, list(MODELS), "model"),
                        default=list(MODELS), help="rnn,lstm (default both)")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--threads", type=int_at_least(1), default=1,
                        help="BLAS and PyTorch threads; the packed model's batch threads "
                             "(default 1)")
    parser.add_argument("--repeat", type=int_at_least(1), default=None,
                        help="minimum number of timed samples (default 7, --quick 3)")
    parser.add_argument("--min-time", type=seconds, default=None,
                        help="minimum seconds of timed calls per implementation "
                             "(default 1, --quick 0.05)")
    parser.add_argument("--reference-budget", type=seconds, default=None,
                        help=f"seconds of reference calls per case (default "
                             f"{REFERENCE_BUDGET}; at least one call)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not run the reference (no speedups, no errors vs it)")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="random seed of the weights and inputs (default 0)")
    parser.add_argument("--json", metavar="FILE", help="write all results and the "
                        "environment to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="bar chart of speedups per shape (needs matplotlib)")
    parser.set_defaults(func=run)
    return parser


def _usage_error(message, err=None):
    print(f"fastrnn bench: error: {message}", file=sys.stderr if err is None else err)
    return 2


def run(opts, out=None):
    """Run the benchmark described by parsed options; print the report; return 0."""
    # everything that can be wrong with the options is found before any work
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return _usage_error("needs threadpoolctl to pin and report the BLAS threads "
                            "(pip install threadpoolctl, or fastrnn[bench])")
    for option in ("json", "plot"):
        path = getattr(opts, option)
        problem = path is not None and writable_file_problem(path)
        if problem:
            return _usage_error(f"--{option} {path}: {problem}")
    if opts.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _usage_error("--plot needs matplotlib, which is not installed "
                                "(pip install matplotlib, or fastrnn[plot])")
    out = sys.stdout if out is None else out
    shapes = opts.shapes or list(QUICK_SHAPES if opts.quick else SHAPES)
    dtypes = ["float64", "float32"] if opts.dtype == "both" else [opts.dtype]
    opts.repeat = opts.repeat or (3 if opts.quick else 7)
    opts.min_time = opts.min_time if opts.min_time is not None else (
        0.05 if opts.quick else 1.0)
    if opts.reference_budget is None:
        opts.reference_budget = 0.5 if opts.quick else REFERENCE_BUDGET
    torch = None if opts.no_torch else import_torch()
    gemm_n = {"float32": 1024, "float64": 768} if opts.quick else {"float32": 2048,
                                                                     "float64": 1536}
    gemm_repeat = 3 if opts.quick else 5
    progress = _progress_printer()
    t_start = time.perf_counter()
    old_torch_threads = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(opts.threads), fastrnn.checked(False):
        if torch is not None:
            torch.set_num_threads(opts.threads)
        try:
            env = environment(torch, opts.threads)
            print(format_environment(env), file=out)
            print("", file=out, flush=True)
            gemm = {}
            for d in dtypes:
                progress(f"GEMM rate: {'sgemm' if d == 'float32' else 'dgemm'} n={gemm_n[d]}")
                gemm[d] = {"n": gemm_n[d], "gflops": gemm_rate(DTYPES[d], gemm_n[d],
                                                               gemm_repeat)}
                if torch is not None:
                    progress(f"GEMM rate: torch.mm {d} n={gemm_n[d]}")
                    gemm[d]["torch_gflops"] = torch_gemm_rate(torch, DTYPES[d], gemm_n[d],
                                                              gemm_repeat)
            peaks = {d: v["gflops"] for d, v in gemm.items()}
            print("GEMM rate    " + _format_gemm(gemm) + "\n", file=out)
            print(format_table_header(), file=out, flush=True)
            todo = [(s, m, d) for s in shapes for m in opts.models for d in dtypes]
            results = []
            for k, (s, m, d) in enumerate(todo, 1):
                results.append(run_case(s, m, d, opts, torch, peaks, progress,
                                        prefix=f"[{k}/{len(todo)}] "))
                print(format_case(results[-1]), file=out, flush=True)
            memory = []
            if "big" in shapes:
                for m in opts.models:
                    for d in dtypes:
                        for which in ("fastrnn", "model"):
                            progress(f"peak memory: big {m} {d} {which}")
                            memory.append(peak_memory(m, SHAPES["big"], DTYPES[d], opts.seed,
                                                      which))
        finally:
            if torch is not None:
                torch.set_num_threads(old_torch_threads)
    elapsed = time.perf_counter() - t_start
    progress(f"done in {elapsed:.0f} s", final=True)
    settings = {k: getattr(opts, k) for k in ("repeat", "min_time", "reference_budget",
                                              "threads", "seed", "no_reference")}
    settings.update(shapes=shapes, models=list(opts.models), dtypes=dtypes,
                    torch=torch is not None, quick=bool(opts.quick), gemm_repeat=gemm_repeat,
                    elapsed_s=elapsed, load_average_end=_load_average())
    data = {"environment": env, "settings": settings, "gemm": gemm, "results": results,
            "memory": memory}
    print(format_summary(results), file=out)
    print("", file=out)
    print(format_footer(data), file=out)
    load = settings["load_average_end"]
    note = ""
    if load is not None:
        note = f"; load average {load} at the end"
        if load > opts.threads + 0.5:
            note += " (other processes were competing for the cores: expect noise)"
    print(f"total time {elapsed:.0f} s{note}", file=out, flush=True)
    status = 0
    if opts.json:
        try:
            with open(opts.json, "w") as f:
                json.dump(_json_safe(data), f, indent=1)
        except OSError as exc:   # checked up front; the file system may still refuse
            status = _usage_error(f"--json {opts.json}: {exc}")
    if opts.plot:
        plot(results, opts.plot)
        print(f"plot written to {opts.plot}", file=out)
    return status


def main(argv=None):
    """``python -m fastrnn bench [options]``; returns the exit status."""
    parser = Parser(prog="fastrnn bench")
    add_arguments(parser)
    return run(parser.parse_args(argv))
