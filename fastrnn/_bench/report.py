"""The text report: the suite's tables and summary, the footer; the JSON encoding."""
import math
import re

import numpy as np

from fastrnn._bench.cases import SHAPES
from fastrnn._bench.impls import PEER_NAMES, PEERS
from fastrnn._bench.suite import PEER_TARGET


def fmt_time(s):
    """A time in seconds with its unit, 3 significant digits."""
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{s:.3g} s"


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _g(v, digits=3):
    """A ratio to ``digits`` significant digits, without an exponent in 1e-3..1e4."""
    return f"{v:.{digits}g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.1e}"


def fmt_ratio(stats, none="-"):
    """A ratio with its spread: ``median (min-max)``; ``stats`` a ratio dict or None."""
    if not stats:
        return none
    return f"{_g(stats['median'])} ({_g(stats['min'], 2)}-{_g(stats['max'], 2)})"


def inverse(stats):
    """The reciprocal of a ratio dict (min and max swap)."""
    if not stats:
        return stats
    return {"median": 1 / stats["median"], "min": 1 / stats["max"], "max": 1 / stats["min"]}


def _shape_key(res):
    """The shape's name, and the workload's when it is not the forward pass."""
    work = res.get("workload", "forward")
    return res["shape"] if work == "forward" else f"{res['shape']}/{work}"


_TABLE_HEADER = (
    f"{'shape':<9} {'model':<5} {'dtype':<7} {'implementation':<30} {'median':>9} "
    f"{'spread':>7} {'n':>4} {'xref (min-max)':>18} {'GFLOP/s':>8} {'%GEMM':>6} "
    f"{'err ref':>8} {'err fn':>8}")


def format_table_header():
    return _TABLE_HEADER + "\n" + "-" * len(_TABLE_HEADER)


def format_case(res):
    """The rows of one case (one per implementation) and a blank line."""
    lines = []
    for k, r in enumerate(res["impls"]):
        key = (f"{_shape_key(res):<9} {res['model']:<5} {res['dtype']:<7}" if k == 0
               else " " * 23)
        if r["timed"]:
            timing = (f"{fmt_time(r['median_s']):>9} {100 * r['spread']:>6.1f}% "
                      f"{r['samples']:>4} "
                      f"{fmt_ratio(inverse(r['ratios'].get('reference'))):>18} "
                      f"{r['gflops']:>8.3g} {_pct(r['frac_gemm']):>6}")
        else:
            timing = f"{'not timed':>9} {'':>7} {'':>4} {'':>18} {'':>8} {'':>6}"
        mark = "  MISMATCH" if r["mismatch"] else ""
        lines.append(
            f"{key} {r['label']:<30} {timing} "
            f"{_fmt(r['max_abs_err_vs_reference'], '.1e'):>8} "
            f"{_fmt(r['max_abs_err_vs_fastrnn'], '.1e'):>8}{mark}")
    return "\n".join(lines) + "\n"


def _summary_columns(peers):
    cols = [("fn xref", None, None)]
    for peer in peers:
        cols += [(f"fn/{peer}", "fastrnn", peer), (f"mdl/{peer}", "model", peer)]
    return cols


def format_summary(results, peers=PEERS, workloads=None):
    """One line per case: the median times, and fastrnn's ratios with their spread.

    ``workloads`` (name -> :class:`~fastrnn._bench.workloads.Workload`): a workload with
    its own ``summary`` columns gets a table of its own after the forward pass's.
    """
    workloads = workloads or {}
    own = {}
    for res in results:
        work = workloads.get(res.get("workload", "forward"))
        if work is not None and work.summary:
            own.setdefault(work.name, (work, []))[1].append(res)
    plain = [res for res in results if res.get("workload", "forward") not in own]
    tables = [_format_summary(plain, peers)] if plain or not own else []
    tables += [_format_own_summary(work, rows) for work, rows in own.values()]
    return "\n\n".join(tables)


def _format_own_summary(work, results):
    """The summary of a workload with its own ratio columns (``work.summary``)."""
    roles = []
    for res in results:
        roles += [r["role"] for r in res["impls"] if r["role"] not in roles]
    labels = {}
    for res in results:
        for r in res["impls"]:
            label = re.sub(rf"\b{res['model']}_", "*_", r["label"])
            labels.setdefault(r["role"], re.sub(rf"\b{res['model'].upper()}\b", "*", label))
    lines = [f"Summary, {work.name}: median times; ratios with their spread over the timed "
             f"rounds (min-max). " + "; ".join(f"{role} = {labels[role]}" for role in roles)
             + "; " + ", ".join(f"{title} = {role} time / {base} time"
                                for title, role, base in work.summary)]
    hdr = (f"{'shape':<9} {'model':<5} {'dtype':<7} " + "".join(f"{r:>9} " for r in roles)
           + "".join(f"{c[0] + ' (min-max)':>19} " for c in work.summary))
    lines += [hdr, "-" * len(hdr)]
    for res in results:
        by = {r["role"]: r for r in res["impls"]}
        times = "".join(f"{fmt_time(by[r]['median_s']) if r in by else 'n/a':>9} "
                        for r in roles)
        cells = "".join(
            f"{fmt_ratio(by[role]['ratios'].get(base) if role in by else None):>19} "
            for _, role, base in work.summary)
        lines.append(f"{res['shape']:<9} {res['model']:<5} {res['dtype']:<7} {times}{cells}")
    return "\n".join(lines)


