"""Figures (matplotlib, optional)."""


def plot_suite(results, path):
    """A bar chart of fastrnn's speedups per shape (needs matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    shapes = list(dict.fromkeys(r["shape"] for r in results))
    series = list(dict.fromkeys((r["model"], r["dtype"]) for r in results))
    has_torch = any(r["ratio_vs_torch"] is not None for res in results for r in res["impls"])
    has_ref = any(r["speedup_vs_reference"] is not None
                  for res in results for r in res["impls"])
    panels = [p for p, ok in (("reference", has_ref), ("torch", has_torch)) if ok]
    if not panels:
        raise ValueError("nothing to plot: neither the reference nor PyTorch was timed")
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 1.6 * len(shapes)),
                                                      3.5 * len(panels)), squeeze=False)
    width = 0.8 / max(1, len(series))
    for ax, panel in zip(axes[:, 0], panels):
        for k, (model, dtype) in enumerate(series):
            vals = []
            for s in shapes:
                v = float("nan")
                for res in results:
                    if (res["shape"], res["model"], res["dtype"]) == (s, model, dtype):
                        r = next(r for r in res["impls"] if r["role"] == "fastrnn")
                        if panel == "reference" and r["speedup_vs_reference"]:
                            v = r["speedup_vs_reference"]
                        elif panel == "torch" and r["ratio_vs_torch"]:
                            v = 1.0 / r["ratio_vs_torch"]
                vals.append(v)
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(shapes))]
            ax.bar(xs, vals, width, label=f"{model} {dtype}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes)
        ax.set_ylabel("speedup (x)")
        ax.set_title("fastrnn drop-in vs " + ("the numpy reference" if panel == "reference"
                                              else "PyTorch") + " (higher is better)")
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
