"""The ``poolswap`` command line.

    poolswap bench [--device cpu|cuda] [--shape N C H W ...] [--ops ...] [--json PATH|-]   speed and memory
    poolswap demo [--out DIR] [--image NAME] [--no-model]                                  the main job
    poolswap plan MODEL [--source torchvision|timm] [--method adapool] [--input-size 224]    a conversion plan
    poolswap similarity [--images ...] [--kernels 2 3 5] [--study ...] [--json PATH|-] [--figure PATH] [--out DIR]
                                                                   how much of a photo each pooling keeps

Each subcommand parses its arguments here and calls its module (:mod:`poolswap.bench`, :mod:`poolswap.demo`,
:mod:`poolswap.similarity`, :mod:`poolswap.convert.cli`). Also runnable as ``python -m poolswap``.
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
        help="convert a ResNet-18 with adaPool and train it a step; pool a photograph with every operator",
        description=(
            "Converts a torchvision ResNet-18 (random weights) with adaPool, prints its plan and runs a forward "
            "and backward pass (printing beta's gradient norm). Pools a photograph bundled with scikit-image by "
            "4x with max, avg, eMPool, eDSCWPool, IDWPool, "
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
    p.add_argument("--no-model", action="store_true", help="skip the ResNet-18 conversion and training step")
    p.set_defaults(handler=_demo)


def _add_similarity(subparsers) -> None:
    p = subparsers.add_parser(
        "similarity",
        help="how much of real photographs each pooling method keeps, and how well each pair upsamples back",
        description=(
            "Pools every real photograph bundled with scikit-image (no download) with kernel = stride = k by max, "
            "avg, eMPool, eDSCWPool, IDWPool, adaPool (beta 0, 0.5, 1) and LiftDownPool (untrained = Haar; LL "
            "and sum of bands; k=2 only) and scores it against the original with skimage.metrics PSNR and SSIM "
            "under two protocols (upsampled back by nearest repetition vs the original; vs an anti-aliased "
            "skimage resize to the pooled size). The reconstruction study pools and upsamples back (nearest, "
            "bilinear, adaUnPool mean/mass with the pool's weights, LiftUpPool with and without its details). "
            "Prints mean +- std tables over the photos and writes a figure (one zoomed crop per method and k). "
            "Needs the demo extras."
        ),
    )
    p.add_argument("--images", nargs="+", metavar="NAME", help="photos (default: all bundled photographs)")
    p.add_argument("--kernels", nargs="+", type=int, default=[2, 3, 5], metavar="K", help="default 2 3 5")
    p.add_argument(
        "--study",
        nargs="+",
        choices=("similarity", "reconstruction"),
        default=["similarity", "reconstruction"],
        help="which studies to run (default both)",
    )
    p.add_argument(
        "--input-scale",
        type=float,
        default=1.0,
        help="pool S*x (photo in [0, 1]) and divide by S: eMPool's weights depend on the value scale (default 1)",
    )
    p.add_argument(
        "--out", default="./poolswap-similarity", help="folder for the figure (default ./poolswap-similarity)"
    )
    p.add_argument("--figure", metavar="PATH", help="figure path (default OUT/similarity_<figure image>.png)")
    p.add_argument("--figure-image", metavar="NAME", help="photo of the figure (default: the first of --images)")
    p.add_argument("--json", metavar="PATH|-", help="also write the results as JSON (to stdout with '-')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_similarity)


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
        raise SystemExit(f"poolswap demo needs scikit-image, matplotlib and tqdm (pip install 'poolswap[demo]'): {exc}")
    if args.image not in demo.IMAGES:
        raise ValueError(f"--image must be one of {', '.join(demo.IMAGES)}, got {args.image!r}")
    result = demo.run_demo(args.out, image=args.image, model=not args.no_model, progress=True)
    if result["model"] is not None:
        for line in demo.model_summary(result["model"]):
            print(line)
        print()
    print(f"wrote {result['figure']}")
    for line in demo.summary(result):
        print(line)
    return 0


def _similarity(args: argparse.Namespace) -> int:
    try:
        from . import similarity
    except ImportError as exc:
        raise SystemExit(
            f"poolswap similarity needs scikit-image, matplotlib and tqdm (pip install 'poolswap[demo]'): {exc}"
        )
    result = similarity.run_studies(
        args.images,
        args.kernels,
        args.study,
        input_scale=args.input_scale,
        out_dir=args.out,
        figure=args.figure,
        figure_image=args.figure_image,
        progress=not args.no_progress,
    )
    text = similarity.format_studies(result)
    if args.json == "-":
        print(text, file=sys.stderr)
        print(json.dumps(similarity.studies_to_json(result), indent=2))
    else:
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(similarity.studies_to_json(result), f, indent=2)
            print(f"\nwrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``poolswap`` argument parser, one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="poolswap", description="poolswap: information-retaining pooling")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_bench(subparsers)
    _add_demo(subparsers)
    add_plan_command(subparsers)
    _add_similarity(subparsers)
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
