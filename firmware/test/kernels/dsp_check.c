/* The fused kernels against the composition of the unfused ones on 700 random shapes and
 * parameters, and 100 fully connected layers, the same for every build: compiled for the host
 * (portable C) and for a Cortex-M4 (the DSP paths: SMLAD, SXTB16, SMMLAR, SSAT, SEL) booted in
 * QEMU with semihosting (bare_m4.ld), it prints "cases=<n> bad=<m> checksum=<hex>"; both builds
 * must print the same line with bad=0 (tests/firmware/test_dsp_path.py). */
#include <stdint.h>
#include <string.h>

#include "engine_kernels.h"

static uint32_t rng = 2463534242u;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int rint_(int lo, int hi)
{
    return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

static int8_t rs8(void)
{
    int v = rint_(-128, 127);
    int e = rint_(0, 9);
    return (int8_t)(e == 0 ? -128 : e == 1 ? 127 : v);
}

#define MAXC 36
#define MAXL 90
static int8_t x[MAXL * MAXC], mid[MAXL * MAXC], y[MAXL * MAXC], ref[MAXL * MAXC + 16];
static int8_t got[MAXL * MAXC + 16], mainv[MAXL * MAXC];
static int8_t dw_w[2][5 * MAXC], pw_w[2][MAXC * MAXC];
static int32_t dw_b[2][MAXC], dw_m[2][MAXC], dw_s[2][MAXC], pw_b[2][MAXC], pw_m[2][MAXC];
static int32_t pw_s[2][MAXC];

static void layer(int32_t *m, int32_t *s, int32_t *b, int n, int taps, int real)
{
    for (int i = 0; i < n; ++i) {
        if (real) {
            m[i] = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            s[i] = -rint_(5, 12);
            b[i] = rint_(-3000, 3000) * taps;
        } else {
            int k = rint_(0, 4);
            m[i] = k == 0 ? rint_(0, 4096) : (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            s[i] = rint_(-31, 6);
            b[i] = k == 1 ? (int32_t)(rnd() >> 2) - 0x20000000 : rint_(-1000000, 1000000);
        }
    }
}

static void act(int32_t *lo, int32_t *hi, int real)
{
    *lo = -128;
    *hi = 127;
    if (!real && rint_(0, 2) == 0) {
        *lo = rint_(-128, 0);
        *hi = rint_(*lo, 127);
    }
}

static uint32_t scratch[ENGINE_SHORTCUT_SCRATCH_BYTES / 4];

static engine_separable_s8_t unit(int j, int ci, int co, int k, int st, int pad, int real)
{
    engine_separable_s8_t u;
    for (int i = 0; i < k * ci; ++i) {
        dw_w[j][i] = rs8();
    }
    for (int i = 0; i < co * ci; ++i) {
        pw_w[j][i] = rs8();
    }
    layer(dw_m[j], dw_s[j], dw_b[j], ci, k, real);
    layer(pw_m[j], pw_s[j], pw_b[j], co, ci, real);
    u.in_channels = ci;
    u.out_channels = co;
    u.kernel = k;
    u.stride = st;
    u.pad_left = pad;
    u.dw_filter = dw_w[j];
    u.dw_bias = rint_(0, 9) ? dw_b[j] : 0;
    u.dw_mult = dw_m[j];
    u.dw_shift = dw_s[j];
    u.dw_input_offset = rint_(-128, 128);
    u.dw_output_offset = rint_(-128, 127);
    act(&u.dw_act_min, &u.dw_act_max, real);
    u.pw_filter = pw_w[j];
    u.pw_bias = rint_(0, 9) ? pw_b[j] : 0;
    u.pw_mult = pw_m[j];
    u.pw_shift = pw_s[j];
    u.pw_output_offset = rint_(0, 1) ? -128 : rint_(-128, 127);
    act(&u.pw_act_min, &u.pw_act_max, real);
    u.pw_lut = 0;
    return u;
}

static int unfused(const engine_separable_s8_t *u, const int8_t *in, int len_in, int len_mid,
                   int8_t *out)
{
    int s = engine_depthwise_conv_s8(in, len_in, u->in_channels, u->dw_filter, u->dw_bias,
                                     u->kernel, u->stride, u->pad_left, u->dw_input_offset,
                                     u->dw_output_offset, u->dw_mult, u->dw_shift, u->dw_act_min,
                                     u->dw_act_max, mid, len_mid);
    s |= engine_conv_1x1_s8(mid, len_mid, u->in_channels, u->pw_filter, u->pw_bias, u->out_channels,
                            -u->dw_output_offset, u->pw_output_offset, u->pw_mult, u->pw_shift,
                            u->pw_act_min, u->pw_act_max, out);
    return s;
}

static const int widths[] = {1, 2, 3, 4, 5, 8, 8, 12, 16, 16, 32, 32};

static int width(void)
{
    return rint_(0, 3) ? widths[rint_(0, 11)] : rint_(1, MAXC);
}

int run_checks(uint32_t *checksum, int *cases);

int run_checks(uint32_t *checksum, int *cases)
{
    int bad = 0;
    uint32_t h = 2166136261u;
    for (int c = 0; c < 700; ++c) {
        const int real = rint_(0, 9) < 7;
        int n = 0;
        if (c % 3 != 2) { /* separable (+ pool) */
            int ci = width(), co = width(), k = rint_(1, 5), st = rint_(1, 3);
            if (rint_(0, 2) == 0) {
                k = 3;
                st = 1;
            }
            if (ci == 1 && rint_(0, 1)) {
                co = rint_(0, 1) ? 8 : 4;
                k = 3;
                st = 1;
            }
            int pad = rint_(0, k - 1), len_in = rint_(1, MAXL);
            int len_mid = (len_in + st - 1) / st, pool = rint_(0, 2);
            if (pool == 2 && len_mid < 2) {
                pool = 1;
            }
            engine_separable_s8_t u = unit(0, ci, co, k, st, pad, real);
            engine_max_pool2_s8_t pp = {-128, 127};
            if (!real && rint_(0, 2) == 0) {
                pp.act_min = rint_(-128, 0);
                pp.act_max = 127;
            }
            for (int i = 0; i < len_in * ci; ++i) {
                x[i] = rs8();
            }
            bad += unfused(&u, x, len_in, len_mid, y) != 0;
            int len_out = len_mid;
            if (pool) {
                len_out = pool == 1 ? (len_mid + 1) / 2 : len_mid / 2;
                bad += engine_max_pool_s8(y, len_mid, co, 2, 2, 0, pp.act_min, pp.act_max, ref,
                                          len_out) != 0;
            } else {
                memcpy(ref, y, (size_t)(len_mid * co));
            }
            n = len_out * co;
            memset(got, 0x5A, sizeof got);
            bad += engine_separable_s8(&u, x, len_in, len_mid, pool ? &pp : 0, got, len_out) != 0;
        } else { /* shortcut + ADD */
            /* every other case one unit (second NULL): a composed shortcut stream */
            const int one = (c % 6 == 5);
            int ci = width(), cm = width(), co = width(), s1 = rint_(1, 3), s2 = rint_(1, 3);
            if (one) {
                co = cm;
                s1 = rint_(1, 4);
                s2 = 1;
            }
            int len_in = rint_(1, MAXL), len_first = (len_in + s1 - 1) / s1;
            int len_out = (len_first + s2 - 1) / s2;
            engine_separable_s8_t u1 = unit(0, ci, cm, 1, s1, 0, real);
            engine_separable_s8_t u2 = unit(1, cm, co, 1, s2, 0, real);
            engine_add_s8_params_t a;
            a.a_offset = rint_(-128, 128);
            a.b_offset = rint_(-128, 128);
            a.a_mult = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            a.a_shift = -rint_(0, 3);
            a.b_mult = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            a.b_shift = -rint_(0, 3);
            a.left_shift = 20;
            a.out_offset = rint_(-128, 127);
            a.out_mult = (int32_t)(0x40000000u + (rnd() & 0x3FFFFFFFu));
            a.out_shift = -rint_(17, 21);
            a.act_min = -128;
            a.act_max = 127;
            if (!real) {
                a.out_shift = -rint_(0, 31);
                a.a_shift = -rint_(0, 31);
                a.left_shift = rint_(0, 1) ? 20 : rint_(0, 22);
                act(&a.act_min, &a.act_max, 0);
            }
            for (int i = 0; i < len_in * ci; ++i) {
                x[i] = rs8();
            }
            for (int i = 0; i < len_out * co; ++i) {
                mainv[i] = rs8();
            }
            if (one) {
                bad += unfused(&u1, x, len_in, len_first, ref) != 0;
            } else {
                bad += unfused(&u1, x, len_in, len_first, y) != 0;
                bad += unfused(&u2, y, len_first, len_out, ref) != 0;
            }
            n = len_out * co;
            bad += engine_add_s8(mainv, ref, n, a.a_offset, a.a_mult, a.a_shift, a.b_offset,
                                 a.b_mult, a.b_shift, a.left_shift, a.out_offset, a.out_mult,
                                 a.out_shift, a.act_min, a.act_max, ref) != 0;
            memset(got, 0x5A, sizeof got);
            bad += engine_shortcut_add_s8(&u1, one ? 0 : &u2, &a, x, len_in, len_first, mainv, got,
                                          len_out, scratch, (int)sizeof scratch) != 0;
        }
        bad += memcmp(got, ref, (size_t)n) != 0 || got[n] != 0x5A;
        for (int i = 0; i < n; ++i) {
            h ^= (uint8_t)got[i];
            h *= 16777619u;
        }
    }
    for (int c = 0; c < 100; ++c) { /* fully connected: its DSP dot product, by checksum */
        const int n_in = rint_(1, MAXL), n_out = rint_(1, MAXC); /* weights fit in y */
        for (int i = 0; i < n_in; ++i) {
            x[i] = rs8();
        }
        for (int i = 0; i < n_in * n_out; ++i) {
            y[i] = rs8();
        }
        layer(pw_m[0], pw_s[0], pw_b[0], n_out, n_in, c % 2);
        const int32_t w_off = rint_(0, 3) ? 0 : rint_(-128, 128);
        const int32_t in_off = rint_(-128, 128); /* (one call per statement: sequenced) */
        const int32_t out_off = rint_(-128, 127);
        memset(got, 0x5A, sizeof got);
        bad += engine_fully_connected_s8(x, n_in, y, pw_b[0], n_out, in_off, w_off, out_off,
                                         pw_m[0], pw_s[0], -128, 127, got) != 0;
        for (int i = 0; i < n_out; ++i) {
            h ^= (uint8_t)got[i];
            h *= 16777619u;
        }
    }
    *checksum = h;
    *cases = 800;
    return bad;
}

#if defined(__arm__)
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ __volatile__("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static char *put_u(char *p, uint32_t v, int base)
{
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (uint32_t)base];
        v /= (uint32_t)base;
    } while (v);
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void reset_handler(void);

void reset_handler(void)
{
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) {
        *d++ = *s++;
    }
    for (d = &_sbss; d < &_ebss;) {
        *d++ = 0;
    }
    const uint32_t block[2] = {0x20026u, (uint32_t)main()};
    semihost(0x20, block); /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static const void *const vectors[4] = {
    &_estack, (const void *)reset_handler, (const void *)reset_handler,
    (const void *)reset_handler};
#else
#include <stdio.h>
#endif

int main(void)
{
    uint32_t h;
    int cases;
    const int bad = run_checks(&h, &cases);
#if defined(__arm__)
    char line[64], *p = line;
    memcpy(p, "cases=", 6);
    p = put_u(p + 6, (uint32_t)cases, 10);
    memcpy(p, " bad=", 5);
    p = put_u(p + 5, (uint32_t)bad, 10);
    memcpy(p, " checksum=", 10);
    p = put_u(p + 10, h, 16);
    *p++ = '\n';
    *p = 0;
    semihost(0x04, line); /* SYS_WRITE0 */
#else
    printf("cases=%d bad=%d checksum=%x\n", cases, bad, (unsigned)h);
#endif
    return bad != 0;
}
