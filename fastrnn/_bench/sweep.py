"""``fastrnn bench --sweep``: batch size x hidden size, against the peers and the floor.

The grid: n_a in :data:`SWEEP_N_A` x m in :data:`SWEEP_M`, n_x = n_y = max(1, n_a // 2),
T_x chosen per cell so that one call of the packed model takes at least
:data:`MIN_CALL_TIME` (long enough that the per-call overhead does not decide the ratio).
Each cell times the drop-in function, the packed model and the peers in interleaved rounds
(paired ratios, with their spread), after checking every output against the float64
reference.  The whole sweep is held to about ``time_cap`` seconds: each cell gets an equal
share of what is left for its timed samples (at least a few milliseconds a sample).

For small batches (m <= :data:`FLOOR_MAX_M`) a step cannot be faster than reading the
``(G n_a, n_a)`` recurrent block once: the floor (:func:`~fastrnn._bench.timing.read_floor`),
measured in the same run, and the packed model's time per step / floor are reported. Nor can
a call be faster than its multiply-adds at the cores' peak rate (one core's at fastrnn's
SIMD level, measured in the same run by :func:`~fastrnn._bench.timing.madd_peak`, times the
threads the batch can use: min(threads, m)): each cell reports the packed model's share of
it (%peak), the other limit, which sets the pace where a step's multiply-adds take longer
than the read of its block.
"""
import math
import time


from fastrnn._bench.cases import DTYPES, Shape, flops, make_case
from fastrnn._bench.impls import fastrnn_impls, peer_impls, reference_outputs
from fastrnn._bench.kinds import kind
from fastrnn._bench.report import fmt_ratio, fmt_time, percent
from fastrnn._bench.suite import PEER_TARGET, add_peer_fractions, check_and_time, frac_peak
from fastrnn._bench.timing import read_floor

SWEEP_N_A = (32, 64, 128, 192, 256, 384, 512, 1024)
SWEEP_M = (1, 2, 3, 4, 5, 6, 8, 12, 16, 32, 64)
# --quick samples the grid: small, middle and large n_a; the batch sizes around the
# small-batch kernel's threshold, one beyond it and a GEMM-sized one.
QUICK_N_A = (64, 192, 512)
QUICK_M = (1, 2, 4, 5, 8, 32)
FLOOR_MAX_M = 8
MIN_CALL_TIME = 2e-4
T_RANGE = (8, 4096)
TIME_CAP = 300.0


