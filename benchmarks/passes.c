/* Times the passes of the channel kernels one by one, and the row
 * kernels' forward and backward, against memcpy of x's bytes,
 * single-threaded, float32: what a training forward or backward costs at
 * least when its passes cannot be fused.  From the repository root:
 *
 *   gcc -O3 -fopenmp -Iinclude -Isrc/cnorm/_csrc src/cnorm/_csrc/[a-z]*.c \
 *       benchmarks/passes.c -o passes -lm
 *   ./passes [--evict] N C S [N C S ...] [--rows M K G S ...]
 *
 * N C S: batch norm over the (N, C, S) view.  --rows M K G S: the row
 * kernels over M rows of K values, parameters of row m at group m % G,
 * one per run of S values (layer norm: M K 1 1; instance norm (N, C, H*W):
 * N*C H*W C H*W).  --evict sweeps a 4 MiB buffer before every timed call,
 * so x starts in L3 rather than L2, as between the interleaved contenders
 * of `python -m cnorm bench`.  Prints medians of per-round ratios to
 * memcpy.  Instructions per element: run it under valgrind's callgrind
 * and divide each kernel's inclusive count by its calls and x's size
 * (benchmarks/README.md). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cnorm.h"

enum { ROUNDS = 41, EVICT_BYTES = 4 << 20 };
enum { STATS, APPLY, TRAIN, DOTS, BACKWARD, NPASS };
static const char *pass_names[NPASS] = { "statistics", "elementwise", "train fwd", "bwd sums",
                                         "backward" };
enum { ROW_FWD, ROW_BWD, NROW };
static const char *row_names[NROW] = { "row fwd", "row bwd" };

static char *evict_buf;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void evict(void)
{
    for (size_t i = 0; evict_buf && i < EVICT_BYTES; i += 64)
        evict_buf[i]++;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A case's arrays: batch norm over (N, C, S), or the row kernels over M
 * rows of K (G, S as their arguments).  mean_t, invstd_t: the saved
 * statistics (C or M); mean, var: the statistics or sums out (C), or
 * dweight and dbias (P = G * K / S); w, b: C or P parameters. */
typedef struct {
    int64_t N, C, S, M, K, G, n;
    float *x, *y, *dy, *copy, *w, *b, *mean_t, *invstd_t;
    double *mean, *var;
} buffers;

/* One call of pass p (row passes: NPASS + ROW_*). */
static void call_pass(const buffers *B, int p)
{
    switch (p) {
    case STATS:
        cnorm_channel_moments_f32(B->x, B->N, B->C, B->S, B->mean, B->var);
        break;
    case APPLY:
        cnorm_channel_affine_f32(B->x, B->N, B->C, B->S, B->w, B->b, B->y);
        break;
    case TRAIN:
        cnorm_bn_forward_train_f32(B->x, B->N, B->C, B->S, B->w, B->b, 1e-5, CNORM_ACT_NONE,
                                   NULL, B->y, B->mean, B->var);
        break;
    case DOTS:
        cnorm_bn_backward_f32(B->dy, B->x, B->N, B->C, B->S, B->mean_t, B->invstd_t, B->w,
                              NULL, B->mean, B->var);
        break;
    case BACKWARD:
        cnorm_bn_backward_f32(B->dy, B->x, B->N, B->C, B->S, B->mean_t, B->invstd_t, B->w,
                              B->y, B->mean, B->var);
        break;
    case NPASS + ROW_FWD:
        cnorm_row_forward_f32(B->x, B->M, B->K, B->G, B->S, 1, 1e-5, CNORM_ACT_NONE, B->w,
                              B->b, B->y, B->mean_t, B->invstd_t);
        break;
    default:
        cnorm_row_backward_f32(B->dy, B->x, B->M, B->K, B->G, B->S, 1, B->mean_t,
                               B->invstd_t, B->w, B->y, B->mean, B->var);
    }
}

/* Seconds of one call of pass p. */
static double run_pass(const buffers *B, int p)
{
    double t0;
    evict();
    t0 = now();
    call_pass(B, p);
    return now() - t0;
}

static double run_copy(const buffers *B)
{
    double t0;
    evict();
    t0 = now();
    memcpy(B->copy, B->x, (size_t)B->n * sizeof(float));
    return now() - t0;
}

