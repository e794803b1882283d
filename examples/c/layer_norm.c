/* Plain C against cnorm's kernels: layer norm of a few rows, no Python
 * interpreter started.  Build (see the README, "C and Cython API"):
 *
 *   cc layer_norm.c -I"$(python -c 'import cnorm; print(cnorm.get_include())')" \
 *      "$(python -c 'import cnorm.kernels as k; print(k.__file__)')" \
 *      $(python3-config --embed --ldflags) -o layer_norm
 *
 * The kernels live in the extension module cnorm/kernels*.so, which also
 * holds its Python bindings: hence libpython on the link line, although
 * nothing here calls Python. */
#include <stdio.h>
#include "cnorm.h"

enum { ROWS = 3, COLS = 5 };

int main(void)
{
    float x[ROWS * COLS], y[ROWS * COLS], mean[ROWS], rstd[ROWS];
    float weight[COLS] = {1.0f, 0.5f, 2.0f, 1.0f, -1.0f}, bias[COLS] = {0, 1, 0, -1, 0};
    for (int i = 0; i < ROWS * COLS; i++)
        x[i] = (float)(i * i % 7) - 2.5f;
    /* M rows of K values, one parameter per column (G = S = 1), centred */
    int rc = cnorm_row_forward_f32(x, ROWS, COLS, 1, 1, 1, 1e-5, CNORM_ACT_NONE, weight, bias, y,
                                   mean, rstd);
    if (rc != CNORM_OK) {
        fprintf(stderr, "cnorm_row_forward_f32 returned %d\n", rc);
        return 1;
    }
    for (int i = 0; i < ROWS * COLS; i++)
        printf("%.9g%c", y[i], i % COLS == COLS - 1 ? '\n' : ' ');
    return 0;
}
