"""The main job (`poolswap demo`): convert a network, train it one step, and pool a real photograph.

1. A torchvision ResNet-18 (random weights: no download) is converted with ``poolswap.convert(model,
   "adapool")``; its plan is printed (the stem's MaxPool2d(3, 2, 1) becomes an AdaPool2d with a 56x56 β);
   one forward and backward pass on a batch of two (the photo resized to 224x224 and its mirror image) shows
   that β receives a gradient (its norm is printed), i.e. that it trains.
2. A photograph bundled with scikit-image (no download) is pooled by a factor of 4 with torch's max and average
   pooling and poolswap's eMPool, eDSCWPool, IDWPool and adaPool (β = 0.5), all with kernel 4 and stride 4, and
   with LiftDownPool, whose lifting step halves a size, applied as two kernel-2 stride-2 levels (untrained: its
   learned parts start at zero, so it is the Haar wavelet; once as the LL band only, once as the paper's sum of
   all four bands). The figure also shows the four sub-bands LL, LH, HL, HH of one LiftPool level of the photo.

Each pooled image is scored against the original after nearest-neighbour upsampling back to full size (each
pooled pixel stands for its 4x4 block): PSNR and SSIM from ``skimage.metrics``. The full study over every
bundled photograph and kernel sizes 2, 3, 5 is `poolswap similarity` (:mod:`poolswap.similarity`). Needs the
``demo`` extras (scikit-image, matplotlib, tqdm; torchvision for the model step).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import Tensor, nn

from . import ops
from .nn import LiftDownPool2d

__all__ = ["IMAGES", "FACTOR", "METHODS", "load_image", "model_step", "pool_all", "run_demo", "summary"]

IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera")  # photographs shipped inside scikit-image
FACTOR = 4
METHODS = {  # key -> figure label
    "max": "MaxPool",
    "avg": "AvgPool",
    "empool": "eMPool",
    "edscwpool": "eDSCWPool",
    "idwpool": "IDWPool",
    "adapool": "adaPool β=0.5",
    "liftpool_ll": "LiftDownPool LL",
    "liftpool_sum": "LiftDownPool ΣLL..HH",
}
_BANDS = ("LL", "LH", "HL", "HH")


def load_image(name: str) -> Tensor:
    """scikit-image photograph ``name`` as a float32 (1, C, H, W) tensor in [0, 1], C = 3 (C = 1 for
    camera), cropped to sizes divisible by :data:`FACTOR`."""
    if name not in IMAGES:
        raise ValueError(f"image must be one of {IMAGES}, got {name!r}")
    array = getattr(skimage.data, name)()
    x = torch.from_numpy(array).float().div(255)
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    h, w = (s - s % FACTOR for s in x.shape[1:])
    return x[None, :, :h, :w].contiguous()


def _lift_pool(channels: int, bands: tuple[str, ...] | None) -> nn.Module:
    """LiftDownPool by FACTOR = 4: two 2x levels."""
    return nn.Sequential(*(LiftDownPool2d(2, 2, channels=channels, bands=bands) for _ in range(2)))


@torch.no_grad()
def pool_one(x: Tensor, key: str) -> Tensor:
    """x (1, C, H, W) pooled by FACTOR with method ``key`` of :data:`METHODS`: (1, C, H/4, W/4)."""
    k = FACTOR
    if key == "max":
        return F.max_pool2d(x, k)
    if key == "avg":
        return F.avg_pool2d(x, k)
    if key in ("empool", "edscwpool", "idwpool"):
        return getattr(ops, key)(x, k)
    if key == "adapool":
        return ops.adapool(x, torch.full((x.shape[2] // k, x.shape[3] // k), 0.5), k)
    if key in ("liftpool_ll", "liftpool_sum"):
        return _lift_pool(x.shape[1], ("LL",) if key == "liftpool_ll" else None)(x)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {key!r}")


def pool_all(x: Tensor, progress: bool = False) -> dict[str, Tensor]:
    """x (1, C, H, W) pooled by FACTOR with every method of :data:`METHODS`: key -> (1, C, H/4, W/4); a tqdm
    progress bar on stderr with ``progress``."""
    from tqdm.auto import tqdm

    return {key: pool_one(x, key) for key in tqdm(METHODS, desc="pooling", unit="method", disable=not progress)}


@torch.no_grad()
def _lift_bands(x: Tensor) -> dict[str, Tensor]:
    """The sub-bands of one (untrained) LiftPool level of x: name -> (1, C, H/2, W/2)."""
    return LiftDownPool2d(2, 2, channels=x.shape[1]).lift(x).bands


def _detail_crop(x: Tensor) -> tuple[int, int, int]:
    """(top, left, size) of the square crop, a quarter of the shorter side and aligned to FACTOR, with the most
    gradient energy: where pooling methods differ most."""
    size = max(8 * FACTOR, min(x.shape[2:]) // 4 // FACTOR * FACTOR)
    gray = x.mean(1, keepdim=True)
    energy = gray.diff(dim=2)[..., :, :-1].abs() + gray.diff(dim=3)[..., :-1, :].abs()
    scores = F.avg_pool2d(energy, size - 1, stride=FACTOR)[0, 0]
    i, j = divmod(int(scores.argmax()), scores.shape[1])
    return i * FACTOR, j * FACTOR, size


def _to_numpy(x: Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W, C) float64 (or (H, W) for one channel)."""
    a = x[0].permute(1, 2, 0).double().numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def _scores(x: Tensor, pooled: Tensor) -> dict[str, float]:
    """PSNR (dB) and SSIM of pooled, upsampled back by nearest-neighbour repetition, against x."""
    original = _to_numpy(x)
    restored = _to_numpy(F.interpolate(pooled, scale_factor=FACTOR, mode="nearest"))
    channel_axis = -1 if original.ndim == 3 else None
    return {
        "psnr": float(peak_signal_noise_ratio(original, restored, data_range=1.0)),
        "ssim": float(structural_similarity(original, restored, data_range=1.0, channel_axis=channel_axis)),
    }


