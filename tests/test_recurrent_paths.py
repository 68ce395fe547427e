"""The three recurrent-product paths of the kernels, each against the reference, at every
SIMD level this CPU has.

Per step the recurrent product goes to the packed-panel GEMM (sequences of at least two
steps, SIMD level AVX2 or AVX-512), to the small-batch kernel (m <= SMALL_BATCH_MAX_M) or to
BLAS gemm.  Shapes are chosen to hit the panel kernel's edges: rows not a multiple of its
panel height (16 doubles / 32 floats) nor of the AVX2 tiles' half panel, with a last panel
of at most half its rows (the half tile: the RNN at n_a = 37 leaves 5 of 32 float32 rows)
and of more (n_a = 50 leaves 18 float32 rows), every column
count of its tiles (1-12 columns at AVX-512, 1-6 at AVX2, with 1-4 panels at a time and the
panels left over), batches of several tiles (at AVX-512 as even as they come, in tiles of at
most 12 or at most 8 as the CPU has it: 17 columns are 9 + 8 or 6 + 6 + 5, 24 are 12 + 12
or 8 + 8 + 8; both widths are tested on any CPU) and not a multiple of the tile width, and
n_a above its k-block of 256.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn._kernels import _core
from _util import assert_close, layer_params, lstm_params, ref, rnn_params


SHAPES = [  # n_x, n_a, n_y, m, T
    (3, 7, 2, 5, 4),
    (5, 13, 3, 9, 3),
    (4, 37, 2, 17, 2),
    (6, 300, 3, 11, 2),
    (3, 37, 2, 1, 3),
    (4, 45, 3, 2, 2),
    (5, 70, 2, 3, 3),
    (2, 41, 3, 4, 2),
    (3, 23, 2, 6, 3),
    (2, 50, 2, 7, 2),
    (4, 29, 3, 10, 2),
    (3, 19, 2, 12, 3),
    (2, 21, 2, 24, 2),
    (4, 33, 3, 26, 2),
    # LSTM, few examples, the recurrent block in cache but not with the input columns: the
    # input projection ahead of the loop, only W_a packed (float32 and float64 alike)
    (300, 140, 3, 3, 3),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_recurrent_path_matches_reference(simd_level, recurrent_path, kind, dtype, shape):
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


@pytest.mark.parametrize("m", [11, 25])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind, n_a", [("rnn", 1030), ("lstm", 515)])
def test_row_blocked_panel_gemm_matches_reference(simd_level, tile_cols, kind, n_a, dtype, m):
    """A recurrent block of more than 4 MiB (float32 and float64 alike) goes through the
    panel GEMM in blocks of rows, each prefetched while the previous one works: rows that
    are not a multiple of the panel height, a k-range past one k-block, 11 columns (one tile
    at AVX-512 in tiles of up to 12, two in tiles of up to 8 and at AVX2; one tile goes in row
    blocks on its first step only, the second reads the whole block from its last panel) and
    25 (three tiles at AVX-512, 9 + 9 + 7, or four, 7 + 7 + 7 + 4, the k-range blocked; five
    at AVX2)."""
    n_x, n_y, T = 3, 2, 2
    rng = np.random.default_rng(n_a)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, n_x, n_a, n_y, dtype=dtype)
    assert (n_a if kind == "rnn" else 4 * n_a) * n_a * np.dtype(dtype).itemsize > 4 << 20
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    want = ref(kind + "_forward", x, a0, p)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    for g, w in zip(model.forward(x, a0), want[:-1]):
        assert_close(g, w, dtype)


def _assert_drop_in_and_model_match(kind, dtype, shape, seed):
    """The drop-in call and the model against the reference: a, y (and the LSTM's c)."""
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng(seed)
    p = layer_params(kind, rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    want = ref(kind + "_forward", x, a0, p)
    got = getattr(fastrnn, kind + "_forward")(x, a0, p)
    model = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind](p)
    n_out = 3 if kind == "lstm" else 2
    for out in (got, model.forward(x, a0)):
        for g, w in zip(out[:n_out], want[:n_out]):
            assert_close(g, w, dtype)


TILE_SHAPES = (  # n_x, n_a, m, T
    # the recurrent product: a k-range past one k-block, one tile and several
    [(5, 261, m, 3) for m in (9, 10, 11, 12, 13, 16, 17, 24, 25, 33)]
    # the input projection's k-range past one k-block, over 9-12 of its columns at a time
    + [(300, 37, 1, 10), (300, 37, 2, 6), (300, 37, 3, 4)])


@pytest.mark.parametrize("shape", TILE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_panel_gemm_tile_widths_match_reference(tile_cols, kind, dtype, shape):
    """The AVX-512 panel GEMM in column tiles of at most 8 and of at most 12 (without
    AVX-512 the width is not used: the same computation twice), batches of one tile and of
    several as even as they come, through the model and the drop-in call: rows not a
    multiple of the panel height and k-ranges past one k-block."""
    n_x, n_a, m, T = shape
    _assert_drop_in_and_model_match(kind, dtype, (n_x, n_a, 3, m, T), m * 7 + n_a)


# Blocks packed past the caches: more than _core.PACK_STREAM_ABOVE bytes each (the LSTM's
# gate block; the RNN's W_a; the GRU's W_a and, for float64, its W_x too), n_a not a
# multiple of a cache line of rows (16 floats, 8 doubles), so that the LSTM's and the GRU's
# gate blocks start mid-line: (n_x, n_a) per kind and dtype.
STREAMED_PACKS = {
    ("lstm", np.float32): (500, 520),
    ("lstm", np.float64): (700, 300),
    ("rnn", np.float32): (3, 1460),
    ("rnn", np.float64): (3, 1030),
    ("gru", np.float32): (5, 840),
    ("gru", np.float64): (600, 596),
}


def _panel_rows(rows, itemsize):
    """rows rounded up to whole panels (_core.PANEL_BYTES of rows per column)."""
    mr = _core.PANEL_BYTES // itemsize
    return -(-rows // mr) * mr


@pytest.mark.parametrize("kind, dtype", list(STREAMED_PACKS),
                         ids=lambda v: v if isinstance(v, str) else np.dtype(v).name)
def test_block_packed_past_the_caches_matches_reference(simd_level, kind, dtype):
    n_x, n_a = STREAMED_PACKS[kind, dtype]
    size = np.dtype(dtype).itemsize
    rows = _panel_rows({"lstm": 4 * n_a, "rnn": n_a, "gru": 3 * n_a}[kind], size)
    assert rows * (n_a + n_x if kind == "lstm" else n_a) * size > _core.PACK_STREAM_ABOVE
    assert kind == "rnn" or n_a % (64 // size)
    _assert_drop_in_and_model_match(kind, dtype, (n_x, n_a, 3, 3, 3), seed=n_a)


def _numpy_panels(blocks, K):
    """Panels as NumPy writes them: the blocks' rows stacked, their first K columns, zero
    rows up to a whole panel, each panel transposed."""
    rows = np.concatenate([b[:, :K] for b in blocks])
    padded = np.zeros((_panel_rows(len(rows), rows.itemsize), K), rows.dtype)
    padded[:len(rows)] = rows
    return padded.reshape(-1, _core.PANEL_BYTES // rows.itemsize, K).transpose(0, 2, 1).ravel()


# (blocks, rows per block, row stride, K): blocks starting mid-panel and mid-line, K not a
# multiple of the transposes' blocks, rows fewer than a line, a K-stride wider than K; the
# last two, past _core.PACK_STREAM_ABOVE, stored a line of rows at a time past the caches.
PACK_CASES = [(4, 37, 45, 41), (1, 5, 9, 9), (3, 20, 17, 17), (4, 8, 16, 16), (2, 1, 3, 2),
              (4, 521, 1030, 1021), (1, 2081, 1024, 1024)]


@pytest.mark.parametrize("case", PACK_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_packed_panels_are_the_transposed_rows(simd_level, dtype, case):
    n_blocks, block_rows, ldw, K = case
    if block_rows > 100 and dtype == np.float64:  # the same bytes past the threshold
        block_rows //= 2
    rng = np.random.default_rng(block_rows)
    blocks = [rng.standard_normal((block_rows, ldw)).astype(dtype) for _ in range(n_blocks)]
    want = _numpy_panels(blocks, K)
    assert (want.nbytes > _core.PACK_STREAM_ABOVE) == (block_rows > 100)
    got = _core.pack_panel(blocks, K)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


HEAD_SHAPES = (  # n_x, n_a, n_y, m, T
    # a short sequence whose states fill at most a quarter of a panel of the output layer
    # (32 rows float32, 16 float64): small products; up to half: the half tile; more rows:
    # the panels
    (5, 37, 11, 2, 2), (5, 37, 11, 1, 8), (5, 37, 11, 2, 8), (5, 37, 11, 1, 9),
    (5, 37, 11, 3, 6),
    (5, 37, 11, 8, 2), (5, 37, 11, 5, 3),
    # a long sequence's last block of steps (float32 blocks of 32 steps, float64 of 16):
    # 8 steps, 17 steps (float64: 1)
    (5, 37, 11, 3, 40), (5, 37, 11, 2, 49),
    # more output rows than inputs, and rows past several small-product row tiles
    (6, 70, 300, 1, 5), (6, 70, 45, 2, 3))


@pytest.mark.parametrize("shape", HEAD_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_output_layer_of_few_states_matches_reference(simd_level, kind, dtype, shape):
    """The output layer of a block of states that fills at most a quarter of a panel (a
    short sequence of m*T <= 8 states, float64 4, or a long sequence's last few steps) goes
    through the small-batch product, larger blocks through the panels (up to half a panel,
    the half tile): every side of the limits at the AVX2 and AVX-512 levels (SSE2 has no
    panels), through the model and the drop-in call."""
    _assert_drop_in_and_model_match(kind, dtype, shape, sum(shape))


NARROW_SHAPES = (  # n_x, n_a, n_y, m, T
    # columns of less than 128 bytes, gathered for the gate pass (a buffer load holds 2048
    # values: the LSTM's 2048 // (7 n_a) columns, the RNN's 2048 // n_a): in one load, in
    # several (the LSTM at n_a = 15: 19 columns a load, n_a = 1: 292, float32 n_a = 31: 9;
    # the RNN at n_a = 15: 136, float32 n_a = 31: 66), one column (no gathering), and 128
    # bytes (float32 n_a = 32, float64 n_a = 16: per column)
    (3, 5, 2, 10, 4), (3, 15, 4, 45, 6), (2, 31, 3, 45, 5), (2, 1, 2, 600, 3), (4, 7, 3, 1, 9),
    (3, 32, 2, 5, 3), (3, 16, 2, 5, 3), (2, 15, 3, 150, 3), (2, 31, 3, 300, 2))


@pytest.mark.parametrize("shape", NARROW_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_gate_pass_of_narrow_columns_matches_reference(simd_level, kind, dtype, shape):
    """The LSTM's gate pass and the RNN's tanh over columns of fewer than 128 bytes (n_a
    below 32 float32, 16 float64) run on the step's columns gathered into one buffer, as
    many as it holds at a time: the model and the drop-in call (its caches too) against the
    reference at every SIMD level."""
    _assert_drop_in_and_model_match(kind, dtype, shape, sum(shape))
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng(sum(shape))
    p = layer_params(kind, rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    n_out, items = (3, 8) if kind == "lstm" else (2, 2)  # a_next (c_next, ..., ot), a_prev
    got = getattr(fastrnn, kind + "_forward")(x, a0, p)[n_out][0]
    want = ref(kind + "_forward", x, a0, p)[n_out][0]
    for t in (0, T // 2, T - 1):
        for g, w in zip(got[t][:items], want[t][:items]):
            assert_close(g, w, dtype)


@pytest.mark.parametrize("shape", NARROW_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_gathered_gate_pass_keeps_the_bits(simd_level, kind, dtype, shape):
    """Gathering narrow columns for the gate pass runs the same operations on every value:
    the drop-in call's outputs and caches and the model's outputs, also with lengths, are
    bit for bit those of one pass per column."""
    n_x, n_a, n_y, m, T = shape
    rng = np.random.default_rng(sum(shape))
    p = layer_params(kind, rng, n_x, n_a, n_y, dtype=dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=m)
    model = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM}[kind](p)
    n_out = 3 if kind == "lstm" else 2

    def run():
        got = getattr(fastrnn, kind + "_forward")(x, a0, p)
        out = [np.asarray(v) for v in got[:n_out]]
        out += [np.asarray(v) for cache in got[n_out][0] for v in cache[:-1]]
        out += [np.asarray(v) for v in model.forward(x, a0)[:2]]
        return out + [np.asarray(v) for v in model.forward(x, a0, lengths=lengths)[:2]]
    gathered = run()
    previous = _core.set_cols_max_bytes(0)
    try:
        per_column = run()
    finally:
        _core.set_cols_max_bytes(previous)
    assert len(gathered) == len(per_column)
    for g, w in zip(gathered, per_column):
        np.testing.assert_array_equal(g, w)


# kind: (n_x, n_a, gates, outputs before the caches, cache items compared)
UNPACKED = {"lstm": (200, 288, 4, 3, 9),  # a, y, c; every cache item but the parameters
            "gru": (240, 320, 3, 2, 6),   # a, y; a_next, a_prev, rt, zt, nt, xt
            "rnn": (50, 736, 1, 2, 3)}    # a, y; a_next, a_prev, xt
# name: (kind, n_x, n_a): the sizes above, and an LSTM block of 8 MiB or more (float32; in
# float64 17.9 MiB, above the 16 MiB past which it packs from five columns on)
UNPACKED_CASES = {kind: (kind,) + sizes[:2] for kind, sizes in UNPACKED.items()}
UNPACKED_CASES["lstm-8MiB"] = ("lstm", 200, 672)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("T", [2, 4, 5, 6, 7, 8, 9])
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("case", list(UNPACKED_CASES))
def test_drop_in_without_packing_matches_reference(simd_level, case, m, dtype, T):
    """One or two examples, a few steps and gate weights beyond L2 (2 MiB or more): the
    drop-in function does not pack its weights but runs the small-batch kernel on the gate
    arrays as they are, one example up to 8 steps (9 pack), two up to 4 steps (the LSTM: 5
    and more pack) or 8 (the GRU; the RNN packs for two), except the LSTM where L3 is slow
    (Intel, 2 MiB of L2 or more): one or two examples up to 5 steps, or 7 with a block of 8
    MiB or more (these sizes have a step each side of every limit): the LSTM one fused
    product per step over [W_a | W_x], the GRU its input projection and recurrent products,
    the RNN those and its output layer (its block is W_a alone; the RNN's model call too,
    except where L3 is slow).  Where L3 is not slow, the LSTM packs a gate block of more
    than 16 MiB from five columns (m*T) on: the lstm-8MiB case in float64 (17.9 MiB) runs
    unpacked at 2 and 4 steps of one example and 2 of two, packed otherwise.
    Outputs and every step's cache items against the reference, and the packed model's
    outputs beside them."""
    kind, n_x, n_a = UNPACKED_CASES[case]
    G, n_out, n_items = UNPACKED[kind][2:]
    n_y = 7
    assert G * n_a * (n_a + (n_x if kind != "rnn" else 0)) * 4 >= 2 << 20
    rng = np.random.default_rng(T)
    p = layer_params(kind, rng, n_x, n_a, n_y, dtype)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    function = getattr(fastrnn, kind + "_forward")
    got = function(x, a0, p)
    want = ref(kind + "_forward", x, a0, p)
    for g, w in zip(got[:n_out], want[:n_out]):
        assert_close(g, w, dtype)
    for t in range(T):
        for k in range(n_items):
            assert_close(got[n_out][0][t][k], want[n_out][0][t][k], dtype,
                         err_msg=f"step {t}: {k}")
    model = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}[kind](p)
    for g, w in zip(model.forward(x, a0), want[:n_out]):
        assert_close(g, w, dtype)
    # the validated route (a Fortran-ordered x) decides alike, for the drop-in function (no
    # packing) and for the model (its packed block, also where the kernel entry packs it
    # for the call: the threaded route): the same bits
    xf = np.asfortranarray(x)
    for g, w in zip(function(xf, a0, p)[:n_out], got[:n_out]):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(model.forward(xf, a0), model.forward(x, a0)):
        np.testing.assert_array_equal(g, w)
    # two threads: one example runs whole on one; two are split into slices of one, which
    # may run other kernels than the whole batch (the RNN's unpacked plan, the single
    # column's products): same numbers, not the same bits
    threaded = model.forward(x, a0, n_threads=2)
    for g, w in zip(threaded, model.forward(x, a0) if m == 1 else want[:n_out]):
        if m == 1:
            np.testing.assert_array_equal(g, w)
        else:
            assert_close(g, w, dtype)


@pytest.mark.parametrize("shape", [(3, 19, 11, 3, 37), (2, 300, 9, 2, 33), (4, 33, 17, 5, 70),
                                   (3, 8, 1, 2, 32), (2, 6, 8, 1, 16), (2, 300, 25, 2, 33),
                                   (3, 21, 5, 16, 45), (2, 40, 3, 8, 66)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_output_layer_in_state_blocks_matches_reference(simd_level, states_out, kind, dtype,
                                                        shape):
    """With the panel GEMM the output layer runs per block of steps (32 float32, 16 float64)
    and example, the block's states packed as one panel against Wy's rows: sequences of
    several blocks and a partial last one, one block exactly, n_y over the tiles' column
    counts (1, 8, 9, 11, 17, 25: one tile up to 12 at AVX-512, 6 at AVX2), n_a past the
    k-block of 256 (blocked from 13 columns on at AVX-512: n_y = 17, 25); the drop-in call
    (caches) and the model (ring buffers) alike.  Where every row of a and c starts at the
    same offset within a cache line (m * T a multiple of 16), the model's ring goes out line
    by line instead, each example at its own steps (16 x 45, 8 x 66: whole lines and partial
    ones at both ends, n_a not a multiple of a line's 16 floats or 8 doubles)."""
    _assert_drop_in_and_model_match(kind, dtype, shape, shape[1] * 7 + shape[4])


def test_panel_gemm_follows_the_simd_level():
    """The panel GEMM runs where the active SIMD level has its micro-kernels (AVX2, AVX-512)
    and is on there by default."""
    previous = _core.set_panel_gemm(True)
    try:
        assert previous is True or previous == 1
        assert _core.panel_gemm_enabled() == (_core.simd() in ("avx2", "avx512"))
    finally:
        _core.set_panel_gemm(previous)


def test_simd_levels_can_be_chosen():
    best = _core.simd()
    assert best == _core.simd_available()[-1]
    for level in _core.simd_available():
        previous = _core.set_simd(level)
        try:
            assert _core.simd() == level
            assert level.replace("avx512", "AVX-512").replace("avx2", "AVX2").replace(
                "sse2", "SSE2") in _core.simd_level() or "portable" in _core.simd_level()
        finally:
            assert _core.set_simd(previous) == level
    with pytest.raises(ValueError, match="SIMD level must be one of"):
        _core.set_simd("neon")
    assert _core.simd() == best


def _simd_in_subprocess(value):
    env = dict(os.environ, FASTRNN_SIMD=value)
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from fastrnn._kernels import _core; print(_core.simd())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.abspath(__file__)), check=True)
    return done.stdout.strip(), done.stderr


@pytest.mark.parametrize("value", ["sse2", "AVX2", " avx512 "])
def test_fastrnn_simd_forces_the_level(value):
    level = value.strip().lower()
    got, err = _simd_in_subprocess(value)
    if level in _core.simd_available():
        assert got == level and "FASTRNN_SIMD" not in err
    else:  # a level the CPU lacks: a warning naming the variable, the best level kept
        assert got == _core.simd_available()[-1] and "FASTRNN_SIMD" in err


def test_fastrnn_simd_rejects_unknown_values():
    got, err = _simd_in_subprocess("avx1024")
    assert got == _core.simd_available()[-1]
    assert "FASTRNN_SIMD='avx1024' is not one of auto, sse2, avx2, avx512" in err


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_model_reuses_its_packed_block_across_calls(kind, dtype):
    """A model packs its recurrent block once per thread and reuses it: calls of other batch
    sizes and lengths, at every SIMD level and path, in any order, still match the
    reference."""
    n_x, n_a, n_y = 3, 41, 2
    rng = np.random.default_rng(5)
    p = (rnn_params if kind == "rnn" else lstm_params)(rng, n_x, n_a, n_y, dtype=dtype)
    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(p)
    for level in _core.simd_available()[::-1] + _core.simd_available():
        previous = _core.set_simd(level)
        try:
            for m, T in [(3, 4), (1, 2), (9, 3), (3, 4)]:
                x = rng.standard_normal((n_x, m, T)).astype(dtype)
                a0 = rng.standard_normal((n_a, m)).astype(dtype)
                want = ref(kind + "_forward", x, a0, p)
                for g, w in zip(model.forward(x, a0), want[:-1]):
                    assert_close(g, w, dtype)
        finally:
            _core.set_simd(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m, T", [(11, 5), (3, 19), (1, 4)])
def test_lstm_kernel_runs_only_the_active_examples(simd_level, recurrent_path, dtype, m, T):
    """Variable lengths in the LSTM kernel: the batch sorted longest first, ``active[t]``
    examples run at step t; each example's states match the reference run on its own
    steps, and are 0 past its length (ties, length 1 and the full length included)."""
    n_x, n_a, n_y = 4, 37, 3
    rng = np.random.default_rng(m * 100 + T)
    p = lstm_params(rng, n_x, n_a, n_y, dtype=dtype)
    lengths = np.sort(rng.integers(1, T + 1, size=m))[::-1].copy()
    lengths[0] = T
    lengths[-1] = 1
    if m > 3:
        lengths[1] = lengths[2]  # a tie
    active = (m - np.cumsum(np.bincount(lengths, minlength=T + 1))[:T]).astype(np.intc)
    x = rng.standard_normal((n_x, m, T)).astype(dtype)
    a0 = rng.standard_normal((n_a, m)).astype(dtype)
    c0 = np.zeros((n_a, m), dtype=dtype)  # the lessons' LSTM starts from c = 0
    from fastrnn._packing import pack
    from fastrnn._validation import LSTM_WEIGHTS, validate_parameters
    pk = pack("lstm", validate_parameters(p, LSTM_WEIGHTS)[0], np.dtype(dtype), merge=True)
    out = {k: np.full(s, np.nan, dtype=dtype) for k, s in
           dict(a=(n_a, m, T), c=(n_a, m, T), y=(n_y, m, T), z=(m, T, 4 * n_a),
                s=(m, T, 2 * n_a)).items()}
    for j0, j1 in [(0, m), (0, m // 2), (m // 2, m)]:  # whole batch and thread slices
        _core.lstm_forward(x, a0, c0, pk.w, pk.b, pk.wy, pk.by, out["a"], out["c"], out["y"],
                           out["z"], out["s"], j0, j1, 4, active)
    for j, L in enumerate(lengths):
        want = fastrnn.reference.lstm_forward(
            x[:, j:j + 1, :L].astype(np.float64), a0[:, j:j + 1].astype(np.float64),
            {k: v.astype(np.float64) for k, v in p.items()})
        assert_close(out["a"][:, j:j + 1, :L], want[0], dtype)
        assert_close(out["c"][:, j:j + 1, :L], want[2], dtype)
        assert not out["a"][:, j, L:].any() and not out["c"][:, j, L:].any()
    bad = np.array([m] * (T - 1) + [m + 1], np.intc)
    with pytest.raises(ValueError, match="active"):
        _core.lstm_forward(x, a0, c0, pk.w, pk.b, pk.wy, pk.by, out["a"], out["c"],
                           out["y"], out["z"], out["s"], 0, m, 4, bad)
