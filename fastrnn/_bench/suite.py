"""One case of the public suite: check every implementation's outputs, then time them."""
import sys


from fastrnn._bench.cases import CELL_SHAPES, DTYPES, REFERENCE_BUDGET, SHAPES, make_case
from fastrnn._bench.impls import FASTRNN_ROLES, PEERS, max_abs_diff
from fastrnn._bench.timing import measure_interleaved, ratio_stats

# The largest |difference| from the float64 reference (or, without it, from fastrnn's
# drop-in function) an implementation may show and still be timed and compared: a sanity
# bound that a wrong gate order or a missing bias (errors of order 0.1) cannot pass, loose
# enough for float32 rounding over the suite's longest sequences.  Beyond it the row says
# MISMATCH and ``fastrnn bench`` exits with status 1.
MATCH_ATOL = {"float64": 1e-8, "float32": 1e-3}

# The time against the fastest peer's that the report's %peak@0.9x column prices: what a
# call that much faster than the peer would need from the cores.
PEER_TARGET = 0.9


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


def timing_stats(timing, fl, peak):
    """The JSON fields of one :class:`~fastrnn._bench.timing.Timing` of a call of ``fl``
    FLOPs, against the GEMM rate ``peak`` (GFLOP/s)."""
    med = timing.median
    q1, q3 = timing.quartiles
    gflops = fl / med / 1e9
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "min_s": timing.min,
            "max_s": timing.max, "spread": (timing.max - timing.min) / med,
            "times_s": list(timing.times), "samples": len(timing.times),
            "calls_per_sample": timing.number, "gflops": gflops,
            "frac_gemm": gflops / peak if peak else None}


def check_and_time(impls, dtype_name, want, *, repeat, min_time, reference_budget,
                   progress=None, prefix="", fl=1, peak=None, baselines=None):
    """Call every implementation once (its outputs are checked), then time those that match.

    ``want``: the float64 reference's outputs; None: the outputs of the "reference"
    implementation when it runs in float64, else the drop-in function's outputs are the
    baseline of the check.  fastrnn's implementations and the peers are timed in
    interleaved rounds (paired ratios, see
    :func:`~fastrnn._bench.timing.measure_interleaved`): ``repeat`` rounds of samples of
    about ``min_time / repeat`` seconds each; the reference takes part in the first rounds
    only, within ``reference_budget`` seconds (at least one sample).  Each row's
    ``ratios`` are against the roles ``baselines[role]`` (default: the reference and the
    peers).

    Returns
    -------
    list of dict
        One row per implementation (the ``impls`` of the JSON result).
    """
    outs, rows = {}, []
    for impl in impls:
        if progress:
            progress(f"{prefix}{impl.label}: first call")
        with impl.context():
            outs[impl.role] = impl.outputs(impl.call())   # untimed first call: warm-up
            impl.call()
    if want is None and dtype_name == "float64" and "reference" in outs:
        want = outs["reference"]
    base = want if want is not None else outs.get("fastrnn")
    tol = MATCH_ATOL[dtype_name]
    for impl in impls:
        got = outs[impl.role]
        err_ref = None if want is None else max_abs_diff(got, want)
        err_fn = (max_abs_diff(got, outs["fastrnn"])
                  if impl.role != "fastrnn" and "fastrnn" in outs else None)
        err = max_abs_diff(got, base) if base is not None else 0.0
        rows.append({"role": impl.role, "label": impl.label,
                     "max_abs_err_vs_reference": err_ref,
                     "max_abs_err_vs_fastrnn": err_fn,
                     "max_abs_err_vs_torch": (max_abs_diff(got, outs["torch"])
                                              if "torch" in outs and impl.role != "torch"
                                              else None),
                     "mismatch": bool(err is not None and not err <= tol)})
    timed = [impl for impl, row in zip(impls, rows) if not row["mismatch"]]
    if progress and timed:
        progress(f"{prefix}timing {', '.join(i.role for i in timed)} in {repeat} rounds")
    timings = measure_interleaved(
        {i.role: (i.call, i.context) + ((reference_budget,) if i.role == "reference" else ())
         for i in timed}, rounds=repeat, sample_target=max(1e-3, min_time / repeat))
    for row in rows:
        t = timings.get(row["role"])
        row["timed"] = t is not None
        if t is None:
            row.update(median_s=None, gflops=None, frac_gemm=None)
        else:
            row.update(timing_stats(t, fl, peak))
        row["ratios"] = {}
        others = (("reference",) + PEERS if baselines is None
                  else baselines.get(row["role"], ()))
        for other in others:
            if t is not None and other in timings and other != row["role"]:
                row["ratios"][other] = ratio_stats(t, timings[other])
        r = row["ratios"]
        row["speedup_vs_reference"] = (1 / r["reference"]["median"] if "reference" in r
                                       else 1.0 if row["role"] == "reference" and t else None)
        for peer in PEERS:
            row[f"ratio_vs_{peer}"] = (r[peer]["median"] if peer in r
                                       else 1.0 if row["role"] == peer and t else None)
    return rows


