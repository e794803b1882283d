#!/bin/bash
# Thread scaling and SIMD paths on a many-core machine, in one run:
#   bash benchmarks/scaling.sh OUTDIR
# Builds cnorm with the machine's python3 (Cython, NumPy and pytest already
# installed there, no network needed), runs the self-check and the test
# suite on the best SIMD path the CPU has, then the benchmark table at
# 1..16 threads and, single-threaded, once per SIMD path, and the pass
# harness benchmarks/passes.c.  What it prints is also written under OUTDIR
# (eight files at most).
set -uo pipefail
out=${1:?usage: scaling.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

{
    echo "== machine"
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L[123])'
    for f in avx2 fma avx512f avx512vl avx512bw avx512dq; do
        grep -qw "$f" /proc/cpuinfo && echo "has $f" || echo "lacks $f"
    done
    uptime
} 2>&1 | tee "$out/machine.txt"

echo "== build"
$py -m pip install --no-build-isolation --no-deps -q . >/tmp/cnorm-build.log 2>&1 \
    || { tail -30 /tmp/cnorm-build.log; exit 1; }
gcc -O3 -fopenmp -Iinclude -Isrc/cnorm/_csrc src/cnorm/_csrc/[a-z]*.c \
    benchmarks/passes.c -o /tmp/cnorm-passes -lm || exit 1
cd /tmp || exit 1   # import the installed package, not the source tree
$py -c "import cnorm; cnorm.show_config()" | tee -a "$out/machine.txt"

echo "== self-check and tests (default path)"
$py -m cnorm check 2>&1 | tail -3
$py -m pytest "$OLDPWD/tests" -q -p no:cacheprovider 2>&1 | tail -4 | tee "$out/tests.txt"

echo "== table at 1..16 threads"
$py -m cnorm bench --threads 1,2,4,8,16 --json "$out/threads.json" 2>&1 \
    | tee "$out/threads.txt" | grep -E '^(case|batch|layer|group|instance|rms)'

echo "== one thread per SIMD path"
for path in baseline avx2 avx512; do
    CNORM_SIMD=$path $py -m cnorm bench --threads 1 --quick >"$out/simd_$path.txt" 2>&1
    grep -E '^cnorm|^batch_norm_train 32|^layer_norm 32' "$out/simd_$path.txt"
done

echo "== passes of the kernels, one thread"
{
    /tmp/cnorm-passes 32 64 3136 100352 64 1 48 64 12544
    /tmp/cnorm-passes --evict 8 256 196 1 256 1568 1 64 49
    /tmp/cnorm-passes --rows 4096 768 1 1 --rows 1024 6272 32 3136 --rows 512 3136 64 3136
} 2>&1 | tee "$out/passes.txt"