def _show(ax, image: np.ndarray, title: str, **kwargs) -> None:
    if "vmin" not in kwargs:
        image = np.clip(image, 0.0, 1.0)
        kwargs = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if image.ndim == 2 else {}
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=8)


def _figure(x: Tensor, pooled: dict[str, Tensor], bands: dict[str, Tensor], crop, scores, path: Path) -> None:
    """Row 1: the photo and every pooled image; row 2: the same crop of each; row 3: LiftPool's sub-bands and
    the scores."""
    top, left, size = crop
    cols = 1 + len(pooled)
    fig = Figure(figsize=(2.1 * cols, 6.9), layout="constrained")
    axes = fig.subplots(3, cols)
    for ax in axes.flat:
        ax.set_axis_off()
    _show(axes[0, 0], _to_numpy(x), f"original {x.shape[3]}x{x.shape[2]}")
    axes[0, 0].add_patch(Rectangle((left, top), size, size, fill=False, edgecolor="red", linewidth=1.5))
    _show(axes[1, 0], _to_numpy(x[..., top : top + size, left : left + size]), "crop")
    t, l, s = top // FACTOR, left // FACTOR, size // FACTOR
    for col, (key, y) in enumerate(pooled.items(), start=1):
        _show(axes[0, col], _to_numpy(y), f"{METHODS[key]}\n{scores[key]['psnr']:.2f} dB")
        _show(axes[1, col], _to_numpy(y[..., t : t + s, l : l + s]), f"{METHODS[key]} (crop)")
    for col, name in enumerate(_BANDS):
        band = bands[name]
        if name == "LL":
            _show(axes[2, col], _to_numpy(band), "LiftPool LL (1 level)")
        else:  # signed detail: channel mean on a symmetric grey scale
            detail = band.mean(1)[0].numpy()
            bound = float(np.quantile(np.abs(detail), 0.99)) or 1.0
            _show(axes[2, col], detail, f"LiftPool {name}", cmap="gray", vmin=-bound, vmax=bound)
    ranked = sorted(scores, key=lambda k: scores[k]["psnr"], reverse=True)
    text = "\n".join(f"{scores[k]['psnr']:6.2f} dB  {scores[k]['ssim']:.3f}  {METHODS[k]}" for k in ranked)
    label = axes[2, len(_BANDS)].text(0.1, 0.5, "PSNR       SSIM\n" + text, va="center", family="monospace", fontsize=9)
    label.set_in_layout(False)
    fig.suptitle(
        f"Pooling by {FACTOR}x (kernel {FACTOR}, stride {FACTOR}; LiftDownPool: two untrained 2x levels). "
        "dB: PSNR of the pooled image upsampled back (nearest) vs the original",
        fontsize=9,
    )
    fig.savefig(path, dpi=100)


