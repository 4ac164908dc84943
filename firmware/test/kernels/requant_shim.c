/* Array wrappers around the static-inline requantisation helpers (engine_requant.h,
 * engine_requant_fast.h), so that tests/firmware/test_requant.py can call them through ctypes:
 * each applies one helper element by element, out[i] = helper(x[i], ...), i < n. Compiled into
 * the same shared library as the kernels (tests/firmware/kernel_lib.py). */
#include <stdint.h>

#include "engine_requant.h"
#include "engine_requant_fast.h"

void shim_srdhm(const int32_t *a, const int32_t *b, int32_t *out, int n);
void shim_rdbp(const int32_t *x, const int32_t *e, int32_t *out, int n);
void shim_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n);
void shim_mbqm_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n);
void shim_rdbp_fast(const int32_t *x, const int32_t *e, int32_t *out, int n);
void shim_rq_fast(const int32_t *x, const int32_t *m, const int32_t *s, const int32_t *off,
                  int32_t *out, int n);
void shim_rq_fast_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n);

void shim_srdhm(const int32_t *a, const int32_t *b, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        out[i] = engine_sat_rounding_doubling_high_mul(a[i], b[i]);
    }
}

void shim_rdbp(const int32_t *x, const int32_t *e, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        out[i] = engine_rounding_divide_by_pot(x[i], (int)e[i]);
    }
}

void shim_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        out[i] = engine_multiply_by_quantized_multiplier(x[i], m[i], (int)s[i]);
    }
}

void shim_mbqm_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        out[i] =
            engine_multiply_by_quantized_multiplier_smaller_than_one_exp(x[i], m[i], (int)s[i]);
    }
}

void shim_rdbp_fast(const int32_t *x, const int32_t *e, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        out[i] = engine_rounding_divide_by_pot_fast(x[i], (int)e[i]);
    }
}

/* shift s = -e, e in [1, 21] */
void shim_rq_fast(const int32_t *x, const int32_t *m, const int32_t *s, const int32_t *off,
                  int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        out[i] = engine_requant_fast(x[i], m[i], engine_requant_fast_round(-(int)s[i], off[i]),
                                     -(int)s[i]);
    }
}

/* shift s = -e, e in [0, 21] */
void shim_rq_fast_lt1(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int n)
{
    for (int i = 0; i < n; ++i) {
        const int e = -(int)s[i];
        out[i] = engine_requant_fast_lt1(x[i], m[i], e > 0 ? (INT32_C(1) << (e - 1)) : 0,
                                         e > 0 ? -1 : 0, e);
    }
}
