"""How much of a photograph each pooling method keeps (`poolswap similarity`; the adaPool paper's §V-B, Fig. 3).

Every real photograph bundled inside scikit-image (:data:`PHOTOS`; nothing is downloaded) is pooled with kernel
k and stride k, k ∈ {2, 3, 5}, by each method of :data:`METHODS` and scored against the original with
``skimage.metrics.peak_signal_noise_ratio`` and ``skimage.metrics.structural_similarity`` (data range 1,
colour photos with ``channel_axis``). The paper does not say how a smaller image is compared with the original,
so two protocols are reported, both treating every method the same:

* ``upsampled``: the pooled image is brought back to full size by nearest-neighbour repetition (each pooled
  pixel stands for its k x k window; no interpolation that could favour one method) and compared with the
  original.
* ``reference``: the pooled image is compared, at its own size, with ``skimage.transform.resize(original,
  (H/k, W/k), order=1, anti_aliasing=True)`` — an anti-aliased (Gaussian σ = (k−1)/2 prefilter) downscale.
  AvgPool is itself a box-filtered downscale, so this protocol leans towards averaging methods by construction.

Photos are float32 in [0, 1] (``--input-scale S`` pools S·x and divides the result by S: eMPool's softmax
weights depend on the value scale), each channel pooled on its own (RGB as C = 3, N = 1), cropped to a multiple
of k. ``moon`` is stored as a 256x256 photo with every pixel repeated 2x2 — every 2x2 pooling would return it
exactly — so it is used at its native 256x256. adaPool uses a constant β (0.5, and the ends 0 and 1, which
equal eMPool and eDSCWPool). LiftDownPool is untrained — its learned parts start at zero, so it is the Haar
wavelet and its LL band is the 2x2 mean — and it halves a size per level, so it only exists for k = 2
(stride 2): the k = 3 and k = 5 cells are "n/a". The reconstruction study is :mod:`poolswap.reconstruction`.

Scores: a PSNR of +∞ (identical images) is kept as ``math.inf`` in Python and written as the string ``"inf"``
in JSON; a cell that does not apply (LiftPool at k ≠ 2) is ``None`` / ``null``. Needs the ``demo`` extras
(scikit-image, matplotlib, tqdm).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import skimage
import skimage.data
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize
from torch import Tensor

from . import ops
from .nn import LiftDownPool2d

__all__ = [
    "PHOTOS",
    "EXCLUDED",
    "KERNELS",
    "METHODS",
    "PROTOCOLS",
    "load_photo",
    "photo_crops",
    "make_report",
    "pool",
    "score",
    "run",
    "summarize",
    "format_tables",
    "to_json",
    "write_figure",
]

# Real photographs whose files ship inside the scikit-image package (checked by load_photo: never downloaded).
# name -> (skimage.data function, file under skimage/data, colour?)
PHOTOS: dict[str, tuple[str, str, bool]] = {
    "astronaut": ("astronaut", "astronaut.png", True),
    "chelsea": ("chelsea", "chelsea.png", True),
    "coffee": ("coffee", "coffee.png", True),
    "rocket": ("rocket", "rocket.jpg", True),
    "motorcycle": ("stereo_motorcycle", "motorcycle_left.png", True),  # the left view of the stereo pair
    "camera": ("camera", "camera.png", False),
    "coins": ("coins", "coins.png", False),
    "moon": ("moon", "moon.png", False),  # stored 2x pixel-repeated: used at its native 256x256 (see load_photo)
    "clock": ("clock", "clock_motion.png", False),
    "text": ("text", "text.png", False),
    "page": ("page", "page.png", False),
    "brick": ("brick", "brick.png", False),
    "grass": ("grass", "grass.png", False),
    "gravel": ("gravel", "gravel.png", False),
}
# Every other image function of skimage.data (0.26) and why it is not used.
EXCLUDED: dict[str, str] = {
    "cat": "the same photograph as chelsea",
    "hubble_deep_field": "telescope image (scientific imaging, not a camera photograph)",
    "retina": "fundus image (medical imaging)",
    "microaneurysms": "fundus image crop (medical imaging)",
    "immunohistochemistry": "microscopy",
    "cell": "microscopy",
    "horse": "binary silhouette (synthetic)",
    "logo": "drawing (synthetic)",
    "colorwheel": "synthetic",
    "shepp_logan_phantom": "synthetic",
    "checkerboard": "synthetic",
    "binary_blobs": "synthetic",
    "lfw_subset": "200 faces of 25x25 pixels (a data set, too small to pool by 5)",
    **{
        name: "not bundled: needs a download (pooch)"
        for name in ("brain", "cells3d", "eagle", "human_mitosis", "kidney", "lily", "nickel_solidification",
                     "palisades_of_vogt", "protein_transport", "skin", "vortex")
    },
}
KERNELS = (2, 3, 5)
METHODS: dict[str, str] = {  # key -> label
    "max": "MaxPool",
    "avg": "AvgPool",
    "empool": "eMPool",
    "edscwpool": "eDSCWPool",
    "idwpool": "IDWPool",
    "adapool_b0": "adaPool β=0",
    "adapool": "adaPool β=0.5",
    "adapool_b1": "adaPool β=1",
    "liftpool_ll": "LiftDownPool LL",
    "liftpool_sum": "LiftDownPool ΣLL..HH",
}
BETAS = {"adapool_b0": 0.0, "adapool": 0.5, "adapool_b1": 1.0}
LIFT_KERNEL = 2  # LiftDownPool halves a size: stride 2 only
WIN_MARGIN = 1e-6
PROTOCOLS: dict[str, str] = {
    "upsampled": "pooled image upsampled back to full size by nearest-neighbour repetition vs the original",
    "reference": "pooled image vs skimage.transform.resize(original, (H/k, W/k), order=1, anti_aliasing=True)",
}


def _data_dir() -> Path:
    return Path(skimage.data.__file__).parent


def load_photo(name: str, multiple_of: int = 1) -> Tensor:
    """Photograph ``name`` of :data:`PHOTOS` as float32 (1, C, H, W) in [0, 1] (C = 3 colour, 1 grey), cropped
    to sizes divisible by ``multiple_of``. Raises if its file is not inside the scikit-image package (so it
    never triggers a download)."""
    if name not in PHOTOS:
        raise ValueError(f"image must be one of {', '.join(PHOTOS)}, got {name!r}")
    function, filename, _ = PHOTOS[name]
    if not (_data_dir() / filename).is_file():
        raise ValueError(f"image {name!r}: {filename} is not bundled with this scikit-image ({skimage.__version__})")
    array = getattr(skimage.data, function)()
    if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
        array = array[0]
    if _pixel_repeated(array):  # moon.png is a 256x256 photo stored with every pixel repeated 2x2: any 2x2 pooling
        array = array[::2, ::2]  # would give it back exactly, so use its native resolution
    x = torch.from_numpy(np.ascontiguousarray(array)).float().div(255)
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    h, w = (s - s % multiple_of for s in x.shape[1:])
    return x[None, :, :h, :w].contiguous()


def _pixel_repeated(array: np.ndarray) -> bool:
    """Whether ``array`` (H, W[, C]) consists of constant 2x2 blocks (an image upsampled by pixel repetition)."""
    h, w = array.shape[0] // 2 * 2, array.shape[1] // 2 * 2
    a = array[:h, :w]
    return bool(h and w) and all(np.array_equal(a[i::2, j::2], a[::2, ::2]) for i in (0, 1) for j in (0, 1))


def applies(method: str, k: int) -> bool:
    """Whether ``method`` can pool by kernel = stride = k (LiftDownPool: k = 2 only)."""
    return not method.startswith("liftpool") or k == LIFT_KERNEL


def _lift(x: Tensor, bands):
    return LiftDownPool2d(LIFT_KERNEL, LIFT_KERNEL, channels=x.shape[1], bands=bands)


@torch.no_grad()
def pool(x: Tensor, method: str, k: int) -> Tensor | None:
    """x (1, C, H, W) pooled with kernel = stride = k by ``method`` (a key of :data:`METHODS`), or None where
    the method cannot pool by k (LiftDownPool at k ≠ 2)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not applies(method, k):
        return None
    if method == "max":
        return F.max_pool2d(x, k)
    if method == "avg":
        return F.avg_pool2d(x, k)
    if method in ("empool", "edscwpool", "idwpool"):
        return getattr(ops, method)(x, k)
    if method in BETAS:
        return ops.adapool(x, torch.tensor(BETAS[method], dtype=x.dtype), k)
    return _lift(x, ("LL",) if method == "liftpool_ll" else None)(x)