static void *alloc_or_exit(int64_t count, size_t size)
{
    void *p = malloc((size_t)count * size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof(double), by_value);
    return v[ROUNDS / 2];
}

/* Times passes [p0, p1) of case B against memcpy and prints one line. */
static void measure(buffers *B, int p0, int p1, const char *const *names)
{
    int64_t i, stats = B->M ? B->M : B->C, params = B->M ? B->G * (B->K / B->S) : B->C;
    double ratio[NPASS][ROUNDS];
    int p, r;
    B->x = alloc_or_exit(B->n, sizeof(float));
    B->y = alloc_or_exit(B->n, sizeof(float));
    B->dy = alloc_or_exit(B->n, sizeof(float));
    B->copy = alloc_or_exit(B->n, sizeof(float));
    B->w = alloc_or_exit(params, sizeof(float));
    B->b = alloc_or_exit(params, sizeof(float));
    B->mean_t = alloc_or_exit(stats, sizeof(float));
    B->invstd_t = alloc_or_exit(stats, sizeof(float));
    B->mean = alloc_or_exit(params, sizeof(double));
    B->var = alloc_or_exit(params, sizeof(double));
    for (i = 0; i < B->n; i++) {   /* touched, not zero: zeros can run faster */
        B->x[i] = (float)rand() / (float)RAND_MAX - 0.5f;   /* mean 0, as the bench's data */
        B->dy[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        B->y[i] = B->copy[i] = 1.0f;
    }
    for (i = 0; i < params; i++) {
        B->w[i] = 1.1f;
        B->b[i] = 0.2f;
    }
    for (i = 0; i < stats; i++) {
        B->mean_t[i] = 0.0f;
        B->invstd_t[i] = 3.5f;
    }
    for (r = -2; r < ROUNDS; r++)   /* two warm-up rounds */
        for (p = p0; p < p1; p++) {
            double t = run_pass(B, p), c = run_copy(B);
            if (r >= 0)
                ratio[p - p0][r] = t / c;
        }
    if (B->M)
        printf("rows (%lld,%lld) G %lld S %lld", (long long)B->M, (long long)B->K,
               (long long)B->G, (long long)B->S);
    else
        printf("(%lld,%lld,%lld)", (long long)B->N, (long long)B->C, (long long)B->S);
    for (p = 0; p < p1 - p0; p++)
        printf("  %s %.2f", names[p], median(ratio[p]));
    printf("\n");
    free(B->x), free(B->y), free(B->dy), free(B->copy), free(B->w), free(B->b);
    free(B->mean_t), free(B->invstd_t), free(B->mean), free(B->var);
}

int main(int argc, char **argv)
{
    int a = 1;
    if (a < argc && strcmp(argv[a], "--evict") == 0) {
        evict_buf = calloc(EVICT_BYTES, 1);
        a++;
    }
    cnorm_set_num_threads(1);
    printf("one thread, float32, medians of %d rounds, ratio to memcpy of x%s\n", ROUNDS,
           evict_buf ? ", L2 evicted before each call" : "");
    while (a < argc) {
        int rows = strcmp(argv[a], "--rows") == 0;
        buffers B = { 0 };
        if (argc - a - rows < (rows ? 4 : 3)) {
            fprintf(stderr, "usage: %s [--evict] N C S [N C S ...] [--rows M K G S ...]\n",
                    argv[0]);
            return 2;
        }
        if (rows) {
            B.M = atoll(argv[a + 1]), B.K = atoll(argv[a + 2]);
            B.G = atoll(argv[a + 3]), B.S = atoll(argv[a + 4]);
            B.n = B.M * B.K;
            if (B.M < 1 || B.K < 1 || B.G < 1 || B.S < 1 || B.M % B.G || B.K % B.S) {
                fprintf(stderr, "--rows: G must divide M and S must divide K\n");
                return 2;
            }
            measure(&B, NPASS, NPASS + NROW, row_names);
            a += 5;
        } else {
            B.N = atoll(argv[a]), B.C = atoll(argv[a + 1]), B.S = atoll(argv[a + 2]);
            B.n = B.N * B.C * B.S;
            measure(&B, 0, NPASS, pass_names);
            a += 3;
        }
    }
    return 0;
}
