"""The text report: tables, summary, footer; the JSON encoding."""
import math

import numpy as np


def _fmt_time(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{s:.3g} s"


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


_TABLE_HEADER = (
    f"{'shape':<9} {'model':<5} {'dtype':<7} {'implementation':<28} {'median':>9} "
    f"{'IQR':>9} {'min':>9} {'n':>5} {'xref':>7} {'/torch':>7} {'GFLOP/s':>8} "
    f"{'%GEMM':>6} {'err ref':>8} {'err torch':>9}")


def format_table_header():
    return _TABLE_HEADER + "\n" + "-" * len(_TABLE_HEADER)


def format_case(res):
    """The rows of one case (one per implementation) and a blank line."""
    lines = []
    for k, r in enumerate(res["impls"]):
        key = (f"{res['shape']:<9} {res['model']:<5} {res['dtype']:<7}" if k == 0
               else " " * 23)
        frac = None if r["frac_gemm"] is None else 100 * r["frac_gemm"]
        lines.append(
            f"{key} {r['label']:<28} {_fmt_time(r['median_s']):>9} "
            f"{_fmt_time(r['iqr_s']):>9} {_fmt_time(r['min_s']):>9} "
            f"{r['samples']:>5} {_fmt(r['speedup_vs_reference'], '.3g'):>7} "
            f"{_fmt(r['ratio_vs_torch'], '.3g'):>7} {r['gflops']:>8.3g} "
            f"{_fmt(frac, '.1f'):>6} {_fmt(r['max_abs_err_vs_reference'], '.1e'):>8} "
            f"{_fmt(r['max_abs_err_vs_torch'], '.1e'):>9}")
    return "\n".join(lines) + "\n"


def format_summary(results):
    """One line per case: the four median times and fastrnn's ratios."""
    lines = ["Summary (median times; fn = the drop-in function, mdl = the packed model; "
             "xref = reference time / fn time; /torch = time / PyTorch time, < 1: fastrnn "
             "faster)"]
    hdr = (f"{'shape':<9} {'model':<5} {'dtype':<7} {'fastrnn':>9} {'model':>9} "
           f"{'reference':>9} {'torch':>9} {'fn xref':>8} {'fn/torch':>8} "
           f"{'mdl/torch':>9} {'best GF/s':>9} {'%GEMM':>6}")
    lines += [hdr, "-" * len(hdr)]
    for res in results:
        by = {r["role"]: r for r in res["impls"]}

        def t(role, by=by):
            return by[role]["median_s"] if role in by else None
        best = max((by[k] for k in ("fastrnn", "model") if k in by),
                   key=lambda r: r["gflops"])
        frac = None if best["frac_gemm"] is None else 100 * best["frac_gemm"]
        lines.append(
            f"{res['shape']:<9} {res['model']:<5} {res['dtype']:<7} "
            f"{_fmt_time(t('fastrnn')):>9} {_fmt_time(t('model')):>9} "
            f"{_fmt_time(t('reference')):>9} {_fmt_time(t('torch')):>9} "
            f"{_fmt(by['fastrnn']['speedup_vs_reference'], '.3g'):>8} "
            f"{_fmt(by['fastrnn']['ratio_vs_torch'], '.3g'):>8} "
            f"{_fmt(by['model']['ratio_vs_torch'], '.3g'):>9} "
            f"{best['gflops']:>9.3g} {_fmt(frac, '.1f'):>6}")
    return "\n".join(lines)


def _format_gemm(gemm):
    text = ", ".join(f"{'sgemm' if k == 'float32' else 'dgemm'} n={v['n']}: "
                     f"{v['gflops']:.1f} GFLOP/s" for k, v in gemm.items())
    if any("torch_gflops" in v for v in gemm.values()):
        text += ("   (PyTorch's own torch.mm, not the limit used for %GEMM: "
                 + ", ".join(f"{k} {v['torch_gflops']:.1f}" for k, v in gemm.items()) + ")")
    return text


def _mb(b):
    return f"{b / 2**20:.1f} MiB"


def format_footer(data):
    s = data["settings"]
    lines = [f"GEMM rate (scipy.linalg.blas, same threads, median of {s['gemm_repeat']}): "
             + _format_gemm(data["gemm"])]
    for m in data.get("memory", []):
        lines.append(
            f"peak memory, big {m['model']} {m['dtype']} {m['call']:<7}: {_mb(m['peak'])} "
            f"(tracemalloc) vs outputs {_mb(m['outputs'])} + gate buffer "
            f"{_mb(m['gate_buffer'])} = {_mb(m['outputs'] + m['gate_buffer'])}: "
            f"x{m['ratio']:.2f}   (parameters {_mb(m['weights'])})")
    lines.append(
        f"timing: median of per-call times; >= {s['repeat']} samples and >= {s['min_time']} s "
        f"per implementation; reference capped at {s['reference_budget']} s per case; "
        f"seed {s['seed']}")
    lines.append(
        "columns: xref = reference time / this time; /torch = this time / PyTorch time; "
        "GFLOP/s counts GEMM work only, 2*G*n_a*(n_a+n_x)*m*T_x + 2*n_y*n_a*m*T_x FLOPs "
        "(G = 1 RNN, 4 LSTM); err = max |difference| from the float64 reference / from "
        "PyTorch (LSTM sequences vs PyTorch: a, y and the last c)")
    if data["environment"].get("torch"):
        lines.append(
            "PyTorch: layout conversion to (T_x, m, n) outside the timed region; timed = "
            "recurrent module + nn.Linear + softmax under torch.inference_mode()")
    return "\n".join(lines)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
