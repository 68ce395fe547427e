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
    x = da.from_zarr(...)                   # (n_x, m, T_x)
    x = x.rechunk({0: -1, 1: fastrnn.dask.chunk_size(model, x), 2: -1})
    a, y, c = fastrnn.dask.forward(model, x)
    y.to_zarr(...)                          # or y.mean(axis=2).compute(), ...
"""
import contextlib
import inspect
import math
import sys
import threading
import time

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.base
    from dask.base import tokenize
except ImportError as exc:  # pragma: no cover - exercised where dask is missing
    raise ImportError('fastrnn.dask needs dask: pip install "fastrnn[dask]"') from exc

__all__ = ["forward", "chunk_size"]

# seconds of model.forward per chunk that chunk_size aims at: a task costs the scheduler and
# a worker about 3 ms of CPU, and a chunk is one task plus a light one per result kept, with
# each run's fixed costs spread over the chunks (the README's Dask section): about 5%
CHUNK_SECONDS = 0.5


def forward(model, x, **kwargs):
    """``model.forward`` over a Dask array, lazily, one task per chunk of examples.

    Parameters
    ----------
    model : a fastrnn model (fastrnn.RNN, LSTM, GRU, Stack, an imported one, ...)
        Anything with ``forward(x, **kwargs)`` returning an array or a tuple of arrays, None
        or tuples (or lists) of arrays, each array with one axis of examples (a sequence
        ``(n, m, T_x)``, a state ``(n_a, m)``, a stack's states ``(L*D, n_a, m)``).  With a
        ``dask.distributed`` client as the current scheduler it is sent to every worker at
        once (``client.scatter``, broadcast; compute the results on that client); otherwise
        it is one node of the task graph.
        Either way each worker receives (and unpickles) it once, not once per chunk.
    x : dask.array.Array (n_x, m, T_x)
        Real numbers (converted to the model's dtype on the workers).  Chunks along n_x or
        T_x are merged first (the recurrence needs whole sequences); the chunks along m are
        the tasks.  A NumPy array is refused: call ``model.forward`` directly, or wrap it with
        ``dask.array.from_array(x, chunks=(-1, chunk_m, -1))``.
    **kwargs
        Passed on to ``model.forward``.  Arrays (Dask or NumPy) are per-example and are split
        along m like ``x``, on their last axis (``lengths`` (m,), states ``(n_a, m)``, a
        stack's ``(L*D, n_a, m)``).  Anything else goes to every call as it is.
        ``n_threads`` defaults to 1 (one thread per task; run more tasks per worker instead).

    Returns
    -------
    tuple of dask.array.Array or None
        Shaped like ``model.forward``'s results on the whole of ``x``, of the model's dtype,
        chunked along m like ``x`` (single chunks along every other axis); None where
        ``model.forward`` returns None, and tuples (lists) where it returns them.  (A single
        array if ``model.forward`` returns one.)
        Each chunk of examples is one task, returning all the results at once; each result
        picks its part of it in a light task of its own, which Dask fuses into the chunk's
        task when that result alone is computed.

    Raises
    ------
    TypeError
        ``x`` is not a Dask array, or holds no real numbers; a keyword ``model.forward`` does
        not take.
    ValueError
        ``x`` is not 3-d, or its chunk sizes are unknown (NaN: call
        ``x.compute_chunk_sizes()``), or its n_x is not the model's; a per-example argument
        whose size along m is not m.  All raised before any task runs; ``model.forward``'s
        own errors about the arguments are too (it is called twice locally, on one and on
        two examples of zeros, to learn its results' shapes and examples' axes).
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

    specs, layout = _result_specs(model, x.dtype, n_x, T_x, constant, per_example)
    names = tuple(per_example)
    model_node = _model_node(model)
    token = tokenize(x, constant, names, *per_example.values(), model_node.key)
    # One layer of one task per chunk of examples, which returns model.forward's results as
    # one tuple (each array is made, and later sent, once); then one light layer per result
    # picks its array out of the tuple, on the worker that holds it.  When only some results
    # are used, Dask fuses the pick into the chunk's task.
    # (blockwise's index letters: j is m; each other axis, a single chunk, a letter of its own)
    letters = iter("abcdefghlnopqrstuvwxyz")
    index_args = [x, "ijk"]
    for name in names:
        value = per_example[name]
        index = [next(letters) for _ in range(value.ndim)]
        index[-1] = "j"
        index_args += [value, "".join(index)]
    runs = da.blockwise(_run_chunk, "j", model_node, None, *index_args[:2],
                        constant, None, specs, None, names, None, *index_args[2:],
                        name="fastrnn-forward-" + token, concatenate=True, dtype=object,
                        meta=np.empty((0,), dtype=object))
    leaves = []
    for k, spec in enumerate(specs):
        if spec is None:
            leaves.append(None)
            continue
        shape, dtype, axis = spec
        full = _with_m(shape, axis, m)
        leaves.append(da.map_blocks(
            _pick, runs, k, name=f"fastrnn-forward-{k}-" + token, dtype=dtype,
            new_axis=[a for a in range(len(full)) if a != axis],
            chunks=tuple(m_chunks if a == axis else (n,) for a, n in enumerate(full)),
            meta=np.empty((0,) * len(full), dtype=dtype)))
    return _rebuild(layout, leaves)


def _model_node(model):
    """The model as the chunks' tasks receive it: with a distributed Client as the current
    scheduler, a future of it sent once to every worker (so no task carries it and no worker
    waits for another's copy); otherwise one node of the graph, which every task shares."""
    distributed = sys.modules.get("distributed")  # no client without it
    client = getattr(dask.base.get_scheduler(), "__self__", None)
    if distributed is not None and isinstance(client, distributed.Client):
        # a key of its own (hash=False), and so results named anew: keys shared with an
        # earlier call's, being released as its arrays are dropped, could be forgotten
        # under this call's tasks
        return client.scatter(model, broadcast=True, hash=False)
    return dask.delayed(model, name="fastrnn-model-" + tokenize(model), pure=True)


def _pick(results, k):
    """Result k of a chunk's task."""
    return results[k]


def chunk_size(model, x, *, seconds=CHUNK_SECONDS, **kwargs):
    """Sequences per chunk for which ``model.forward`` takes about ``seconds`` on one thread.

    A quick probe in this process (``model.forward`` on a few growing batches of random
    sequences, one thread, single-threaded BLAS, 0.1-0.3 s in all) measures the time per
    sequence.  The default, half a second, keeps each chunk's overhead (a few milliseconds
    of scheduler and worker CPU per task) near 5% or below.  Rechunk with it:
    ``x = x.rechunk({1: fastrnn.dask.chunk_size(model, x)})``.

    Parameters
    ----------
    model : a fastrnn model (as for :func:`forward`)
    x : dask.array.Array or numpy.ndarray (n_x, m, T_x)
        Only its shape and dtype are used (nothing is computed).
    seconds : float
        The time per chunk to aim at (positive).
    **kwargs
        Constant keyword arguments for ``model.forward`` (per-example arrays are not
        taken: the probe's batches have their own sizes).

    Returns
    -------
    int
        Between 1 and max(m, 1).
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if np.ndim(x) != 3 or any(math.isnan(n) for n in x.shape):
        raise ValueError(f"x must have shape (n_x, m, T_x) with known sizes, got shape "
                         f"{getattr(x, 'shape', None)}")
    n_x, m, T_x = x.shape
    if "n_threads" not in kwargs and _accepts(model, "n_threads"):
        kwargs["n_threads"] = 1
    rng = np.random.default_rng(0)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    probe_m, elapsed = 1, 0.0
    with _single_threaded_blas():
        model.forward(rng.standard_normal((n_x, 1, T_x)).astype(dtype), **kwargs)  # warm up
        # double the batch until a call lasts 20 ms, so that the fixed cost of a call weighs
        # little in the time per sequence; the fastest of three calls, so that another job
        # taking the core for a moment does not pass for the model's time
        while elapsed < 0.02 and probe_m < 4096:
            probe_m *= 2
            batch = rng.standard_normal((n_x, probe_m, T_x)).astype(dtype)
            elapsed = math.inf
            for _ in range(3):
                start = time.perf_counter()
                model.forward(batch, **kwargs)
                elapsed = min(elapsed, time.perf_counter() - start)
    per_sequence = elapsed / probe_m
    return int(min(max(m, 1), max(1, round(seconds / per_sequence))))


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
    """A per-example keyword argument as a dask array chunked along m like x (on its last
    axis)."""
    axis = value.ndim - 1
    symbols = "(m,)" if axis == 0 else "(..., m)"
    if isinstance(value, da.Array) and any(math.isnan(c) for c in value.shape):
        raise ValueError(f"{name} has unknown chunk sizes, shape {value.shape}; call "
                         f"{name}.compute_chunk_sizes() first")
    if value.shape[axis] != m:
        raise ValueError(f"{name} is split along m like x, so it must have shape {symbols} "
                         f"with m = {m} (from x.shape[1]) on its last axis, got shape "
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


def _flatten(out):
    """model.forward's result as a flat list of arrays and None (its leaves) and a layout
    to rebuild it: None for a single array; else per item of the tuple a leaf's index, or
    (type, indices) for a tuple or list of leaves.  TypeError for anything else."""
    if isinstance(out, np.ndarray):
        return [out], None
    if not isinstance(out, (tuple, list)):
        raise TypeError(f"forward returned {type(out).__name__}: not an array nor a tuple")
    leaves, layout = [], []
    for item in out:
        if isinstance(item, (tuple, list)):
            layout.append((type(item), list(range(len(leaves), len(leaves) + len(item)))))
            leaves.extend(item)
        else:
            layout.append(len(leaves))
            leaves.append(item)
    return leaves, (type(out), layout)


def _rebuild(layout, leaves):
    """The inverse of _flatten."""
    if layout is None:
        return leaves[0]
    kind, items = layout
    return kind(leaves[i] if isinstance(i, int) else i[0](leaves[j] for j in i[1])
                for i in items)


def _with_m(shape, axis, m):
    """A result's shape without its examples' axis, with m examples put back at it."""
    return shape[:axis] + (m,) + shape[axis:]


def _result_specs(model, dtype, n_x, T_x, constant, per_example):
    """Each result's shape without its examples' axis, its dtype and that axis (None for a
    None result), and the layout of forward's result (see _flatten), from runs on one and
    on two examples of zeros (ones for per-example arguments: a valid length, a finite
    state): the examples' axis is the one that grows."""
    outs = []
    for m in (1, 2):
        probe_kwargs = dict(constant)
        for name, value in per_example.items():
            probe_kwargs[name] = np.ones(value.shape[:-1] + (m,), dtype=value.dtype)
        with _single_threaded_blas():
            outs.append(_flatten(model.forward(np.zeros((n_x, m, T_x), dtype=dtype),
                                               **probe_kwargs)))
    (one, layout), (two, _) = outs
    if len(one) != len(two):
        raise TypeError(f"{type(model).__name__}.forward returned {len(one)} results for one "
                        f"example and {len(two)} for two")
    specs = []
    for k, (a, b) in enumerate(zip(one, two)):
        changed = ([i for i in range(a.ndim) if a.shape[i] != b.shape[i]]
                   if isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                   and a.ndim == b.ndim else [])
        if a is None and b is None:
            specs.append(None)
        elif len(changed) == 1 and (a.shape[changed[0]], b.shape[changed[0]]) == (1, 2):
            axis = changed[0]
            specs.append((a.shape[:axis] + a.shape[axis + 1:], a.dtype, axis))
        else:
            raise TypeError(
                f"{type(model).__name__}.forward's result {k} (counting the arrays of "
                f"nested tuples one by one) is not an array with one axis of examples nor "
                f"None: got {getattr(a, 'shape', type(a).__name__)} for one example and "
                f"{getattr(b, 'shape', type(b).__name__)} for two")
    return specs, layout


# ------------------------------------------------------------------ on the workers

def _run_chunk(model, x, constant, specs, names, *values):
    """One task: model.forward on a chunk of examples, with single-threaded BLAS."""
    global _FORWARD_CPU
    m = x.shape[1]
    if m == 0:  # an empty chunk (m = 0, or left by slicing): nothing to run
        return tuple(None if spec is None else np.empty(_with_m(spec[0], spec[2], 0),
                                                          dtype=spec[1]) for spec in specs)
    kwargs = dict(constant)
    kwargs.update(zip(names, values))
    with _single_threaded_blas():
        start = time.thread_time()
        out = model.forward(x, **kwargs)
        _FORWARD_CPU += time.thread_time() - start
    out = tuple(_flatten(out)[0])
    if len(out) != len(specs):
        raise RuntimeError(f"{type(model).__name__}.forward returned {len(out)} results on a "
                           f"chunk of {m} examples, expected {len(specs)}")
    for k, (arr, spec) in enumerate(zip(out, specs)):
        want = None if spec is None else _with_m(spec[0], spec[2], m)
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
