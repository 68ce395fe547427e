"""The kernels' own activations (fastrnn/_kernels/_vmath.h) against accurate references.

The README promises exp, sigmoid and tanh within 3 ulp of the correctly rounded result in
both precisions, NaN propagated, +-inf saturated, exp overflowing to inf like numpy's and
never returning a subnormal number.
"""
import numpy as np
import pytest

from fastrnn._kernels import _core
from _util import at_simd

DTYPES = [np.float32, np.float64]


def truth(name, x):
    """Accurate values in extended precision (x87 long double where numpy has it)."""
    v = np.asarray(x, dtype=np.longdouble)
    with np.errstate(over="ignore", under="ignore"):
        if name == "exp":
            return np.exp(v)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-v))
        return np.tanh(v)


def sample(dtype):
    rng = np.random.default_rng(0)
    parts = [rng.uniform(-30, 30, 20000), rng.uniform(-1e-3, 1e-3, 2000),
             np.logspace(-30, 2, 2000), -np.logspace(-30, 2, 2000), rng.uniform(-1, 1, 5000)]
    return np.concatenate(parts).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_within_three_ulp(simd_level, name, dtype):
    x = sample(dtype)
    if name == "exp":  # keep results normal and finite
        x = x[np.abs(x) < (80 if dtype == np.float32 else 700)]
    got = _core.activation(name, x).astype(np.longdouble)
    want = truth(name, x)
    normal = np.abs(want) >= np.finfo(dtype).tiny
    ulp = np.spacing(np.abs(want[normal]).astype(dtype)).astype(np.longdouble)
    err = np.abs(got[normal] - want[normal]) / ulp
    assert float(err.max()) <= 3.0, (name, np.dtype(dtype).name, float(err.max()),
                                     x[normal][np.argmax(err)])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_special_values(simd_level, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    exp = _core.activation("exp", x)
    sig = _core.activation("sigmoid", x)
    tanh = _core.activation("tanh", x)
    np.testing.assert_array_equal(exp, np.array([np.nan, np.inf, 0.0, 1.0, 1.0], dtype=dtype))
    np.testing.assert_array_equal(sig, np.array([np.nan, 1.0, 0.0, 0.5, 0.5], dtype=dtype))
    np.testing.assert_array_equal(tanh, np.array([np.nan, 1.0, -1.0, 0.0, -0.0], dtype=dtype))
    assert np.signbit(tanh[4]) and not np.signbit(tanh[3])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_exp_over_the_whole_range(simd_level, dtype):
    """Within 3 ulp wherever the result is a normal finite number (up to the overflow
    threshold and down to the smallest normal number); 0 below, +inf above."""
    info = np.finfo(dtype)
    lo, hi = np.log(np.float64(info.tiny)), np.log(np.float64(info.max))
    x = np.concatenate([np.linspace(lo - 40, hi + 1, 200001),
                        np.linspace(hi - 2, hi + 0.01, 20001),
                        np.linspace(lo - 0.01, lo + 2, 20001)]).astype(dtype)
    got = _core.activation("exp", x).astype(np.longdouble)
    want = truth("exp", x)
    normal = (want >= info.tiny) & (want <= info.max)
    ulp = np.spacing(want[normal].astype(dtype)).astype(np.longdouble)
    err = np.abs(got[normal] - want[normal]) / ulp
    assert float(err.max()) <= 3.0, (float(err.max()), x[normal][np.argmax(err)])
    assert np.all(got[want < info.tiny] == 0)
    assert np.all(np.isinf(got[want > info.max]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_exp_never_subnormal_and_overflows_to_inf(simd_level, dtype):
    info = np.finfo(dtype)
    lo = np.log(np.float64(info.tiny))
    x = np.linspace(lo - 50, lo + 1, 5001).astype(dtype)
    out = _core.activation("exp", x)
    assert not np.any((out != 0) & (np.abs(out) < info.tiny)), "a subnormal result"
    big = np.array([np.log(np.float64(info.max)) * 1.01, 1e4], dtype=dtype)
    np.testing.assert_array_equal(_core.activation("exp", big), np.full(2, np.inf, dtype))
    # sigmoid of very negative input is exactly 0, as 1 / (1 + inf) in the reference
    np.testing.assert_array_equal(_core.activation("sigmoid", -big), np.zeros(2, dtype))


def test_simd_level_is_named():
    level = _core.simd_level()
    assert isinstance(level, str) and level


def test_activation_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown activation"):
        _core.activation("relu", np.zeros(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.activation("exp", np.zeros(3, dtype=np.int64))


def at_level(level, f, *args):
    with at_simd(level):
        return f(*args)


def assert_levels_agree(wide, narrow, scale=0.0):
    """The same bits, NaN matching any NaN.  A debug build (-O1) is the exception: there
    GCC leaves the plain loops' multiply-adds unfused, while the AVX-512 loops always fuse
    theirs, so the two agree to a few ulp of the result, or of scale (the largest term of a
    sum that may cancel) where they take sums."""
    wide, narrow = np.asarray(wide), np.asarray(narrow)
    assert wide.dtype == narrow.dtype and wide.shape == narrow.shape
    if _core.DEBUG_BUILD:
        eps = np.finfo(wide.dtype).eps
        np.testing.assert_allclose(wide, narrow, rtol=8 * eps, atol=8 * eps * scale,
                                   equal_nan=True)
        return
    bits = np.uint32 if wide.dtype == np.float32 else np.uint64
    same = (wide.view(bits) == narrow.view(bits)) | (np.isnan(wide) & np.isnan(narrow))
    assert same.all(), (np.flatnonzero(~same)[:5], wide[~same][:5], narrow[~same][:5])


def subnormal(x):
    return (x != 0) & (np.abs(x) < np.finfo(x.dtype).tiny)


def hard_inputs(dtype, n, seed):
    """Any bit pattern, the activations' working ranges, their ends and special values."""
    rng = np.random.default_rng(seed)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    info = np.finfo(dtype)
    ends = np.array([np.log(info.tiny), np.log(info.max), 10, 20, 709, 88, 0], dtype=dtype)
    near = (ends[:, None].view(bits) + np.arange(-40, 41, dtype=np.int64).astype(bits)).view(dtype)
    parts = [rng.integers(0, np.iinfo(bits).max, n, dtype=bits, endpoint=True).view(dtype),
             rng.uniform(-30, 30, n).astype(dtype), rng.uniform(-800, 800, n).astype(dtype),
             near.ravel(), -near.ravel(),
             np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, info.tiny / 4,
                       -info.smallest_subnormal], dtype=dtype)]
    return rng.permutation(np.concatenate(parts))


AVX512 = "avx512" in _core.simd_available()


@pytest.mark.skipif(not AVX512, reason="this CPU has no AVX-512")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_avx512_activations_have_the_avx2_bits(name, dtype):
    """The AVX-512 loops (_vmath512.h) are written apart from the plain loops the other
    levels compile, and promise their bits; every length up to three vectors covers the
    masked last vector (the hook raises if a kernel writes past either end)."""
    x = hard_inputs(dtype, 200_000, seed=1)
    assert_levels_agree(at_level("avx512", _core.activation, name, x),
                        at_level("avx2", _core.activation, name, x))
    for n in range(49):
        part = x[1000:1000 + n]
        assert_levels_agree(at_level("avx512", _core.activation, name, part),
                            at_level("avx2", _core.activation, name, part))


@pytest.mark.skipif(not AVX512, reason="this CPU has no AVX-512")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 1), (300, 1), (7, 5), (33, 17), (4, 300), (130, 600)])
def test_softmax_agrees_between_avx512_and_avx2(shape, dtype):
    """Column softmax (plain loops at every level): a lone column (gathered), blocks of
    columns and their partial vectors, scores spread so that exp underflows to 0 in some
    rows."""
    rng = np.random.default_rng(3)
    y = (rng.standard_normal(shape) * rng.choice([1, 30, 300], size=shape[1])).astype(dtype)
    wide = at_level("avx512", _core.activation, "softmax", y)
    assert_levels_agree(wide, at_level("avx2", _core.activation, "softmax", y))
    np.testing.assert_allclose(wide.sum(axis=0), 1, rtol=shape[0] * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "gru_rh", "gru_candidate"])
