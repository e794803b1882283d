/* The runtime's out-of-line parts (runtime.h): thread policy, scratch, the
 * public Chan merge and the scaled float64 moments. */
#include <float.h>
#include <math.h>
#include "runtime.h"

#if defined(_OPENMP) && defined(__linux__)
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double seconds_of(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds the machine spent busy (not idle, not waiting on I/O) since
 * boot: /proc/stat's first line, machine-wide (also in a container); < 0
 * when it cannot be read. */
static double machine_busy_seconds(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int got = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                         &v[3], &v[4], &v[5], &v[6], &v[7])
                : 0;
    if (f)
        fclose(f);
    if (got < 5)
        return -1.0;
    unsigned long long busy = 0;
    for (int i = 0; i < 8; i++)
        busy += i == 3 || i == 4 ? 0 : v[i];   /* idle and iowait are not busy */
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

/* CPUs other processes leave free: the machine's online CPUs less the CPU
 * time everyone but this process used over the last ~100 ms window (this
 * process's own threads, spinning team members included, do not count),
 * at most the CPUs this process may run on.  One caller at a time samples;
 * the others use the last value.  Not a timed test: benchmarks/contention.py
 * shows its effect. */
static int64_t free_cpus(void)
{
    static int sampling = 0;
    static int64_t free_now = INT32_MAX;
    static double window_start = -1.0, busy_start, own_start;
    if (!__atomic_exchange_n(&sampling, 1, __ATOMIC_ACQUIRE)) {
        const double now = seconds_of(CLOCK_MONOTONIC);
        if (now - window_start >= 0.1) {
            const double busy = machine_busy_seconds();
            const double own = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
            /* a window over a long pause would average away the present */
            if (busy >= 0.0 && window_start >= 0.0 && now - window_start < 1.0) {
                const double others = (busy - busy_start - (own - own_start)) /
                                      (now - window_start);
                const double idle = (double)sysconf(_SC_NPROCESSORS_ONLN) - others;
                __atomic_store_n(&free_now, (int64_t)(idle + 0.5), __ATOMIC_RELAXED);
            }
            window_start = now;
            busy_start = busy;
            own_start = own;
        }
        __atomic_store_n(&sampling, 0, __ATOMIC_RELEASE);
    }
    return cnorm_min64(omp_get_num_procs(), __atomic_load_n(&free_now, __ATOMIC_RELAXED));
}
#else
static int64_t free_cpus(void) { return INT32_MAX; }
#endif

int cnorm_threads_for(int64_t work, int64_t tasks)
{
    if (work < 2 * CNORM_PARALLEL_MIN_WORK || tasks < 2)
        return 1;
    int64_t n = cnorm_get_num_threads();
    if (n > 1 && cnorm_threads_default())
        n = cnorm_min64(n, free_cpus());
    n = cnorm_min64(n, tasks);
    n = cnorm_min64(n, work / CNORM_PARALLEL_MIN_WORK);
    return n < 1 ? 1 : (int)n;
}

void cnorm_moments_merge(double *na, double *mean_a, double *m2_a,
                         double nb, double mean_b, double m2_b)
{
    cnorm_merge(na, mean_a, m2_a, nb, mean_b, m2_b);
}

#define CNORM_LINE 64

int cnorm_scratch_alloc(int n, const int64_t *bytes, void **parts, void **block)
{
    int64_t total = 0;
    char *base;
    for (int i = 0; i < n; i++)
        total += cnorm_cdiv64(bytes[i], CNORM_LINE) * CNORM_LINE;
    *block = NULL;
    for (int i = 0; i < n; i++)
        parts[i] = NULL;
    if (total == 0)
        return CNORM_OK;
    /* one line of slack to start the first part on a line boundary */
    base = malloc((size_t)(total + CNORM_LINE));
    if (!base)
        return CNORM_ENOMEM;
    *block = base;
    base += (CNORM_LINE - (uintptr_t)base % CNORM_LINE) % CNORM_LINE;
    for (int i = 0; i < n; i++) {
        if (bytes[i])
            parts[i] = base;
        base += cnorm_cdiv64(bytes[i], CNORM_LINE) * CNORM_LINE;
    }
    return CNORM_OK;
}

int cnorm_moments_scaled(const double *x, int64_t runs, int64_t ld, int64_t len,
                         double *mean, double *m2)
{
    double big = 0.0, sum = 0.0, squares = 0.0, m;
    int64_t i, k;
    int e, finite = 1;
    for (i = 0; i < runs; i++)
        for (k = 0; k < len; k++) {
            const double v = fabs(x[i * ld + k]);
            big = v > big ? v : big;
            finite &= v <= DBL_MAX;   /* 0 for NaN and inf */
        }
    if (!finite) {   /* the sum of the non-finite values alone: +-inf, or NaN */
        for (i = 0; i < runs; i++)
            for (k = 0; k < len; k++)
                if (!(fabs(x[i * ld + k]) <= DBL_MAX))
                    sum += x[i * ld + k];
        *mean = sum;
        *m2 = NAN;
        return 0;
    }
    (void)frexp(big, &e);   /* values scaled by 2^-e are below 1 */
    for (i = 0; i < runs; i++)
        for (k = 0; k < len; k++)
            sum += ldexp(x[i * ld + k], -e);
    m = sum / (double)(runs * len);
    for (i = 0; i < runs; i++)
        for (k = 0; k < len; k++) {
            const double d = ldexp(x[i * ld + k], -e) - m;
            squares += d * d;
        }
    *mean = ldexp(m, e);
    *m2 = ldexp(squares, 2 * e);
    return 1;
}
