/* float16 / bfloat16 entry points: the float32 kernels run on chunks of the
 * input converted to float32 in a per-thread scratch buffer that stays in
 * cache, and each chunk's output is rounded back before the next one, so
 * memory sees 2-byte loads and stores only.  A chunk is whole rows (row
 * family: a multiple of the rows that share a parameter pattern) or
 * LOWP_CHUNK values of batch-norm inference (whole samples when they fit);
 * inside a chunk the float32 kernel runs on the calling thread (its work is
 * below the parallel threshold). */
#include "common.h"

/* float32 values per chunk: input and output in place, in L2. */
#define LOWP_CHUNK ((int64_t)1 << 14)

typedef void (*to_f32_fn)(const uint16_t *, float *, int64_t);
typedef void (*from_f32_fn)(const float *, uint16_t *, int64_t);

/* One chunk of `rows` units starting at unit u0: convert in, run, convert out. */
typedef int (*chunk_fn)(const void *job, float *buf, int64_t u0, int64_t rows);

typedef struct {
    to_f32_fn load;
    from_f32_fn store;
    const uint16_t *x;
    uint16_t *y;
    int64_t unit;                  /* values per unit (a row, a sample) */
} lowp_io;

/* Runs chunk over `units` units in chunks of `per` units, on threads;
 * scratch for every thread comes first, so CNORM_ENOMEM writes nothing. */
static int lowp_run(const lowp_io *io, int64_t units, int64_t per, chunk_fn chunk,
                    const void *job)
{
    const int64_t chunks = cnorm_cdiv64(units, per);
    const int nt = cnorm_threads_for(units * io->unit, chunks);
    float *scratch = malloc((size_t)(nt * per * io->unit) * sizeof(float));
    int status = CNORM_OK;
    if (!scratch)
        return CNORM_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t c = 0; c < chunks; c++) {
#ifdef _OPENMP
        float *buf = scratch + (int64_t)omp_get_thread_num() * per * io->unit;
#else
        float *buf = scratch;
#endif
        const int64_t u0 = c * per, rows = cnorm_min64(per, units - u0), n = rows * io->unit;
        io->load(io->x + u0 * io->unit, buf, n);
        if (chunk(job, buf, u0, rows) != CNORM_OK)
            status = CNORM_EINVAL;   /* sizes were checked: cannot happen */
        io->store(buf, io->y + u0 * io->unit, n);
    }
    free(scratch);
    return status;
}

static void lowp_converters(int bfloat16, lowp_io *io)
{
    io->load = bfloat16 ? cnorm_bf16_to_f32 : cnorm_f16_to_f32;
    io->store = bfloat16 ? cnorm_f32_to_bf16 : cnorm_f32_to_f16;
}

/* ---- row family forward ---------------------------------------------- */

typedef struct {
    int64_t K, G, S;
    int center, activation;
    double eps;
    const float *weight, *bias;
    float *mean, *rstd;
} lowp_row_job;

static int row_chunk(const void *job, float *buf, int64_t m0, int64_t rows)
{
    const lowp_row_job *j = job;
    return cnorm_row_forward_f32(buf, rows, j->K, j->G, j->S, j->center, j->eps, j->activation,
                                 j->weight, j->bias, buf, j->mean ? j->mean + m0 : NULL,
                                 j->rstd ? j->rstd + m0 : NULL);
}

static int row_forward_lowp(int bfloat16, const uint16_t *x, int64_t M, int64_t K, int64_t G,
                           int64_t S, int center, double eps, int activation,
                           const float *weight, const float *bias, uint16_t *y, float *mean,
                           float *rstd)
{
    if (!cnorm_activation_valid(activation))
        return CNORM_EINVAL;
    if (M == 0)
        return CNORM_OK;
    if (M < 0 || K < 1 || G < 1 || S < 1 || K % S || !x || !y)
        return CNORM_EINVAL;
    /* whole groups of G rows: row m uses parameter row m % G */
    const int64_t per = cnorm_cdiv64(cnorm_max64(1, LOWP_CHUNK / K), G) * G;
    const lowp_row_job job = {K, G, S, center, activation, eps, weight, bias, mean, rstd};
    lowp_io io = {0};
    lowp_converters(bfloat16, &io);
    io.x = x;
    io.y = y;
    io.unit = K;
    return lowp_run(&io, M, per, row_chunk, &job);
}

