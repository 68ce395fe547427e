"""Large output arrays from memory that stays mapped between calls.

A fresh array of many MiB costs the operating system a zeroed page on the first touch of every
page: measured on AMD Zen 4, about 5% of an LSTM forward pass at 128 inputs, 256 hidden units,
a batch of 32 and 100 steps in float64, and a seventh of the drop-in ``lstm_forward`` (whose
caches hold every step's gates) at 512 hidden units and a batch of 64.  The arrays fastrnn
returns of at least ``MIN_BYTES`` (outputs, the buffers behind the caches) are cut from blocks
kept here instead.  A block is reused only once nothing made from it is alive -- no array,
view or buffer: its reference count is the pool's own -- so a caller that keeps an output, or
any view of it, keeps its memory to itself.  At most ``KEEP_BYTES`` of unused blocks stay
mapped (the least recently used go first); :func:`release_memory` returns them all.

The packed weight blocks that every step of a recurrence reads again (a model's, kept per
thread, and a drop-in call's, in its thread's arena) come from :func:`huge_empty` instead.

The large outputs, the packed blocks and the kernels' work buffers (see
fastrnn._kernels._core) start on a cache line (:func:`aligned_empty`); ``np.empty`` gives 16
bytes, and a kernel's 64-byte vectors loaded from a buffer that starts 16, 32 or 48 bytes into
a line each straddle two lines.  Measured on an Intel Xeon (Sapphire Rapids class), the LSTM
model at one example of 100 units and 50 steps (a packed block of 200 KB from ``np.empty``):
0.082-0.098 ms a call when the block happened to start on a line, 0.116-0.135 ms when not,
decided by where earlier allocations left the heap (it changed with ``PYTHONHASHSEED``).
"""
import math
import mmap
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
KEEP_BYTES = 1 << 30
LINE = 64

_blocks = []  # uint8 arrays, least recently used first
_lock = threading.Lock()


def _reinit_after_fork():
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def _unused(i):
    # Only _blocks refers to the block: the list's reference and getrefcount's argument.
    return sys.getrefcount(_blocks[i]) == 2


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` (an int or a tuple of ints) starting
    on a cache line (``LINE`` bytes), in a buffer ``LINE`` bytes larger."""
    dtype = np.dtype(dtype)
    n = math.prod(shape) if isinstance(shape, tuple) else int(shape)
    return _from_boundary(np.empty(n * dtype.itemsize + LINE, np.uint8), LINE, shape, dtype)


def _from_boundary(whole, align, shape, dtype):
    # An array of shape and dtype in the uint8 buffer ``whole`` (large enough), starting at
    # its first ``align``-byte boundary.
    return np.ndarray(shape, dtype, buffer=whole, offset=-whole.ctypes.data % align)


def empty(shape, dtype):
    """An uninitialised C-contiguous array, from a free block of the pool when it is large
    (then starting on a cache line)."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    nbytes += LINE  # room to start on a line
    with _lock:
        best = -1
        for i in range(len(_blocks)):
            size = _blocks[i].nbytes
            # a block at most twice the size asked for, the smallest that fits
            if (nbytes <= size <= 2 * nbytes and _unused(i)
                    and (best < 0 or size < _blocks[best].nbytes)):
                best = i
        if best >= 0:
            block = _blocks.pop(best)
        else:
            block = np.empty(nbytes, np.uint8)
            _trim(KEEP_BYTES)
        _blocks.append(block)
    return _from_boundary(block, LINE, shape, dtype)


def _trim(keep):
    # Drop unused blocks, least recently used first, until at most ``keep`` bytes are unused.
    unused = [i for i in range(len(_blocks)) if _unused(i)]
    total = sum(_blocks[i].nbytes for i in unused)
    drop = set()
    for i in unused:
        if total <= keep:
            break
        total -= _blocks[i].nbytes
        drop.add(i)
    _blocks[:] = [b for i, b in enumerate(_blocks) if i not in drop]


def release_memory():
    """Return the memory of the large arrays fastrnn made and nothing uses any more.

    fastrnn reuses the memory of its large outputs and caches (1 MiB and up) once they are
    dropped, rather than asking the operating system for fresh, zeroed pages on every call;
    up to 1 GiB of it stays mapped between calls.  This returns all of it now (arrays still
    in use are not affected).  Returns the number of bytes released.
    """
    with _lock:
        before = sum(b.nbytes for b in _blocks)
        _trim(0)
        return before - sum(b.nbytes for b in _blocks)


def held_bytes():
    """Bytes of the pool's blocks, in use or not (tests)."""
    with _lock:
        return sum(b.nbytes for b in _blocks)


# Huge pages (2 MiB on x86-64) for the packed recurrent blocks of HUGE_MIN_BYTES and more.  A
# block in 4 KiB pages lands on physical pages of arbitrary cache colour, so some sets of the
# L2 cache hold more of its lines than they have ways while others stay empty: a block that
# should stay in L2 from one step to the next then partly streams from L3, by an amount that
# changes with every allocation.  Measured on AMD Zen 5 (1 MiB L2), LSTM float32, n_a = 256,
# a batch of 3, 200 steps: ten models in one process took 4.1-5.6 ms a call; on a huge page
# (and turning round every other step: fastrnn._kernels._core.step_descending) 3.3-3.5 ms.
HUGE_PAGE = 2 << 20
HUGE_MIN_BYTES = 256 << 10


def huge_empty(n, dtype=np.uint8):
    """An uninitialised 1-d array of ``n`` elements of ``dtype`` starting on a huge-page
    boundary of private memory advised for huge pages (Linux: ``madvise(MADV_HUGEPAGE)``,
    which takes effect where transparent huge pages are enabled for it), or from
    :func:`aligned_empty` below ``HUGE_MIN_BYTES`` or where the advice is not available.  Its
    memory is unmapped when the array and every view of it are gone."""
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if nbytes < HUGE_MIN_BYTES or advice is None:
        return aligned_empty(n, dtype)
    # whole huge pages from a huge-page boundary, which the mapping itself need not be on
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE
    try:
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # fileno -1: anonymous
        buf.madvise(advice)
    except (OSError, ValueError):
        return aligned_empty(n, dtype)
    return _from_boundary(np.frombuffer(buf, np.uint8), HUGE_PAGE, (n,), dtype)
