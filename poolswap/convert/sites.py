"""Site discovery: every pooling / upsampling call of a model, with its shapes (DESIGN.md §3).

Two sources, merged by :func:`discover`:

* a **module scan** of ``model.named_modules()``: torch's MaxPool/AvgPool/Adaptive*Pool/Upsample classes and
  their subclasses (timm's ``MaxPool2dSame``/``AvgPool2dSame`` included: a subclass that overrides ``forward``
  is flagged ``custom_forward`` and its real geometry is worked out from the observed shapes);
* one **example forward** (eval mode, ``no_grad``, buffers untouched) with a forward pre/post hook on every
  module (the module stack, the input/output shapes of each module-site call) and a ``TorchFunctionMode`` that
  records every functional pooling call (``F.max_pool2d``, ``F.avg_pool2d``, ``F.interpolate``, ...) made
  *directly* by a module's forward: its enclosing module is the innermost module running, and a call made by a
  module site's own forward (``nn.MaxPool2d.forward`` calls ``F.max_pool2d``) is part of that site.

A functional site is named ``<enclosing module path>/<fn>/<index>`` (index: the n-th call of ``fn`` within
one invocation of the enclosing module; at the root, ``<fn>/<index>``). A module or enclosing module invoked
several times maps every invocation onto the same sites: a site keeps one entry per call.

Sites that the example forward does not reach (a training-only branch, a model that fails on the example) are
still found by the module scan and are skipped with that reason; functional calls there cannot be seen.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["RawSite", "Call", "Discovery", "discover", "FUNCTIONAL", "module_target"]

# functional op -> (name, target kind, spatial dims, parameter names after the input)
_POOL_ARGS_MAX = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_POOL_ARGS_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_INTERP_ARGS = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")


def _functional_table() -> dict[Any, tuple[str, str, int, tuple[str, ...]]]:
    table: dict[Any, tuple[str, str, int, tuple[str, ...]]] = {}
    for nd in (1, 2, 3):
        for fn in (getattr(F, f"max_pool{nd}d"), getattr(torch, f"max_pool{nd}d", None)):
            if fn is not None:
                table[fn] = (f"max_pool{nd}d", "max", nd, _POOL_ARGS_MAX)
        for fn in (getattr(F, f"avg_pool{nd}d"), getattr(torch, f"avg_pool{nd}d", None)):
            if fn is not None:
                table[fn] = (f"avg_pool{nd}d", "avg", nd, _POOL_ARGS_AVG[: 5 if nd == 1 else 6])
        for kind in ("avg", "max"):
            fn = getattr(F, f"adaptive_{kind}_pool{nd}d")
            table[fn] = (f"adaptive_{kind}_pool{nd}d", "adaptive", nd, ("output_size",))
    for fn in (F.interpolate, F.upsample):
        table[fn] = (fn.__name__, "upsample", 0, _INTERP_ARGS)
    table[F.upsample_nearest] = ("upsample_nearest", "upsample", 0, ("size", "scale_factor"))
    table[F.upsample_bilinear] = ("upsample_bilinear", "upsample", 0, ("size", "scale_factor"))
    return table


FUNCTIONAL = _functional_table()

_MODULE_TARGETS: tuple[tuple[type, str], ...] = (
    (nn.MaxPool1d, "max"), (nn.MaxPool2d, "max"), (nn.MaxPool3d, "max"),
    (nn.AvgPool1d, "avg"), (nn.AvgPool2d, "avg"), (nn.AvgPool3d, "avg"),
    (nn.AdaptiveAvgPool1d, "adaptive"), (nn.AdaptiveAvgPool2d, "adaptive"), (nn.AdaptiveAvgPool3d, "adaptive"),
    (nn.AdaptiveMaxPool1d, "adaptive"), (nn.AdaptiveMaxPool2d, "adaptive"), (nn.AdaptiveMaxPool3d, "adaptive"),
    (nn.Upsample, "upsample"),
)  # fmt: skip
_BASES = {cls for cls, _ in _MODULE_TARGETS}


def module_target(module: nn.Module) -> str | None:
    """'max' / 'avg' / 'adaptive' / 'upsample' for a pooling or upsampling module, else None."""
    for cls, target in _MODULE_TARGETS:
        if isinstance(module, cls):
            return target
    return None


def _torch_base(module: nn.Module) -> type:
    for cls in type(module).__mro__:
        if cls in _BASES:
            return cls
    raise TypeError(type(module).__name__)


@dataclass
class Call:
    """One call of a site: input/output shapes (lists of ints) and its position in the forward's event order."""

    input: list[int]
    output: list[int]
    order: int


