"""LiftPool: learned lifting-scheme down/up pooling (Zhao & Snoek, ICLR 2021; DESIGN.md §2.6).

One lifting step along a spatial axis splits x into even/odd samples x_e, x_o and computes

    d = x_o - P(x_e)        (detail, high-pass)
    s = x_e + U(d)          (approximation, low-pass)

and is inverted exactly by x_e = s - U(d), x_o = d + P(x_e), interleave(x_e, x_o).

Predictor and updater.  P(x) = x + P~(x) and U(d) = d/2 + U~(d): the fixed linear parts are the Haar lifting
pair (s = pair mean, d = pair difference) and P~, U~ are the paper's learned nets, each a `LiftPredictor`:
depthwise Conv(K along the lifted axis) -> ReLU -> Conv(1) -> Tanh.  The last conv of every P~/U~ starts at
zero, so an untrained layer is exactly the Haar wavelet.  Why not the paper's bare P, U: a bounded Tanh net
cannot predict x_o = x_e for inputs of any magnitude, and zero-initialised bare nets give P = U = 0, i.e. plain
subsampling (s = x_e, the aliasing the paper sets out to avoid) and details as large as the signal.  With the
Haar base an untrained layer is well behaved: LL is the 2x2 window mean (= AvgPool2d(2) on even sizes), a
constant input has zero details and passes unchanged through the default all-band sum (DC gain 1), the
regularisers start small, and the zero last conv still receives gradient from the first step on.

2-D bands.  Lift along W ("horizontal") into s, d, then along H ("vertical") on both halves.  A band's first
letter is its pass along W, the second its pass along H: LL = low/low (the approximation), LH = low along W,
high along H (horizontal edges), HL = high along W, low along H (vertical edges), HH = high/high (diagonal).
1-D bands are "L" (= s) and "H" (= d).  The down-pool output is the sum of the selected bands (`bands=`).

Geometry.  The modules take torch.nn.MaxPool{n}d's arguments; stride must be 2 (one lifting step halves a
size).  For each spatial size n the output size `out` is MaxPool's, for floor and ceil mode, padding and
dilation.  Output o is aligned with the sample pair starting at input position 2*o - off, off = floor((2p -
d(k-1) + 1) / 2), so a pair's centre lies on (or half a sample after) the replaced window's centre.  The input
is padded by replicating its border samples (reflect fails on size-1 inputs; replicate keeps a constant
constant) so that whole pairs cover every input sample and every output position; the output is the
`out`-sized crop of the band grid.  The LiftResult keeps the whole grid, so the inverse recovers every input
sample, also those no pooling window reads (e.g. the last column of an odd size in floor mode).

Pairing (down -> up).
* Explicit, stateless: `r = down.lift(x)` returns a `LiftResult`; `up(y, r)` or `up.invert(r)` inverts it.
* Drop-in: `up = LiftUpPool2d(down)` marks `down` as paired; from then on every `down(x)` pushes its
  LiftResult on a stack owned by `down`, and every `up(y)` (no result given) pops the most recent one.  The
  contract is LIFO: each down call must be matched by one up call, nested as in an encoder-decoder
  (down1, down2, ..., up2, up1).  Being per call, it is correct for any batch size and for several forwards
  in flight in one thread (two downs, then the two ups in reverse order).  An unmatched down call leaves its
  result on the stack; a recomputing checkpoint segment or nn.DataParallel replicas break the contract.

Inversion of a changed tensor.  The up pool reconstructs from the stored bands with LL (or "L") replaced by
LL + (y - r.output) on the output crop: `up(r.output, r)` returns x to float precision for any band
selection containing LL, and with bands=("LL",) this is "y takes the place of LL".

Regularisers (paper Eq. 4-5).  Each lifting step contributes c_u = mean((s - x_o)^2) and c_p = mean(d^2)
(mean over batch, channel and positions of the padded grid rather than the paper's unnormalised sum, so the
default weights do not depend on batch or image size); the 2-D layer sums its three steps.  `aux_loss(model)`
collects them for a whole model:

    out = model(x)
    loss = criterion(out, target) + aux_loss(model)     # λ_u = 0.01, λ_p = 0.1
    loss.backward()
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LiftDownPool1d",
    "LiftDownPool2d",
    "LiftPredictor",
    "LiftResult",
    "LiftUpPool1d",
    "LiftUpPool2d",
    "aux_loss",
]


class LiftResult(NamedTuple):
    """Everything one LiftDownPool call produced.

    output: the pooled tensor (N, C, *out), what `forward` returns.
    bands:  {name: (N, C, *M)} on the whole lifted grid (M >= out per axis; `output` is the sum of the
            selected bands cropped to `out`).
    size:   the input's spatial size, restored by the inverse.
    c_u, c_p: the regularisers of this call (0-dim tensors).
    """

    output: Tensor
    bands: dict[str, Tensor]
    size: tuple[int, ...]
    c_u: Tensor
    c_p: Tensor


class LiftPredictor(nn.Sequential):
    """Learned part P~ / U~ of a predictor or updater: depthwise Conv(K) -> ReLU -> Conv(1) -> Tanh.

    The K-tap kernel runs along the lifted axis only (`axis=-1`: W or L, `axis=-2`: H) with replicate padding,
    so a (N, C, *S) input keeps its shape.  The 1x1 conv mixes channels (C*C weights).  Its weight and bias
    start at zero, so the predictor starts as the zero function (see the module docstring).
    """

    def __init__(self, channels: int, kernel_size: int = 5, *, ndim: int = 2, axis: int = -1) -> None:
        if ndim == 1:
            conv, kernel, padding = nn.Conv1d, kernel_size, kernel_size // 2
        elif axis == -1:
            conv, kernel, padding = nn.Conv2d, (1, kernel_size), (0, kernel_size // 2)
        else:
            conv, kernel, padding = nn.Conv2d, (kernel_size, 1), (kernel_size // 2, 0)
        super().__init__(
            conv(channels, channels, kernel, padding=padding, groups=channels, padding_mode="replicate"),
            nn.ReLU(),
            conv(channels, channels, 1),
            nn.Tanh(),
        )
        nn.init.zeros_(self[2].weight)
        nn.init.zeros_(self[2].bias)


class _LiftStep(nn.Module):
    """One 1-D lifting step along tensor dim `dim` (-1 or -2) of an even-sized input."""

    def __init__(self, channels: int, kernel_size: int, ndim: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.predict = LiftPredictor(channels, kernel_size, ndim=ndim, axis=dim)
        self.update = LiftPredictor(channels, kernel_size, ndim=ndim, axis=dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(..., 2M, ...) -> s, d of (..., M, ...) and the step's c_u, c_p."""
        x_e, x_o = x.unflatten(self.dim, (-1, 2)).unbind(self.dim)
        d = x_o - x_e - self.predict(x_e)
        s = x_e + 0.5 * d + self.update(d)
        return s, d, (s - x_o).square().mean(), d.square().mean()

    def inverse(self, s: Tensor, d: Tensor) -> Tensor:
        """Exact inverse of `forward`: the same operations undone in reverse order (error ~ 1 ulp of x)."""
        x_e = s - 0.5 * d - self.update(d)
        x_o = d + x_e + self.predict(x_e)
        return torch.stack((x_e, x_o), self.dim).flatten(self.dim - 1, self.dim)


