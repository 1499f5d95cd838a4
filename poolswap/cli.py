"""The ``poolswap`` command line.

    poolswap bench [--device cpu|cuda] [--shape N C H W ...] [--ops ...] [--json PATH|-]   speed and memory
    poolswap demo [--out DIR] [--image NAME]                                               pooling a photograph
    poolswap plan MODEL [--source torchvision|timm] [--method adapool] [--input-size 224]    a conversion plan

Each subcommand parses its arguments here and calls its module (:mod:`poolswap.bench`, :mod:`poolswap.demo`,
:mod:`poolswap.convert.cli`). Also runnable as ``python -m poolswap``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import bench
from .convert.cli import add_plan_command


def _add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time and measure the memory of every operator against max/avg pooling and the reference",
        description=(
            "Median forward and forward+backward time and peak extra memory of poolswap's operators (empool, "
            "edscwpool, idwpool, adapool with a spatial beta, adaunpool normalize='mean'), of torch's "
            "max_pool2d/avg_pool2d and of each operator's pure-PyTorch reference, in one run. Ratios are to "
            "max_pool2d (always measured); speedups are over the reference, timed at the same shape with "
            f"--reference-repeat repeats. Timing: {bench.TIMING_METHOD}. Memory: {bench.MEMORY_METHOD}."
        ),
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own setting)")
    p.add_argument(
        "--shape",
        type=int,
        nargs=4,
        action="append",
        metavar=("N", "C", "H", "W"),
        help="input shape; repeat the flag for several (default: 32 64 112 112 with k3 s2 p1 and 8 64 56 56 "
        "with k2 s2 p0)",
    )
    p.add_argument("--kernel", type=int, help="kernel size (default: 3 for --shape, else each default case's)")
    p.add_argument("--stride", type=int, help="stride (default: 2 for --shape, else each default case's)")
    p.add_argument("--padding", type=int, help="padding (default: 1 for --shape, else each default case's)")
    p.add_argument("--dtype", choices=tuple(bench.DTYPES), default="float32")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement, median reported (default 5)")
    p.add_argument(
        "--reference-repeat",
        type=int,
        default=bench.MAX_REFERENCE_REPEAT,
        choices=range(1, bench.MAX_REFERENCE_REPEAT + 1),
        help="at most this many timed runs of the slow pure-PyTorch reference per measurement, fewer once a "
        f"measurement has taken {bench.REFERENCE_BUDGET_S:g} s (default {bench.MAX_REFERENCE_REPEAT})",
    )
    p.add_argument(
        "--ops",
        nargs="+",
        choices=bench.OPS,
        default=list(bench.OPS),
        metavar="OP",
        help=f"operators, from {', '.join(bench.OPS)} (default: all; max_pool2d always runs, as the baseline)",
    )
    p.add_argument("--no-reference", action="store_true", help="skip the pure-PyTorch reference")
    p.add_argument("--json", metavar="PATH|-", help="also write the results as JSON (to stdout with '-')")
    p.set_defaults(handler=_bench)


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="pool a photograph with every operator and write a comparison figure",
        description=(
            "Pools a photograph bundled with scikit-image by 4x with max, avg, eMPool, eDSCWPool, IDWPool, "
            "adaPool (beta=0.5) and LiftDownPool (two 2x levels, untrained = Haar; LL band and sum of bands), "
            "shows LiftPool's LL/LH/HL/HH sub-bands, writes a PNG with a zoomed crop per method and prints the "
            "PSNR of each pooled image upsampled back vs the original. Needs the demo extras."
        ),
    )
    p.add_argument("--out", default="./poolswap-demo", help="output folder (default ./poolswap-demo)")
    p.add_argument(
        "--image",
        default="astronaut",
        help="scikit-image photograph: astronaut (default), chelsea, coffee, rocket or camera",
    )
    p.set_defaults(handler=_demo)


def _bench(args: argparse.Namespace) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    report = bench.run(
        bench.make_cases(args.shape, args.kernel, args.stride, args.padding),
        args.ops,
        device=args.device,
        dtype=args.dtype,
        repeat=args.repeat,
        reference=not args.no_reference,
        reference_repeat=args.reference_repeat,
        progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True),
    )
    table = bench.format_report(report)
    if args.json == "-":
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
            print(f"\nwrote {args.json}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        from . import demo
    except ImportError as exc:
        raise SystemExit(f"poolswap demo needs scikit-image and matplotlib (pip install 'poolswap[demo]'): {exc}")
    result = demo.run_demo(args.out, image=args.image)
    print(f"wrote {result['figure']}")
    for line in demo.summary(result):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``poolswap`` argument parser, one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="poolswap", description="poolswap: information-retaining pooling")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_bench(subparsers)
    _add_demo(subparsers)
    add_plan_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``poolswap`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as exc:
        parser.exit(2, f"poolswap {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
