/* The runtime's out-of-line parts (runtime.h): thread policy, scratch, and
 * the public Chan merge. */
#include "runtime.h"

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
