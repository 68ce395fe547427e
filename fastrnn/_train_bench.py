"""Training measurements: backward passes and whole-model gradients, timed (medians).

For the benchmark command and ``bench/test_bench_train.py``: :func:`measure` times, at one
shape and dtype, fastrnn's forward, its drop-in backward on its own caches, the lessons'
numpy backward loop (``fastrnn.reference``) on the reference's caches, the model's
``loss_and_grads`` and, when PyTorch is installed, PyTorch's forward + ``loss.backward()``
of the same model and loss (summed cross-entropy), all on the calling thread.  Nothing here
is imported by fastrnn itself; PyTorch is imported only when asked for.
"""
import time

import numpy as np

import fastrnn
from fastrnn import reference
from fastrnn._packing import GATES

__all__ = ["SUITE", "measure", "torch_model", "format_rows", "main"]

# (n_x, n_a, n_y, m, T_x) of the public benchmark suite (the training rows skip `stream`).
SUITE = {
    "lesson": (3, 5, 2, 10, 4),
    "charlm": (27, 100, 27, 1, 50),
    "deepbench": (512, 512, 64, 4, 25),
    "mid": (128, 256, 128, 32, 100),
    "fastrnns": (512, 512, 128, 64, 100),
    "big": (512, 1024, 512, 64, 25),
}


def median_time(fn, min_time=0.3, min_repeat=5, max_repeat=200):
    """Median wall time of ``fn()`` in seconds, after one warm-up call: at least
    ``min_repeat`` calls, more until ``min_time`` seconds have passed."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeat and (len(times) < min_repeat
                                       or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _case(kind, shape, dtype, seed=0):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng(seed)
    scale = 1 / np.sqrt(n_a + n_x)
    if kind == "rnn":
        p = {"Wax": rng.standard_normal((n_a, n_x)) * scale,
             "Waa": rng.standard_normal((n_a, n_a)) * scale,
             "Wya": rng.standard_normal((n_y, n_a)) / np.sqrt(n_a),
             "ba": rng.standard_normal((n_a, 1)) * 0.1, "by": rng.standard_normal((n_y, 1)) * 0.1}
    else:
        p = {"W" + g: rng.standard_normal((n_a, n_a + n_x)) * scale for g in "fico"}
        p.update({"b" + g: rng.standard_normal((n_a, 1)) * 0.1 for g in "fico"})
        p["Wy"] = rng.standard_normal((n_y, n_a)) / np.sqrt(n_a)
        p["by"] = rng.standard_normal((n_y, 1)) * 0.1
    p = {k: v.astype(dtype) for k, v in p.items()}
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = (0.5 * rng.standard_normal((n_a, m))).astype(dtype)
    da = rng.standard_normal((n_a, m, T)).astype(dtype)
    targets = rng.integers(0, n_y, size=(m, T))
    return p, x, a0, da, targets


def torch_model(kind, parameters, dtype):
    """A PyTorch RNN/LSTM + Linear computing what ``parameters`` compute (tanh RNN, LSTM gate
    order i, f, g, o; one bias kept, the other zero).  Returns (rnn, linear)."""
    import torch

    tdt = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    p = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in parameters.items()}
    if kind == "rnn":
        n_a, n_x = p["Wax"].shape
        rnn = torch.nn.RNN(n_x, n_a, nonlinearity="tanh", dtype=tdt)
        w_ih, w_hh, b = p["Wax"], p["Waa"], p["ba"][:, 0]
        wy, by = p["Wya"], p["by"][:, 0]
    else:
        n_a = p["Wy"].shape[1]
        n_x = p["Wf"].shape[1] - n_a
        rnn = torch.nn.LSTM(n_x, n_a, dtype=tdt)
        order = ("i", "f", "c", "o")
        w = torch.cat([p["W" + g] for g in order])
        w_ih, w_hh = w[:, n_a:], w[:, :n_a]
        b = torch.cat([p["b" + g][:, 0] for g in order])
        wy, by = p["Wy"], p["by"][:, 0]
    linear = torch.nn.Linear(n_a, wy.shape[0], dtype=tdt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w_ih)
        rnn.weight_hh_l0.copy_(w_hh)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
        linear.weight.copy_(wy)
        linear.bias.copy_(by)
    return rnn, linear


def _torch_step(kind, parameters, x, a0, targets, dtype):
    """A callable running PyTorch's forward + summed cross-entropy + loss.backward()."""
    import torch

    rnn, linear = torch_model(kind, parameters, dtype)
    tdt = rnn.weight_ih_l0.dtype
    xt = torch.as_tensor(np.ascontiguousarray(np.transpose(x, (2, 1, 0)))).to(tdt)  # (T, m, n_x)
    h0 = torch.as_tensor(np.ascontiguousarray(a0.T))[None].to(tdt).requires_grad_(True)
    c0 = torch.zeros_like(h0).requires_grad_(True)
    tg = torch.as_tensor(np.ascontiguousarray(targets.T).reshape(-1))  # (T*m,), step-major
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    params = list(rnn.parameters()) + list(linear.parameters()) + [h0, c0]

    def step():
        for q in params:
            q.grad = None
        out, _ = rnn(xt, h0) if kind == "rnn" else rnn(xt, (h0, c0))
        loss = loss_fn(linear(out).reshape(-1, linear.out_features), tg)
        loss.backward()
        return loss

    return step