def test_cell_passes_agree_between_levels(simd_level, kind, dtype):
    """The cells' element-wise steps: at AVX-512 the same as at AVX2 (the RNN's tanh state
    pass and the LSTM's run the AVX-512 loops there, the GRU's the plain ones), gates, states
    and the count of subnormal states; at every level that count is the number of subnormal
    states returned.  Sizes
    around the vector widths, inputs of every magnitude, subnormal states included (the hook
    raises if a kernel writes past either end)."""
    rng = np.random.default_rng(2)
    tiny = np.finfo(dtype).tiny
    parts = {"rnn": 1, "lstm": 4}.get(kind, 3)
    for n in (1, 7, 8, 9, 15, 16, 17, 33, 100, 257):
        for scale in (1.0, 30.0, 1e-36):
            g = (rng.standard_normal(parts * n) * scale).astype(dtype)
            g[rng.integers(0, parts * n, 2)] = [np.inf, -np.inf]
            if kind == "rnn":
                g[-1] = tiny / 8  # tanh of a subnormal is that subnormal
                args = (kind, g)
            elif kind == "lstm":
                c_prev = (rng.standard_normal(n) * scale).astype(dtype)
                c_prev[-1] = tiny / 8
                g[[n - 1, 2 * n - 1]] = [10, -np.inf]  # f ~ 1, i = 0: c = f * c_prev, subnormal
                args = (kind, g, c_prev)
            else:
                args = (kind, g, (rng.standard_normal(3 * n) * scale).astype(dtype),
                        (rng.standard_normal(n) * scale).astype(dtype))
            got = _core.cell_pointwise(*args)
            if simd_level == "avx512":
                narrow = at_level("avx2", _core.cell_pointwise, *args)
                arrays = 1 if kind == "rnn" else 3 if kind == "lstm" else 2
                values = np.concatenate([np.ravel(a) for a in args[1:]])
                terms = np.abs(values[np.isfinite(values)]).max() + 1
                for w, v in zip(got[:arrays], narrow[:arrays]):
                    assert_levels_agree(w, v, scale=terms)
            if kind == "rnn":
                assert got[1] == subnormal(got[0]).sum() >= 1, (n, scale)
            elif kind == "lstm":
                assert got[3] == subnormal(got[1]).sum() + subnormal(got[2]).sum() >= 1, (n, scale)