def to_numpy(x: Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W, C) float64, or (H, W) for one channel."""
    a = x[0].permute(1, 2, 0).double().numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def score(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``test`` against ``reference`` (float arrays in [0, 1], (H, W) or (H, W, C)) with
    ``skimage.metrics`` and data range 1. Identical images give PSNR ``math.inf`` and SSIM 1."""
    if reference.shape != test.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {test.shape}")
    channel_axis = -1 if reference.ndim == 3 else None
    ssim = float(structural_similarity(reference, test, data_range=1.0, channel_axis=channel_axis))
    if np.array_equal(reference, test):  # skimage would divide by zero (and warn)
        return {"psnr": math.inf, "ssim": ssim}
    return {"psnr": float(peak_signal_noise_ratio(reference, test, data_range=1.0)), "ssim": ssim}


def reference_downscale(original: np.ndarray, k: int) -> np.ndarray:
    """The ``reference`` protocol's target: an anti-aliased downscale of ``original`` by k."""
    shape = (original.shape[0] // k, original.shape[1] // k) + original.shape[2:]
    return resize(original, shape, order=1, anti_aliasing=True)


def _scaled(fn: Callable[[Tensor], Tensor | None], x: Tensor, scale: float) -> Tensor | None:
    if scale == 1.0:
        return fn(x)
    y = fn(x * scale)
    return None if y is None else y / scale


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="photo", disable=not enabled, leave=False)


