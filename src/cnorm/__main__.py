"""Command line: ``python -m cnorm [check | bench [options]]``.

Without a command it runs the main job: the self-check, then (if it passed)
the benchmark table with default settings.
"""
import argparse
import os
import sys
from pathlib import Path

from cnorm import _selfcheck
from cnorm.bench import engine as _bench
from cnorm.bench import plot as _plot


def _positive_ints(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1 or max(values) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"thread counts must be in [1, 2**31), got {text!r}")
    return values


def _shape(text):
    try:
        return _bench.parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_bench_options(p):
    p.add_argument("--threads", type=_positive_ints, default=[1, 2], metavar="LIST",
                   help="thread counts to measure at, comma-separated (default: 1,2)")
    p.add_argument("--shapes", type=_shape, nargs="+", metavar="SHAPE",
                   help="replace the default cases: every op that accepts each shape, e.g. "
                        "32x64x56x56 1x768 (batch norm on axis 1, layer/RMS norm over the "
                        "last dim, group and instance norm when there are spatial dims)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="dtype of the inputs (default: float32)")
    p.add_argument("--cases", nargs="+", metavar="TEXT",
                   help="keep only cases whose name contains one of these substrings")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="rounds per case (default: adaptive, within a time budget per case)")
    p.add_argument("--json", metavar="PATH", help="also write raw medians, ratios and the "
                                                   "environment as JSON to PATH")
    p.add_argument("--quick", action="store_true",
                   help="smaller time budget per case, no out-of-cache case")
    p.add_argument("--regime", choices=("warm", "cold", "both"), default="warm",
                   help="warm: each contender repeated on its own buffers (default); cold: "
                        "caches flushed before every timed call; both: a table for each")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw each contender's time over the copy's, per case (needs "
                        "matplotlib)")


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m cnorm",
        description="Without a command: self-check, then the benchmark with default settings.")
    commands = parser.add_subparsers(dest="command", metavar="{check,bench}")
    commands.add_parser("check", help="compare cnorm with a float64 NumPy reference",
                        description="Compare cnorm with a float64 NumPy reference on small "
                                    "shapes; exit status 1 on any failure.")
    bench = commands.add_parser(
        "bench", help="benchmark cnorm against a copy, NumPy and installed peers",
        description="Benchmark cnorm against np.copyto of the same bytes, plain NumPy, and "
                    "PyTorch / ONNX Runtime when installed; contenders run interleaved and "
                    "medians are reported.")
    _add_bench_options(bench)
    return parser, bench


def _bench_command(parser, args):
    """parser: the bench subcommand's, for its usage line in errors."""
    cases = _bench.cases_for_shapes(args.shapes) if args.shapes else _bench.default_cases()
    if args.cases:
        cases = [c for c in cases if any(t in c.name for t in args.cases)]
        if not cases:
            parser.error(f"no case name contains any of {args.cases}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.plot and not _plot.available():   # before minutes of measuring
        parser.error(_plot.NEEDS)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None and (Path(path).is_dir() or not Path(path).parent.is_dir()):
            parser.error(f"{option} {path}: not a file in an existing directory")
    if args.plot and not _plot.supports(args.plot):
        parser.error(f"--plot {args.plot}: matplotlib cannot write that format")
    regimes = ("warm", "cold") if args.regime == "both" else (args.regime,)
    try:
        results = _bench.bench(cases, args.threads, args.dtype, quick=args.quick,
                               rounds=args.repeat, json_path=args.json, regimes=regimes)
    except MemoryError:
        parser.error("not enough memory for the cases' arrays")
    if args.plot:
        _plot.plot_ratios(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def main(argv=None):
    parser, bench_parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        return 0 if _selfcheck.run() else 1
    if args.command == "bench":
        return _bench_command(bench_parser, args)
    if not _selfcheck.run():
        return 1
    print()
    return _bench_command(bench_parser, parser.parse_args(["bench"]))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:   # the reader (| head) left: no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
