/* C helpers of the compiled kernels (_kernels.pyx includes this header):
 * a tanh the compiler can vectorise, the register-tiled gradient sums
 * (elman_gemm_tn_*) and the row-dot matrix-vector product (elman_gemv_*).
 *
 * Py_ssize_t comes from Python.h, which the Cython module includes first. */
#ifndef ELMAN_KERNELS_H
#define ELMAN_KERNELS_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The leading fields of a NumPy array and of its dtype, as NumPy lays them out
 * (PyArrayObject_fields and PyArray_Descr in numpy/ndarraytypes.h): the same
 * offsets from NumPy 1.7 through 2.x, which NumPy keeps for its binary
 * compatibility. Why: the small public calls (a forward pass at hidden 4, one
 * streaming step) cost a few hundred nanoseconds of arithmetic, and acquiring a
 * typed memoryview per array costs about as much again per array; reading the
 * data pointer, shape and flags here costs a few nanoseconds and needs no NumPy
 * headers at build time. The kernels check type, dtype, rank and flags before
 * they trust a pointer (_kernels.pyx, _array_data). */
typedef struct {
    PyObject_HEAD
    PyTypeObject *typeobj;
    char kind, type, byteorder, flags;
    int type_num;
} elman_descr_head;

typedef struct {
    PyObject_HEAD
    char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    elman_descr_head *descr;
    int flags;
} elman_array_head;

#define ELMAN_ARRAY_C_CONTIGUOUS 0x0001  /* NPY_ARRAY_C_CONTIGUOUS */
#define ELMAN_ARRAY_WRITEABLE 0x0400     /* NPY_ARRAY_WRITEABLE */

/* Why not libm: its tanh is a call per element (about 12 ns here), a third of a
 * training step at hidden 50 and more at larger batches. This one is straight-line
 * code (both branches computed, then selected), so GCC vectorises a loop over a row
 * of pre-activations -- given -fno-trapping-math (setup.py): without it GCC 12 keeps
 * the selects as branches and the loop scalar. Accuracy (tests/test_tanh.py checks
 * it against np.tanh over the whole range, incl. -0.0, subnormals, huge values,
 * +-inf and NaN): within 2 ulp in float64.
 *   |x| < 0.625: Cephes' rational approximation, x + x z P(z)/Q(z), z = x^2
 *   (exact for subnormals and keeps the sign of zero);
 *   otherwise: 1 - 2 / (exp(2|x|) + 1), exp by Cephes' Cody-Waite reduction and
 *   rational approximation, exp(r) = (Q(r^2) + r P(r^2)) / (Q(r^2) - r P(r^2)),
 *   2^n from the exponent bits. |x| is clamped to 22, where tanh rounds to 1;
 *   "ax > 22 ? 22 : ax" keeps NaN (fmin would not).
 * One division for both: each branch is written as a numerator and a denominator,
 * the pair is selected, then divided (a vector division costs as much as the rest
 * of the formula; bench/bench_tanh.py times it against three divisions). */
#if defined(__GNUC__) || defined(__clang__)
/* Always inlined: a loop that calls it out of line cannot be vectorised. GCC's
 * own choice depends on the size of the whole module, and with OpenMP's outlined
 * regions in it GCC once left it out of line in tanh_step_forward: 3x slower. */
#define ELMAN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ELMAN_ALWAYS_INLINE inline
#endif

static ELMAN_ALWAYS_INLINE double elman_tanh(double x)
{
    double ax = fabs(x);
    double z = ax * ax;
    double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
               - 1.61468768441708447952e3;
    double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
               + 4.84406305325125486048e3;
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
    uint64_t sbits = (kbits + 1023u) << 52;        /* 2^round(w / ln 2) */
    double scale;
    memcpy(&scale, &sbits, sizeof scale);
    /* small = ax + (ax z p) / q; large = 1 - 2 / (exp(w) + 1) with
     * exp(w) = scale (qx + px) / (qx - px). */
    int is_small = ax < 0.625;
    double num = is_small ? ax * z * p : 2.0 * (qx - px);
    double den = is_small ? q : scale * (qx + px) + (qx - px);
    double t = num / den;
    return copysign(is_small ? ax + t : 1.0 - t, x);
}

static void elman_tanh_inplace_d(double *a, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        a[i] = elman_tanh(a[i]);
}

