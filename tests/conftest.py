import os
import sys

import pytest

# Tests import helpers from tests/_util.py; the package itself must come from the install.
sys.path.insert(0, os.path.dirname(__file__))

from _util import RECURRENT_PATHS, at_simd, recurrent_path as _force_path  # noqa: E402
from fastrnn._kernels import _core  # noqa: E402


@pytest.fixture(params=RECURRENT_PATHS)
def recurrent_path(request):
    """Run the test once per recurrent-product path of the kernels (see _util)."""
    with _force_path(request.param):
        yield request.param


@pytest.fixture(params=["blocks", "lines"])
def states_out(request):
    """Run the test with the kernels' states going out into a (and c) in blocks of steps or
    after the loop, and line by line where the level (AVX-512) and their layout allow it,
    whatever their size."""
    if request.param == "lines" and "avx512" not in _core.simd_available():
        pytest.skip("the states go out line by line at the AVX-512 level only")
    previous = _core.set_line_out_min_bytes(0 if request.param == "lines" else 1 << 60)
    try:
        yield request.param
    finally:
        _core.set_line_out_min_bytes(previous)


@pytest.fixture(params=[8, 12])
def tile_cols(request):
    """Run the test with column tiles of at most 8 and of at most 12 in the AVX-512 panel
    GEMM (each CPU has its own choice: see _core.set_tile_cols)."""
    previous = _core.set_tile_cols(request.param)
    try:
        yield request.param
    finally:
        _core.set_tile_cols(previous)


@pytest.fixture(params=_core.SIMD_LEVELS)
def simd_level(request):
    """Run the test once per SIMD level (skipped where the CPU lacks it)."""
    if request.param not in _core.simd_available():
        pytest.skip(f"this CPU has no {request.param}")
    with at_simd(request.param):
        yield request.param
