/*
 * The activations over arrays at the AVX-512 level, written with the instructions that GCC
 * does not choose by itself for the plain loops of _vmath.h; included by _vmath.h.
 *
 * Lane for lane the same bits as the AVX2 loops of fr_exp, fr_sigmoid and fr_tanh, where GCC
 * fuses their multiply-adds (from -O2 on; a -O1 debug build leaves them unfused and agrees to
 * a few ulp), and within the same 3 ulp of the exact result at every level:
 *   - 2^n is applied with vscalef, which rounds like the multiply it replaces and gives +inf
 *     where the product overflows, instead of building 2^n from integer bits with a second
 *     path near overflow (exp's 2^(n-1) * 2);
 *   - exp's ends are one compare each: 0 below FR_EXP_ZERO (a zero-masked vscalef), +inf
 *     above FR_EXP_INF;
 *   - an array's last partial vector is masked, not a scalar loop;
 *   - p * r is rounded before 1 is added, as fr_expm1_parts returns it (an explicit rounding
 *     mode keeps GCC from fusing the two into one multiply-add, which would round once).
 * Checked over all 2^32 float inputs and 2^28 doubles (random bits, [-30, 30], the ends of
 * the ranges); tests/test_vmath.py compares the activations, the RNN's tanh state pass and
 * the LSTM's pass with the AVX2 level's bits.  Used by those passes only: the GRU's and the
 * softmax's passes ran 1-2% slower split into array passes, and stay on the plain loops.
 * Measured on AMD Zen 4, one core: sigmoid 0.38 -> 0.29 ns per float, 1.08 -> 0.87 ns per
 * double; tanh within 2%; the LSTM's pass per cell (n = 64-256) x0.63-0.89.
 */
#ifndef FASTRNN_VMATH512_H
#define FASTRNN_VMATH512_H

#if FR_HAVE_DISPATCH
#include <immintrin.h>

#define FR_512 __attribute__((target("arch=x86-64-v4")))
#define FR_RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define FR_HORNER512_ps(c) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
#define FR_HORNER512_pd(c) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));

/* x[k] := F(x[k]) over n values in vectors of L lanes (MT: their mask), the last masked. */
#define FR_MAP512(S, SFX, L, MT, F, x, n)                                                     \
    for (ptrdiff_t k = 0; k < (n); k += (L)) {                                                \
        MT m = fr_lanes512_##SFX((n) - k);                                                    \
        _mm512_mask_storeu_##S((x) + k, m, F(_mm512_maskz_loadu_##S(m, (x) + k)));            \
    }

/* For one type: T (VT: its 64-byte vector, MT: its lane mask, L lanes), S the intrinsics'
 * suffix (ps, pd). */