def _format_summary(results, peers):
    peers = [p for p in peers
             if any(r["role"] == p for res in results for r in res["impls"])]
    lines = [
        "Summary: median times; ratios with their spread over the timed rounds (min-max). "
        "fn = the drop-in function, mdl = the packed model; xref = reference time / fn "
        "time; /" + ", /".join(peers or ["peer"]) + " = fastrnn time / peer time (< 1: "
        "fastrnn faster)"]
    cols = _summary_columns(peers)
    hdr = (f"{'shape':<9} {'model':<5} {'dtype':<7} {'fastrnn':>9} {'model':>9} "
           f"{'reference':>9} " + "".join(f"{p:>9} " for p in peers)
           + "".join(f"{c[0] + ' (min-max)':>19} " for c in cols) + f"{'%GEMM':>6}"
           + f" {'%peak':>6} {_AT_TARGET:>10}")
    lines += [hdr, "-" * len(hdr)]
    for res in results:
        by = {r["role"]: r for r in res["impls"]}

        def t(role):
            return fmt_time(by[role]["median_s"]) if role in by else "n/a"

        cells = []
        for _, role, peer in cols:
            row = by.get(role or "fastrnn")
            if peer is None:
                stats = inverse(row["ratios"].get("reference")) if row else None
            else:
                stats = row["ratios"].get(peer) if row else None
            na = "n/a" if peer is not None and peer not in by else "-"
            cells.append(f"{fmt_ratio(stats, none=na):>19} ")
        best = max((r for r in res["impls"] if r["role"] in ("fastrnn", "model")
                    and r["timed"]), key=lambda r: r["gflops"], default=None)
        lines.append(
            f"{_shape_key(res):<9} {res['model']:<5} {res['dtype']:<7} {t('fastrnn'):>9} "
            f"{t('model'):>9} {t('reference'):>9} " + "".join(f"{t(p):>9} " for p in peers)
            + "".join(cells) + f"{_pct(None if best is None else best['frac_gemm']):>6} "
            f"{_pct(res.get('frac_peak')):>6} "
            f"{_pct(res.get('frac_peak_at_target')):>{max(10, len(_AT_TARGET))}}")
    return "\n".join(lines)


_AT_TARGET = f"%peak@{PEER_TARGET:g}x"
# what the footer says %peak divides by
_PEAK_LIMIT = ("GFLOP/s / (min(threads, m) x one core's multiply-add peak above), the limit "
               "no product passes at that SIMD level with at most one thread per example; ")


def percent(frac):
    """100 * frac, or None for None."""
    return None if frac is None else 100 * frac


def _pct(frac):
    return _fmt(percent(frac), ".1f")


def format_gemm(gemm):
    text = ", ".join(f"{'sgemm' if k == 'float32' else 'dgemm'} n={v['n']}: "
                     f"{v['gflops']:.1f} GFLOP/s" for k, v in gemm.items())
    if any("madd_peak_gflops" in v for v in gemm.values()):
        # the limit of every product on one core: how close the GEMM (and fastrnn) come
        text += ("   one core's multiply-add peak at fastrnn's SIMD level (registers only, no "
                 "memory; the fastest sample): ") + ", ".join(
            f"{k} {v['madd_peak_gflops']:.1f} (one thread's GEMM at "
            f"{100 * v.get('one_thread_gflops', v['gflops']) / v['madd_peak_gflops']:.0f}%)"
            for k, v in gemm.items() if "madd_peak_gflops" in v)
    if any("torch_gflops" in v for v in gemm.values()):
        text += ("   (PyTorch's own torch.mm, not the limit used for %GEMM: "
                 + ", ".join(f"{k} {v['torch_gflops']:.1f}" for k, v in gemm.items()) + ")")
    if any("one_thread_gflops" in v for v in gemm.values()):
        # what threads can gain on this machine at best (on a VM whose vCPUs share a core's
        # floating-point units this is near 1 whatever the vCPU count says)
        text += ("   parallel ceiling (this rate / the same GEMM on one thread): "
                 + ", ".join(f"{k} {v['gflops'] / v['one_thread_gflops']:.2f}x"
                             for k, v in gemm.items()))
    return text


