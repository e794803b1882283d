/*
 * A plain C program calling cnorm's kernels, no Python involved:
 * batch-norm inference of an (N, C, S) float32 tensor with running
 * statistics, and layer norm of (M, K) float32 rows.
 *
 * Build it against the installed cnorm (its header and the kernels inside
 * the cnorm.kernels extension module), then run it:
 *
 *     python examples/c/build.py -o cnorm_example && ./cnorm_example
 *
 * (build.py prints the compiler command it runs; see the README's "Plain C"
 * section for why the command names libpython although nothing here calls it.)
 */
#include <stdio.h>

#include "cnorm.h"

enum { N = 2, C = 3, S = 4, M = 3, K = 5 };

/* Inputs exactly representable in float32, so any program can rebuild them. */
static float input(int i) { return (float)((i * 37) % 101) / 16.0f - 3.0f; }

static void print_values(const char *name, const float *v, int n)
{
    printf("%s:", name);
    for (int i = 0; i < n; i++)
        printf(" %.9g", v[i]);
    printf("\n");
}

static int check(const char *what, int status)
{
    if (status != CNORM_OK)
        fprintf(stderr, "%s failed: %s\n", what,
                status == CNORM_ENOMEM ? "out of memory" : "invalid arguments");
    return status != CNORM_OK;
}

int main(void)
{
    printf("cnorm C API %d.%d.%d, SIMD path %s, OpenMP %s, %d threads\n", CNORM_VERSION_MAJOR,
           CNORM_VERSION_MINOR, CNORM_VERSION_PATCH, cnorm_simd_path(),
           cnorm_openmp_enabled() ? "yes" : "no", cnorm_get_num_threads());

    /* Batch-norm inference: y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c],
     * channel c of element (n, c, s) at x[(n*C + c)*S + s] (NCHW with S = H*W). */
    float x[N * C * S], y[N * C * S];
    const float mean[C] = {0.5f, -1.0f, 2.0f}, var[C] = {1.0f, 4.0f, 0.25f};
    const float weight[C] = {1.0f, 0.5f, 2.0f}, bias[C] = {0.0f, 1.0f, -1.0f};
    for (int i = 0; i < N * C * S; i++)
        x[i] = input(i);
    if (check("cnorm_bn_forward_infer_f32",
              cnorm_bn_forward_infer_f32(x, N, C, S, mean, var, weight, bias, 1e-5,
                                         CNORM_ACT_NONE, y)))
        return 1;
    print_values("bn_forward_infer_f32 y", y, N * C * S);

    /* Layer norm of each row of K values (G = S = 1: one weight and bias per column);
     * the mean and 1/std of each row are saved for a backward pass. */
    float rows[M * K], out[M * K], row_mean[M], row_rstd[M];
    const float gamma[K] = {1.0f, 2.0f, 0.5f, 1.0f, -1.0f}, beta[K] = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f};
    for (int i = 0; i < M * K; i++)
        rows[i] = input(3 * i * i + 1);
    if (check("cnorm_row_forward_f32",
              cnorm_row_forward_f32(rows, M, K, 1, 1, /* center: layer norm */ 1, 1e-5,
                                    CNORM_ACT_NONE, gamma, beta, out, row_mean, row_rstd)))
        return 1;
    print_values("row_forward_f32 y", out, M * K);
    print_values("row_forward_f32 mean", row_mean, M);
    print_values("row_forward_f32 rstd", row_rstd, M);
    return 0;
}
