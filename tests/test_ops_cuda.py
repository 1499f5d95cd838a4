"""CUDA kernels (csrc/ops/cuda) of the pooling ops, with the CPU kernels as the oracle.

Every case runs the same op on both devices: forward and every gradient (the private backward ops
directly, and torch.autograd through the functional API ``poolswap.ops``), over a geometry sweep
(kernel 1-5 incl. non-square, stride != kernel, padding, dilation 2, ceil_mode, odd sizes, 1-D/2-D/3-D,
N > 1, C > 1). Also: gradcheck in float64 on the GPU, float16/bfloat16 against float32, channels_last,
large magnitudes, determinism (the backward kernels gather, no atomics), streams and devices.

The CPU kernels are themselves checked against the pure-PyTorch reference in the CPU op tests.
Without a GPU every test here shows as skipped ("needs a CUDA GPU").
"""

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

EPS = 1e-6
POOLS = ("empool", "edscwpool", "idwpool")
MODE = {"empool": 0, "edscwpool": 1, "idwpool": 2, "adapool": 3}
BETAS = ("scalar", "channel", "spatial")
NORMALIZE = ("mean", "mass")
# Tolerances of the GPU against the CPU kernels: float64 math is the same on both; float32 differs by the
# GPU's fast exp / division and summation order. Reduced precision is compared with float32 on the GPU.
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}
LOW_TOL = {torch.float16: 1e-2, torch.bfloat16: 3e-2}

# (spatial size, kernel, stride, padding, dilation, ceil_mode)
GEOMETRIES = [
    ((11,), (3,), (2,), (1,), (1,), False),
    ((10,), (4,), (3,), (2,), (2,), True),  # dilation 2, ceil
    ((9,), (1,), (2,), (0,), (1,), False),  # kernel 1 < stride: uncovered positions
    ((12,), (5,), (5,), (2,), (1,), True),
    ((8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),  # kernel == stride
    ((9, 11), (3, 2), (2, 1), (1, 1), (1, 1), True),  # non-square, odd sizes, ceil
    ((13, 12), (5, 5), (3, 4), (2, 2), (2, 1), False),  # kernel 5, dilation 2
    ((8, 9), (1, 4), (3, 2), (0, 2), (1, 2), True),
    ((7, 7), (3, 3), (3, 3), (0, 0), (1, 1), True),  # ceil: partial last window
    ((10, 11), (2, 3), (3, 4), (0, 1), (1, 1), False),  # stride > kernel: gaps, dropped tail
    ((5, 6, 7), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), False),
    ((6, 5, 7), (2, 3, 1), (2, 1, 3), (1, 1, 0), (2, 1, 1), True),
    ((4, 7, 5), (4, 2, 3), (3, 3, 1), (2, 0, 1), (1, 2, 1), True),
]
# A few small ones for gradcheck and the slower checks (one per rank, plus gaps for adaUnPool).
SMALL = [
    ((7,), (3,), (2,), (1,), (2,), True),
    ((6, 7), (3, 2), (2, 3), (1, 1), (1, 1), True),
    ((5, 6), (2, 2), (3, 3), (1, 0), (1, 1), False),
    ((4, 5, 5), (2, 3, 2), (2, 2, 1), (1, 1, 0), (1, 1, 2), False),
]


def _ids(geos):
    return ["S{}-k{}-s{}-p{}-d{}{}".format(*(",".join(map(str, t)) for t in g[:5]), "-ceil" if g[5] else "")
            for g in geos]


@pytest.fixture(scope="module")
def ops():
    import poolswap.ops as ops
    from poolswap import _extension

    assert _extension.has_cuda_kernels(), "poolswap._C was built without its CUDA kernels"
    return ops


def _P():
    return torch.ops.poolswap


def _geo_args(geo):
    """(kernel, stride, padding, dilation, ceil_mode) as the ops' schemas take them."""
    _, k, s, p, d, cm = geo
    return list(k), list(s), list(p), list(d), cm


def _kwargs(geo):
    """The same geometry as functional-API keywords."""
    _, k, s, p, d, cm = geo
    return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=cm)


def _x(geo, dtype=torch.float64, scale=2.0, n=2, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, *geo[0], generator=gen, dtype=torch.float64) * scale).to(dtype)


