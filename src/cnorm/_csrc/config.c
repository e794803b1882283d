/* Library configuration: thread count, fork safety, build facts. */
#include "common.h"

static int threads_override = 0;   /* 0: follow OpenMP's own setting */
static volatile int serial_only = 0;

void cnorm_set_num_threads(int n) { threads_override = n > 0 ? n : 0; }

void cnorm_set_serial_only(int on) { serial_only = on != 0; }

int cnorm_get_num_threads(void)
{
#ifdef _OPENMP
    if (serial_only)
        return 1;
    return threads_override > 0 ? threads_override : omp_get_max_threads();
#else
    return 1;
#endif
}

int cnorm_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int cnorm_threads_for(int64_t work, int64_t tasks)
{
    if (work < 2 * CNORM_PARALLEL_MIN_WORK || tasks < 2)
        return 1;
    int64_t n = cnorm_get_num_threads();
    n = cnorm_min64(n, tasks);
    n = cnorm_min64(n, work / CNORM_PARALLEL_MIN_WORK);
    return n < 1 ? 1 : (int)n;
}

void cnorm_moments_merge(double *na, double *mean_a, double *m2_a,
                         double nb, double mean_b, double m2_b)
{
    cnorm_merge(na, mean_a, m2_a, nb, mean_b, m2_b);
}

const char *cnorm_simd_path(void) { return "baseline"; }