class _AxisPlan(NamedTuple):
    out: int  # output size (MaxPool's formula)
    before: int  # replicate padding before the input (0 or 1)
    after: int  # replicate padding after the input
    start: int  # first output position in the band grid


def _axis_plan(size: int, kernel: int, padding: int, dilation: int, ceil_mode: bool) -> _AxisPlan:
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span + int(ceil_mode)) // 2 + 1
    if ceil_mode and (out - 1) * 2 >= size + padding:
        out -= 1  # torch: the last window must start inside the input or its left padding
    if out < 1:
        raise ValueError(
            f"input spatial size {size} is too small for kernel_size={kernel}, padding={padding}, "
            f"dilation={dilation} (output size would be {out})"
        )
    off = (2 * padding - span + 2) // 2  # output o <-> pair starting at 2*o - off
    first = off // 2  # first pair index of the grid (<= 0 since off <= 1)
    last = max(out, (size + off + 1) // 2)  # one past the last pair index
    return _AxisPlan(out, off - 2 * first, 2 * last - off - size, -first)


def _int_tuple(value, n: int, name: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != n or not all(isinstance(v, int) for v in values):
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    return values


class _LiftDownPoolNd(nn.Module):
    _ndim: int
    _band_names: tuple[str, ...]

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode: bool = False,
        *,
        channels: int,
        predictor_kernel: int = 5,
        bands=None,
    ) -> None:
        super().__init__()
        n = self._ndim
        self.kernel_size = _int_tuple(kernel_size, n, "kernel_size")
        self.stride = self.kernel_size if stride is None else _int_tuple(stride, n, "stride")
        self.padding = _int_tuple(padding, n, "padding")
        self.dilation = _int_tuple(dilation, n, "dilation")
        self.ceil_mode = bool(ceil_mode)
        if any(k < 1 for k in self.kernel_size):
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size!r}")
        if any(s != 2 for s in self.stride):
            raise ValueError(
                f"stride must be 2 (a lifting step halves each spatial size), got stride={stride!r} "
                f"with kernel_size={kernel_size!r}"
            )
        if any(p < 0 or p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"padding must be in [0, kernel_size // 2], got padding={padding!r}")
        if any(d < 1 for d in self.dilation):
            raise ValueError(f"dilation must be >= 1, got {dilation!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not isinstance(predictor_kernel, int) or predictor_kernel < 1 or predictor_kernel % 2 == 0:
            raise ValueError(f"predictor_kernel must be a positive odd int, got {predictor_kernel!r}")
        bands = self._band_names if bands is None else (bands,) if isinstance(bands, str) else tuple(bands)
        if not bands or len(set(bands)) != len(bands) or not set(bands) <= set(self._band_names):
            raise ValueError(
                f"bands must be a non-empty selection without repeats from {self._band_names}, got {bands!r}"
            )
        self.channels = channels
        self.predictor_kernel = predictor_kernel
        self.bands = bands
        self.horizontal = _LiftStep(channels, predictor_kernel, n, -1)
        if n == 2:
            self.vertical = _LiftStep(channels, predictor_kernel, n, -2)
        self.paired = False  # set by LiftUpPool: forward then keeps its results for the up pool
        self._pending: list[LiftResult] = []
        self.last_c_u: Tensor | None = None  # regularisers of the last training-mode call (see aux_loss)
        self.last_c_p: Tensor | None = None

    @classmethod
    def from_pool(cls, module: nn.Module, *, channels: int, **extras):
        """Build from a torch.nn.MaxPool{n}d / AvgPool{n}d with the same geometry.

        `extras` are the constructor's keyword-only options (predictor_kernel, bands).  AvgPool's
        count_include_pad and divisor_override have no meaning for lifting and are ignored; a MaxPool with
        return_indices=True is refused (there are no indices).
        """
        types = (nn.MaxPool1d, nn.AvgPool1d) if cls._ndim == 1 else (nn.MaxPool2d, nn.AvgPool2d)
        if not isinstance(module, types):
            names = " or ".join(t.__name__ for t in types)
            raise TypeError(f"module must be a {names}, got {type(module).__name__}")
        if getattr(module, "return_indices", False):
            raise ValueError("module has return_indices=True, which LiftDownPool cannot provide")
        return cls(
            module.kernel_size,
            module.stride,
            module.padding,
            getattr(module, "dilation", 1),
            module.ceil_mode,
            channels=channels,
            **extras,
        )

    def _plans(self, size: tuple[int, ...]) -> list[_AxisPlan]:
        return [
            _axis_plan(n, k, p, d, self.ceil_mode)
            for n, k, p, d in zip(size, self.kernel_size, self.padding, self.dilation)
        ]

    def lift(self, x: Tensor) -> LiftResult:
        """Decompose x (N, C, *S) into sub-bands; returns the LiftResult that LiftUpPool inverts.

        In training mode the call's c_u, c_p are kept as `last_c_u`, `last_c_p` for `aux_loss`; in eval mode
        they are cleared.  Nothing else is stored (see `forward` for the paired drop-in path).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(x).__name__}")
        if x.dim() != self._ndim + 2:
            raise ValueError(f"input must have {self._ndim + 2} dims (N, C, *spatial), got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise ValueError(f"input has {x.shape[1]} channels but the layer has channels={self.channels}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        size = tuple(x.shape[2:])
        plans = self._plans(size)
        pads = [p for plan in reversed(plans) for p in (plan.before, plan.after)]  # F.pad: last dim first
        if any(pads):
            x = F.pad(x, pads, mode="replicate")
        bands, c_u, c_p = self._analysis(x)
        out = bands[self.bands[0]]
        for name in self.bands[1:]:
            out = out + bands[name]
        for axis, plan in enumerate(plans):
            out = out.narrow(2 + axis, plan.start, plan.out)
        self.last_c_u, self.last_c_p = (c_u, c_p) if self.training else (None, None)
        return LiftResult(out, bands, size, c_u, c_p)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C, *S) -> pooled (N, C, *out), out = MaxPool's output size.  When paired with a LiftUpPool,
        the call's LiftResult is pushed for that up pool to pop (LIFO)."""
        result = self.lift(x)
        if self.paired:
            self._pending.append(result)
        return result.output

    def _invert(self, y: Tensor, result: LiftResult) -> Tensor:
        """y (N, C, *out) and a LiftResult of this layer -> (N, C, *result.size)."""
        if y.shape != result.output.shape:
            raise ValueError(
                f"y has shape {tuple(y.shape)} but the paired down pool's output has {tuple(result.output.shape)}"
            )
        low = self._band_names[0]
        grid = result.bands[low].shape[2:]
        plans = self._plans(result.size)
        pads = [p for plan, m in reversed(list(zip(plans, grid))) for p in (plan.start, m - plan.start - plan.out)]
        bands = dict(result.bands)
        bands[low] = bands[low] + F.pad(y - result.output, pads)  # zero outside the output crop
        x = self._synthesis(bands)
        for axis, (plan, n) in enumerate(zip(plans, result.size)):
            x = x.narrow(2 + axis, plan.before, n)
        return x

    def __getstate__(self) -> dict:
        # Per-call state is transient: copies and pickles start without it (a deepcopy of the non-leaf
        # tensors it holds would fail, e.g. `copy.deepcopy(model)` for an EMA after a training step).
        state = super().__getstate__()
        state.update(last_c_u=None, last_c_p=None, _pending=[])
        return state

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}, channels={self.channels}, "
            f"predictor_kernel={self.predictor_kernel}, bands={self.bands}"
        )