/* The float32 tanh, in float32 throughout (twice the lanes of a float64 vector,
 * and a shorter polynomial): within 2 ulp of the correctly rounded tanh over the
 * whole float32 range (tests/test_tanh.py; bench/bench_tanh.py sweeps every float).
 *   |x| < 0.55: x + x z P(z), z = x^2, P a degree-4 polynomial fitted for this
 *   range (relative error ~1e-9 before rounding; tanh(0.55) is just above 0.5,
 *   so the other formula never has to produce a result below 0.5);
 *   otherwise: 1 - 2 / (exp(2|x|) + 1), exp by Cephes' expf: Cody-Waite
 *   reduction by ln 2 in two parts and its degree-5 polynomial, 2^n from the
 *   exponent bits. |x| is clamped to 10; from 9.02 up tanh rounds to 1 in float32. */
static ELMAN_ALWAYS_INLINE float elman_tanhf(float x)
{
    float ax = fabsf(x);
    float z = ax * ax;
    float p = (((-6.2875243e-3f * z + 2.1081713e-2f) * z - 5.3854948e-2f) * z
               + 1.3332614e-1f) * z - 3.3333319e-1f;
    float small = ax + ax * z * p;
    float w = 2.0f * (ax > 10.0f ? 10.0f : ax);
    float k = w * 1.44269504f + 0x1.8p23f;       /* round(w / ln 2) */
    uint32_t kbits;
    memcpy(&kbits, &k, sizeof kbits);
    k -= 0x1.8p23f;
    float r = (w - k * 0.693359375f) + k * 2.12194440e-4f;
    float e = ((((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                  + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f)
               * (r * r) + r) + 1.0f;
    uint32_t sbits = (kbits + 127u) << 23;      /* 2^round(w / ln 2) */
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    float large = 1.0f - 2.0f / (e * scale + 1.0f);
    return copysignf(ax < 0.55f ? small : large, x);
}

static void elman_tanh_inplace_f(float *a, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        a[i] = elman_tanhf(a[i]);
}

/* C (m x n, rows ldc apart) += A^T B, for A (k x m) and B (k x n), rows lda and
 * ldb apart:  C[i][j] += sum over t < k of A[t][i] B[t][j].
 *
 * Why: the weight gradients are such sums over the steps of a sequence (gWhh =
 * dA^T H_prev, gWxh^T = X^T dA), and the plain loop (one row of C at a time,
 * all k rows of B streamed past it) reads B once per row of C: at hidden 128 and
 * 50 steps that is 50 KiB, more than L1, 128 times a step. Here a 4 x 2-vector
 * tile of C stays in registers while B's rows stream past once per 4 rows of C:
 * 8 FMAs per 2 loads and 4 broadcasts.
 *
 * Every element is summed in the same order on every path (t ascending from 0,
 * then added to C), so the vector tiles and the scalar edges agree exactly. GCC
 * and clang vector extensions compile to AVX2 in the _avx2 build and to SSE2
 * pairs in the baseline one; other compilers (MSVC) take the scalar loops,
 * which a GCC build also takes with -DELMAN_SCALAR_TILES (to test them). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(ELMAN_SCALAR_TILES)
#define ELMAN_VECTOR_TILES 1
typedef double elman_v4d __attribute__((vector_size(32), aligned(8)));
typedef float elman_v8f __attribute__((vector_size(32), aligned(4)));
#else
#define ELMAN_VECTOR_TILES 0
#endif

#define ELMAN_GEMM_TN_EDGE(T)                                                  \
    static void elman_gemm_tn_edge_##T(Py_ssize_t i0, Py_ssize_t i1,           \
            Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t k, const T *A,          \
            Py_ssize_t lda, const T *B, Py_ssize_t ldb, T *C, Py_ssize_t ldc) \
    {                                                                          \
        for (Py_ssize_t i = i0; i < i1; i++)                                   \
            for (Py_ssize_t j = j0; j < j1; j++) {                             \
                T s = 0;                                                       \
                for (Py_ssize_t t = 0; t < k; t++)                             \
                    s += A[t * lda + i] * B[t * ldb + j];                      \
                C[i * ldc + j] += s;                                           \
            }                                                                  \
    }
ELMAN_GEMM_TN_EDGE(double)
ELMAN_GEMM_TN_EDGE(float)

#if ELMAN_VECTOR_TILES
#define ELMAN_GEMM_TN(T, V, W, SUFFIX)                                          \
    static void elman_gemm_tn_##SUFFIX(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, \
            const T *A, Py_ssize_t lda, const T *B, Py_ssize_t ldb, T *C,      \
            Py_ssize_t ldc)                                                    \
    {                                                                          \
        Py_ssize_t m4 = m - m % 4, nw = n - n % (2 * W);                       \
        for (Py_ssize_t i = 0; i < m4; i += 4) {                               \
            for (Py_ssize_t j = 0; j < nw; j += 2 * W) {                       \
                V c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0};                  \
                V c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};                  \
                for (Py_ssize_t t = 0; t < k; t++) {                           \
                    const T *a = A + t * lda + i;                              \
                    V b0 = *(const V *)(B + t * ldb + j);                      \
                    V b1 = *(const V *)(B + t * ldb + j + W);                  \
                    c00 += a[0] * b0; c01 += a[0] * b1;                        \
                    c10 += a[1] * b0; c11 += a[1] * b1;                        \
                    c20 += a[2] * b0; c21 += a[2] * b1;                        \
                    c30 += a[3] * b0; c31 += a[3] * b1;                        \
                }                                                              \
                T *c = C + i * ldc + j;                                        \
                *(V *)c += c00; *(V *)(c + W) += c01; c += ldc;                \
                *(V *)c += c10; *(V *)(c + W) += c11; c += ldc;                \
                *(V *)c += c20; *(V *)(c + W) += c21; c += ldc;                \
                *(V *)c += c30; *(V *)(c + W) += c31;                          \
            }                                                                  \
        }                                                                      \
        elman_gemm_tn_edge_##T(0, m4, nw, n, k, A, lda, B, ldb, C, ldc);       \
        elman_gemm_tn_edge_##T(m4, m, 0, n, k, A, lda, B, ldb, C, ldc);        \
    }
ELMAN_GEMM_TN(double, elman_v4d, 4, d)
ELMAN_GEMM_TN(float, elman_v8f, 8, f)

/* y[i] += sum over j < n of W[i][j] x[j], for i < m (rows ldw apart): a
 * matrix-vector product as row dot products, four rows at a time, each row
 * summed in W lanes and then across them (lane 0 first), so a row's result does
 * not depend on which block it falls in. Why dot products: the forward step
 * reads Whh itself (no transposed copy to make at every training step, half the
 * cache footprint) and keeps no running y in memory, so from hidden ~100 up,
 * where Whh lives in L2, the loop streams W at close to the L2 rate. */
#define ELMAN_GEMV(T, V, W, SUFFIX)                                             \
    static inline T elman_hsum_##SUFFIX(V a)                                    \
    {                                                                          \
        T s = a[0];                                                            \
        for (int l = 1; l < W; l++)                                            \
            s += a[l];                                                         \
        return s;                                                              \
    }                                                                          \
    static void elman_gemv_##SUFFIX(Py_ssize_t m, Py_ssize_t n, const T *Wm,  \
            Py_ssize_t ldw, const T *x, T *y)                                  \
    {                                                                          \
        Py_ssize_t nw = n - n % W, i = 0, j;                                   \
        for (; i + 4 <= m; i += 4) {                                           \
            const T *w0 = Wm + i * ldw, *w1 = w0 + ldw;                        \
            const T *w2 = w1 + ldw, *w3 = w2 + ldw;                            \
            V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                          \
            for (j = 0; j < nw; j += W) {                                      \
                V xv = *(const V *)(x + j);                                    \
                a0 += *(const V *)(w0 + j) * xv;                               \
                a1 += *(const V *)(w1 + j) * xv;                               \
                a2 += *(const V *)(w2 + j) * xv;                               \
                a3 += *(const V *)(w3 + j) * xv;                               \
            }                                                                  \
            T s0 = elman_hsum_##SUFFIX(a0), s1 = elman_hsum_##SUFFIX(a1);      \
            T s2 = elman_hsum_##SUFFIX(a2), s3 = elman_hsum_##SUFFIX(a3);      \
            for (j = nw; j < n; j++) {                                         \
                s0 += w0[j] * x[j]; s1 += w1[j] * x[j];                        \
                s2 += w2[j] * x[j]; s3 += w3[j] * x[j];                        \
            }                                                                  \
            y[i] += s0; y[i + 1] += s1; y[i + 2] += s2; y[i + 3] += s3;        \
        }                                                                      \
        for (; i < m; i++) {                                                   \
            const T *w0 = Wm + i * ldw;                                        \
            V a0 = {0};                                                        \
            for (j = 0; j < nw; j += W)                                        \
                a0 += *(const V *)(w0 + j) * *(const V *)(x + j);              \
            T s0 = elman_hsum_##SUFFIX(a0);                                    \
            for (j = nw; j < n; j++)                                           \
                s0 += w0[j] * x[j];                                            \
            y[i] += s0;                                                        \
        }                                                                      \
    }
ELMAN_GEMV(double, elman_v4d, 4, d)
ELMAN_GEMV(float, elman_v8f, 8, f)
#else
static void elman_gemm_tn_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *A,
        Py_ssize_t lda, const double *B, Py_ssize_t ldb, double *C, Py_ssize_t ldc)
{
    elman_gemm_tn_edge_double(0, m, 0, n, k, A, lda, B, ldb, C, ldc);
}
static void elman_gemm_tn_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
        Py_ssize_t lda, const float *B, Py_ssize_t ldb, float *C, Py_ssize_t ldc)
{
    elman_gemm_tn_edge_float(0, m, 0, n, k, A, lda, B, ldb, C, ldc);
}
/* Same order as the vector version: W partial sums (lane l takes j = l mod W),
 * added lane 0 first, then the tail. */