_MEMORY_METHOD = {"resident": "resident, one call in a fresh process",
                  "tracemalloc": "tracemalloc, one call in a fresh process"}


def _mb(b):
    return f"{b / 2**20:.1f} MiB"


def format_shapes(names):
    """The sizes of the named shapes, one line."""
    return "shapes (n_x, n_a, n_y, m, T_x): " + "; ".join(
        f"{n} {tuple(SHAPES[n])}" for n in names)


def format_footer(data, workloads=None):
    """The notes under the tables: GEMM rate, shapes, memory, timing, columns, peers; a line
    for each workload other than the forward pass that ran (``workloads``: name ->
    :class:`~fastrnn._bench.workloads.Workload`)."""
    s = data["settings"]
    # the workloads summarised in tables of their own (no %peak columns there)
    own_summary = {name for name, w in (workloads or {}).items() if w.summary}
    lines = [f"GEMM rate (scipy.linalg.blas, same threads, median of {s['gemm_repeat']}): "
             + format_gemm(data["gemm"])]
    if s.get("shapes"):
        lines.append(format_shapes(s["shapes"]))
    for m in data.get("memory", []):
        lines.append(
            f"peak memory, big {m['model']} {m['dtype']} {m['call']:<7}: {_mb(m['peak'])} "
            f"({_MEMORY_METHOD.get(m.get('method'), 'tracemalloc')}) vs outputs "
            f"{_mb(m['outputs'])} + gate buffer "
            f"{_mb(m['gate_buffer'])} = {_mb(m['outputs'] + m['gate_buffer'])}: "
            f"x{m['ratio']:.2f}   (parameters {_mb(m['weights'])})")
    if s.get("min_time") is not None:
        sample = f">= {s['min_time'] / s['repeat']:.3g} s a sample"
        ref = (f"; the reference takes part in the first rounds only, within "
               f"{s['reference_budget']} s per case (its ratios pair with those rounds)")
    else:
        sample = f"samples sized so that the sweep takes about {s['time_cap']:g} s"
        ref = "; the reference is not timed (its float64 outputs check every row)"
    lines.append(
        f"timing: fastrnn and the peers in {s['repeat']} interleaved rounds (one sample of "
        f"each per round, {sample}); median of the per-call times; spread = (max - min) / "
        f"median over the rounds{ref}; seed {s['seed']}")
    lines.append(
        "columns: xref = reference time / this time; GFLOP/s counts GEMM work only, "
        "2*G*n_a*(n_a+n_x)*m*T_x + 2*n_y*n_a*m*T_x FLOPs (G = 1 RNN, 4 LSTM, 3 GRU); "
        "%GEMM = GFLOP/s / the GEMM rate above, that of the BLAS as the environment runs it "
        "(above 100 where fastrnn's own kernels outrun it, e.g. OpenBLAS held to AVX2 by "
        "OPENBLAS_CORETYPE on an AVX-512 CPU); "
        + (f"%peak = the packed model's {_PEAK_LIMIT}" if data.get("sweep") else "")
        + (f"%peak = fastrnn's faster call's {_PEAK_LIMIT}{_AT_TARGET} = the %peak of a call "
           f"taking {PEER_TARGET:g}x the fastest peer's time (above 100: no such call can be that "
           "fast; near 100: none that also reads memory, computes activations and writes "
           "outputs); "
           if any(res.get("workload", "forward") not in own_summary
                  for res in data.get("results", [])) else "")
        + "err ref = max |difference| from the float64 reference, err fn = from the drop-in "
        "function (LSTM sequences vs a peer: a, y and the last c); MISMATCH = beyond "
        + ", ".join(f"{k} {v:g}" for k, v in data["match_atol"].items()) + ": not timed")
    ran = {res.get("workload", "forward") for res in data.get("results", [])}
    for name in sorted(ran - {"forward"}):
        note = getattr((workloads or {}).get(name), "note", "")
        if note:
            lines.append(f"{name}: {note}")
    env = data["environment"]
    if env.get("torch"):
        lines.append(
            "PyTorch: layout conversion to (T_x, m, n) outside the timed region; timed = "
            "recurrent module + nn.Linear + softmax under torch.inference_mode()")
    if env.get("onnxruntime"):
        lines.append(
            "ONNX Runtime: one graph (RNN/LSTM/GRU operator + MatMul + Add + Softmax), inputs in "
            "(T_x, m, n) prepared outside the timed region; float32 only (n/a: float64)")
    return "\n".join(lines)


def json_safe(obj):
    """``obj`` with non-finite floats and numpy scalars made JSON-safe."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


__all__ = ["fmt_time", "fmt_ratio", "format_table_header", "format_case", "format_summary",
           "format_gemm", "format_footer", "format_shapes", "json_safe", "percent", "PEER_NAMES"]