/* ---- batch-norm inference ---------------------------------------------- */

typedef struct {
    int64_t C, S;
    const float *running_mean, *running_var, *weight, *bias;
    double eps;
    int activation;
} lowp_infer_job;

/* Values [v0, v0 + n) of x, in as few float32 calls as the layout allows:
 * whole samples, else whole planes of one sample, else part of a plane (a
 * chunk need not start or end on a plane: it stays LOWP_CHUNK long, in
 * cache, however large a plane is). */
static int infer_chunk(const void *job, float *buf, int64_t v0, int64_t n)
{
    const lowp_infer_job *j = job;
    const int64_t plane = j->S, sample = j->C * j->S;
    int status = CNORM_OK;
    while (n > 0 && status == CNORM_OK) {
        const int64_t c = v0 / plane % j->C, off = v0 % plane;
        int64_t N = 1, C = 1, S = cnorm_min64(plane - off, n);
        if (off == 0 && c == 0 && n >= sample) {
            N = n / sample;
            C = j->C;
            S = plane;
        } else if (off == 0 && n >= plane) {
            C = cnorm_min64(j->C - c, n / plane);
            S = plane;
        }
        status = cnorm_bn_forward_infer_f32(buf, N, C, S, j->running_mean + c,
                                            j->running_var + c, j->weight ? j->weight + c : NULL,
                                            j->bias ? j->bias + c : NULL, j->eps, j->activation,
                                            buf);
        buf += N * C * S;
        v0 += N * C * S;
        n -= N * C * S;
    }
    return status;
}

static int bn_forward_infer_lowp(int bfloat16, const uint16_t *x, int64_t N, int64_t C,
                                int64_t S, const float *running_mean,
                                const float *running_var, const float *weight,
                                const float *bias, double eps, int activation, uint16_t *y)
{
    if (N < 0 || C < 0 || S < 0 || !cnorm_activation_valid(activation) || !x ||
        !running_mean || !running_var || !y)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    /* whole samples when they fit a chunk: one float32 call per chunk */
    const int64_t sample = C * S;
    const int64_t per = sample <= LOWP_CHUNK ? LOWP_CHUNK / sample * sample : LOWP_CHUNK;
    const lowp_infer_job job = {C, S, running_mean, running_var, weight, bias, eps, activation};
    lowp_io io = {0};
    lowp_converters(bfloat16, &io);
    io.x = x;
    io.y = y;
    io.unit = 1;
    return lowp_run(&io, N * sample, per, infer_chunk, &job);
}

/* ---- the exported names ------------------------------------------------- */

#define LOWP_ROW(name, bf)                                                                  \
    int name(const uint16_t *x, int64_t M, int64_t K, int64_t G, int64_t S, int center,      \
             double eps, int activation, const float *weight, const float *bias, uint16_t *y, \
             float *mean, float *rstd)                                                      \
    {                                                                                       \
        return row_forward_lowp(bf, x, M, K, G, S, center, eps, activation, weight, bias, y, \
                                mean, rstd);                                                \
    }
#define LOWP_INFER(name, bf)                                                                \
    int name(const uint16_t *x, int64_t N, int64_t C, int64_t S, const float *running_mean,  \
             const float *running_var, const float *weight, const float *bias, double eps,   \
             int activation, uint16_t *y)                                                   \
    {                                                                                       \
        return bn_forward_infer_lowp(bf, x, N, C, S, running_mean, running_var, weight, bias, \
                                     eps, activation, y);                                   \
    }

LOWP_ROW(cnorm_row_forward_f16, 0)
LOWP_ROW(cnorm_row_forward_bf16, 1)
LOWP_INFER(cnorm_bn_forward_infer_f16, 0)
LOWP_INFER(cnorm_bn_forward_infer_bf16, 1)