def run(
    images: Sequence[str] | None = None,
    kernels: Sequence[int] = KERNELS,
    *,
    input_scale: float = 1.0,
    progress: bool = True,
) -> dict:
    """The similarity study. Returns ``{"meta", "images": [{"name", "shape"}], "scores": {protocol: {k (str):
    {method: [{"psnr", "ssim"} per image, or None where n/a]}}}}``; see :func:`summarize`."""
    images = list(PHOTOS) if images is None else list(images)
    kernels = _check(images, kernels, input_scale)
    scores = {p: {str(k): {m: [] for m in METHODS} for k in kernels} for p in PROTOCOLS}
    shapes: list[list[int]] = []
    for k, x in photo_crops(images, kernels, shapes, "similarity", progress):
        original = to_numpy(x)
        target = reference_downscale(original, k)
        for method in METHODS:
            y = _scaled(lambda t: pool(t, method, k), x, input_scale)
            for protocol in PROTOCOLS:
                cell = scores[protocol][str(k)][method]
                if y is None:
                    cell.append(None)
                elif protocol == "upsampled":
                    cell.append(score(original, to_numpy(y.repeat_interleave(k, 2).repeat_interleave(k, 3))))
                else:
                    cell.append(score(target, to_numpy(y)))
    return make_report(images, shapes, kernels, input_scale, scores, protocols=PROTOCOLS, methods=METHODS)


