"""Peak memory of one forward call against what it must hold."""
import gc
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

import fastrnn
from fastrnn._bench.cases import Shape, make_case
from fastrnn._bench.kinds import kind

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def peak_memory(model, shape, dtype, seed=0, which="fastrnn"):
    """Peak memory (bytes) of one forward call, with what it must hold.

    The call runs once in a fresh Python process, so that nothing fastrnn keeps between
    calls (the pool its large outputs come from, a model's or a thread's work buffers, the
    packed weight blocks, which are mapped memory that tracemalloc does not see) is there
    before it: on Linux the measure is the growth of the process's peak resident memory
    over the call (``VmHWM`` after resetting it, less ``VmRSS`` before); elsewhere, or where
    the peak cannot be reset, tracemalloc's peak (numpy's allocations only).  The expected
    floor is the outputs plus one gate buffer of ``G*n_a*m*T_x`` elements (G = 1 RNN, 4 LSTM,
    3 GRU).

    Parameters
    ----------
    which : "fastrnn" (the drop-in ``*_forward``) or "model" (``RNN``/``LSTM``/``GRU``
        ``.forward``; constructed before the measure, its weights packed in the call)

    Returns
    -------
    dict
        ``peak``, ``outputs``, ``gate_buffer``, ``weights`` (bytes of the parameters, which a
        drop-in call packs into a block), ``ratio`` = peak / (outputs + gate buffer),
        ``method`` ("resident" or "tracemalloc").
    """
    shape = Shape(*shape)
    args = json.dumps([model, list(shape), np.dtype(dtype).name, seed, which])
    code = ("import json, sys; from fastrnn._bench.memory import _measure; "
            "print(json.dumps(_measure(*json.loads(sys.argv[1]))))")
    env = dict(os.environ)
    # the same fastrnn as this process's (an installed one, or a source tree built in place),
    # run from the folder that holds it: ``-c`` puts the working directory first on the
    # path, where an unbuilt source tree would shadow the installed package
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True,
                          env=env, cwd=root)
    if done.returncode:
        raise RuntimeError(f"peak_memory: the measuring process failed:\n{done.stderr}")
    peak, method = json.loads(done.stdout.strip().splitlines()[-1])
    n_out = 3 if kind(model).cell_state else 2
    itemsize = np.dtype(dtype).itemsize
    G = kind(model).gates
    T, m, n_a, n_y = shape.T_x, shape.m, shape.n_a, shape.n_y
    out_bytes = (n_a * m * T * (n_out - 1) + n_y * m * T) * itemsize
    gate = G * n_a * m * T * itemsize
    weights = sum(v.nbytes for v in make_case(model, shape, dtype, seed)["parameters"].values())
    return {"model": model, "dtype": np.dtype(dtype).name, "call": which, "peak": peak,
            "outputs": out_bytes, "gate_buffer": gate, "weights": weights,
            "ratio": peak / (out_bytes + gate), "method": method}


def _resident():
    # (VmRSS, VmHWM) in bytes, or None where /proc/self/status has no such lines.
    try:
        with open(_STATUS) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError):
        return None


def _reset_peak():
    # Reset VmHWM to the current resident size (Linux: "5" to clear_refs); False if it cannot.
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    now = _resident()
    return now is not None and now[1] == now[0]


def _measure(model, shape, dtype, seed, which):
    """In the fresh process: [peak bytes of one call, method]."""
    case = make_case(model, Shape(*shape), np.dtype(dtype), seed)
    p, x, a0 = case["parameters"], case["x"], case["a0"]
    if which == "model":
        net = getattr(fastrnn, kind(model).model)(p)

        def call():
            return net.forward(x, a0)
    else:
        fn = getattr(fastrnn, model + "_forward")

        def call():
            return fn(x, a0, p)
    gc.collect()
    if _resident() is not None and _reset_peak():
        before = _resident()[0]
        res = call()
        peak = _resident()[1] - before
        method = "resident"
    else:
        tracemalloc.start()
        try:
            res = call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        method = "tracemalloc"
    del res
    return [peak, method]