def model_step(x: Tensor) -> dict:
    """Converts a torchvision ResNet-18 (random weights) with adaPool and runs one forward and backward pass on
    the photo x (1, 3, H, W) resized to 224x224 plus its mirror image. Returns ``{"plan": str, "loss", "logits_shape",
    "beta": {parameter name: {"numel", "grad_norm"}}, "seconds"}``."""
    import torchvision

    import poolswap

    start = time.perf_counter()
    torch.manual_seed(0)
    model = poolswap.convert(torchvision.models.resnet18(weights=None), "adapool")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    photo = F.interpolate(x.expand(1, 3, -1, -1), size=(224, 224), mode="bilinear", antialias=True)
    batch = (torch.cat([photo, photo.flip(3)]) - mean) / std
    logits = model.train()(batch)
    loss = F.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    params = dict(model.named_parameters())
    beta = {
        name: {"numel": params[name].numel(), "grad_norm": float(params[name].grad.norm())}
        for name in poolswap.no_weight_decay(model)
    }
    return {
        "plan": str(poolswap.plan_of(model)),
        "loss": loss.item(),
        "logits_shape": list(logits.shape),
        "beta": beta,
        "seconds": time.perf_counter() - start,
    }


def run_demo(out_dir: str | Path, image: str = "astronaut", *, model: bool = True, progress: bool = False) -> dict:
    """The demo: :func:`model_step` (unless ``model=False``), then pools photograph ``image`` with every method and
    writes the figure into ``out_dir`` (created if needed); a tqdm bar over the methods with ``progress``.

    Returns ``{"figure": path of the PNG, "image": name, "factor": 4, "crop": {"top", "left", "size"} (full-
    resolution pixels), "scores": {method key: {"psnr": dB, "ssim": ...}}, "model": model_step's result or
    None}`` with the keys of :data:`METHODS`.
    """
    x = load_image(image)
    step = model_step(x) if model else None
    pooled = pool_all(x, progress=progress)
    scores = {key: _scores(x, y) for key, y in pooled.items()}
    crop = _detail_crop(x)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pooling_{image}.png"
    _figure(x, pooled, _lift_bands(x), crop, scores, path)
    return {
        "figure": str(path),
        "image": image,
        "factor": FACTOR,
        "crop": dict(zip(("top", "left", "size"), crop)),
        "scores": scores,
        "model": step,
    }


def model_summary(step: dict) -> list[str]:
    """What :func:`model_step` did, in a few lines (the plan table first)."""
    beta = ", ".join(
        f"{name} ({v['numel']:,} values): grad norm {v['grad_norm']:.3g}" for name, v in step["beta"].items()
    )
    return [
        "ResNet-18 (torchvision, random weights) converted with poolswap.convert(model, 'adapool'):",
        step["plan"],
        f"forward + backward on 2x3x224x224 (the photo and its mirror image): logits {step['logits_shape']}, "
        f"loss {step['loss']:.3f}; beta gradient: {beta or 'none'} — beta trains ({step['seconds']:.1f} s).",
    ]


def summary(result: dict) -> list[str]:
    """A short reading of :func:`run_demo`'s scores (best and worst PSNR, every method's PSNR/SSIM)."""
    scores = result["scores"]
    ranked = sorted(scores, key=lambda k: scores[k]["psnr"], reverse=True)
    table = ", ".join(f"{METHODS[k]} {scores[k]['psnr']:.2f}/{scores[k]['ssim']:.3f}" for k in ranked)
    best, worst = ranked[0], ranked[-1]
    weighted = [k for k in ("empool", "edscwpool", "idwpool", "adapool") if k in scores]
    spread = max(abs(scores[k]["psnr"] - scores["avg"]["psnr"]) for k in weighted) if "avg" in scores else None
    lines = [
        f"PSNR dB / SSIM of each {result['factor']}x-pooled {result['image']} upsampled back (nearest) vs the "
        f"original, best first: {table}.",
        f"Best {METHODS[best]} ({scores[best]['psnr']:.2f} dB), worst {METHODS[worst]} "
        f"({scores[worst]['psnr']:.2f} dB); LiftDownPool is untrained here (Haar), adaPool uses a fixed β = 0.5.",
    ]
    if spread is not None and "max" in scores:
        lines.append(
            f"Reading: every weighted pool (eM, eDSCW, IDW, adaPool) keeps far more of the photo than MaxPool "
            f"({scores['adapool']['psnr'] - scores['max']['psnr']:+.2f} dB for adaPool) but stays within "
            f"{spread:.2f} dB of plain AvgPool: on photos in [0, 1] their weights are close to uniform. "
            "The zoomed crops show it: MaxPool bloats bright details, the others look like AvgPool. "
            "`poolswap similarity` runs the full study over every bundled photo."
        )
    return lines