@dataclass
class RawSite:
    """A site as discovered (before rules): see :class:`poolswap.convert.plan.Site` for the final record."""

    name: str
    kind: str  # "module" | "functional"
    target: str  # "max" | "avg" | "adaptive" | "upsample"
    op: str  # class name or "F.<fn>"
    path: str  # module path (module site) or the enclosing module's path (functional site)
    nd: int
    args: dict[str, Any]  # geometry (pools) or size/scale/mode (upsample), plain data
    fn: str | None = None
    index: int | None = None
    custom_forward: bool = False  # a subclass overriding forward (e.g. timm's *Same pools)
    torch_base: str | None = None
    calls: list[Call] = field(default_factory=list)


@dataclass
class Discovery:
    sites: dict[str, RawSite]
    example_error: str | None  # why the example forward failed, if it did
    events: list[tuple[str, int]]  # (site name, call number) in execution order
    uncalled: list[tuple[str, str]]  # (path, class) of modules not run whose code mentions functional pooling


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list, torch.Size)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return repr(value)


def module_args(module: nn.Module, target: str) -> dict[str, Any]:
    """Geometry of a pool module / size-scale-mode of an Upsample, as plain data."""
    if target == "upsample":
        return {k: _plain(getattr(module, k, None)) for k in ("size", "scale_factor", "mode", "align_corners")}
    if target == "adaptive":
        return {"output_size": _plain(module.output_size)}
    names = ["kernel_size", "stride", "padding", "ceil_mode"]
    names += ["dilation", "return_indices"] if target == "max" else ["count_include_pad", "divisor_override"]
    return {k: _plain(getattr(module, k)) for k in names}


