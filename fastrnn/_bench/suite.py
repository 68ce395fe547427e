"""One case of the public suite: time every implementation, compare the outputs."""
import sys

from fastrnn._bench.cases import CELL_SHAPES, DTYPES, REFERENCE_BUDGET, SHAPES, flops, make_case
from fastrnn._bench.impls import fastrnn_impls, max_abs_diff, reference_outputs, torch_impl
from fastrnn._bench.timing import measure


def _progress_printer(stream=None):
    stream = sys.stderr if stream is None else stream
    tty = hasattr(stream, "isatty") and stream.isatty()
    width = [0]

    def show(msg, final=False):
        if tty:
            pad = max(0, width[0] - len(msg))
            stream.write("\r" + msg + " " * pad + ("\n" if final else ""))
            width[0] = 0 if final else len(msg)
        else:
            stream.write(msg + "\n")
        stream.flush()
    return show


def _stats(timing, fl, peak):
    med = timing.median
    q1, q3 = timing.quartiles
    gflops = fl / med / 1e9
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "min_s": timing.min,
            "samples": len(timing.times), "calls_per_sample": timing.number,
            "gflops": gflops, "frac_gemm": gflops / peak if peak else None}


def run_case(shape_name, model, dtype_name, opts, torch=None, peaks=None, progress=None,
             prefix=""):
    """Time one case; returns its result dict (see the JSON written by ``--json``)."""
    shape = SHAPES[shape_name]
    cell = shape_name in CELL_SHAPES
    dtype = DTYPES[dtype_name]
    case = make_case(model, shape, dtype, opts.seed)
    fl = flops(model, shape)
    peak = (peaks or {}).get(dtype_name)
    impls = fastrnn_impls(model, case, cell=cell, n_threads=opts.threads)
    if opts.no_reference:
        impls = [i for i in impls if i.role != "reference"]
    if torch is not None:
        impls.append(torch_impl(model, case, cell=cell))
    tag = f"{shape_name} {model} {dtype_name}"
    outs, rows = {}, []
    for impl in impls:
        if progress:
            progress(f"{prefix}{tag}: {impl.label}")
        with impl.context():
            outs[impl.role] = impl.outputs(impl.call())   # untimed first call: warm-up
            if impl.role == "torch":
                impl.call()
        budget = None
        if impl.role == "reference":
            budget = REFERENCE_BUDGET if opts.reference_budget is None else opts.reference_budget
        timing = measure(impl.call, repeat=opts.repeat, min_time=opts.min_time, budget=budget,
                         context=impl.context)
        row = {"role": impl.role, "label": impl.label}
        row.update(_stats(timing, fl, peak))
        rows.append(row)
    # error baselines: the float64 reference, and PyTorch
    want = None
    if not opts.no_reference:
        want = (outs["reference"] if dtype_name == "float64"
                else reference_outputs(model, case, cell=cell))
    times = {r["role"]: r["median_s"] for r in rows}
    for row in rows:
        got = outs[row["role"]]
        row["speedup_vs_reference"] = (times["reference"] / row["median_s"]
                                       if "reference" in times else None)
        row["ratio_vs_torch"] = (row["median_s"] / times["torch"] if "torch" in times
                                 else None)
        row["max_abs_err_vs_reference"] = None if want is None else max_abs_diff(got, want)
        row["max_abs_err_vs_torch"] = (max_abs_diff(got, outs["torch"])
                                       if "torch" in outs and row["role"] != "torch" else None)
    return {"shape": shape_name, "dims": shape._asdict(), "model": model, "dtype": dtype_name,
            "calls": "cell" if cell else "sequence", "flops": fl, "impls": rows}
