"""The three recurrent-product paths of the kernels, each against the reference.

Per step the recurrent product goes to the small-batch kernel (m <= SMALL_BATCH_MAX_M), to the
packed-panel GEMM (larger batches, at least two steps, CPU with AVX-512) or to BLAS gemm.
Shapes are chosen to hit the panel kernel's edges: rows not a multiple of its panel height
(16 doubles / 32 floats), batches not a multiple of its 8 columns, and n_a above its k-block
of 256.
"""
import numpy as np
import pytest

import fastrnn
from fastrnn._kernels import _core
from _util import assert_close, lstm_params, ref, rnn_params

SHAPES = [  # n_x, n_a, n_y, m, T
    (3, 7, 2, 5, 4),
    (5, 13, 3, 9, 3),
    (4, 37, 2, 17, 2),
    (6, 300, 3, 11, 2),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_recurrent_path_matches_reference(recurrent_path, kind, dtype, shape):
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng(n_a * 31 + m)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    got = getattr(fastrnn, kind + "_forward")(x, a0, p)
    want = ref(kind + "_forward", x, a0, p)
    for g, w in zip(got[:-1], want[:-1]):
        assert_close(g, w, dtype)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    for g, w in zip(model.forward(x, a0), want[:-1]):
        assert_close(g, w, dtype)


def test_panel_gemm_follows_the_cpu():
    """The panel GEMM can only be switched on where the CPU has AVX-512, and is on there by
    default."""
    previous = _core.set_panel_gemm(True)
    try:
        assert previous == _core.panel_gemm_enabled() == ("AVX-512" in _core.simd_level())
    finally:
        _core.set_panel_gemm(previous)
