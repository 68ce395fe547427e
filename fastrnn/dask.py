"""Batch inference over Dask arrays: a fastrnn model scoring sequences on a cluster.

Optional: ``pip install "fastrnn[dask]"`` (dask.array, dask.distributed and threadpoolctl).
Recurrent inference is independent across examples, so the batch axis m spreads over the
workers: each chunk of examples is one task, which runs ``model.forward`` on whole sequences
with single-threaded BLAS (threads per worker are Dask's business).

Example::

    import dask.array as da
    from dask.distributed import Client
    import fastrnn, fastrnn.dask

    client = Client()                       # or Client("tcp://scheduler:8786")
    x = da.from_zarr(...)                   # (n_x, m, T_x), chunked along m
    a, y, c = fastrnn.dask.forward(model, x)
    y.to_zarr(...)                          # or y.mean(axis=2).compute(), ...
"""
import contextlib
import inspect
import math
import threading
import time

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
except ImportError as exc:  # pragma: no cover - exercised where dask is missing
    raise ImportError('fastrnn.dask needs dask: pip install "fastrnn[dask]"') from exc

__all__ = ["forward"]


def forward(model, x, **kwargs):
    """``model.forward`` over a Dask array, lazily, one task per chunk of examples.

    Parameters
    ----------
    model : a fastrnn model (fastrnn.RNN, fastrnn.LSTM, ...)
        Anything with ``forward(x, **kwargs)`` returning a tuple of arrays with the examples
        on axis 1 (``(n, m, ...)``) or None.  It is put into the task graph once, so each
        worker receives (and unpickles) it once, not once per chunk.
    x : dask.array.Array (n_x, m, T_x)
        Real numbers (converted to the model's dtype on the workers).  Chunks along n_x or
        T_x are merged first (the recurrence needs whole sequences); the chunks along m are
        the tasks.  A NumPy array is refused: call ``model.forward`` directly, or wrap it with
        ``dask.array.from_array(x, chunks=(-1, chunk_m, -1))``.
    **kwargs
        Passed on to ``model.forward``.  Arrays (Dask or NumPy) are per-example and are split
        along m like ``x``: axis 0 of a 1-d array (``lengths`` (m,)), axis 1 otherwise
        (states ``(n_a, m)``).  Anything else goes to every call as it is.  ``n_threads``
        defaults to 1 (one thread per task; run more tasks per worker instead).

    Returns
    -------
    tuple of dask.array.Array or None
        Shaped like ``model.forward``'s results on the whole of ``x``, of the model's dtype,
        chunked along m like ``x`` (single chunks along every other axis); None where
        ``model.forward`` returns None.  (A single array if ``model.forward`` returns one.)

    Raises
    ------
    TypeError
        ``x`` is not a Dask array, or holds no real numbers; a keyword ``model.forward`` does
        not take.
    ValueError
        ``x`` is not 3-d, or its chunk sizes are unknown (NaN: call
        ``x.compute_chunk_sizes()``), or its n_x is not the model's; a per-example argument
        whose size along m is not m.  All raised before any task runs; ``model.forward``'s
        own errors about the arguments are too (it is called once locally on one example of
        zeros to learn the shapes of its results).
    """
    x = _check_x(model, x)
    n_x, m, T_x = x.shape
    m_chunks = x.chunks[1]
    x = x.rechunk({0: -1, 2: -1})

    per_example, constant = {}, {}
    for name, value in kwargs.items():
        if isinstance(value, (da.Array, np.ndarray)) and np.ndim(value) >= 1:
            per_example[name] = _split_like_x(name, value, m, m_chunks)
        else:
            constant[name] = value
    _check_keywords(model, kwargs)
    if "n_threads" not in kwargs and _accepts(model, "n_threads"):
        constant["n_threads"] = 1

    specs, single = _result_specs(model, x.dtype, n_x, T_x, constant, per_example)
    model_node = dask.delayed(model, name="fastrnn-model-" + tokenize(model), pure=True)
    names = tuple(per_example)
    n_out = len(specs)
    run = dask.delayed(_run_chunk, pure=True, nout=n_out)
    x_blocks = x.to_delayed().reshape(-1)
    kw_blocks = [per_example[name].to_delayed().reshape(-1) for name in names]
    parts = [[] for _ in specs]
    for j, mj in enumerate(m_chunks):
        # an empty chunk (m = 0, or left by slicing) needs no task
        out = None if mj == 0 else run(model_node, x_blocks[j], constant, specs, names,
                                       *[blocks[j] for blocks in kw_blocks])
        for k, spec in enumerate(specs):
            if spec is not None:
                shape = spec[0][:1] + (mj,) + spec[0][1:]
                parts[k].append(da.empty(shape, dtype=spec[1], chunks=-1) if out is None
                                else da.from_delayed(out[k], shape, dtype=spec[1]))
    results = tuple(None if spec is None else _concatenate(parts[k], m_chunks)
                    for k, spec in enumerate(specs))
    return results[0] if single else results


def _concatenate(parts, m_chunks):
    """The chunks' results as one array chunked along axis 1 (m) as ``m_chunks``."""
    out = da.concatenate(parts, axis=1)
    # concatenate drops empty parts: keep x's empty chunks too (a no-op task each)
    return out if out.chunks[1] == tuple(m_chunks) else out.rechunk({1: m_chunks})


# ------------------------------------------------------------------ checks (client side)