def frac_peak(fl, seconds, madd_peak, threads, m):
    """The fraction of the cores' limit that ``fl`` FLOPs in ``seconds`` run at: one core's
    multiply-add peak ``madd_peak`` (GFLOP/s) times the threads a batch of ``m`` examples
    can use, counting at most one per example (fastrnn's batch threads; a call that splits
    one example's rows over threads could pass 1).  None without a peak or a time."""
    if not madd_peak or not seconds:
        return None
    return fl / seconds / (1e9 * madd_peak * min(threads, m))


def add_peer_fractions(res, madd_peak, threads):
    """Set a case or sweep cell's ``peer_frac_peak`` (the fastest timed peer's
    :func:`frac_peak`) and ``frac_peak_at_target`` (what a call taking PEER_TARGET times that
    peer's time would run at); None without a timed peer."""
    fl, m = res["flops"], res["dims"]["m"]
    peers = [r for r in res["impls"] if r["role"] in PEERS and r["timed"]]
    fastest = min(peers, key=lambda r: r["median_s"]) if peers else None
    res["peer_frac_peak"] = (frac_peak(fl, fastest["median_s"], madd_peak, threads, m)
                             if fastest else None)
    res["frac_peak_at_target"] = (
        frac_peak(fl, PEER_TARGET * fastest["median_s"], madd_peak, threads, m)
        if fastest else None)
    return res


def add_peak_fractions(res, madd_peak, threads):
    """Set a case result's ``frac_peak`` (fastrnn's fastest call, :func:`frac_peak`) and
    its peers' fractions (:func:`add_peer_fractions`); None where there is no such row."""
    best = best_fastrnn(res)
    res["frac_peak"] = (frac_peak(res["flops"], best["median_s"], madd_peak, threads,
                                  res["dims"]["m"]) if best else None)
    return add_peer_fractions(res, madd_peak, threads)


def run_case(shape_name, model, dtype_name, opts, peers=(), peaks=None, progress=None,
             prefix="", workload="forward", madd_peaks=None):
    """Check and time one case of the public suite; returns its result (see the JSON
    written by ``--json``).

    ``peers``: the peers to time ("torch", "ort"; ONNX Runtime only for float32).
    ``opts``: ``seed``, ``threads``, ``repeat``, ``min_time``, ``reference_budget``,
    ``no_reference``.  ``workload``: a name in
    :data:`~fastrnn._bench.workloads.WORKLOADS` (default the forward pass).  ``peaks``,
    ``madd_peaks``: the GEMM rate and one core's multiply-add peak per dtype name (GFLOP/s;
    for %GEMM and :func:`add_peak_fractions`).
    """
    from fastrnn._bench.workloads import workload as get_workload

    work = get_workload(workload)
    shape = SHAPES[shape_name]
    cell = shape_name in CELL_SHAPES
    dtype = DTYPES[dtype_name]
    case = make_case(model, shape, dtype, opts.seed)
    fl = work.flops(model, shape)
    impls = work.impls(model, case, cell, opts.threads, peers)
    if opts.no_reference:
        impls = [i for i in impls if i.role != "reference"]
    tag = f"{shape_name} {model} {dtype_name}" + ("" if work.name == "forward"
                                                 else f" {work.name}")
    want = None
    # a workload of its own outputs is always checked against the float64 reference's
    if work.name != "forward" or not opts.no_reference and (
            dtype_name != "float64" or not any(i.role == "reference" for i in impls)):
        if progress:
            progress(f"{prefix}{tag}: float64 reference outputs")
        want = work.want(model, case, cell)
    budget = REFERENCE_BUDGET if opts.reference_budget is None else opts.reference_budget
    rows = check_and_time(impls, dtype_name, want, repeat=opts.repeat, min_time=opts.min_time,
                          reference_budget=budget, progress=progress,
                          prefix=f"{prefix}{tag}: ", fl=fl,
                          peak=(peaks or {}).get(dtype_name), baselines=work.baselines)
    res = {"shape": shape_name, "dims": shape._asdict(), "model": model, "dtype": dtype_name,
           "workload": work.name, "calls": "cell" if cell else "sequence", "flops": fl,
           "impls": rows}
    # (a workload with a summary of its own times calls whose FLOPs or threads differ
    # between the rows: its shares of the peak would compare unlike things)
    return add_peak_fractions(res, (madd_peaks or {}).get(dtype_name) if work.summary is None
                              else None, opts.threads)


def best_fastrnn(res):
    """The fastest of fastrnn's rows of a case result (for the GEMM fraction)."""
    rows = [r for r in res["impls"] if r["role"] in FASTRNN_ROLES and r["timed"]]
    return max(rows, key=lambda r: r["gflops"]) if rows else None


__all__ = ["MATCH_ATOL", "PEER_TARGET", "run_case", "check_and_time", "timing_stats",
           "best_fastrnn", "frac_peak", "add_peak_fractions", "add_peer_fractions"]