#define FR_DEFINE_ACT512(T, SFX, VT, MT, L, S)                                                \
/* expm1(r) for |r| <= ln2/2, as fr_expm1_parts_##SFX returns it */                           \
FR_512 FR_INLINE VT fr_expm1_512_##SFX(VT r)                                                  \
{                                                                                             \
    VT p = _mm512_set1_##S(FR_TAYLOR_TOP_##SFX);                                              \
    FR_TAYLOR_##SFX(FR_HORNER512_##S)                                                         \
    return _mm512_mul_round_##S(p, r, FR_RN);                                                 \
}                                                                                             \
/* x = n*ln2 + r, |r| <= ln2/2, as fr_expm1_parts_##SFX reduces it; returns r, sets *n */    \
FR_512 FR_INLINE VT fr_reduce512_##SFX(VT x, VT *n)                                           \
{                                                                                             \
    VT shifter = _mm512_set1_##S(FR_SHIFTER_##SFX);                                           \
    *n = _mm512_sub_##S(_mm512_fmadd_##S(x, _mm512_set1_##S(FR_LOG2E_##SFX), shifter),        \
                        shifter);                                                             \
    VT r = _mm512_fnmadd_##S(*n, _mm512_set1_##S(FR_LN2_HI_##SFX), x);                        \
    return _mm512_fnmadd_##S(*n, _mm512_set1_##S(FR_LN2_LO_##SFX), r);                        \
}                                                                                             \
FR_512 FR_INLINE VT fr_exp512_##SFX(VT x)                                                     \
{                                                                                             \
    /* the clamp keeps NaN: max and min return their second operand when one is NaN */        \
    VT xc = _mm512_min_##S(_mm512_set1_##S(FR_EXP_HI_##SFX),                                  \
                           _mm512_max_##S(_mm512_set1_##S(FR_EXP_LO_##SFX), x));              \
    VT n, r = fr_reduce512_##SFX(xc, &n);                                                     \
    VT p1 = _mm512_add_##S(fr_expm1_512_##SFX(r), _mm512_set1_##S(1)); /* 1 + expm1(r) */     \
    MT keep = _mm512_cmp_##S##_mask(x, _mm512_set1_##S(FR_EXP_ZERO_##SFX), _CMP_NLT_UQ);      \
    VT e = _mm512_maskz_scalef_##S(keep, p1, n);                                              \
    MT inf = _mm512_cmp_##S##_mask(x, _mm512_set1_##S(FR_EXP_INF_##SFX), _CMP_GT_OQ);         \
    return _mm512_mask_mov_##S(e, inf, _mm512_set1_##S(__builtin_inf()));                     \
}                                                                                             \
FR_512 FR_INLINE VT fr_sigmoid512_##SFX(VT x)                                                 \
{                                                                                             \
    VT one = _mm512_set1_##S(1);                                                              \
    VT e = fr_exp512_##SFX(_mm512_xor_##S(x, _mm512_set1_##S(-0.0)));                         \
    return _mm512_div_##S(one, _mm512_add_##S(one, e));                                       \
}                                                                                             \
FR_512 FR_INLINE VT fr_tanh512_##SFX(VT x)                                                    \
{                                                                                             \
    VT one = _mm512_set1_##S(1);                                                              \
    VT ax = _mm512_min_##S(_mm512_set1_##S(FR_TANH_SAT_##SFX), _mm512_abs_##S(x));            \
    VT n, r = fr_reduce512_##SFX(_mm512_mul_##S(_mm512_set1_##S(-2), ax), &n);                \
    VT s = _mm512_scalef_##S(one, n);                                                         \
    VT u = _mm512_fmadd_##S(s, fr_expm1_512_##SFX(r), _mm512_sub_##S(s, one));                \
    VT q = _mm512_div_##S(u, _mm512_add_##S(_mm512_set1_##S(2), u)); /* -tanh|x| */           \
    /* x's sign bit, q's other bits */                                                        \
    return _mm512_castsi512_##S(_mm512_ternarylogic_epi32(                                    \
        _mm512_cast##S##_si512(x), _mm512_cast##S##_si512(q),                                 \
        _mm512_cast##S##_si512(_mm512_set1_##S(-0.0)), 0xe4));                                \
}                                                                                             \
/* Lanes [0, left) of a vector, all of them from L on. */                                     \
FR_512 FR_INLINE MT fr_lanes512_##SFX(ptrdiff_t left)                                         \
{                                                                                             \
    return left >= L ? (MT)-1 : (MT)((1u << left) - 1);                                       \
}                                                                                             \
/* The activations over arrays in place (fr_exp_inplace_##SFX##_impl ... at AVX-512). */      \
FR_512 FR_INLINE void fr_exp_inplace_##SFX##_impl512(T *x, ptrdiff_t n)                       \
{                                                                                             \
    FR_MAP512(S, SFX, L, MT, fr_exp512_##SFX, x, n);                                          \
}                                                                                             \
FR_512 FR_INLINE void fr_sigmoid_inplace_##SFX##_impl512(T *x, ptrdiff_t n)                   \
{                                                                                             \
    FR_MAP512(S, SFX, L, MT, fr_sigmoid512_##SFX, x, n);                                      \
}                                                                                             \
FR_512 FR_INLINE void fr_tanh_inplace_##SFX##_impl512(T *x, ptrdiff_t n)                      \
{                                                                                             \
    FR_MAP512(S, SFX, L, MT, fr_tanh512_##SFX, x, n);                                         \
}                                                                                             \
/* fr_lstm_cell_##SFX##_impl in one pass: c = f * c_prev + i * cct (the second product        \
 * rounded first, as GCC fuses the plain loop at -O2), h = tanh(c) * o, and the count of      \
 * subnormal results (vfpclass). */                                                           \
FR_512 FR_INLINE ptrdiff_t fr_lstm_cell_##SFX##_impl512(const T *g, const T *c_prev, T *c,    \
                                                         T *h, ptrdiff_t n)                   \
{                                                                                             \
    ptrdiff_t count = 0;                                                                      \
    for (ptrdiff_t k = 0; k < n; k += L) {                                                    \
        MT m = fr_lanes512_##SFX(n - k);                                                      \
        VT f = _mm512_maskz_loadu_##S(m, g + k), i = _mm512_maskz_loadu_##S(m, g + n + k);    \
        VT o = _mm512_maskz_loadu_##S(m, g + 2 * n + k);                                      \
        VT cc = _mm512_maskz_loadu_##S(m, g + 3 * n + k);                                     \
        VT cv = _mm512_fmadd_##S(f, _mm512_maskz_loadu_##S(m, c_prev + k),                    \
                                 _mm512_mul_round_##S(i, cc, FR_RN));                         \
        VT hv = _mm512_mul_##S(fr_tanh512_##SFX(cv), o);                                      \
        _mm512_mask_storeu_##S(c + k, m, cv);                                                 \
        _mm512_mask_storeu_##S(h + k, m, hv);                                                 \
        count += __builtin_popcount(_mm512_mask_fpclass_##S##_mask(m, cv, 0x20))              \
               + __builtin_popcount(_mm512_mask_fpclass_##S##_mask(m, hv, 0x20));             \
    }                                                                                         \
    return count;                                                                             \
}
FR_DEFINE_ACT512(double, d, __m512d, __mmask8, 8, pd)
FR_DEFINE_ACT512(float, f, __m512, __mmask16, 16, ps)

#define FR_DEFINE_ACT_PASSES_512(T, SFX) FR_DEFINE_ACT_PASSES(T, SFX, 512, FR_512)
#else
#define FR_DEFINE_ACT_PASSES_512(T, SFX)
#endif

#endif /* FASTRNN_VMATH512_H */
