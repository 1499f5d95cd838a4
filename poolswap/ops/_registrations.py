"""Fake (meta) kernels and autograd of the compiled operators (schemas: csrc/ops/pool.cpp, unpool.cpp).

The fake kernels make the ops traceable by torch.compile / torch.export; autograd routes each
forward op to its private backward op. Nothing here runs when the extension is missing.
"""

from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from .. import _extension
from ._geometry import Geometry

EM, EDSCW, IDW, ADA = 0, 1, 2, 3  # poolswap::Mode (csrc/include/poolswap/window.h)


def _pooled_like(x: torch.Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> torch.Tensor:
    g = Geometry(tuple(kernel_size), tuple(stride) or tuple(kernel_size), tuple(padding), tuple(dilation), ceil_mode)
    shape = (x.shape[0], x.shape[1], *g.output_size(x.shape[2:]))
    return x.new_empty(shape).contiguous(memory_format=suggest_memory_format(x))


def _like(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, memory_format=suggest_memory_format(x))


def _register() -> None:
    lib = "poolswap::"

    @torch.library.register_fake(lib + "empool")
    def _(x, kernel_size, stride, padding, dilation, ceil_mode):
        return _pooled_like(x, kernel_size, stride, padding, dilation, ceil_mode)

    for name in ("edscwpool", "idwpool"):

        @torch.library.register_fake(lib + name)
        def _(x, kernel_size, stride, padding, dilation, ceil_mode, eps):
            return _pooled_like(x, kernel_size, stride, padding, dilation, ceil_mode)

    @torch.library.register_fake(lib + "adapool")
    def _(x, beta, kernel_size, stride, padding, dilation, ceil_mode, eps):
        return _pooled_like(x, kernel_size, stride, padding, dilation, ceil_mode)

    @torch.library.register_fake(lib + "_pool_backward")
    def _(grad, x, beta, mode, kernel_size, stride, padding, dilation, ceil_mode, eps):
        grad_beta = beta.new_empty(beta.shape) if mode == ADA else x.new_empty(0)
        return _like(x), grad_beta

    @torch.library.register_fake(lib + "adaunpool")
    def _(z, x, beta, kernel_size, stride, padding, dilation, ceil_mode, normalize, eps):
        return _like(x)

    @torch.library.register_fake(lib + "_adaunpool_backward")
    def _(grad, z, x, beta, kernel_size, stride, padding, dilation, ceil_mode, normalize, eps):
        return _like(z), _like(x), beta.new_empty(beta.shape)

    # ---- autograd -------------------------------------------------------------------------------------

    def pool_autograd(op: str, mode: int, has_beta: bool, has_eps: bool) -> None:
        def setup_context(ctx, inputs, output):
            x = inputs[0]
            beta = inputs[1] if has_beta else None
            rest = inputs[2:] if has_beta else inputs[1:]
            ctx.geometry = rest[:5]
            ctx.eps = rest[5] if has_eps else 0.0
            ctx.save_for_backward(x, beta)

        def backward(ctx, grad):
            x, beta = ctx.saved_tensors
            grad_x, grad_beta = torch.ops.poolswap._pool_backward(grad, x, beta, mode, *ctx.geometry, ctx.eps)
            n_rest = 5 + has_eps
            return (grad_x, grad_beta, *([None] * n_rest)) if has_beta else (grad_x, *([None] * n_rest))

        torch.library.register_autograd(lib + op, backward, setup_context=setup_context)

    pool_autograd("empool", EM, has_beta=False, has_eps=False)
    pool_autograd("edscwpool", EDSCW, has_beta=False, has_eps=True)
    pool_autograd("idwpool", IDW, has_beta=False, has_eps=True)
    pool_autograd("adapool", ADA, has_beta=True, has_eps=True)

    def unpool_setup(ctx, inputs, output):
        z, x, beta, *rest = inputs
        ctx.args = rest  # geometry (5), normalize, eps
        ctx.save_for_backward(z, x, beta)

    def unpool_backward(ctx, grad):
        z, x, beta = ctx.saved_tensors
        grad_z, grad_x, grad_beta = torch.ops.poolswap._adaunpool_backward(grad, z, x, beta, *ctx.args)
        return (grad_z, grad_x, grad_beta, *([None] * len(ctx.args)))

    torch.library.register_autograd(lib + "adaunpool", unpool_backward, setup_context=unpool_setup)


if _extension.has_ops():
    _register()