def measure(kind, shape, dtype, *, reference_backward=True, torch=True, min_time=0.3):
    """Median seconds of the training calls at one shape (see the module docstring).

    Returns a dict: ``forward`` (drop-in forward), ``backward`` (drop-in backward on
    fastrnn's caches), ``reference_backward`` (the lessons' numpy loop; None when not
    asked for), ``loss_and_grads`` (the model's), ``torch`` (PyTorch forward + backward;
    None without PyTorch or when not asked for).
    """
    dtype = np.dtype(dtype)
    p, x, a0, da, targets = _case(kind, shape, dtype)
    fwd = fastrnn.rnn_forward if kind == "rnn" else fastrnn.lstm_forward
    bwd = fastrnn.rnn_backward if kind == "rnn" else fastrnn.lstm_backward
    caches = fwd(x, a0, p)[-1]
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    out = {
        "forward": median_time(lambda: fwd(x, a0, p), min_time),
        "backward": median_time(lambda: bwd(da, caches), min_time),
        "loss_and_grads": median_time(lambda: model.loss_and_grads(x, targets, a0), min_time),
        "reference_backward": None,
        "torch": None,
    }
    if reference_backward:
        p64 = {k: v.astype(np.float64) for k, v in p.items()}
        rf = reference.rnn_forward if kind == "rnn" else reference.lstm_forward
        rb = reference.rnn_backward if kind == "rnn" else reference.lstm_backward
        with np.errstate(all="ignore"):
            rcaches = rf(x.astype(np.float64), a0.astype(np.float64), p64)[-1]
        da64 = da.astype(np.float64)
        out["reference_backward"] = median_time(lambda: rb(da64, rcaches), min_time,
                                                min_repeat=3)
    if torch:
        try:
            import torch as _torch
        except ImportError:
            _torch = None
        if _torch is not None:
            threads = _torch.get_num_threads()
            _torch.set_num_threads(1)
            try:
                out["torch"] = median_time(_torch_step(kind, p, x, a0, targets, dtype),
                                           min_time)
            finally:
                _torch.set_num_threads(threads)
    return out


def _fmt(t):
    if t is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-6:.3g} us"


def format_rows(rows):
    """A text table of ``[(name, kind, dtype, measure(...))]``: times and the ratios
    backward/forward, reference/backward, loss_and_grads/torch."""
    hdr = (f"{'shape':<10}{'model':<6}{'dtype':<9}{'forward':>10}{'backward':>10}"
           f"{'bwd/fwd':>8}{'ref bwd':>10}{'xref':>7}{'loss+grad':>11}{'torch':>10}"
           f"{'/torch':>8}")
    lines = [hdr, "-" * len(hdr)]
    for name, kind, dtype, r in rows:
        ref, tor = r["reference_backward"], r["torch"]
        lines.append(
            f"{name:<10}{kind:<6}{np.dtype(dtype).name:<9}{_fmt(r['forward']):>10}"
            f"{_fmt(r['backward']):>10}{r['backward'] / r['forward']:>8.2f}{_fmt(ref):>10}"
            f"{(ref / r['backward'] if ref else float('nan')):>7.1f}"
            f"{_fmt(r['loss_and_grads']):>11}{_fmt(tor):>10}"
            f"{(r['loss_and_grads'] / tor if tor else float('nan')):>8.2f}")
    return "\n".join(lines)


def main(argv=None):
    """``python -m fastrnn._train_bench [shape ...]``: print the training table (one
    thread; set BLAS to one thread with threadpoolctl when installed)."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shapes", nargs="*", default=list(SUITE), choices=list(SUITE) + [[]])
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--model", choices=("rnn", "lstm", "both"), default="both")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the lessons' numpy backward (slow at large shapes)")
    parser.add_argument("--min-time", type=float, default=0.3)
    opts = parser.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:
        limit = contextlib.nullcontext()
    dtypes = ("float64", "float32") if opts.dtype == "both" else (opts.dtype,)
    kinds = ("rnn", "lstm") if opts.model == "both" else (opts.model,)
    rows = []
    with limit:
        for name in opts.shapes or list(SUITE):
            for kind in kinds:
                for d in dtypes:
                    r = measure(kind, SUITE[name], d, min_time=opts.min_time,
                                reference_backward=not opts.no_reference)
                    rows.append((name, kind, d, r))
                    print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_rows(rows))


if __name__ == "__main__":
    main()