def _check_x(model, x):
    if not isinstance(x, da.Array):
        raise TypeError(
            f"x must be a dask array (n_x, m, T_x), got {type(x).__name__}; for an in-memory "
            f"array call model.forward(x) directly, or wrap it with "
            f"dask.array.from_array(x, chunks=(-1, chunk_m, -1))")
    if x.ndim != 3:
        raise ValueError(f"x must be a dask array of shape (n_x, m, T_x) (3-d), got "
                         f"{x.ndim}-d shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"x must hold real numbers (float32, float64 or integers), got "
                        f"dtype {x.dtype}")
    for axis, symbol in enumerate(("n_x", "m", "T_x")):
        if any(math.isnan(c) for c in x.chunks[axis]):
            raise ValueError(
                f"x has unknown chunk sizes along {symbol} (axis {axis}): shape {x.shape}; "
                f"call x.compute_chunk_sizes() (or give the sizes to from_delayed) first")
    n_x = getattr(model, "n_x", None)
    if n_x is not None and x.shape[0] != n_x:
        raise ValueError(f"x must have shape (n_x, m, T_x) with n_x = {n_x} (the model's "
                         f"input size), got shape {x.shape}")
    return x


def _split_like_x(name, value, m, m_chunks):
    """A per-example keyword argument as a dask array chunked along m like x."""
    axis = 0 if value.ndim == 1 else 1
    symbols = "(m,)" if axis == 0 else "(n, m, ...)"
    if isinstance(value, da.Array) and any(math.isnan(c) for c in value.shape):
        raise ValueError(f"{name} has unknown chunk sizes, shape {value.shape}; call "
                         f"{name}.compute_chunk_sizes() first")
    if value.shape[axis] != m:
        raise ValueError(f"{name} is split along m like x, so it must have shape {symbols} "
                         f"with m = {m} (from x.shape[1]) on axis {axis}, got shape "
                         f"{value.shape}")
    chunks = tuple(m_chunks if k == axis else (n,) for k, n in enumerate(value.shape))
    if isinstance(value, da.Array):
        return value.rechunk(chunks)
    return da.from_array(value, chunks=chunks)


def _signature(model):
    try:
        return inspect.signature(model.forward)
    except (TypeError, ValueError):  # a callable without a signature: nothing to check
        return None


def _accepts(model, name):
    sig = _signature(model)
    return sig is not None and (name in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()))


def _check_keywords(model, kwargs):
    sig = _signature(model)
    if sig is None:
        return
    try:
        sig.bind(None, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{type(model).__name__}.forward does not take these arguments: "
                        f"{exc}") from None


def _result_specs(model, dtype, n_x, T_x, constant, per_example):
    """Shapes (without m) and dtypes of model.forward's results, from one example of zeros
    (ones for per-example arguments: a valid length, a finite state).  Returns the specs
    (None for a None result) and whether forward returns a single array."""
    probe_kwargs = dict(constant)
    for name, value in per_example.items():
        shape = value.shape[:1] + (1,) + value.shape[2:] if value.ndim > 1 else (1,)
        probe_kwargs[name] = np.ones(shape, dtype=value.dtype)
    with _single_threaded_blas():
        out = model.forward(np.zeros((n_x, 1, T_x), dtype=dtype), **probe_kwargs)
    single = isinstance(out, np.ndarray)
    specs = []
    for k, arr in enumerate((out,) if single else tuple(out)):
        if arr is None:
            specs.append(None)
        elif isinstance(arr, np.ndarray) and arr.ndim >= 2 and arr.shape[1] == 1:
            specs.append((arr.shape[:1] + arr.shape[2:], arr.dtype))
        else:
            raise TypeError(
                f"{type(model).__name__}.forward's result {k} is not an array with the "
                f"examples on axis 1 (n, m, ...) nor None: got "
                f"{getattr(arr, 'shape', type(arr).__name__)} for one example")
    return specs, single


# ------------------------------------------------------------------ on the workers

def _run_chunk(model, x, constant, specs, names, *values):
    """One task: model.forward on a chunk of examples, with single-threaded BLAS."""
    global _FORWARD_CPU
    kwargs = dict(constant)
    kwargs.update(zip(names, values))
    with _single_threaded_blas():
        start = time.thread_time()
        out = model.forward(x, **kwargs)
        _FORWARD_CPU += time.thread_time() - start
    out = (out,) if isinstance(out, np.ndarray) else tuple(out)
    m = x.shape[1]
    for k, (arr, spec) in enumerate(zip(out, specs)):
        want = None if spec is None else spec[0][:1] + (m,) + spec[0][1:]
        if (arr is None) != (spec is None) or (arr is not None and arr.shape != want):
            raise RuntimeError(f"{type(model).__name__}.forward's result {k} has shape "
                               f"{getattr(arr, 'shape', None)} on a chunk of {m} examples, "
                               f"expected {want}")
    return out


# CPU seconds this process's tasks have spent in model.forward (n_threads=1: on the task's
# thread), for the benchmark's overhead figure (fastrnn._dask_bench).
_FORWARD_CPU = 0.0


def _forward_cpu():
    return _FORWARD_CPU


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMITER = None
_CONTROLLER = None


@contextlib.contextmanager
def _single_threaded_blas():
    """BLAS limited to one thread while any task of this process runs (threadpoolctl;
    nothing when it is missing).  Counted, so that concurrent tasks on one worker's threads
    neither restore the limit under each other nor lose the original setting."""
    global _BLAS_USERS, _BLAS_LIMITER, _CONTROLLER
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            try:
                if _CONTROLLER is None:  # scanning the loaded libraries costs milliseconds
                    from threadpoolctl import ThreadpoolController
                    _CONTROLLER = ThreadpoolController()
                _BLAS_LIMITER = _CONTROLLER.limit(limits=1, user_api="blas")
            except ImportError:
                _BLAS_LIMITER = None
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMITER is not None:
                _BLAS_LIMITER.restore_original_limits()
                _BLAS_LIMITER = None
