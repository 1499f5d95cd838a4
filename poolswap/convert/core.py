"""``plan`` (analysis, no change to the model) and ``convert`` (apply) — DESIGN.md §3."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ops._geometry import pooled_size
from . import apply as _apply
from .build import build_pool, build_upsample, check_shapes, describe, method_kwargs, torch_type
from .pairing import pair_sites
from .plan import Plan, Site
from .rules import Rules, check_matched, method_name, pattern_text
from .sites import RawSite, default_example, discover

__all__ = ["plan", "convert", "apply_plan", "plan_of", "is_converted"]

_STATE = "_poolswap"


def _example(model: nn.Module, example_inputs: Any, input_size: Any) -> tuple:
    if example_inputs is None:
        return default_example(model, input_size)
    if input_size is not None:
        raise ValueError("pass either example_inputs or input_size, not both")
    if isinstance(example_inputs, (torch.Tensor, list)):
        return (example_inputs,)
    if isinstance(example_inputs, tuple):
        return example_inputs
    raise TypeError(f"example_inputs must be a Tensor or a tuple of forward arguments, got {type(example_inputs).__name__}")


def _shapes(example: tuple) -> list[list[int]]:
    out = []
    for item in example:
        if isinstance(item, torch.Tensor):
            out.append(list(item.shape))
        elif isinstance(item, (list, tuple)) and item and isinstance(item[0], torch.Tensor):
            out.extend(list(t.shape) for t in item)
    return out


def _site(raw: RawSite) -> Site:
    return Site(
        name=raw.name, kind=raw.kind, path=raw.path, target=raw.target, op=raw.op, nd=raw.nd, args=raw.args,
        calls=[{"input": c.input, "output": c.output} for c in raw.calls], fn=raw.fn, index=raw.index,
    )  # fmt: skip


def _static_out(site: Site, size: list[int]) -> list[int]:
    a = site.args
    nd = len(size)
    t = lambda v, d: list(v) if isinstance(v, list) else [d if v is None else v] * nd  # noqa: E731
    k, s, p = t(a["kernel_size"], 1), t(a.get("stride") or a["kernel_size"], 1), t(a.get("padding", 0), 0)
    d = t(a.get("dilation", 1), 1)
    return [pooled_size(n, *g, bool(a.get("ceil_mode"))) for n, *g in zip(size, k, s, p, d)]


def _same_out(site: Site, size: list[int]) -> list[int]:
    a = site.args
    s = a.get("stride") or a["kernel_size"]
    s = s if isinstance(s, list) else [s] * len(size)
    return [-(-n // st) for n, st in zip(size, s)]


def _as_list(v: Any, nd: int) -> list:
    return list(v) if isinstance(v, list) else [v] * nd


class _Planner:
    def __init__(self, model: nn.Module, rules: Rules, example: tuple) -> None:
        self.model, self.rules = model, rules
        self.used: dict[str, int] = {}
        self.disc = discover(model, example)
        self.example = example
        self.methods: dict[str, Any] = {}  # site -> method object (name or callable)
        self.built: dict[str, nn.Module] = {}
        self.unreached: list[dict[str, str]] = []

    def _match(self, kind: str, patterns: list, site: Site, module: nn.Module | None) -> Any:
        hit = None
        for p in patterns:
            if Rules.matches(p, site.name, site.path, torch_type(site), module):
                self.used[f"{kind}:{pattern_text(p)}"] = self.used.get(f"{kind}:{pattern_text(p)}", 0) + 1
                hit = p if hit is None else hit
        return hit

    def decide(self, site: Site, raw: RawSite) -> None:
        r = self.rules
        module = _apply.get_module(self.model, site.path) if site.kind == "module" else None
        key, value = r.override_for(site.name)
        has_override = key is not None
        if has_override:
            self.used[f"overrides:{key}"] = self.used.get(f"overrides:{key}", 0) + 1
        include = self._match("include", r.include, site, module) if r.include else None
        exclude = self._match("exclude", r.exclude, site, module)
        skip = lambda reason: setattr(site, "reason", reason)  # noqa: E731  (status stays "skip")
        if site.target == "adaptive":
            return skip("adaptive pool: its window depends on the input size")
        if not site.calls:
            return skip("not called by the example forward" + (f" ({self.disc.example_error})" if self.disc.example_error else ""))
        if has_override and value in (None, "skip"):
            return skip("skipped by overrides")
        if not has_override:
            if site.target not in r.active_targets:
                return skip("upsample not requested (pass upsample='adaunpool' or 'liftpool')" if site.target == "upsample"
                            else f"target {site.target!r} not selected (targets={list(r.active_targets)})")
            if r.include and include is None:
                return skip("not matched by include")
            if exclude is not None:
                return skip(f"excluded by {pattern_text(exclude)!r}")
        if site.target == "upsample":
            site.status = "pending"
            return None
        a = site.args
        if a.get("return_indices"):
            return skip("return_indices=True has no weighted equivalent")
        size_in, size_out = site.input_shape[2:], site.output_shape[2:]
        if raw.custom_forward and _static_out(site, size_in) != size_out:
            if a.get("ceil_mode") or any(_as_list(a.get("padding", 0), site.nd)) or _same_out(site, size_in) != size_out:
                return skip(f"{site.op} has its own forward and its output shape is not MaxPool's or TF-SAME's")
            site.same_padding = True
        if not has_override:
            k, s = _as_list(a["kernel_size"], site.nd), _as_list(a.get("stride") or a["kernel_size"], site.nd)
            if all(v == 1 for v in size_out) and list(size_in) == k and not r.global_pools:
                return skip("global pool (opt in with global_pools=True)")
            if all(v == 1 for v in k) and not r.kernel1_pools:
                return skip("kernel-1 pool, e.g. FPN's extra level (opt in with kernel1_pools=True)")
            if all(v == 1 for v in s) and not r.stride1_pools:
                return skip("stride-1 pool (opt in with stride1_pools=True)")
        method = r.method
        extra: dict[str, Any] = {}
        if isinstance(value, dict):
            extra = {k: v for k, v in value.items() if k != "method"}
            method = value.get("method", method)
        elif has_override:
            method = value
        self._assign(site, method, extra)
        return None

    def _assign(self, site: Site, method: Any, extra: dict[str, Any], note: str = "") -> None:
        name = method_name(method)
        site.method = name
        if name == "liftpool":
            if site.nd == 3:
                site.status, site.reason = "skip", "liftpool has no 3-d layer"
                return
            if any(v != 2 for v in _as_list(site.args.get("stride") or site.args["kernel_size"], site.nd)):
                site.status, site.reason = "skip", "liftpool needs stride 2"
                return
        site.kwargs = {} if name.startswith("callable:") else method_kwargs(name, site, self.rules, extra)
        self.methods[site.name] = method
        try:
            module = build_pool(site, method)
            check_shapes(site, module)
        except ValueError as exc:
            if "gives output shape" in str(exc):
                raise
            site.status, site.reason, site.kwargs = "skip", f"{name} cannot replace it: {exc}", {}
            return
        except TypeError as exc:
            site.status, site.reason, site.kwargs = "skip", f"{name} cannot replace it: {exc}", {}
            return
        self.built[site.name] = module
        site.status, site.reason = "convert", note
        site.replacement, site.beta_shape, site.params = describe(module)

    def functional_check(self, sites: list[Site]) -> None:
        groups: dict[str, list[Site]] = {}
        for s in sites:
            if s.kind == "functional" and s.status in ("convert", "pending"):
                groups.setdefault(s.path, []).append(s)
        for path, members in groups.items():
            indices: dict[str, list[int]] = {}
            for s in members:
                indices.setdefault(s.fn, []).append(s.index)
            why = _apply.check_traceable(_apply.get_module(self.model, path), indices)
            if why is not None:
                self.unreached.append({"where": path or "(root)", "reason": why})
                for s in members:
                    s.status, s.reason = "skip", f"not rewritable: {why}"
                    self.built.pop(s.name, None)

    def pair(self, sites: list[Site]) -> None:
        ups = [s for s in sites if s.status == "pending"]
        if not ups:
            return
        by_name = {s.name: s for s in sites}
        need = "adapool" if self.rules.upsample == "adaunpool" else "liftpool"
        pool_ok: dict[str, str | None] = {}
        for s in sites:
            if s.target in ("max", "avg"):
                if s.status != "convert":
                    pool_ok[s.name] = f"it is skipped ({s.reason})"
                elif s.same_padding:
                    pool_ok[s.name] = "its padding is dynamic (TF-SAME)"
                elif need == "liftpool" and (s.nd == 3 or any(v != 2 for v in _as_list(s.args.get("stride") or s.args["kernel_size"], s.nd))):
                    pool_ok[s.name] = "liftpool needs stride 2"
                else:
                    pool_ok[s.name] = None
        result = pair_sites(by_name, self.disc.events, [s.name for s in ups], pool_ok)
        for up in ups:
            pool_name, reason = result[up.name]
            if pool_name is None:
                up.status, up.reason = "skip", reason
                continue
            pool = by_name[pool_name]
            if pool.method != need:
                self._assign(pool, need, {}, note=f"method {need}: paired with an upsample")
            pool.paired_with.append(up.name)
            up.method = self.rules.upsample
            up.kwargs = {"normalize": self.rules.normalize} if need == "adapool" else {}
            module = build_upsample(up, self.built[pool_name])
            self.built[up.name] = module
            pool_module, pool_in = self.built[pool_name], pool.calls[0]["input"][1:]
            # the upsample's output is the pool's input size: run the pair (the pool feeds the unpool)
            check_shapes(up, module, run=lambda m, z: m(pool_module(torch.randn(1, *pool_in).to(z))))
            up.status, up.reason, up.paired_with = "convert", f"paired with {pool_name}", [pool_name]
            up.replacement, up.beta_shape, up.params = type(module).__name__, None, 0

    def run(self) -> Plan:
        raw_sites = self.disc.sites
        first = {name: i for i, (name, _) in reversed(list(enumerate(self.disc.events)))}
        order = sorted(raw_sites, key=lambda n: (first.get(n, len(first) + list(raw_sites).index(n))))
        sites = [_site(raw_sites[n]) for n in order]
        for s in sites:
            self.decide(s, raw_sites[s.name])
        self.functional_check(sites)
        if self.rules.upsample and not any(s.target == "upsample" for s in sites):
            raise ValueError(f"upsample={self.rules.upsample!r} but the model has no Upsample / F.interpolate site")
        self.pair(sites)
        for s in sites:
            if s.status == "pending":
                s.status = "skip"
        check_matched(self.rules, self.used)
        for path, cls in self.disc.uncalled:
            self.unreached.append({"where": path, "reason": f"{cls} was not called by the example forward (e.g. a "
                                   "training-only branch): functional pooling calls there were not seen"})
        if self.disc.example_error:
            self.unreached.append({"where": "example forward", "reason": self.disc.example_error})
        plan = Plan(
            method=method_name(self.rules.method), sites=sites, options=self.rules.to_dict(),
            example=_shapes(self.example), unreached=self.unreached,
        )  # fmt: skip
        plan.__dict__["_built"] = self.built
        plan.__dict__["_methods"] = self.methods
        return plan


def plan(model: nn.Module, method: Any = "adapool", example_inputs: Any = None, *, input_size: Any = None, **rules: Any) -> Plan:
    """Analyses ``model`` (no change): every pooling/upsampling site, what it becomes and why.

    Args:
        model: any ``nn.Module``.
        method: a registry name (``"adapool"``, ``"empool"``/``"softpool"``, ``"edscwpool"``, ``"idwpool"``,
            ``"liftpool"``, ``"max"``, ``"avg"``) or a callable ``method(torch_pool, site) -> nn.Module``.
        example_inputs: a Tensor or a tuple of forward arguments; default: a (1, C, H, W) random batch at
            ``input_size`` or the model's known input size (timm ``pretrained_cfg``), else 224×224.
        input_size: int, (H, W) or (C, H, W) for the default example.
        **rules: ``targets``, ``include``, ``exclude``, ``overrides``, ``upsample``, ``beta_mode``,
            ``beta_init``, ``beta_resize``, ``normalize``, ``method_kwargs``, ``global_pools``,
            ``kernel1_pools``, ``stride1_pools`` — see :mod:`poolswap.convert.rules`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    r = Rules.make(method, **rules)
    return _Planner(model, r, _example(model, example_inputs, input_size)).run()


