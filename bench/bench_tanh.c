/* ns per element of the kernels' tanh (src/elman/_kernels.h) beside the previous
 * release's (tanh_previous.h), and their ulp errors against libm's tanh.
 * Built and run by bench_tanh.py, which passes the compiler flags of setup.py.
 *
 *     bench_tanh ROW_LENGTH ROUNDS [exhaustive]
 *
 * Timing: a row of ROW_LENGTH pre-activations drawn from N(0, 2) (what a hidden
 * layer sees), tanh'd in place over and over (refilled from a copy each time, the
 * copy's cost timed alone and subtracted); the minimum over ROUNDS interleaved
 * rounds.
 * Accuracy: float32 over a dense sample of every binade, or, with "exhaustive",
 * over every positive float32 (the formulas are odd: -x is checked to give -tanh x);
 * float64 over a dense sample. The reference is libm's tanh in float64 (rounded
 * to float32 for the float32 error). */
#include "_kernels.h"
#include "tanh_previous.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double normal(void)
{
    double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

#define TIMER(T, NAME, FN)                                                        \
    static double NAME(const T *src, T *row, Py_ssize_t n, long reps)              \
    {                                                                              \
        double t0 = now();                                                         \
        for (long i = 0; i < reps; i++) {                                          \
            memcpy(row, src, n * sizeof(T));                                       \
            FN(row, n);                                                            \
            __asm__ volatile("" : : "r"(row) : "memory");                          \
        }                                                                          \
        return now() - t0;                                                         \
    }

static void copy_only_d(double *a, Py_ssize_t n) { (void)a; (void)n; }
static void copy_only_f(float *a, Py_ssize_t n) { (void)a; (void)n; }
TIMER(double, time_new_d, elman_tanh_inplace_d)
TIMER(double, time_old_d, previous_tanh_inplace_d)
TIMER(double, time_copy_d, copy_only_d)
TIMER(float, time_new_f, elman_tanh_inplace_f)
TIMER(float, time_old_f, previous_tanh_inplace_f)
TIMER(float, time_copy_f, copy_only_f)

static int64_t ordered_d(double v)
{
    int64_t b;
    memcpy(&b, &v, sizeof b);
    return b < 0 ? -(b & INT64_MAX) : b;
}

static int64_t ordered_f(float v)
{
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b < 0 ? -(int64_t)(b & INT32_MAX) : b;
}

/* Worst ulp error of both float32 formulas over the values in x (n of them). */
static void ulps_f(const float *x, Py_ssize_t n, float *a, float *b, int64_t worst[2])
{
    memcpy(a, x, n * sizeof(float));
    memcpy(b, x, n * sizeof(float));
    elman_tanh_inplace_f(a, n);
    previous_tanh_inplace_f(b, n);
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t ref = ordered_f((float)tanh((double)x[i]));
        int64_t da = llabs(ordered_f(a[i]) - ref), db = llabs(ordered_f(b[i]) - ref);
        if (da > worst[0]) worst[0] = da;
        if (db > worst[1]) worst[1] = db;
        float minus = -x[i];
        elman_tanh_inplace_f(&minus, 1);
        if (minus != -a[i] && !isnan(a[i])) worst[0] = 1 << 30;  /* not odd */
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROW_LENGTH ROUNDS [exhaustive]\n", argv[0]);
        return 2;
    }
    Py_ssize_t n = atol(argv[1]);
    int rounds = atoi(argv[2]);
    int exhaustive = argc > 3 && strcmp(argv[3], "exhaustive") == 0;
    long reps = 20000000 / n + 1;
    double *sd = malloc(n * sizeof(double)), *rd = malloc(n * sizeof(double));
    float *sf = malloc(n * sizeof(float)), *rf = malloc(n * sizeof(float));
    srand(1);
    for (Py_ssize_t i = 0; i < n; i++) {
        sd[i] = 2.0 * normal();
        sf[i] = (float)sd[i];
    }
    /* Rounds interleave the six timings (a burst of load elsewhere hits all
     * alike); each keeps its minimum. */
    double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < rounds; r++) {
        double t[6] = {time_copy_d(sd, rd, n, reps), time_new_d(sd, rd, n, reps),
                       time_old_d(sd, rd, n, reps), time_copy_f(sf, rf, n, reps),
                       time_new_f(sf, rf, n, reps), time_old_f(sf, rf, n, reps)};
        for (int i = 0; i < 6; i++)
            if (t[i] < best[i]) best[i] = t[i];
    }
    double scale = 1e9 / ((double)reps * n);
    printf("time float64 new %.3f old %.3f\n", (best[1] - best[0]) * scale,
           (best[2] - best[0]) * scale);
    printf("time float32 new %.3f old %.3f\n", (best[4] - best[3]) * scale,
           (best[5] - best[3]) * scale);

    /* float32 accuracy */
    enum { CHUNK = 1 << 16 };
    float *x = malloc(CHUNK * sizeof(float)), *a = malloc(CHUNK * sizeof(float));
    float *b = malloc(CHUNK * sizeof(float));
    int64_t worst_f[2] = {0, 0};
    uint64_t checked = 0;
    if (exhaustive) {
        for (uint64_t start = 0; start < 0x7f800000u; start += CHUNK) {
            for (int i = 0; i < CHUNK; i++) {
                uint32_t bits = (uint32_t)(start + i);
                memcpy(&x[i], &bits, sizeof bits);
            }
            ulps_f(x, CHUNK, a, b, worst_f);
            checked += CHUNK;
        }
    } else {  /* 2^16 values from each of the 2^8 exponents, evenly spaced bits */
        for (uint32_t e = 0; e < 255; e++) {
            for (int i = 0; i < CHUNK; i++) {
                uint32_t bits = (e << 23) | ((uint32_t)i << 7) | (uint32_t)(i & 127);
                memcpy(&x[i], &bits, sizeof bits);
            }
            ulps_f(x, CHUNK, a, b, worst_f);
            checked += CHUNK;
        }
    }
    printf("ulps float32 new %lld old %lld over %llu values\n", (long long)worst_f[0],
           (long long)worst_f[1], (unsigned long long)checked);

    /* float64 accuracy: 2^16 values from each binade 2^-60 .. 2^6, plus dense [0, 25] */
    double *xd = malloc(CHUNK * sizeof(double)), *ad = malloc(CHUNK * sizeof(double));
    double *bd = malloc(CHUNK * sizeof(double));
    int64_t worst_d[2] = {0, 0};
    for (int e = -61; e < 7; e++) {
        for (int i = 0; i < CHUNK; i++)
            xd[i] = e < 6 ? ldexp(1.0 + (rand() / (RAND_MAX + 1.0)), e)
                          : 25.0 * rand() / (RAND_MAX + 1.0);
        memcpy(ad, xd, CHUNK * sizeof(double));
        memcpy(bd, xd, CHUNK * sizeof(double));
        elman_tanh_inplace_d(ad, CHUNK);
        previous_tanh_inplace_d(bd, CHUNK);
        for (int i = 0; i < CHUNK; i++) {
            int64_t ref = ordered_d(tanh(xd[i]));
            int64_t da = llabs(ordered_d(ad[i]) - ref), db = llabs(ordered_d(bd[i]) - ref);
            if (da > worst_d[0]) worst_d[0] = da;
            if (db > worst_d[1]) worst_d[1] = db;
        }
    }
    printf("ulps float64 new %lld old %lld over %d values\n", (long long)worst_d[0],
           (long long)worst_d[1], 68 * CHUNK);
    return 0;
}
