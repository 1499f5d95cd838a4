"""The compiled operators (CPU) against independent oracles: the pure-PyTorch reference (autograd
gradients), gradcheck in float64, and torch's own pools for output shapes."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import poolswap
from poolswap import ops
from poolswap.ops import _reference as ref
from poolswap.ops._geometry import make_geometry

pytestmark = pytest.mark.skipif(not poolswap.has_ops(), reason="compiled operators not built")

POOLS = ("empool", "edscwpool", "idwpool", "adapool")

# (spatial input size, kernel, stride, padding, dilation, ceil_mode)
GEOMETRIES = [
    ((9,), 3, 2, 1, 1, False),
    ((10,), 2, None, 0, 1, True),
    ((11,), 5, 3, 2, 2, True),
    ((7,), 1, 1, 0, 1, False),
    ((8, 8), 2, None, 0, 1, False),
    ((9, 11), 3, 2, 1, 1, False),
    ((9, 11), 3, 2, 1, 1, True),
    ((7, 10), (2, 3), (3, 1), (1, 0), 1, False),
    ((12, 9), 4, 3, 2, (2, 1), True),
    ((10, 13), 5, 2, 2, 1, True),
    ((6, 6), 3, 1, 1, 1, False),
    ((5, 7), 2, 3, 1, 2, True),
    ((5, 6, 7), 3, 2, 1, 1, False),
    ((4, 7, 6), (2, 3, 2), (1, 2, 3), (1, 1, 0), (1, 2, 1), True),
    ((6, 5, 5), 2, None, 0, 1, True),
]
GEOMETRY_IDS = [f"{len(c[0])}d-{i}" for i, c in enumerate(GEOMETRIES)]


def _geometry(case):
    size, k, s, p, d, ceil = case
    g = make_geometry(len(size), k, s, p, d, ceil)
    return size, g


def _beta(kind: str, channels: int, out, dtype=torch.float64) -> torch.Tensor:
    shape = {"spatial": tuple(out), "channel": (channels,) + (1,) * len(out), "scalar": ()}[kind]
    return torch.rand(shape, dtype=dtype) * 0.8 + 0.1


def _call(name, x, g, beta=None, impl=ops):
    if impl is ref:
        args = tuple(g)
        return getattr(ref, name)(x, beta, *args) if name == "adapool" else getattr(ref, name)(x, *args)
    kwargs = dict(stride=g.stride, padding=g.padding, dilation=g.dilation, ceil_mode=g.ceil_mode)
    if name == "adapool":
        return ops.adapool(x, beta, g.kernel_size, **kwargs)
    return getattr(ops, name)(x, g.kernel_size, **kwargs)


# ---- forward and gradients vs the reference ----------------------------------------------------------------


@pytest.mark.parametrize("case", GEOMETRIES, ids=GEOMETRY_IDS)
@pytest.mark.parametrize("name", POOLS)
def test_pool_matches_reference(name, case):
    torch.manual_seed(0)
    size, g = _geometry(case)
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    out = g.output_size(size)
    beta = _beta("spatial", 3, out).requires_grad_() if name == "adapool" else None
    y, y_ref = _call(name, x, g, beta), _call(name, x, g, beta, impl=ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(y)
    inputs = (x, beta) if beta is not None else (x,)
    got = torch.autograd.grad(y, inputs, grad)
    want = torch.autograd.grad(y_ref, inputs, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["spatial", "channel", "scalar"])
def test_adapool_beta_modes_match_reference(kind):
    torch.manual_seed(1)
    x = torch.randn(3, 4, 10, 9, dtype=torch.float64, requires_grad=True)
    g = make_geometry(2, 3, 2, 1)
    beta = _beta(kind, 4, g.output_size((10, 9))).requires_grad_()
    y, y_ref = ops.adapool(x, beta, 3, 2, 1), ref.adapool(x, beta, *g)
    torch.testing.assert_close(y, y_ref)
    grad = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, (x, beta), grad), torch.autograd.grad(y_ref, (x, beta), grad)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("case", GEOMETRIES, ids=GEOMETRY_IDS)
@pytest.mark.parametrize("normalize", ["mean", "mass"])
def test_adaunpool_matches_reference(case, normalize):
    torch.manual_seed(2)
    size, g = _geometry(case)
    out = g.output_size(size)
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 3, *out, dtype=torch.float64, requires_grad=True)
    beta = _beta("spatial", 3, out).requires_grad_()
    u = ops.adaunpool(z, x, beta, g.kernel_size, g.stride, g.padding, g.dilation, g.ceil_mode, normalize=normalize)
    u_ref = ref.adaunpool(z, x, beta, *g, normalize)
    torch.testing.assert_close(u, u_ref, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(u)
    got = torch.autograd.grad(u, (z, x, beta), grad)
    want = torch.autograd.grad(u_ref, (z, x, beta), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


# ---- gradcheck (float64, finite differences: independent of both implementations) -------------------------


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("size,k,s,p", [((7,), 3, 2, 1), ((5, 6), 3, 2, 1), ((3, 4, 5), 2, 1, 1)])
def test_pool_gradcheck(name, size, k, s, p):
    torch.manual_seed(3)
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    g = make_geometry(len(size), k, s, p)
    if name == "adapool":
        beta = _beta("spatial", 2, g.output_size(size)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: ops.adapool(a, b, k, s, p), (x, beta))
    else:
        assert torch.autograd.gradcheck(lambda a: getattr(ops, name)(a, k, s, p), (x,))


@pytest.mark.parametrize("normalize", ["mean", "mass"])
@pytest.mark.parametrize("size,k,s,p", [((7,), 3, 2, 1), ((6, 5), 2, 3, 1), ((3, 4, 4), 2, 2, 0)])
def test_adaunpool_gradcheck(normalize, size, k, s, p):
    torch.manual_seed(4)
    g = make_geometry(len(size), k, s, p)
    out = g.output_size(size)
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 2, *out, dtype=torch.float64, requires_grad=True)
    beta = _beta("channel", 2, out).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, c: ops.adaunpool(a, b, c, k, s, p, normalize=normalize), (z, x, beta))


# ---- shapes vs torch's pools ------------------------------------------------------------------------------


def _shape_cases():
    for nd, k, s, p, d, ceil in itertools.product((1, 2, 3), (1, 2, 3, 4, 5), (1, 2, 3), (0, 1, 2), (1, 2), (False, True)):
        if p > k // 2:
            continue
        for size in (k * d + 1, 2 * k + 3, 13):
            yield nd, size, k, s, p, d, ceil


def test_output_shapes_match_torch_pools():
    torch_pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
    torch_avg = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
    checked = 0
    for nd, size, k, s, p, d, ceil in _shape_cases():
        x = torch.randn(1, 2, *([size] * nd))
        try:
            want = torch_pool[nd](x, k, s, p, d, ceil_mode=ceil).shape
        except RuntimeError:
            with pytest.raises(ValueError):
                ops.empool(x, k, s, p, d, ceil)
            continue
        for name in POOLS:
            beta = torch.tensor(0.5) if name == "adapool" else None
            assert _call(name, x, make_geometry(nd, k, s, p, d, ceil), beta).shape == want, (name, nd, size, k, s, p, d)
        if d == 1:
            assert torch_avg[nd](x, k, s, p, ceil_mode=ceil).shape == want
        checked += 1
    assert checked > 300


# ---- dtypes, layouts, magnitudes --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("name", POOLS + ("adaunpool",))
def test_low_precision_against_float32_reference(name, dtype, tol):
    """Inputs are rounded to the low precision first, so the only error left is the output rounding
    (accumulation is in float32): tolerances are one or two output ulps."""
    torch.manual_seed(5)
    g = make_geometry(2, 3, 2, 1)
    x = torch.randn(2, 8, 13, 12).to(dtype)
    out = g.output_size((13, 12))
    beta = torch.rand(out)
    if name == "adaunpool":
        z = torch.randn(2, 8, *out).to(dtype)
        got = ops.adaunpool(z, x, beta, 3, 2, 1)
        want = ref.adaunpool(z.float(), x.float(), beta, *g)
    else:
        got = _call(name, x, g, beta)
        want = _call(name, x.float(), g, beta, impl=ref)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)
    grad = torch.randn_like(got)
    x32 = x.float().requires_grad_()
    xl = x.clone().requires_grad_()
    if name == "adaunpool":
        y_low, y32 = ops.adaunpool(z, xl, beta, 3, 2, 1), ref.adaunpool(z.float(), x32, beta, *g)
    else:
        y_low, y32 = _call(name, xl, g, beta), _call(name, x32, g, beta, impl=ref)
    (g_low,) = torch.autograd.grad(y_low, xl, grad)
    (g32,) = torch.autograd.grad(y32, x32, grad.float())
    assert g_low.dtype == dtype
    torch.testing.assert_close(g_low.float(), g32, rtol=4 * tol, atol=4 * tol)


@pytest.mark.parametrize("name", POOLS + ("adaunpool",))
@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_layouts_give_identical_results(name, layout):
    torch.manual_seed(6)
    g = make_geometry(2, 3, 2, 1)
    base = torch.randn(2, 20, 11, 14, dtype=torch.float64)
    if layout == "channels_last":
        x = base.contiguous(memory_format=torch.channels_last)
    else:
        x = torch.randn(2, 20, 11, 28, dtype=torch.float64)[..., ::2]
        base = x.contiguous()
    out = g.output_size((11, 14))
    beta = torch.rand(20, 1, 1, dtype=torch.float64)
    z = torch.randn(2, 20, *out, dtype=torch.float64)

    def run(inp):
        inp = inp.detach().requires_grad_()
        y = ops.adaunpool(z, inp, beta, 3, 2, 1) if name == "adaunpool" else _call(name, inp, g, beta)
        (gx,) = torch.autograd.grad(y, inp, torch.ones_like(y))
        return y, gx

    (y, gx), (y0, gx0) = run(x), run(base)
    torch.testing.assert_close(y, y0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx0, rtol=1e-12, atol=1e-12)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_3d():
    torch.manual_seed(7)
    x = torch.randn(2, 16, 5, 6, 7, dtype=torch.float64)
    beta = torch.rand(16, 1, 1, 1, dtype=torch.float64)
    y = ops.adapool(x.contiguous(memory_format=torch.channels_last_3d), beta, 3, 2, 1)
    torch.testing.assert_close(y, ops.adapool(x, beta, 3, 2, 1))


@pytest.mark.parametrize("dtype,magnitude", [(torch.float32, 1e4), (torch.float32, 1e30), (torch.float16, 6e4)])
@pytest.mark.parametrize("name", POOLS + ("adaunpool",))
def test_no_overflow(name, dtype, magnitude):
    torch.manual_seed(8)
    x = ((torch.rand(2, 3, 8, 8) * 2 - 1) * magnitude).to(dtype).requires_grad_()
    beta = torch.full((4, 4), 0.5)
    if name == "adaunpool":
        z = ((torch.rand(2, 3, 4, 4) * 2 - 1) * magnitude).to(dtype).requires_grad_()
        y = ops.adaunpool(z, x, beta.requires_grad_(), 2, normalize="mass")
        inputs = (z, x, beta)
    else:
        y = _call(name, x, make_geometry(2, 2, 2, 0), beta.requires_grad_())
        inputs = (x, beta) if name == "adapool" else (x,)
    assert torch.isfinite(y).all()
    for grad in torch.autograd.grad(y, inputs, torch.ones_like(y)):
        assert torch.isfinite(grad).all()


def test_softpool_alias_and_max_limit():
    """eMPool tends to max pooling when values are far apart (an oracle independent of the reference):
    values 50 apart leave the runner-up a weight below e^-50."""
    x = (torch.randperm(2 * 3 * 12 * 12, dtype=torch.float64) * 50).reshape(2, 3, 12, 12)
    torch.testing.assert_close(ops.softpool(x, 3, 2, 1), F.max_pool2d(x, 3, 2, 1), rtol=0, atol=1e-12)


def test_constant_windows_and_uniform_unpool_is_nearest():
    x = torch.full((2, 3, 8, 10), 2.5, dtype=torch.float64)
    for name in POOLS:
        torch.testing.assert_close(_call(name, x, make_geometry(2, 3, 2, 1), torch.tensor(0.3, dtype=torch.float64)),
                                   torch.full((2, 3, 4, 5), 2.5, dtype=torch.float64))
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    beta = torch.rand(4, 5, dtype=torch.float64)
    u = ops.adaunpool(z, x, beta, 2)  # constant x: uniform weights; k = s
    torch.testing.assert_close(u, F.interpolate(z, scale_factor=2, mode="nearest"))
    mass = ops.adaunpool(z, x, beta, 2, normalize="mass")
    torch.testing.assert_close(mass, F.interpolate(z, scale_factor=2, mode="nearest") / 4)


def test_unpool_mass_preserves_window_sums_with_own_weights_per_sample():
    torch.manual_seed(9)
    x = torch.randn(3, 4, 8, 8, dtype=torch.float64)
    z = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    beta = torch.rand(4, 4, dtype=torch.float64)
    u = ops.adaunpool(z, x, beta, 2, normalize="mass")
    torch.testing.assert_close(F.avg_pool2d(u, 2) * 4, z)
    mean = ops.adaunpool(z, x, beta, 2)
    torch.testing.assert_close(F.avg_pool2d(mean, 2), z)
    # every sample and channel is weighted by its own x
    x2 = x.clone()
    x2[1, 2] = torch.randn(8, 8, dtype=torch.float64)
    u2 = ops.adaunpool(z, x2, beta, 2, normalize="mass")
    changed = (u2 - u).abs().flatten(2).amax(-1) > 1e-9
    assert changed[1, 2] and changed.sum() == 1


def test_cpu_kernels_run_on_torchs_threads():
    """With torch's OpenMP backend the extension must be compiled with -fopenmp: at::parallel_for is inlined
    into it, and without OpenMP every kernel would silently run on one thread."""
    from poolswap import _extension

    assert _extension.cpu_kernels_parallel()


def test_reference_mode_switches_implementation():
    x = torch.randn(1, 2, 6, 6)
    with ops.reference_mode():
        y_ref = ops.idwpool(x, 2)
    torch.testing.assert_close(ops.idwpool(x, 2), y_ref)


# ---- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda x: ops.empool(x[0, 0], 2), ValueError, "x must have shape"),
        (lambda x: ops.empool(x[None, None], 2), ValueError, "x must have shape"),
        (lambda x: ops.empool(x, 9), ValueError, "kernel_size"),
        (lambda x: ops.empool(x, 3, padding=2), ValueError, "padding"),
        (lambda x: ops.empool(x, 3, padding=-1), ValueError, "padding"),
        (lambda x: ops.empool(x, 0), ValueError, "kernel_size"),
        (lambda x: ops.empool(x, 2, stride=0), ValueError, "stride"),
        (lambda x: ops.empool(x, (2, 2, 2)), ValueError, "kernel_size"),
        (lambda x: ops.empool(x, 2.5), TypeError, "kernel_size"),
        (lambda x: ops.empool(x.long(), 2), TypeError, "floating point"),
        (lambda x: ops.adapool(x, torch.rand(3, 3), 2), ValueError, "beta"),
        (lambda x: ops.adapool(x, torch.rand(4, 4).long(), 2), TypeError, "beta"),
        (lambda x: ops.adapool(x, torch.rand(4, 4, device="meta"), 2), ValueError, "beta is on meta"),
        (lambda x: ops.adaunpool(torch.rand(1, 2, 3, 3), x, torch.rand(4, 4), 2), ValueError, "z must have"),
        (lambda x: ops.adaunpool(torch.rand(1, 2, 4, 4, device="meta"), x, torch.rand(4, 4), 2), ValueError, "z is on"),
        (lambda x: ops.adaunpool(torch.rand(1, 2, 4, 4), x, torch.rand(4, 4), 2, normalize="sum"), ValueError,
         "normalize"),
    ],
)
def test_bad_arguments_name_the_argument(call, error, match):
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(error, match=match):
        call(x)


def test_compiled_op_checks_its_own_arguments():
    """The C++ checks (TORCH_CHECK) guard direct callers of torch.ops.poolswap.*."""
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(RuntimeError, match="padding"):
        torch.ops.poolswap.empool(x, [3, 3], [2, 2], [2, 2], [1, 1], False)
    with pytest.raises(RuntimeError, match="x must have shape"):
        torch.ops.poolswap.empool(x[0], [3, 3], [2, 2], [1, 1], [1, 1], False)
    with pytest.raises(RuntimeError, match="beta of shape"):
        torch.ops.poolswap.adapool(x, torch.rand(3), [2, 2], [2, 2], [0, 0], [1, 1], False, 1e-6)
    with pytest.raises(RuntimeError, match="normalize"):
        torch.ops.poolswap.adaunpool(torch.rand(1, 2, 4, 4), x, torch.rand(()), [2, 2], [2, 2], [0, 0], [1, 1], False,
                                     "sum", 1e-6)


# ---- torch.library: opcheck and compile --------------------------------------------------------------------


def _opcheck_samples():
    x = torch.randn(2, 3, 7, 7, requires_grad=True)  # pooled to 4x4 (ceil_mode)
    geo = ([3, 3], [2, 2], [1, 1], [1, 1], True)
    beta = torch.rand(4, 4, requires_grad=True)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    return [
        ("empool", (x, *geo)),
        ("edscwpool", (x, *geo, 1e-6)),
        ("idwpool", (x, *geo, 1e-6)),
        ("adapool", (x, beta, *geo, 1e-6)),
        ("adaunpool", (z, x, beta, *geo, "mean", 1e-6)),
        ("adaunpool", (z, x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(), beta, *geo,
                       "mass", 1e-6)),
    ]


@pytest.mark.parametrize("name,args", _opcheck_samples(), ids=lambda v: v if isinstance(v, str) else "")
def test_opcheck(name, args):
    torch.library.opcheck(getattr(torch.ops.poolswap, name).default, args)


def test_torch_compile_fullgraph_matches_eager():
    def f(x, beta, z):
        y = ops.adapool(x, beta, 3, 2, 1) + ops.empool(x, 3, 2, 1) + ops.idwpool(x, 3, 2, 1) + ops.edscwpool(x, 3, 2, 1)
        return ops.adaunpool(y * z, x, beta, 3, 2, 1)

    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    beta = torch.rand(4, 4, requires_grad=True)
    z = torch.randn(2, 3, 4, 4)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out, want = compiled(x, beta, z), f(x, beta, z)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), (x, beta)), torch.autograd.grad(want.sum(), (x, beta)))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kind", ["spatial", "channel", "scalar"])
def test_beta_gradient_with_batch_larger_than_threads(layout, kind):
    """With more images than threads the kernel sums ∂L/∂β per thread instead of per image."""
    torch.manual_seed(10)
    threads = torch.get_num_threads()
    n = 2 * threads + 3
    x = torch.randn(n, 16, 9, 10, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    g = make_geometry(2, 3, 2, 1)
    beta = _beta(kind, 16, g.output_size((9, 10))).requires_grad_()
    y, y_ref = ops.adapool(x, beta, 3, 2, 1), ref.adapool(x, beta, *g)
    grad = torch.randn_like(y_ref)
    for a, b in zip(torch.autograd.grad(y, (x, beta), grad), torch.autograd.grad(y_ref, (x, beta), grad)):
        torch.testing.assert_close(a, b)
