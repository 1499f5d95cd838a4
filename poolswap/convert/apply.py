"""Applying a plan: in-place module swap and the FX rewrite of functional sites.

Module sites: the replacement takes the original's place in *every* parent that holds it (a module shared
under two names is replaced under both); the original is kept for :func:`poolswap.revert`.

Functional sites (``F.max_pool2d`` in some ``forward``): only the smallest enclosing module M is touched.
M is traced *shallowly* with ``torch.fx`` — every child module is a leaf, so the graph holds M's own code
only — once in training and once in eval mode (a forward that branches on ``self.training`` keeps doing so),
each pooling call node is replaced by a call of a new child ``poolswap_<fn>_<index>`` (the replacement),
and the generated code is bound to M as an *instance* ``forward``. M keeps its class, methods, attributes,
children and state_dict keys; the new children add their parameters (``<M>.poolswap_max_pool2d_0.…``).
Other Python-level flags M's forward reads (e.g. ``torch.jit.is_scripting()``, ``grad_checkpointing``) are
fixed at conversion time, as FX fixes them. ``revert`` deletes the instance ``forward`` and the new children.
A model converted this way deep-copies, moves between devices and wraps in DDP as before; pickling the whole
module object (``torch.save(model)``) cannot carry generated code: save with :func:`poolswap.save`.
"""

from __future__ import annotations

import types
from typing import Any

from torch import fx, nn

from .sites import FUNCTIONAL

__all__ = ["get_module", "swap_module", "trace_shallow", "rewrite_functional", "undo_functional"]


def get_module(model: nn.Module, path: str) -> nn.Module:
    if path == "":
        return model
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ValueError(f"model has no submodule {path!r} (the plan does not fit this model)") from None


def swap_module(model: nn.Module, old: nn.Module, new: nn.Module) -> int:
    """Replaces ``old`` by ``new`` in every parent slot; returns how many slots changed."""
    count = 0
    for parent in {id(m): m for m in model.modules()}.values():
        for key, child in list(parent._modules.items()):
            if child is old:
                parent._modules[key] = new
                count += 1
    return count


class _ShallowTracer(fx.Tracer):
    """Every submodule is a leaf: the graph is the traced module's own code."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def trace_shallow(module: nn.Module, training: bool) -> fx.Graph:
    previous = module.training
    module.training = training  # this module only: children are leaves
    try:
        return _ShallowTracer().trace(module)
    finally:
        module.training = previous


def _fn_nodes(graph: fx.Graph) -> dict[str, list[fx.Node]]:
    nodes: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_function":
            try:
                entry = FUNCTIONAL.get(node.target)
            except TypeError:
                entry = None
            if entry is not None:
                nodes.setdefault(entry[0], []).append(node)
    return nodes


def check_traceable(module: nn.Module, indices: dict[str, list[int]]) -> str | None:
    """None if ``module`` traces shallowly in both modes with a node for every (fn, index); else why not."""
    for training in (True, False):
        try:
            graph = trace_shallow(module, training)
        except Exception as exc:
            return f"FX cannot trace {type(module).__name__}.forward: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        nodes = _fn_nodes(graph)
        for fn, idx in indices.items():
            if max(idx) >= len(nodes.get(fn, [])):
                return f"the traced {type(module).__name__}.forward has {len(nodes.get(fn, []))} {fn} call(s), the example forward {max(idx) + 1}"
    return None


def _dispatch(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    state = self.__dict__["_poolswap_fx"]
    return (state["train"] if self.training else state["eval"])(self, *args, **kwargs)


def rewrite_functional(module: nn.Module, replacements: dict[tuple[str, int], nn.Module]) -> list[str]:
    """Rewrites ``module``'s forward so that call ``index`` of ``fn`` runs ``replacements[fn, index]``
    (registered as child ``poolswap_<fn>_<index>``). Returns the added child names."""
    if "_poolswap_fx" in module.__dict__:
        raise ValueError(f"{type(module).__name__} already has rewritten functional sites")
    added = []
    for (fn, index), rep in replacements.items():
        name = f"poolswap_{fn}_{index}"
        if name in module._modules:
            raise ValueError(f"{type(module).__name__} already has a child named {name!r}")
        module.add_module(name, rep)
        added.append(name)
    fns = {}
    try:
        for mode, training in (("train", True), ("eval", False)):
            graph = trace_shallow(module, training)
            nodes = _fn_nodes(graph)
            for (fn, index), _ in replacements.items():
                node = nodes[fn][index]
                x = node.args[0] if node.args else node.kwargs["input"]
                with graph.inserting_after(node):
                    new = graph.call_module(f"poolswap_{fn}_{index}", (x,))
                node.replace_all_uses_with(new)
                graph.erase_node(node)
            graph.lint()
            gm = fx.GraphModule(module, graph, class_name=type(module).__name__)
            for node in graph.nodes:  # constants FX created during tracing live on gm only
                if node.op == "get_attr" and not _has_attr(module, node.target):
                    module.register_buffer(node.target, getattr(gm, node.target), persistent=False)
            fns[mode] = type(gm).forward
    except Exception:
        for name in added:
            del module._modules[name]
        raise
    module.__dict__["_poolswap_fx"] = {"train": fns["train"], "eval": fns["eval"], "children": added}
    module.__dict__["forward"] = types.MethodType(_dispatch, module)
    return added


def _has_attr(module: nn.Module, target: str) -> bool:
    obj: Any = module
    for part in target.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def undo_functional(module: nn.Module) -> None:
    state = module.__dict__.pop("_poolswap_fx", None)
    if state is None:
        return
    module.__dict__.pop("forward", None)
    for name in state["children"]:
        module._modules.pop(name, None)

