"""``poolswap plan``: print a model's conversion plan.

    poolswap plan resnet50 --source torchvision --method adapool [--input-size 224] [--upsample adaunpool]

poolswap/cli.py adds it to the main parser with ``add_plan_command(subparsers)``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_plan_command", "run_plan"]


def _size(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size must be N, HxW or CxHxW, got {text!r}") from None
    if not values or len(values) > 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--input-size must be N, HxW or CxHxW, got {text!r}")
    return values * 2 if len(values) == 1 else values


def add_plan_command(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("plan", help="print the conversion plan of a torchvision or timm model")
    p.add_argument("model", help="model name, e.g. resnet50")
    p.add_argument("--source", choices=("torchvision", "timm"), default="torchvision")
    p.add_argument("--method", default="adapool", help="pooling method (registry name), default adapool")
    p.add_argument("--input-size", type=_size, default=None, help="N, HxW or CxHxW (default: the model's own)")
    p.add_argument("--upsample", choices=("adaunpool", "liftpool"), default=None)
    p.add_argument("--beta-mode", choices=("spatial", "channel", "scalar"), default="spatial")
    p.add_argument("--stride1-pools", action="store_true", help="also convert stride-1 pools")
    p.add_argument("--json", action="store_true", help="print plan.to_dict() as JSON instead of the table")
    p.set_defaults(handler=run_plan)
    return p


def run_plan(args: argparse.Namespace) -> int:
    import json

    from .core import plan

    if args.source == "timm":
        import timm

        model = timm.create_model(args.model, pretrained=False)
        input_size = args.input_size
    else:
        import torchvision

        from ..integrations.torchvision import input_size_of

        model = torchvision.models.get_model(args.model, weights=None)
        input_size = args.input_size or input_size_of(args.model)
    rules: dict[str, Any] = {"beta_mode": args.beta_mode, "stride1_pools": args.stride1_pools}
    if args.upsample:
        rules["upsample"] = args.upsample
    result = plan(model, args.method, input_size=input_size, **rules)
    print(json.dumps(result.to_dict(), indent=1) if args.json else result)
    return 0