def is_converted(model: nn.Module) -> bool:
    return _STATE in model.__dict__


def plan_of(model: nn.Module) -> Plan | None:
    """The plan a converted model was converted with (None if not converted)."""
    state = model.__dict__.get(_STATE)
    return state["plan"] if state else None


def _model_dtype_device(model: nn.Module) -> dict:
    for p in model.parameters():
        if p.is_floating_point():
            return {"dtype": p.dtype, "device": p.device}
    return {}


def apply_plan(model: nn.Module, the_plan: Plan | dict) -> nn.Module:
    """Applies a plan (a :class:`Plan`, or ``Plan.to_dict()`` data from a checkpoint) to ``model`` in place."""
    if isinstance(the_plan, dict):
        the_plan = Plan.from_dict(the_plan)
    if not isinstance(the_plan, Plan):
        raise TypeError(f"plan must be a Plan or a dict from Plan.to_dict(), got {type(the_plan).__name__}")
    if is_converted(model):
        raise ValueError("model is already converted; poolswap.revert(model) first")
    built: dict[str, nn.Module] = dict(the_plan.__dict__.get("_built", {}))
    methods: dict[str, Any] = the_plan.__dict__.get("_methods", {})
    to = _model_dtype_device(model)
    modules: dict[str, nn.Module] = {}
    for site in the_plan.converted:
        if site.target in ("max", "avg"):
            module = built.get(site.name)
            if module is None:
                module = build_pool(site, methods.get(site.name, site.method))
                check_shapes(site, module)
            modules[site.name] = module.to(**to) if to else module
    for site in the_plan.converted:
        if site.target == "upsample":
            modules[site.name] = built.get(site.name) or build_upsample(site, modules[site.paired_with[0]])
    originals: dict[str, nn.Module] = {}
    for site in the_plan.converted:
        if site.kind == "module":
            old = _apply.get_module(model, site.path)
            if type(old).__name__ != site.op:
                raise ValueError(f"site {site.name!r}: the plan expects a {site.op}, the model has {type(old).__name__}")
            _apply.swap_module(model, old, modules[site.name])
            originals[site.path] = old
    groups: dict[str, dict[tuple[str, int], nn.Module]] = {}
    for site in the_plan.converted:
        if site.kind == "functional":
            groups.setdefault(site.path, {})[(site.fn, site.index)] = modules[site.name]
    rewritten = []
    for path, replacements in groups.items():
        _apply.rewrite_functional(_apply.get_module(model, path), replacements)
        rewritten.append(path)
    model.__dict__[_STATE] = {"plan": the_plan, "originals": originals, "functional": rewritten}
    return model


def convert(model: nn.Module, method: Any = "adapool", example_inputs: Any = None, *, input_size: Any = None, **rules: Any) -> nn.Module:
    """Converts ``model`` in place and returns it: same object, class, methods, weights and state_dict keys,
    with its pooling sites replaced and new parameters (β) added. ``method`` may also be a :class:`Plan`
    (or its dict) to apply as is. Arguments as :func:`plan`; ``print(poolswap.plan_of(model))`` shows what
    was done."""
    if isinstance(method, (Plan, dict)):
        if example_inputs is not None or rules or input_size is not None:
            raise ValueError("convert(model, plan) takes no rules: they are in the plan")
        return apply_plan(model, method)
    if is_converted(model):
        raise ValueError("model is already converted; poolswap.revert(model) first")
    the_plan = plan(model, method, example_inputs, input_size=input_size, **rules)
    failed = next((u for u in the_plan.unreached if u["where"] == "example forward"), None)
    if failed is not None:
        raise ValueError(f"the example forward failed ({failed['reason']}); pass example_inputs that the model accepts")
    return apply_plan(model, the_plan)
