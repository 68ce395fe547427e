"""Checked mode: run the reference beside every public call and compare.

Switched on by ``fastrnn.set_checked(True)``, by the context manager ``fastrnn.checked()``, or
for a whole process by the environment variable ``FASTRNN_CHECKED`` (read at import: ``1``,
``true``, ``yes``, ``on`` switch it on; ``0``, ``false``, ``no``, ``off`` or empty leave it off,
in any letter case; anything else is an error).  The
switch is a context variable, so a ``with checked():`` block affects only its own thread (or
asyncio task).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

import numpy as np

__all__ = ["CheckError", "TOLERANCES", "checked", "set_checked", "is_checked", "compare"]

# Per result dtype: how far a kernel may be from the float64 reference.  Tight enough that a
# wrong gate order, a transposed weight or a missing bias fails (tests/test_equivalence.py).
TOLERANCES = {
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-11},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
}


ENV_TRUE = ("1", "true", "yes", "on")
ENV_FALSE = ("0", "false", "no", "off", "")


def env_flag(value: str | None) -> bool:
    """The switch an environment value ``FASTRNN_CHECKED=value`` stands for (None: unset).

    Raises ValueError naming the variable for a value that is neither a true nor a false
    spelling: a misspelt "off" must not switch checked mode on, nor a misspelt "on" off.
    """
    if value is None:
        return False
    word = value.strip().lower()
    if word in ENV_TRUE:
        return True
    if word in ENV_FALSE:
        return False
    raise ValueError(
        f"environment variable FASTRNN_CHECKED={value!r} is neither on "
        f"({', '.join(ENV_TRUE)}) nor off ({', '.join(repr(w) if not w else w for w in ENV_FALSE)}; "
        f"any letter case); set one of these or unset it")


_STATE = contextvars.ContextVar(
    "fastrnn_checked", default=(env_flag(os.environ.get("FASTRNN_CHECKED")), None))


class CheckError(AssertionError):
    """A fastrnn result disagrees with the reference beyond the dtype's tolerance."""


def set_checked(enabled: bool = True, *, rtol: float | None = None,
                atol: float | None = None) -> None:
    """Switch checked mode on or off for the current context (thread).

    Parameters
    ----------
    enabled : bool
    rtol, atol : float, optional
        Override the per-dtype tolerances of ``TOLERANCES``.
    """
    tol = None if rtol is None and atol is None else {"rtol": rtol, "atol": atol}
    _STATE.set((bool(enabled), tol))


def is_checked() -> bool:
    """True when public calls are being checked against the reference."""
    return _STATE.get()[0]


@contextlib.contextmanager
def checked(enabled: bool = True, *, rtol: float | None = None,
            atol: float | None = None) -> Iterator[None]:
    """Context manager: checked mode (on by default) inside the ``with`` block."""
    tol = None if rtol is None and atol is None else {"rtol": rtol, "atol": atol}
    token = _STATE.set((bool(enabled), tol))
    try:
        yield
    finally:
        _STATE.reset(token)


def tolerance(dtype):
    """The rtol/atol in force for results of ``dtype``."""
    tol = dict(TOLERANCES[np.dtype(dtype)])
    override = _STATE.get()[1]
    if override:
        tol.update({k: v for k, v in override.items() if v is not None})
    return tol


def compare(function, got, want, dtype):
    """Raise CheckError naming the first output of ``got`` that differs from ``want``.

    ``got`` and ``want`` are dicts name -> array.  NaN must match NaN; +-inf must match exactly.
    """
    with np.errstate(all="ignore"):  # inf - inf and the like; not the caller's error state
        _compare(function, got, want, dtype, tolerance(dtype))


def _compare(function, got, want, dtype, tol):
    for name, g in got.items():
        w = np.asarray(want[name], dtype=np.float64)
        g = np.asarray(g, dtype=np.float64)
        if g.shape != w.shape:
            raise CheckError(f"fastrnn.{function}: output {name!r} has shape {g.shape}, the "
                             f"reference {w.shape}")
        ok = np.isclose(g, w, equal_nan=True, **tol)
        if not ok.all():
            bad = np.argwhere(~ok)
            idx = tuple(int(i) for i in bad[0])
            diff = np.abs(g - w)
            finite = diff[np.isfinite(diff)]
            worst = float(finite.max()) if finite.size else float("nan")
            raise CheckError(
                f"fastrnn.{function}: output {name!r} disagrees with the reference at "
                f"{bad.shape[0]} of {ok.size} entries; first at index {idx}: fastrnn "
                f"{g[idx]!r}, reference {w[idx]!r}; max |difference| {worst:.3g}; tolerance "
                f"rtol={tol['rtol']:g}, atol={tol['atol']:g} for {np.dtype(dtype).name}")
