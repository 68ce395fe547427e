"""Figures for talks and READMEs (matplotlib, optional: ``pip install fastrnn[plot]``).

- :func:`plot_suite`: the public suite as bar charts of fastrnn's speed-up over each
  baseline (the numpy reference, PyTorch, ONNX Runtime), the drop-in functions and the
  packed models, both dtypes, min-max whiskers from the timed rounds, on a log axis.
- :func:`plot_sweep`: the sweep as heat maps, n_a x m, colour = fastrnn time / peer time,
  every cell annotated; and the small-batch step time / floor.
"""
import math

import numpy as np

from fastrnn._bench.impls import PEER_NAMES

BASELINES = (("reference", "the numpy reference"),) + tuple(
    (p, PEER_NAMES[p]) for p in ("torch", "ort"))
ROLE_NAMES = {"fastrnn": "drop-in function", "model": "packed model"}
DTYPE_COLOURS = {"float64": ("#1f4e9c", "#8fb0e6"), "float32": ("#c0501f", "#f0a77f")}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _speedup(row, baseline):
    """fastrnn's speed-up over ``baseline`` (baseline time / this time): (median, low,
    high), or None."""
    stats = row["ratios"].get(baseline) if row and row.get("timed") else None
    if not stats:
        return None
    return 1 / stats["median"], 1 / stats["max"], 1 / stats["min"]


