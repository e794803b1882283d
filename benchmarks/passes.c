/* Times the passes of the channel kernels one by one against memcpy of x's
 * bytes, single-threaded, float32: what a training forward or backward
 * costs at least when its passes cannot be fused.  From the repository
 * root:
 *
 *   gcc -O3 -fopenmp -Iinclude -Isrc/cnorm/_csrc src/cnorm/_csrc/channel.c \
 *       src/cnorm/_csrc/config.c benchmarks/passes.c -o passes -lm
 *   ./passes [--evict] N C S [N C S ...]
 *
 * --evict sweeps a 4 MiB buffer before every timed call, so x starts in
 * L3 rather than L2, as between the interleaved contenders of
 * `python -m cnorm bench`.  Prints medians of per-round ratios to memcpy. */
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

typedef struct {
    int64_t N, C, S;
    float *x, *y, *dy, *copy, *w, *b, *mean_t, *invstd_t;
    double *mean, *var;
} buffers;

/* Seconds of one call of pass p. */
static double run_pass(const buffers *B, int p)
{
    double t0;
    evict();
    t0 = now();
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
    default:
        cnorm_bn_backward_f32(B->dy, B->x, B->N, B->C, B->S, B->mean_t, B->invstd_t, B->w,
                              B->y, B->mean, B->var);
    }
    return now() - t0;
}

static double run_copy(const buffers *B)
{
    double t0;
    evict();
    t0 = now();
    memcpy(B->copy, B->x, (size_t)(B->N * B->C * B->S) * sizeof(float));
    return now() - t0;
}

static void measure(int64_t N, int64_t C, int64_t S)
{
    int64_t i, n = N * C * S;
    double ratio[NPASS][ROUNDS];
    buffers B = { .N = N, .C = C, .S = S };
    int p, r;
    B.x = malloc((size_t)n * sizeof(float));
    B.y = malloc((size_t)n * sizeof(float));
    B.dy = malloc((size_t)n * sizeof(float));
    B.copy = malloc((size_t)n * sizeof(float));
    B.w = malloc((size_t)C * sizeof(float));
    B.b = malloc((size_t)C * sizeof(float));
    B.mean_t = malloc((size_t)C * sizeof(float));
    B.invstd_t = malloc((size_t)C * sizeof(float));
    B.mean = malloc((size_t)C * sizeof(double));
    B.var = malloc((size_t)C * sizeof(double));
    if (!B.x || !B.y || !B.dy || !B.copy || !B.w || !B.b || !B.mean_t || !B.invstd_t
        || !B.mean || !B.var) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (i = 0; i < n; i++) {   /* touched, not zero: zeros can run faster */
        B.x[i] = (float)rand() / (float)RAND_MAX;
        B.dy[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        B.y[i] = B.copy[i] = 1.0f;
    }
    for (i = 0; i < C; i++) {
        B.w[i] = 1.1f;
        B.b[i] = 0.2f;
        B.mean_t[i] = 0.5f;
        B.invstd_t[i] = 3.5f;
    }
    for (r = -2; r < ROUNDS; r++)   /* two warm-up rounds */
        for (p = 0; p < NPASS; p++) {
            double t = run_pass(&B, p), c = run_copy(&B);
            if (r >= 0)
                ratio[p][r] = t / c;
        }
    printf("(%lld,%lld,%lld)", (long long)N, (long long)C, (long long)S);
    for (p = 0; p < NPASS; p++) {
        qsort(ratio[p], ROUNDS, sizeof(double), by_value);
        printf("  %s %.2f", pass_names[p], ratio[p][ROUNDS / 2]);
    }
    printf("\n");
    free(B.x), free(B.y), free(B.dy), free(B.copy), free(B.w), free(B.b);
    free(B.mean_t), free(B.invstd_t), free(B.mean), free(B.var);
}

int main(int argc, char **argv)
{
    int a = 1;
    if (a < argc && strcmp(argv[a], "--evict") == 0) {
        evict_buf = calloc(EVICT_BYTES, 1);
        a++;
    }
    if (argc - a < 3 || (argc - a) % 3) {
        fprintf(stderr, "usage: %s [--evict] N C S [N C S ...]\n", argv[0]);
        return 2;
    }
    cnorm_set_num_threads(1);
    printf("one thread, float32, medians of %d rounds, ratio to memcpy of x%s\n", ROUNDS,
           evict_buf ? ", L2 evicted before each call" : "");
    for (; a + 2 < argc; a += 3)
        measure(atoll(argv[a]), atoll(argv[a + 1]), atoll(argv[a + 2]));
    return 0;
}