def photo_crops(
    images: Sequence[str], kernels: Sequence[int], shapes: list, desc: str, progress: bool
) -> Iterator[tuple[int, Tensor]]:
    """For each photo (its (C, H, W) appended to ``shapes``) and each k: ``(k, x)``, x (1, C, H, W) the photo
    cropped to multiples of k. A progress bar counts the photos."""
    with _progress(len(images), desc, progress) as bar:
        for name in images:
            full = load_photo(name)
            shapes.append(list(full.shape[1:]))
            for k in kernels:
                yield k, full[..., : full.shape[2] // k * k, : full.shape[3] // k * k]
            bar.update()


def make_report(
    images: Sequence[str], shapes: list, kernels: list[int], input_scale: float, scores: dict, **meta
) -> dict:
    """A study's report: ``{"meta", "images": [{"name", "shape"}], "scores"}``."""
    return {
        "meta": _meta(kernels, input_scale, **meta),
        "images": [{"name": n, "shape": s} for n, s in zip(images, shapes)],
        "scores": scores,
    }


def _check(images: Sequence[str], kernels: Iterable[int], input_scale: float) -> list[int]:
    for name in images:
        if name not in PHOTOS:
            raise ValueError(f"--images: each must be one of {', '.join(PHOTOS)}, got {name!r}")
    if not images:
        raise ValueError("--images: give at least one photo")
    kernels = list(dict.fromkeys(kernels))
    if not kernels or any(k < 2 for k in kernels):
        raise ValueError(f"--kernels: each must be >= 2, got {kernels}")
    if not (math.isfinite(input_scale) and input_scale > 0):
        raise ValueError(f"--input-scale must be a positive number, got {input_scale}")
    return kernels


def _meta(kernels, input_scale, **extra) -> dict:
    return {
        "kernels": list(kernels),
        "stride": "= kernel",
        "input_scale": input_scale,
        "dtype": "float32 pooling, float64 metrics, data_range 1",
        "metrics": "skimage.metrics.peak_signal_noise_ratio / structural_similarity (channel_axis for colour)",
        "liftpool": "untrained (Haar), one level, k = 2 only; other kernels n/a",
        "inf": "PSNR of identical images is +inf, written as the string 'inf' in JSON; null = n/a",
        "skimage": skimage.__version__,
        "torch": torch.__version__,
        **extra,
    }


def _stats(values: list[float]) -> dict[str, float]:
    if any(math.isinf(v) for v in values):
        return {"mean": math.inf, "std": math.nan}
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def summarize(report: dict) -> dict:
    """``{protocol: {k: {method: {"psnr": {"mean", "std"}, "ssim": {"mean", "std"}} or None}}}``, over photos
    (population std; a mean with any +∞ PSNR is +∞)."""
    out = {}
    for protocol, by_k in report["scores"].items():
        out[protocol] = {}
        for k, by_method in by_k.items():
            out[protocol][k] = {}
            for method, cells in by_method.items():
                if not cells or any(c is None for c in cells):
                    out[protocol][k][method] = None
                else:
                    out[protocol][k][method] = {m: _stats([c[m] for c in cells]) for m in ("psnr", "ssim")}
    return out


def _cell(stats: dict | None, metric: str) -> str:
    if stats is None:
        return "n/a"
    s = stats[metric]
    if math.isinf(s["mean"]):
        return "∞ (exact)"
    return f"{s['mean']:.2f} ± {s['std']:.2f}" if metric == "psnr" else f"{s['mean']:.3f} ± {s['std']:.3f}"


def format_tables(report: dict, labels: dict[str, str] | None = None, titles: dict[str, str] | None = None) -> str:
    """Markdown tables, one per protocol: a row per method, PSNR and SSIM (mean ± std over photos) per k."""
    labels = labels or report["meta"]["methods"]
    titles = titles or report["meta"]["protocols"]
    summary = summarize(report)
    n = len(report["images"])
    blocks = []
    for protocol, by_k in summary.items():
        ks = list(by_k)
        head = ["method"] + [f"PSNR k={k}" for k in ks] + [f"SSIM k={k}" for k in ks]
        lines = [f"{protocol}: {titles[protocol]} (mean ± std over {n} photos)", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, label in labels.items():
            row = [label] + [_cell(by_k[k][method], "psnr") for k in ks] + [_cell(by_k[k][method], "ssim") for k in ks]
            lines.append("| " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def paired(report: dict, baseline: str) -> dict:
    """Per-photo differences to ``baseline`` (a row key): ``{protocol: {k: {method: {"psnr": {"mean", "std"},
    "ssim": {...}, "psnr_wins", "ssim_wins", "n"} or None}}}``; wins = photos where the method scores higher by
    more than :data:`WIN_MARGIN` (float rounding is no win).
    Photos with an infinite PSNR on either side are left out of the PSNR difference."""
    out = {}
    for protocol, by_k in report["scores"].items():
        out[protocol] = {}
        for k, by_method in by_k.items():
            base = by_method[baseline]
            out[protocol][k] = {}
            for method, cells in by_method.items():
                if method == baseline or any(c is None for c in cells + base):
                    out[protocol][k][method] = None
                    continue
                entry = {"n": len(cells)}
                for m in ("psnr", "ssim"):
                    pairs = [(c[m], b[m]) for c, b in zip(cells, base) if math.isfinite(c[m]) and math.isfinite(b[m])]
                    entry[m] = _stats([c - b for c, b in pairs]) if pairs else None
                    entry[f"{m}_wins"] = sum(c - b > WIN_MARGIN for c, b in pairs)
                out[protocol][k][method] = entry
    return out


def format_paired(report: dict, baseline: str) -> str:
    """Markdown tables of :func:`paired`: Δ PSNR (dB) and Δ SSIM to ``baseline``, paired over photos, with the
    number of photos where the method beats it."""
    labels = report["meta"]["methods"]
    diffs = paired(report, baseline)
    blocks = []
    for protocol, by_k in diffs.items():
        ks = list(by_k)
        head = ["method"] + [f"ΔPSNR k={k}" for k in ks] + [f"ΔSSIM k={k}" for k in ks]
        title = f"difference to {labels[baseline]}, paired per photo: mean ± std (photos where higher by > 1e-6)"
        lines = [f"{protocol}: {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, label in labels.items():
            if method == baseline:
                continue
            row = [label]
            for m, fmt in (("psnr", "{:+.2f} ± {:.2f}"), ("ssim", "{:+.4f} ± {:.4f}")):
                for k in ks:
                    e = by_k[k][method]
                    if e is None or e[m] is None:
                        row.append("n/a")
                    else:
                        row.append(fmt.format(e[m]["mean"], e[m]["std"]) + f" ({e[f'{m}_wins']}/{e['n']})")
            lines.append("| " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _jsonable(value):
    if isinstance(value, float):
        return "inf" if value == math.inf else "-inf" if value == -math.inf else None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(report: dict) -> dict:
    """``report`` plus its ``summary``, as JSON-safe data (+∞ -> "inf", NaN -> null)."""
    data = {**report, "summary": summarize(report)}
    if "avg" in report["meta"]["methods"]:
        data["vs_avg"] = paired(report, "avg")
    return _jsonable(data)


# --- the figure -------------------------------------------------------------------------------------------


def detail_crop(x: Tensor, align: int, size: int) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` crop, aligned to ``align``, with the most gradient energy."""
    gray = x.mean(1, keepdim=True)
    energy = gray.diff(dim=2)[..., :, :-1].abs() + gray.diff(dim=3)[..., :-1, :].abs()
    scores = F.avg_pool2d(energy, size - 1, stride=align)[0, 0]
    i, j = divmod(int(scores.argmax()), scores.shape[1])
    return i * align, j * align


def _show(ax, image: np.ndarray, title: str) -> None:
    image = np.clip(image, 0.0, 1.0)
    kwargs = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if image.ndim == 2 else {}
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=7)


def write_figure(path: str | Path, image: str, kernels: Sequence[int] = KERNELS, input_scale: float = 1.0) -> dict:
    """The paper's Fig. 3 for one photo: a row per kernel size, a column per method, the same zoomed crop in
    every panel (the original's crop first), each titled with its ``upsampled`` PSNR/SSIM. Returns ``{"figure",
    "image", "crop": {"top", "left", "size"}}``."""
    from matplotlib.figure import Figure

    kernels = _check([image], kernels, input_scale)
    align = math.lcm(*kernels)
    full = load_photo(image)
    size = max(align, min(full.shape[2:]) // 4 // align * align)
    top, left = detail_crop(full, align, size)
    cols = 1 + len(METHODS)
    fig = Figure(figsize=(1.45 * cols, 1.65 * len(kernels) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(kernels), cols))
    for ax in axes.flat:
        ax.set_axis_off()
    for row, k in enumerate(kernels):
        x = full[..., : full.shape[2] // k * k, : full.shape[3] // k * k]
        original = to_numpy(x)
        _show(axes[row, 0], original[top : top + size, left : left + size], f"original (k={k})")
        for col, method in enumerate(METHODS, start=1):
            y = _scaled(lambda t: pool(t, method, k), x, input_scale)
            if y is None:
                axes[row, col].text(0.5, 0.5, "n/a\n(stride 2 only)", ha="center", va="center", fontsize=7)
                continue
            s = score(original, to_numpy(y.repeat_interleave(k, 2).repeat_interleave(k, 3)))
            crop = to_numpy(y[..., top // k : (top + size) // k, left // k : (left + size) // k])
            _show(axes[row, col], crop, f"{METHODS[method]}\n{s['psnr']:.2f} dB / {s['ssim']:.3f}")
    fig.suptitle(
        f"{image}: {size}x{size} crop at ({top}, {left}) pooled with kernel = stride = k; titles: PSNR / SSIM of "
        "the whole photo upsampled back (nearest) vs the original",
        fontsize=8,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return {"figure": str(path), "image": image, "crop": {"top": top, "left": left, "size": size}}


# --- the command --------------------------------------------------------------------------------------------

STUDIES = ("similarity", "reconstruction")


def run_studies(
    images: Sequence[str] | None = None,
    kernels: Sequence[int] = KERNELS,
    studies: Sequence[str] = STUDIES,
    *,
    input_scale: float = 1.0,
    out_dir: str | Path | None = None,
    figure: str | Path | None = None,
    figure_image: str | None = None,
    progress: bool = True,
) -> dict:
    """What ``poolswap similarity`` does: each study of ``studies`` (:func:`run` and
    :func:`poolswap.reconstruction.run`) and the figure (written to ``figure``, default
    ``out_dir/similarity_<image>.png``; none when both are None). Returns ``{study: report, "figure": ...}``."""
    from . import reconstruction

    images = list(PHOTOS) if images is None else list(images)
    kernels = _check(images, kernels, input_scale)
    unknown = [s for s in studies if s not in STUDIES]
    if unknown or not studies:
        raise ValueError(f"--study: each must be one of {', '.join(STUDIES)}, got {list(studies)}")
    figure_image = figure_image or images[0]
    if figure_image not in PHOTOS:
        raise ValueError(f"--figure-image must be one of {', '.join(PHOTOS)}, got {figure_image!r}")
    result: dict = {}
    if "similarity" in studies:
        result["similarity"] = run(images, kernels, input_scale=input_scale, progress=progress)
    if "reconstruction" in studies:
        result["reconstruction"] = reconstruction.run(images, kernels, input_scale=input_scale, progress=progress)
    if figure is None and out_dir is not None:
        figure = Path(out_dir) / f"similarity_{figure_image}.png"
    if figure is not None:
        result["figure"] = write_figure(figure, figure_image, kernels, input_scale)
    return result


def format_studies(result: dict) -> str:
    """The tables of :func:`run_studies`' result and where the figure is."""
    blocks = [format_tables(result[s]) for s in STUDIES if s in result]
    if "similarity" in result:
        blocks.insert(1, format_paired(result["similarity"], "avg"))
    if "figure" in result:
        fig = result["figure"]
        blocks.append(f"figure: {fig['figure']} ({fig['image']}, crop {fig['crop']})")
    return "\n\n".join(blocks)


def studies_to_json(result: dict) -> dict:
    """:func:`run_studies`' result as JSON-safe data (each report with its summary; +∞ -> "inf")."""
    return {key: to_json(value) if key in STUDIES else _jsonable(value) for key, value in result.items()}