#define ELMAN_GEMV_SCALAR(T, W, SUFFIX)                                         \
    static void elman_gemv_##SUFFIX(Py_ssize_t m, Py_ssize_t n, const T *Wm,  \
            Py_ssize_t ldw, const T *x, T *y)                                  \
    {                                                                          \
        Py_ssize_t nw = n - n % W;                                             \
        for (Py_ssize_t i = 0; i < m; i++) {                                   \
            const T *w0 = Wm + i * ldw;                                        \
            T a[W] = {0};                                                      \
            for (Py_ssize_t j = 0; j < nw; j += W)                             \
                for (int l = 0; l < W; l++)                                    \
                    a[l] += w0[j + l] * x[j + l];                              \
            T s = a[0];                                                        \
            for (int l = 1; l < W; l++)                                        \
                s += a[l];                                                     \
            for (Py_ssize_t j = nw; j < n; j++)                                \
                s += w0[j] * x[j];                                             \
            y[i] += s;                                                         \
        }                                                                      \
    }
ELMAN_GEMV_SCALAR(double, 4, d)
ELMAN_GEMV_SCALAR(float, 8, f)
#endif


/* Threads. With OpenMP (setup.py enables it where the compiler and its runtime
 * are found) the batch loops run on several threads; without it every loop runs on
 * the calling thread and the counts below are 1.
 *
 * How many: the calling OS thread's own request (elman_thread_local_request, set
 * for the worker threads of elman.fit_many), else the process-wide request
 * (elman.set_num_threads), else OpenMP's own default, omp_get_max_threads(): it
 * follows OMP_NUM_THREADS, the CPUs this process may run on, and threadpoolctl's
 * limits on the OpenMP runtime. */
#ifdef _OPENMP
#include <omp.h>
#define ELMAN_OPENMP 1
#else
#define ELMAN_OPENMP 0
#endif

#if defined(_MSC_VER)
#define ELMAN_THREAD_LOCAL __declspec(thread)
#else
#define ELMAN_THREAD_LOCAL __thread
#endif

static int elman_process_request = 0;
static ELMAN_THREAD_LOCAL int elman_thread_local_request = 0;


static void elman_set_process_request(int n) { elman_process_request = n; }

static void elman_set_thread_local_request(int n) { elman_thread_local_request = n; }

static int elman_max_threads(void)
{
#if ELMAN_OPENMP
    if (elman_thread_local_request > 0)
        return elman_thread_local_request;
    if (elman_process_request > 0)
        return elman_process_request;
    return omp_get_max_threads();
#else
    return 1;
#endif
}

#endif  /* ELMAN_KERNELS_H */
