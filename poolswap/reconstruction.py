"""Pool, then upsample back to full size (`poolswap similarity --study reconstruction`).

Same photographs, kernels (stride = kernel), value range and metrics as :mod:`poolswap.similarity`; each row
of :data:`PAIRS` is a (down, up) pair, scored with PSNR/SSIM of the upsampled image against the original:

* ``nearest`` / ``bilinear``: ``F.interpolate`` back to the original size (bilinear with
  ``align_corners=False``: pixel centres of a k x k window map onto its centre);
* ``adaUnPool mean`` / ``mass``: ``ops.adaunpool(z, x, β, k)`` with the pooling's own β and its weights
  recomputed from the original x. ``mean`` (default) keeps each window's mean equal to the pooled value (with
  uniform weights it is nearest upsampling); ``mass`` is the paper's Eq. 7: each window's *sum* equals the
  pooled value, so the image is k² times darker — reported as the paper defines it, not rescaled;
* ``LiftUpPool``: the paired untrained (Haar) LiftDownPool's inverse with its stored detail bands LH/HL/HH —
  exact, because it keeps the details (4x the data of the pooled image: not a fair comparison, shown to make
  that point); and the same with the details set to zero (= what the pooled LL band alone gives back).
  LiftPool exists for k = 2 only (n/a otherwise).

Unclipped outputs are scored (adaUnPool mean can overshoot 1 where one tap dominates a window).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import ops
from .nn import LiftUpPool2d
from .similarity import KERNELS, LIFT_KERNEL, PHOTOS, _check, _lift, make_report, photo_crops, score, to_numpy

__all__ = ["PAIRS", "reconstruct", "run"]

PAIRS: dict[str, str] = {  # key -> label
    "max+nearest": "MaxPool → nearest",
    "max+bilinear": "MaxPool → bilinear",
    "avg+nearest": "AvgPool → nearest",
    "avg+bilinear": "AvgPool → bilinear",
    "adapool+nearest": "adaPool β=0.5 → nearest",
    "adapool+bilinear": "adaPool β=0.5 → bilinear",
    "adapool+adaunpool_mean": "adaPool β=0.5 → adaUnPool mean",
    "adapool+adaunpool_mass": "adaPool β=0.5 → adaUnPool mass",
    "adapool_b0+adaunpool_mean": "adaPool β=0 (eM) → adaUnPool mean",
    "adapool_b1+adaunpool_mean": "adaPool β=1 (eDSCW) → adaUnPool mean",
    "liftpool+liftuppool": "LiftDownPool LL → LiftUpPool (with details)",
    "liftpool+liftuppool_no_details": "LiftDownPool LL → LiftUpPool (details zeroed)",
}
_BETAS = {"max": None, "avg": None, "adapool": 0.5, "adapool_b0": 0.0, "adapool_b1": 1.0}
PROTOCOLS = {"reconstruction": "pooled, upsampled back by the named method vs the original"}


@torch.no_grad()
def reconstruct(x: Tensor, pair: str, k: int) -> Tensor | None:
    """x (1, C, H, W), H and W divisible by k: pooled by k and brought back to (1, C, H, W) by ``pair`` (a key
    of :data:`PAIRS`), or None where it does not apply (LiftPool at k ≠ 2)."""
    if pair not in PAIRS:
        raise ValueError(f"pair must be one of {', '.join(PAIRS)}, got {pair!r}")
    down, up = pair.split("+")
    size = x.shape[2:]
    if down == "liftpool":
        if k != LIFT_KERNEL:
            return None
        pool = _lift(x, ("LL",))
        result = pool.lift(x)
        if up == "liftuppool_no_details":
            bands = {name: b if name == "LL" else torch.zeros_like(b) for name, b in result.bands.items()}
            result = result._replace(bands=bands)
        return LiftUpPool2d(pool)(result.output, result)
    if down == "max":
        z = F.max_pool2d(x, k)
    elif down == "avg":
        z = F.avg_pool2d(x, k)
    else:
        beta = torch.tensor(_BETAS[down], dtype=x.dtype)
        z = ops.adapool(x, beta, k)
    if up in ("nearest", "bilinear"):
        return F.interpolate(z, size=size, mode=up, **({"align_corners": False} if up == "bilinear" else {}))
    return ops.adaunpool(z, x, beta, k, normalize=up.split("_")[1])


def run(
    images: Sequence[str] | None = None,
    kernels: Sequence[int] = KERNELS,
    *,
    input_scale: float = 1.0,
    progress: bool = True,
) -> dict:
    """The reconstruction study, in :func:`poolswap.similarity.run`'s report format (one protocol,
    ``"reconstruction"``, its rows the keys of :data:`PAIRS`); each cell also has ``max_abs_error``."""
    images = list(PHOTOS) if images is None else list(images)
    kernels = _check(images, kernels, input_scale)
    cells = {str(k): {p: [] for p in PAIRS} for k in kernels}
    shapes: list[list[int]] = []
    for k, x in photo_crops(images, kernels, shapes, "reconstruction", progress):
        original = to_numpy(x)
        for pair in PAIRS:
            u = reconstruct(x * input_scale, pair, k)
            if u is None:
                cells[str(k)][pair].append(None)
                continue
            restored = to_numpy(u / input_scale)
            cell = score(original, restored)
            cell["max_abs_error"] = float(abs(restored - original).max())
            cells[str(k)][pair].append(cell)
    scores = {"reconstruction": cells}
    return make_report(images, shapes, kernels, input_scale, scores, protocols=PROTOCOLS, methods=PAIRS)


def exact(report: dict, pair: str, k: str, tol: float = 1e-5) -> bool:
    """Whether ``pair`` at kernel ``k`` gave every photo back to within ``tol`` (float32 rounding)."""
    values = report["scores"]["reconstruction"][k][pair]
    return bool(values) and all(c is not None and c["max_abs_error"] <= tol for c in values)