def _out_size(geo):
    size, k, s, p, d, cm = geo
    out = []
    for i, kk, ss, pp, dd in zip(size, k, s, p, d):
        o = (i + 2 * pp - dd * (kk - 1) - 1 + (ss - 1 if cm else 0)) // ss + 1
        if cm and (o - 1) * ss >= i + pp:
            o -= 1
        out.append(o)
    return tuple(out)


def _beta(kind, geo, c=3, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    out = _out_size(geo)
    shape = {"scalar": (), "channel": (c,) + (1,) * len(out), "spatial": out}[kind]
    return torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)


def _randn_like(t, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype)


def _close(gpu, cpu, dtype, what):
    tol = TOL[dtype]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def _eps_args(name):
    return () if name == "empool" else (EPS,)


# ---------------------------------------------------------------- the ops against the CPU kernels


def test_cuda_kernels_registered(ops):
    for name in ("empool", "edscwpool", "idwpool", "adapool", "_pool_backward", "adaunpool", "_adaunpool_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"poolswap::{name}", "CUDA"), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("geo", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_pool_matches_cpu(ops, geo, name, dtype):
    P, args = _P(), _geo_args(geo)
    x = _x(geo, dtype)
    y = getattr(P, name)(x, *args, *_eps_args(name))
    y_gpu = getattr(P, name)(x.cuda(), *args, *_eps_args(name))
    assert y_gpu.is_cuda and y_gpu.dtype == dtype and y_gpu.shape == y.shape
    _close(y_gpu, y, dtype, f"{name} forward")
    g = _randn_like(y, seed=2)
    eps = EPS if name != "empool" else 0.0
    gx, gb = P._pool_backward(g, x, None, MODE[name], *args, eps)
    gx_gpu, gb_gpu = P._pool_backward(g.cuda(), x.cuda(), None, MODE[name], *args, eps)
    _close(gx_gpu, gx, dtype, f"{name} grad_x")
    assert gb_gpu.numel() == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("beta_kind", BETAS)
@pytest.mark.parametrize("geo", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_adapool_matches_cpu(ops, geo, beta_kind, dtype):
    P, args = _P(), _geo_args(geo)
    x, beta = _x(geo, dtype), _beta(beta_kind, geo, dtype=dtype)
    y = P.adapool(x, beta, *args, EPS)
    _close(P.adapool(x.cuda(), beta.cuda(), *args, EPS), y, dtype, "adapool forward")
    g = _randn_like(y, seed=2)
    gx, gb = P._pool_backward(g, x, beta, MODE["adapool"], *args, EPS)
    gx_gpu, gb_gpu = P._pool_backward(g.cuda(), x.cuda(), beta.cuda(), MODE["adapool"], *args, EPS)
    assert gb_gpu.shape == beta.shape
    _close(gx_gpu, gx, dtype, "adapool grad_x")
    _close(gb_gpu, gb, dtype, "adapool grad_beta")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("beta_kind", BETAS)
@pytest.mark.parametrize("geo", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_adaunpool_matches_cpu(ops, geo, beta_kind, normalize, dtype):
    P, args = _P(), _geo_args(geo)
    x, beta = _x(geo, dtype), _beta(beta_kind, geo, dtype=dtype)
    z = _x((_out_size(geo),) + geo[1:], dtype, seed=3)
    u = P.adaunpool(z, x, beta, *args, normalize, EPS)
    u_gpu = P.adaunpool(z.cuda(), x.cuda(), beta.cuda(), *args, normalize, EPS)
    assert u_gpu.shape == x.shape
    _close(u_gpu, u, dtype, f"adaunpool {normalize} forward")
    g = _randn_like(u, seed=4)
    expected = P._adaunpool_backward(g, z, x, beta, *args, normalize, EPS)
    got = P._adaunpool_backward(g.cuda(), z.cuda(), x.cuda(), beta.cuda(), *args, normalize, EPS)
    for what, a, b in zip(("grad_z", "grad_x", "grad_beta"), got, expected):
        assert a.shape == b.shape
        _close(a, b, dtype, f"adaunpool {normalize} {what}")


# ---------------------------------------------------------------- autograd through the functional API


def _call(ops, name, x, beta=None, z=None, normalize="mean", geo=None, eps=EPS):
    kw = _kwargs(geo)
    if name == "empool":
        return ops.empool(x, **kw)
    if name in ("edscwpool", "idwpool"):
        return getattr(ops, name)(x, **kw, eps=eps)
    if name == "adapool":
        return ops.adapool(x, beta, **kw, eps=eps)
    return ops.adaunpool(z, x, beta, **kw, normalize=normalize, eps=eps)


# (op, beta kind, normalize) covering every op
VARIANTS = [
    ("empool", None, None),
    ("edscwpool", None, None),
    ("idwpool", None, None),
    ("adapool", "scalar", None),
    ("adapool", "channel", None),
    ("adapool", "spatial", None),
    ("adaunpool", "spatial", "mean"),
    ("adaunpool", "channel", "mass"),
]
VARIANT_IDS = ["-".join(v for v in var if v) for var in VARIANTS]


def _inputs(variant, geo, dtype, device, seed=0, c=3):
    """Leaf tensors (x, beta, z) for a variant; beta and z are None where the op has none."""
    name, beta_kind, _ = variant
    x = _x(geo, dtype, c=c, seed=seed).to(device).requires_grad_()
    beta = _beta(beta_kind, geo, c=c, dtype=dtype).to(device).requires_grad_() if beta_kind else None
    z = None
    if name == "adaunpool":
        z = _x((_out_size(geo),) + geo[1:], dtype, c=c, seed=seed + 3).to(device).requires_grad_()
    return x, beta, z


def _forward_backward(ops, variant, geo, dtype, device):
    name, _, normalize = variant
    x, beta, z = _inputs(variant, geo, dtype, device)
    out = _call(ops, name, x, beta, z, normalize, geo)
    w = _randn_like(out.detach().cpu(), seed=5).to(device)
    (out * w).sum().backward()
    leaves = [t for t in (x, beta, z) if t is not None]
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("geo", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_autograd_matches_cpu(ops, geo, variant):
    dtype = torch.float64
    out, grads = _forward_backward(ops, variant, geo, dtype, "cpu")
    out_gpu, grads_gpu = _forward_backward(ops, variant, geo, dtype, "cuda")
    _close(out_gpu, out, dtype, "forward")
    for i, (a, b) in enumerate(zip(grads_gpu, grads)):
        assert a is not None and a.is_cuda
        _close(a, b, dtype, f"grad of input {i}")


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("geo", SMALL, ids=_ids(SMALL))
def test_gradcheck_cuda(ops, geo, variant):
    name, _, normalize = variant
    # IDW's weights 1 / (|d| + eps) are steep near d = 0; a larger eps keeps finite differences accurate
    eps = 1e-2 if name == "idwpool" else EPS
    x, beta, z = _inputs(variant, geo, torch.float64, "cuda", c=2)
    leaves = tuple(t for t in (x, beta, z) if t is not None)

    def fn(*args):
        it = iter(args)
        xx = next(it)
        bb = next(it) if beta is not None else None
        zz = next(it) if z is not None else None
        return _call(ops, name, xx, bb, zz, normalize, geo, eps=eps)

    assert torch.autograd.gradcheck(fn, leaves)


# ---------------------------------------------------------------- reduced precision, layouts, magnitudes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("geo", SMALL + GEOMETRIES[5:7], ids=_ids(SMALL + GEOMETRIES[5:7]))
def test_reduced_precision_matches_float32(ops, geo, variant, dtype):
    """Half / bfloat16 compute in float32: they match float32 run on the same (rounded) values."""
    name, _, normalize = variant
    x, beta, z = _inputs(variant, geo, dtype, "cuda")
    out = _call(ops, name, x, beta, z, normalize, geo)
    assert out.dtype == dtype
    w = _randn_like(out.detach().cpu(), seed=5).to(dtype).cuda()
    (out * w).sum().backward()

    def f32(t):
        return None if t is None else t.detach().float().requires_grad_()

    x32, beta32, z32 = f32(x), f32(beta), f32(z)
    out32 = _call(ops, name, x32, beta32, z32, normalize, geo)
    (out32 * w.float()).sum().backward()
    tol = LOW_TOL[dtype]
    torch.testing.assert_close(out.float(), out32, rtol=tol, atol=tol)
    for a, b in ((x, x32), (beta, beta32), (z, z32)):
        if a is not None:
            assert a.grad.dtype == dtype
            torch.testing.assert_close(a.grad.float(), b.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("geo", [g for g in GEOMETRIES if len(g[0]) >= 2][:3] + [GEOMETRIES[-1]],
                         ids=_ids([g for g in GEOMETRIES if len(g[0]) >= 2][:3] + [GEOMETRIES[-1]]))
def test_channels_last(ops, geo, variant):
    name, _, normalize = variant
    fmt = torch.channels_last if len(geo[0]) == 2 else torch.channels_last_3d
    out, grads = _forward_backward(ops, variant, geo, torch.float32, "cuda")
    x, beta, z = _inputs(variant, geo, torch.float32, "cuda")
    x_cl = x.detach().contiguous(memory_format=fmt).requires_grad_()
    z_cl = None if z is None else z.detach().contiguous(memory_format=fmt).requires_grad_()
    out_cl = _call(ops, name, x_cl, beta, z_cl, normalize, geo)
    # a drop-in pool keeps the input's memory format
    assert out_cl.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(out_cl, out)
    w = _randn_like(out.cpu(), seed=5).cuda()
    (out_cl * w).sum().backward()
    assert x_cl.grad.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(x_cl.grad, grads[0])
    if beta is not None:
        torch.testing.assert_close(beta.grad, grads[1])
    if z is not None:
        torch.testing.assert_close(z_cl.grad, grads[-1])


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("geo", SMALL, ids=_ids(SMALL))
def test_large_magnitude_is_finite(ops, geo, variant):
    name, _, normalize = variant
    x, beta, z = _inputs(variant, geo, torch.float32, "cuda")
    with torch.no_grad():
        x.mul_(1e4)
        if z is not None:
            z.mul_(1e4)
    out = _call(ops, name, x, beta, z, normalize, geo)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for t in (x, beta, z):
        if t is not None:
            assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_backward_is_deterministic(ops, variant):
    geo = GEOMETRIES[6]  # overlapping windows: every input gathers several contributions
    _, first = _forward_backward(ops, variant, geo, torch.float32, "cuda")
    _, second = _forward_backward(ops, variant, geo, torch.float32, "cuda")
    for a, b in zip(first, second):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- streams, devices, edge cases


def test_runs_on_the_current_stream(ops):
    geo = GEOMETRIES[5]
    x, beta = _x(geo, torch.float32).cuda(), _beta("spatial", geo, dtype=torch.float32).cuda()
    expected = _P().adapool(x, beta, *_geo_args(geo), EPS)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = _P().adapool(x, beta, *_geo_args(geo), EPS)
        u = _P().adaunpool(y, x, beta, *_geo_args(geo), "mean", EPS)
    stream.synchronize()
    torch.testing.assert_close(y, expected)
    assert u.shape == x.shape


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_second_device(ops):
    geo = GEOMETRIES[6]
    for variant in VARIANTS:
        out, grads = _forward_backward(ops, variant, geo, torch.float64, "cpu")
        out_gpu, grads_gpu = _forward_backward(ops, variant, geo, torch.float64, "cuda:1")
        assert out_gpu.device == torch.device("cuda:1")
        _close(out_gpu, out, torch.float64, "forward on cuda:1")
        for a, b in zip(grads_gpu, grads):
            _close(a, b, torch.float64, "gradient on cuda:1")


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_empty_batch(ops, variant):
    geo = GEOMETRIES[5]
    name, beta_kind, normalize = variant
    x = torch.zeros(0, 3, *geo[0], device="cuda", requires_grad=True)
    beta = _beta(beta_kind, geo, dtype=torch.float32).cuda().requires_grad_() if beta_kind else None
    z = torch.zeros(0, 3, *_out_size(geo), device="cuda", requires_grad=True) if name == "adaunpool" else None
    out = _call(ops, name, x, beta, z, normalize, geo)
    assert out.shape[0] == 0
    out.sum().backward()
    assert x.grad.shape == x.shape
    if beta is not None:
        torch.testing.assert_close(beta.grad, torch.zeros_like(beta))


def test_mismatched_devices_are_errors(ops):
    geo = GEOMETRIES[5]
    P, args = _P(), _geo_args(geo)
    x = _x(geo, torch.float32).cuda()
    beta = _beta("spatial", geo, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="beta"):
        P.adapool(x, beta, *args, EPS)
    z = torch.zeros(2, 3, *_out_size(geo))
    with pytest.raises(RuntimeError, match="z"):
        P.adaunpool(z, x, beta.cuda(), *args, "mean", EPS)
    with pytest.raises(RuntimeError, match="x"):
        P.adaunpool(z.cuda(), x.cpu(), beta.cuda(), *args, "mean", EPS)