def _log_axis(ax, lo, hi):
    """A log y axis with plain tick labels (0.5x, 1x, 2x, 10x, ...) covering [lo, hi]."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = min(lo, 0.8), max(hi, 1.25)
    ax.set_yscale("log")
    ax.set_ylim(lo / 1.35, hi * 1.9)      # room above the bars for their labels
    ticks = [m * 10.0 ** e for e in range(-4, 6) for m in (1, 2, 5)
             if lo / 1.35 <= m * 10.0 ** e <= hi * 1.9]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))


def _label(v):
    return f"{v:.2g}" if v < 10 else f"{v:.0f}"


def plot_suite(results, path):
    """Bar charts of the suite: one panel per baseline and model kind.

    Each shape has one bar per dtype x (drop-in function, packed model): the speed-up
    (baseline time / fastrnn time, median; above 1 = fastrnn faster), its value printed on
    the bar, whiskers from the smallest to the largest ratio over the timed rounds.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    kinds = list(dict.fromkeys(r["model"] for r in results))
    shapes = list(dict.fromkeys(r["shape"] for r in results))
    dtypes = list(dict.fromkeys(r["dtype"] for r in results))
    by = {(r["shape"], r["model"], r["dtype"]): {row["role"]: row for row in r["impls"]}
          for r in results}
    baselines = [(b, name) for b, name in BASELINES
                 if any(_speedup(rows.get(role), b) for rows in by.values()
                        for role in ROLE_NAMES)]
    if not baselines:
        raise ValueError("nothing to plot: no baseline (reference or peer) was timed")
    all_series = [(d, role) for d in dtypes for role in ROLE_NAMES]
    colours = {sr: DTYPE_COLOURS.get(sr[0], ("0.3", "0.7"))[k % 2]
               for k, sr in enumerate(all_series)}
    fig, axes = plt.subplots(len(baselines), len(kinds), squeeze=False,
                             figsize=(max(6.0, 1.25 * len(shapes) * len(kinds) + 1.5),
                                      3.3 * len(baselines) + 0.9))
    for i, (baseline, bname) in enumerate(baselines):
        # the series this baseline has (ONNX Runtime: float32 only), the same in a row
        series = [(d, role) for d, role in all_series
                  if any(_speedup(by.get((shape, kind, d), {}).get(role), baseline)
                         for shape in shapes for kind in kinds)]
        width = 0.8 / max(1, len(series))
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            values = []
            for k, (d, role) in enumerate(series):
                colour = colours[d, role]
                for s_idx, shape in enumerate(shapes):
                    sp = _speedup(by.get((shape, kind, d), {}).get(role), baseline)
                    if sp is None:
                        continue
                    x = s_idx + (k - (len(series) - 1) / 2) * width
                    med, lo, hi = sp
                    # bars grow from parity: a slow-down hangs below the 1x line
                    ax.bar(x, med - 1, width * 0.92, bottom=1, color=colour,
                           edgecolor="white", lw=0.5)
                    ax.errorbar(x, med, yerr=[[med - lo], [hi - med]], fmt="none",
                                ecolor="black", elinewidth=0.8, capsize=1.5)
                    ax.annotate(_label(med), (x, hi), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom",
                                fontsize=6.5, rotation=90)
                    values += [lo, hi]
            ax.axhline(1.0, color="black", lw=0.8)
            if values:
                _log_axis(ax, min(values), max(values))
            ax.set_xticks(range(len(shapes)))
            ax.set_xticklabels(shapes, fontsize=8)
            ax.set_xlim(-0.6, len(shapes) - 0.4)
            ax.grid(axis="y", color="0.9", lw=0.6)
            ax.set_axisbelow(True)
            ax.set_title(f"{kind.upper()}: speed-up over {bname}", fontsize=10)
            if j == 0:
                ax.set_ylabel("baseline time / fastrnn time", fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
    handles = [Patch(color=colours[d, role], label=f"{d} {ROLE_NAMES[role]}")
               for d, role in all_series]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle("fastrnn speed-up (median; whiskers: min-max over the timed rounds; "
                 "above 1x: fastrnn faster)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _heat(ax, fig, table, n_as, ms, title, centre=1.0, spec=".2f"):
    """One heat map: rows n_a, columns m; colour log2(value / centre), RdBu_r (blue:
    below ``centre``)."""
    from matplotlib.colors import Normalize

    data = np.full((len(n_as), len(ms)), np.nan)
    for a, n_a in enumerate(n_as):
        for b, m in enumerate(ms):
            v = table.get(n_a, {}).get(m)
            if v is not None and v > 0:
                data[a, b] = v
    colour = np.log2(data / centre)
    image = ax.imshow(colour, cmap="RdBu_r", norm=Normalize(-2, 2), aspect="auto",
                      origin="lower")
    for a in range(len(n_as)):
        for b in range(len(ms)):
            v = data[a, b]
            if not math.isnan(v):
                dark = abs(colour[a, b]) > 1.2
                ax.text(b, a, format(v, spec), ha="center", va="center", fontsize=6.5,
                        color="white" if dark else "black")
    ax.set_xticks(range(len(ms)))
    ax.set_xticklabels(ms, fontsize=7)
    ax.set_yticks(range(len(n_as)))
    ax.set_yticklabels(n_as, fontsize=7)
    ax.set_xlabel("batch m", fontsize=8)
    ax.set_ylabel("n_a", fontsize=8)
    ax.set_title(title, fontsize=9)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    ticks = [-2, -1, 0, 1, 2]
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{centre * 2.0 ** t:g}" for t in ticks])
    bar.ax.tick_params(labelsize=7)


def plot_sweep(cells, path, peers=("torch", "ort")):
    """Heat maps of the sweep: one row per model kind and dtype; columns: drop-in function
    and packed model time / each peer's time (blue: fastrnn faster), then the packed
    model's time per step / floor for m <= 8 (blue: under the 1.5x target)."""
    plt = _pyplot()
    from fastrnn._bench.sweep import FLOOR_MAX_M, grid, ratio_of

    rows = list(dict.fromkeys((c["model"], c["dtype"]) for c in cells))
    n_as = sorted({c["n_a"] for c in cells})
    ms = sorted({c["m"] for c in cells})
    panels = []
    for model, dtype in rows:
        row = []
        for p in peers:
            for role in ROLE_NAMES:
                table = grid(cells, model, dtype,
                             lambda c, role=role, p=p: (ratio_of(c, role, p) or {}).get("median"))
                if any(v is not None for r in table.values() for v in r.values()):
                    row.append((table, f"{model.upper()} {dtype}: {ROLE_NAMES[role]} / "
                                       f"{PEER_NAMES[p]}", 1.0, ".2f"))
        floor = grid(cells, model, dtype, lambda c: c["step_over_floor"])
        if any(v is not None for r in floor.values() for v in r.values()):
            row.append((floor, f"{model.upper()} {dtype}: step / floor (m <= {FLOOR_MAX_M}"
                               ", target 1.5)", 1.5, ".2g"))
        panels.append(row)
    ncols = max((len(r) for r in panels), default=0)
    if not ncols:
        raise ValueError("nothing to plot: no peer was timed and no floor measured")
    fig, axes = plt.subplots(len(panels), ncols, squeeze=False,
                             figsize=(0.45 * len(ms) * ncols + 1.2 * ncols,
                                      0.32 * len(n_as) * len(panels) + 1.3 * len(panels)))
    for i, row in enumerate(panels):
        for j in range(ncols):
            if j < len(row):
                _heat(axes[i, j], fig, row[j][0], n_as, ms, row[j][1], row[j][2], row[j][3])
            else:
                axes[i, j].axis("off")
    fig.suptitle("fastrnn sweep: time / peer time (median of the timed rounds; blue: "
                 "fastrnn faster)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=150)
    plt.close(fig)
