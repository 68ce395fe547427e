"""Peak memory of one forward call against what it must hold."""
import gc
import tracemalloc

import numpy as np

import fastrnn
from fastrnn._bench.cases import Shape, make_case
from fastrnn._bench.kinds import kind


def peak_memory(model, shape, dtype, seed=0, which="fastrnn"):
    """Peak traced memory (bytes) of one forward call, with what it must hold.

    tracemalloc sees numpy's array allocations.  The expected floor is the outputs plus
    one gate buffer of ``G*n_a*m*T_x`` elements (G = 1 RNN, 4 LSTM, 3 GRU).

    Parameters
    ----------
    which : "fastrnn" (the drop-in ``*_forward``) or "model" (``RNN``/``LSTM.forward``,
        packed before tracing)

    Returns
    -------
    dict
        ``peak``, ``outputs``, ``gate_buffer``, ``weights`` (bytes of the parameters, which a
        drop-in LSTM call packs into one block), ``ratio`` = peak / (outputs + gate buffer).
    """
    shape = Shape(*shape)
    case = make_case(model, shape, dtype, seed)
    p, x, a0 = case["parameters"], case["x"], case["a0"]
    if which == "model":
        net = getattr(fastrnn, kind(model).model)(p)

        def call():
            return net.forward(x, a0)
    else:
        fn = getattr(fastrnn, model + "_forward")

        def call():
            return fn(x, a0, p)
    call()   # warm-up outside tracing
    gc.collect()
    G = kind(model).gates
    tracemalloc.start()
    try:
        res = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n_out = 3 if kind(model).cell_state else 2
    out_bytes = sum(np.asarray(r).nbytes for r in res[:n_out])
    del res
    itemsize = np.dtype(dtype).itemsize
    gate = G * shape.n_a * shape.m * shape.T_x * itemsize
    weights = sum(v.nbytes for v in p.values())
    return {"model": model, "dtype": np.dtype(dtype).name, "call": which, "peak": peak,
            "outputs": out_bytes, "gate_buffer": gate, "weights": weights,
            "ratio": peak / (out_bytes + gate)}