def sweep_dims(n_a, m, T_x):
    """The sweep's shape of one cell: n_x = n_y = max(1, n_a // 2)."""
    n = max(1, n_a // 2)
    return Shape(n, n_a, n, m, T_x)


def choose_T(model, n_a, m, dtype, seed=0, min_call_time=MIN_CALL_TIME):
    """The sequence length at which one packed-model call takes >= ``min_call_time``.

    Probed with a 16-step call (the fastest of three), rounded up to two significant
    digits, within :data:`T_RANGE`.
    """
    import fastrnn

    k = kind(model)
    case = make_case(k, sweep_dims(n_a, m, 16), dtype, seed)
    net = getattr(fastrnn, k.model)(case["parameters"])
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        net.forward(case["x"], case["a0"])
        best = min(best, time.perf_counter() - t0)
    T = math.ceil(1.2 * min_call_time / max(best / 16, 1e-9))
    T = min(max(T, T_RANGE[0]), T_RANGE[1])
    scale = 10 ** max(0, len(str(T)) - 2)
    return min(T_RANGE[1], -(-T // scale) * scale)


def sweep_cells(models, dtypes, n_as, ms):
    return [(mo, d, n_a, m) for mo in models for d in dtypes for n_a in n_as for m in ms]


def run_sweep(opts, models, dtypes, n_as, ms, peers=(), peaks=None, progress=None,
              time_cap=TIME_CAP, on_cell=None, madd_peaks=None):
    """Check and time every cell of the grid; returns the list of cell results.

    ``peaks``: the GEMM rate per dtype name (GFLOP/s, for %GEMM); ``madd_peaks``: one
    core's multiply-add peak per dtype name (GFLOP/s, for %peak).  ``on_cell(result)`` is
    called after each cell (the CLI prints its row).
    """
    cells = sweep_cells(models, dtypes, n_as, ms)
    n_impls = 2 + len(peers)
    floors, results = {}, []
    t_start = time.perf_counter()
    for k, (model, dtype_name, n_a, m) in enumerate(cells, 1):
        # this cell's share of what is left of the cap (a slow or busy machine shortens
        # the later cells' samples): about 60% of it goes to the timed rounds, the rest to
        # calibration, first calls, the probe for T_x and the reference check
        left = time_cap - (time.perf_counter() - t_start)
        min_time = max(2e-3, 0.6 * left / (len(cells) - k + 1) / n_impls)
        tag = f"[{k}/{len(cells)}] sweep {model} {dtype_name} n_a={n_a} m={m}"
        dtype = DTYPES[dtype_name]
        G = kind(model).gates
        if m <= FLOOR_MAX_M and (model, dtype_name, n_a) not in floors:
            if progress:
                progress(f"{tag}: floor (read of a {G * n_a} x {n_a} block)")
            floors[model, dtype_name, n_a] = read_floor(dtype, G * n_a, n_a)
        if progress:
            progress(f"{tag}: choosing T_x")
        T = choose_T(model, n_a, m, dtype, opts.seed)
        dims = sweep_dims(n_a, m, T)
        case = make_case(model, dims, dtype, opts.seed)
        impls = [i for i in fastrnn_impls(model, case, n_threads=opts.threads)
                 if i.role != "reference"]
        impls += peer_impls(model, case, peers=peers, threads=opts.threads)
        want = reference_outputs(model, case)
        fl = flops(model, dims)
        rows = check_and_time(impls, dtype_name, want, repeat=opts.repeat, min_time=min_time,
                              reference_budget=0, progress=progress, prefix=f"{tag}: ", fl=fl,
                              peak=(peaks or {}).get(dtype_name))
        res = {"model": model, "dtype": dtype_name, "n_a": n_a, "m": m, "T_x": T,
               "dims": dims._asdict(), "flops": fl, "impls": rows}
        model_row = next(r for r in rows if r["role"] == "model")
        floor = floors.get((model, dtype_name, n_a)) if m <= FLOOR_MAX_M else None
        res["floor_s"] = floor
        res["step_s"] = model_row["median_s"] / T if model_row["timed"] else None
        res["step_over_floor"] = (res["step_s"] / floor
                                  if floor and res["step_s"] is not None else None)
        madd_peak = (madd_peaks or {}).get(dtype_name)
        res["frac_peak"] = (frac_peak(fl, model_row["median_s"], madd_peak, opts.threads, m)
                            if model_row["timed"] else None)
        add_peer_fractions(res, madd_peak, opts.threads)
        results.append(res)
        if on_cell:
            on_cell(res)
    if progress:
        progress(f"sweep: {len(cells)} cells in {time.perf_counter() - t_start:.0f} s")
    return results


# ------------------------------------------------------------------ report

def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _row(res, role):
    return next((r for r in res["impls"] if r["role"] == role), None)


def ratio_of(res, role, peer):
    """The ratio dict (this time / peer time) of ``role`` ("fastrnn", "model") in a cell,
    or None."""
    row = _row(res, role)
    return None if row is None else row["ratios"].get(peer)


def sweep_header(peers):
    cols = "".join(f"{'mdl/' + p + ' (min-max)':>20} {'fn/' + p + ' (min-max)':>20} "
                   for p in peers)
    hdr = (f"{'model':<5} {'dtype':<7} {'n_a':>5} {'m':>3} {'T_x':>5} {'fastrnn':>9} "
           f"{'model':>9} " + "".join(f"{p:>9} " for p in peers) + cols
           + f"{'step':>9} {'floor':>9} {'/floor':>6} {'%GEMM':>6} {'%peak':>6}")
    return hdr + "\n" + "-" * len(hdr)


def format_cell(res, peers):
    def t(role):
        row = _row(res, role)
        if row is None:
            return "n/a"
        return fmt_time(row["median_s"]) if row["timed"] else "MISMATCH"

    cols = ""
    for p in peers:
        na = "n/a" if _row(res, p) is None else "-"
        cols += (f"{fmt_ratio(ratio_of(res, 'model', p), none=na):>20} "
                 f"{fmt_ratio(ratio_of(res, 'fastrnn', p), none=na):>20} ")
    best = max((r["frac_gemm"] or 0 for r in res["impls"]
                if r["role"] in ("fastrnn", "model") and r["timed"]), default=0)
    return (f"{res['model']:<5} {res['dtype']:<7} {res['n_a']:>5} {res['m']:>3} "
            f"{res['T_x']:>5} {t('fastrnn'):>9} {t('model'):>9} "
            + "".join(f"{t(p):>9} " for p in peers) + cols
            + f"{fmt_time(res['step_s']):>9} {fmt_time(res['floor_s']):>9} "
            f"{_fmt(res['step_over_floor'], '.2g'):>6} {100 * best:>6.1f} "
            f"{_fmt(percent(res.get('frac_peak')), '.1f'):>6}")


def grid(results, model, dtype, value):
    """``{n_a: {m: value(cell)}}`` of the cells of one model and dtype."""
    out = {}
    for res in results:
        if res["model"] == model and res["dtype"] == dtype:
            out.setdefault(res["n_a"], {})[res["m"]] = value(res)
    return out


def format_grid(title, table, spec=".2f"):
    """A text heat map: rows n_a, columns m."""
    ms = sorted({m for row in table.values() for m in row})
    lines = [title, f"{'n_a / m':>8} " + "".join(f"{m:>6}" for m in ms)]
    for n_a in sorted(table):
        lines.append(f"{n_a:>8} " + "".join(
            f"{('-' if table[n_a].get(m) is None else format(table[n_a][m], spec)):>6}"
            for m in ms))
    return "\n".join(lines)


def format_grids(results, peers):
    """The sweep's text heat maps: time / peer time of the drop-in function and of the
    packed model per peer, the small-batch step time / floor, the packed model's %peak, and
    the %peak a call at PEER_TARGET times the fastest peer's time would need."""
    blocks = []

    def add(title, model, dtype, value, spec=".2f"):
        # a heat map of value(cell) over the model's cells, unless it has no values
        table = grid(results, model, dtype, value)
        if any(v is not None for row in table.values() for v in row.values()):
            blocks.append(format_grid(f"{model} {dtype}: {title}", table, spec))

    for model, dtype in dict.fromkeys((r["model"], r["dtype"]) for r in results):
        for p in peers:
            for role, name in (("fastrnn", "drop-in function"), ("model", "packed model")):
                add(f"{name} time / {p} time (median; < 1: fastrnn faster)", model, dtype,
                    lambda r, role=role, p=p: (ratio_of(r, role, p) or {}).get("median"))
        add(f"packed model time per step / floor (m <= {FLOOR_MAX_M})", model, dtype,
            lambda r: r["step_over_floor"], ".2g")
        add("packed model GFLOP/s, % of the multiply-add peak (the cores' limit)", model,
            dtype, lambda r: percent(r.get("frac_peak")), ".0f")
        add(f"% of the multiply-add peak a call would need to take {PEER_TARGET:g}x the "
            "fastest peer's time", model, dtype,
            lambda r: percent(r.get("frac_peak_at_target")), ".0f")
    return "\n\n".join(blocks)


__all__ = ["SWEEP_N_A", "SWEEP_M", "QUICK_N_A", "QUICK_M", "FLOOR_MAX_M", "MIN_CALL_TIME",
           "TIME_CAP", "sweep_dims", "choose_T", "run_sweep", "sweep_header", "format_cell",
           "format_grids", "grid", "ratio_of"]