class LiftDownPool1d(_LiftDownPoolNd):
    """LiftDownPool on (N, C, L) -> (N, C, L_out), L_out as torch.nn.MaxPool1d with the same arguments.

    Args: MaxPool1d's `kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False` (stride must be 2),
    then keyword-only `channels` (required: P~, U~ are per-channel convs), `predictor_kernel=5` (odd K of
    the P~/U~ convs) and `bands` (default ("L", "H"): output = s + d).  Parameters: `horizontal.predict`,
    `horizontal.update` (LiftPredictor).
    """

    _ndim = 1
    _band_names = ("L", "H")

    def _analysis(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        s, d, c_u, c_p = self.horizontal(x)
        return {"L": s, "H": d}, c_u, c_p

    def _synthesis(self, bands: dict[str, Tensor]) -> Tensor:
        return self.horizontal.inverse(bands["L"], bands["H"])


class LiftDownPool2d(_LiftDownPoolNd):
    """LiftDownPool on (N, C, H, W) -> (N, C, H_out, W_out), sizes as torch.nn.MaxPool2d with the same arguments.

    Args: MaxPool2d's `kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False` (stride must be 2),
    then keyword-only `channels` (required), `predictor_kernel=5` and `bands` (default ("LL", "LH", "HL",
    "HH"), the paper's classification setting; ("LL",) for encoder-decoders).  Lifting runs along W
    (`horizontal`, K-tap kernels (1, K)) and then along H on both halves (`vertical`, kernels (K, 1)).
    """

    _ndim = 2
    _band_names = ("LL", "LH", "HL", "HH")

    def _analysis(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        s, d, c_u, c_p = self.horizontal(x)
        ll, lh, c_u_s, c_p_s = self.vertical(s)
        hl, hh, c_u_d, c_p_d = self.vertical(d)
        return {"LL": ll, "LH": lh, "HL": hl, "HH": hh}, c_u + c_u_s + c_u_d, c_p + c_p_s + c_p_d

    def _synthesis(self, bands: dict[str, Tensor]) -> Tensor:
        s = self.vertical.inverse(bands["LL"], bands["LH"])
        d = self.vertical.inverse(bands["HL"], bands["HH"])
        return self.horizontal.inverse(s, d)


class _LiftUpPoolNd(nn.Module):
    _down_type: type

    def __init__(self, down: _LiftDownPoolNd) -> None:
        if not isinstance(down, self._down_type):
            raise TypeError(f"down must be a {self._down_type.__name__}, got {type(down).__name__}")
        low = down._band_names[0]
        if low not in down.bands:
            raise ValueError(f"down.bands must include {low!r} to be invertible, got {down.bands}")
        super().__init__()
        # A reference, not a submodule: the P/U parameters stay owned (and saved once) by the down pool,
        # which must itself be part of the model.
        object.__setattr__(self, "down", down)
        down.paired = True

    def forward(self, y: Tensor, result: LiftResult | None = None) -> Tensor:
        """y (N, C, *out) -> (N, C, *S): invert `result` (a LiftResult of the paired down pool) with its LL
        band moved by y - result.output.  Without `result`, pop the paired down pool's most recent pending
        result (the drop-in path; see the module docstring for the LIFO contract)."""
        if result is None:
            if not self.down._pending:
                raise ValueError(
                    "result not given and the paired down pool has no pending result: call the down pool "
                    "(forward) before its up pool, once per up call"
                )
            result = self.down._pending.pop()
        return self.down._invert(y, result)

    def invert(self, result: LiftResult) -> Tensor:
        """Exact inverse of `down.lift(x)`: returns x (N, C, *S) to float precision."""
        return self.forward(result.output, result)

    def extra_repr(self) -> str:
        return f"down={type(self.down).__name__}({self.down.extra_repr()})"


class LiftUpPool1d(_LiftUpPoolNd):
    """LiftUpPool paired with a LiftDownPool1d: (N, C, L_out) -> (N, C, L), using the down pool's P/U."""

    _down_type = LiftDownPool1d


class LiftUpPool2d(_LiftUpPoolNd):
    """LiftUpPool paired with a LiftDownPool2d: (N, C, H_out, W_out) -> (N, C, H, W), using its P/U."""

    _down_type = LiftDownPool2d


def aux_loss(model: nn.Module, lambda_u: float = 0.01, lambda_p: float = 0.1) -> Tensor:
    """Sum of lambda_u * c_u + lambda_p * c_p over every LiftDownPool in `model` (the model itself included).

    Each layer contributes the regularisers of its most recent forward()/lift() call made in training mode
    (kept as `last_c_u`, `last_c_p`; plain attributes, not in the state_dict).  A call in eval mode clears them,
    so layers last run in eval mode, and models without LiftDownPool, contribute nothing; the result is then a
    zero 0-dim tensor.  A layer called several times per model forward contributes its last call only.
    Differentiable with respect to P/U and the layer inputs.  Use after the forward of each step:

        out = model(x)
        loss = criterion(out, target) + aux_loss(model)
        loss.backward()
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    total = None
    for module in model.modules():
        if isinstance(module, _LiftDownPoolNd) and module.last_c_u is not None:
            term = lambda_u * module.last_c_u + lambda_p * module.last_c_p
            total = term if total is None else total + term
    return torch.zeros(()) if total is None else total