def _bind(spec: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments after the input, by name, as plain data."""
    bound = dict(zip(spec, args[1:]))
    bound.update({k: v for k, v in kwargs.items() if k in spec})
    return {k: _plain(v) for k, v in bound.items()}


def _shape(value: Any) -> list[int] | None:
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return list(value[0].shape)
    return None


class _Recorder(TorchFunctionMode):
    """Records functional pooling calls made directly by the innermost running (non-site) module."""

    def __init__(self, state: "_TraceState") -> None:
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        entry = FUNCTIONAL.get(func) if _hashable(func) else None
        if entry is not None and self.state.stack:
            self.state.functional(entry, args, kwargs, out)
        return out


def _hashable(func: Any) -> bool:
    try:
        hash(func)
    except TypeError:
        return False
    return True


class _TraceState:
    def __init__(self, names: dict[int, str], site_modules: dict[int, RawSite]) -> None:
        self.names = names
        self.site_modules = site_modules
        self.stack: list[tuple[nn.Module, dict[str, int]]] = []
        self.sites: dict[str, RawSite] = {}
        self.events: list[tuple[str, int]] = []
        self.called: set[int] = set()

    def pre(self, module: nn.Module, args: tuple) -> None:
        self.called.add(id(module))
        self.stack.append((module, {}))

    def post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.stack and self.stack[-1][0] is module:
            self.stack.pop()
        site = self.site_modules.get(id(module))
        if site is not None and args:
            self._record(site, _shape(args[0]), _shape(output))

    def _record(self, site: RawSite, shape_in: list[int] | None, shape_out: list[int] | None) -> None:
        if shape_in is None or shape_out is None:
            return
        site.calls.append(Call(shape_in, shape_out, len(self.events)))
        self.events.append((site.name, len(site.calls) - 1))

    def functional(self, entry, args: tuple, kwargs: dict, out: Any) -> None:
        module, counters = self.stack[-1]
        if id(module) in self.site_modules:
            return  # a module site's own forward (nn.MaxPool2d.forward -> F.max_pool2d)
        fname, target, nd, spec = entry
        index = counters.get(fname, 0)
        counters[fname] = index + 1
        path = self.names.get(id(module), "?")
        name = f"{path}/{fname}/{index}" if path else f"{fname}/{index}"
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, torch.Tensor):
            return
        site = self.sites.get(name)
        if site is None:
            bound = _bind(spec, args, kwargs)
            if target in ("max", "avg"):
                bound.setdefault("stride", None)
                bound["stride"] = bound["stride"] if bound["stride"] not in (None, []) else bound["kernel_size"]
            site_nd = nd if nd else x.dim() - 2
            site = RawSite(name, "functional", target, f"F.{fname}", path, site_nd, bound, fname, index)
            self.sites[name] = site
        self._record(site, list(x.shape), _shape(out))


def discover(model: nn.Module, example_inputs: tuple, example_kwargs: dict | None = None) -> Discovery:
    """Scans ``model`` and runs ``model(*example_inputs)`` once (eval mode, no_grad, training flags, buffers
    and RNG state restored) to find every site and its call shapes."""
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    sites: dict[str, RawSite] = {}
    site_modules: dict[int, RawSite] = {}
    for name, module in model.named_modules():
        target = module_target(module)
        if target is None:
            continue
        base = _torch_base(module)
        nd = int(base.__name__[-2]) if base is not nn.Upsample else 0
        custom = type(module).forward is not base.forward
        site = RawSite(
            name, "module", target, type(module).__name__, name, nd, module_args(module, target),
            custom_forward=custom, torch_base=base.__name__,
        )  # fmt: skip
        sites[name] = site
        site_modules[id(module)] = site

    state = _TraceState(names, site_modules)
    handles = []
    for module in {id(m): m for m in model.modules()}.values():
        handles.append(module.register_forward_pre_hook(state.pre))
        handles.append(module.register_forward_hook(state.post, always_call=True))
    training = {id(m): m.training for m in model.modules()}
    buffers = [b.detach().clone() for b in model.buffers()]
    error = None
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]), _Recorder(state):
            model(*example_inputs, **(example_kwargs or {}))
    except Exception as exc:  # the plan reports it; module sites are still found
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            m.training = training.get(id(m), m.training)
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
    for site in sites.values():
        if site.target == "upsample" and site.calls:
            site.nd = len(site.calls[0].input) - 2
    sites.update(state.sites)
    uncalled = []
    for module in {id(m): m for m in model.modules()}.values():
        if id(module) not in state.called and id(module) not in site_modules and _mentions_pooling(type(module)):
            uncalled.append((names[id(module)], type(module).__name__))
    return Discovery(sites, error, state.events, uncalled)


_MENTIONS: dict[type, bool] = {}
_WORDS = ("max_pool", "avg_pool", "interpolate", "upsample")


def _mentions_pooling(cls: type) -> bool:
    """Whether a user-defined module class's source calls a functional pool / interpolate (cached)."""
    if cls not in _MENTIONS:
        found = False
        for klass in cls.__mro__:
            if klass.__module__.startswith("torch.") or klass is nn.Module or klass is object:
                continue
            try:
                source = inspect.getsource(klass)
            except (OSError, TypeError):
                continue
            if any(w in source for w in _WORDS):
                found = True
                break
        _MENTIONS[cls] = found
    return _MENTIONS[cls]


def default_example(model: nn.Module, input_size: Any = None) -> tuple[torch.Tensor, ...]:
    """The example input: ``input_size`` (int, (H, W) or (C, H, W)), else the model's known input size
    (timm's ``pretrained_cfg["input_size"]``), else 224×224; channels from the first conv (default 3), spatial
    dims from the first conv's type (a Conv3d model gets (C, 16, 224, 224)). Batch 1, the model's dtype/device."""
    first_conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    channels = first_conv.in_channels if first_conv is not None else 3
    nd = len(first_conv.kernel_size) if first_conv is not None else 2
    size: list[int] | None = None
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
        if isinstance(cfg, dict) and cfg.get("input_size"):
            input_size = tuple(cfg["input_size"])
    if input_size is not None:
        if isinstance(input_size, int):
            size = [input_size] * min(nd, 2)
        elif isinstance(input_size, (tuple, list)) and all(isinstance(v, int) for v in input_size):
            size = list(input_size)
            if len(size) == nd + 1:
                channels, size = size[0], size[1:]
        else:
            raise TypeError(f"input_size must be an int or a tuple of ints, got {input_size!r}")
    if size is None:
        size = [224, 224] if nd >= 2 else [224]
    if nd == 3 and len(size) == 2:
        size = [16, *size]
    if len(size) != nd:
        raise ValueError(f"input_size {input_size!r} does not fit a model with {nd}-d convolutions")
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    return (torch.randn(1, channels, *size, generator=torch.Generator().manual_seed(0)).to(device, dtype),)



