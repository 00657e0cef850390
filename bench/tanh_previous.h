/* The tanh formulas of the previous release, for bench_tanh.c to time beside the
 * current ones in src/elman/_kernels.h: the float64 tanh with three divisions
 * (small branch, exp's rational, 1 - 2 / (e + 1)), and the float32 tanh computed
 * by it in float64 and rounded once. */
#ifndef ELMAN_TANH_PREVIOUS_H
#define ELMAN_TANH_PREVIOUS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline double previous_tanh(double x)
{
    double ax = fabs(x);
    double z = ax * ax;
    double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
               - 1.61468768441708447952e3;
    double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
               + 4.84406305325125486048e3;
    double small = ax + ax * z * (p / q);
    double w = 2.0 * (ax > 22.0 ? 22.0 : ax);
    double k = w * 1.4426950408889634074 + 0x1.8p52;  /* round(w / ln 2) */
    uint64_t kbits;
    memcpy(&kbits, &k, sizeof kbits);
    k -= 0x1.8p52;
    double r = (w - k * 6.93145751953125e-1) - k * 1.42860682030941723212e-6;
    double rr = r * r;
    double px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
                     + 9.99999999999999999910e-1);
    double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
                 + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
    double e = 1.0 + 2.0 * (px / (qx - px));
    uint64_t sbits = (kbits + 1023u) << 52;        /* 2^round(w / ln 2) */
    double scale;
    memcpy(&scale, &sbits, sizeof scale);
    double large = 1.0 - 2.0 / (e * scale + 1.0);
    return copysign(ax < 0.625 ? small : large, x);
}

static void previous_tanh_inplace_d(double *a, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        a[i] = previous_tanh(a[i]);
}

static void previous_tanh_inplace_f(float *a, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        a[i] = (float)previous_tanh((double)a[i]);
}

#endif  /* ELMAN_TANH_PREVIOUS_H */
