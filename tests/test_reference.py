"""Tests of the pure-PyTorch reference ops (poolswap/ops/_reference.py) against independent facts.

The reference is the oracle for the compiled kernels, so it is checked here against hand-written
plain-Python math, torch's own max_pool / interpolate, closed-form gradients and gradcheck.
"""

import importlib.util
import itertools
import math
import pathlib
import random

import pytest
import torch
import torch.nn.functional as F

POOLS = ("empool", "edscwpool", "idwpool", "adapool")
EPS = 1e-6


@pytest.fixture(scope="module")
def ref():
    """The reference module; loaded from its file if the package cannot be imported yet."""
    try:
        from poolswap.ops import _reference
    except Exception:
        path = pathlib.Path(__file__).resolve().parents[1] / "poolswap" / "ops" / "_reference.py"
        spec = importlib.util.spec_from_file_location("poolswap_ops_reference", path)
        _reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_reference)
    return _reference


def _geo(nd, k, s=None, p=0, d=1, ceil_mode=False):
    """Geometry tuple (kernel, stride, padding, dilation, ceil_mode) normalised to nd dims."""

    def tup(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd

    return tup(k), tup(k if s is None else s), tup(p), tup(d), ceil_mode


def _pool(ref, name, x, geo, beta=0.5):
    """Calls a pooling op by name; adapool gets a scalar beta (float32 at least)."""
    if name == "adapool":
        dtype = torch.promote_types(x.dtype, torch.float32)
        return ref.adapool(x, torch.tensor(beta, dtype=dtype), *geo)
    return getattr(ref, name)(x, *geo)


# ---------------------------------------------------------------- plain-Python window math


def _py_softmax(scores):
    m = max(scores)
    e = [math.exp(v - m) for v in scores]
    return [v / sum(e) for v in e]


def _py_em_weights(w):
    return _py_softmax(w)


def _py_dscw_weights(w):
    a = sum(w) / len(w)
    return _py_softmax([2 * abs(v * a) / (v * v + a * a + EPS) for v in w])


def _py_idw_weights(w):
    a = sum(w) / len(w)
    v = [1 / (abs(t - a) + EPS) for t in w]
    return [t / sum(v) for t in v]


def _py_dot(weights, w):
    return sum(a * b for a, b in zip(weights, w))


def _py_pool(name, w, beta=0.5):
    if name == "empool":
        return _py_dot(_py_em_weights(w), w)
    if name == "edscwpool":
        return _py_dot(_py_dscw_weights(w), w)
    if name == "idwpool":
        return _py_dot(_py_idw_weights(w), w)
    return beta * _py_pool("edscwpool", w) + (1 - beta) * _py_pool("empool", w)


def _py_unpool(z, x, beta, windows, size, normalize):
    """adaUnPool on hand-listed windows (lists of valid input positions) of a 1-D signal."""
    acc, cover = [0.0] * size, [0] * size
    for o, taps in enumerate(windows):
        vals = [x[i] for i in taps]
        wd, we = _py_dscw_weights(vals), _py_em_weights(vals)
        scale = len(taps) if normalize == "mean" else 1
        for i, a, b in zip(taps, wd, we):
            acc[i] += z[o] * scale * (beta[o] * a + (1 - beta[o]) * b)
            cover[i] += 1
    if normalize == "mass":
        return acc
    return [acc[i] / cover[i] if cover[i] else None for i in range(size)]


def _t(values):
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, -1)


# ---------------------------------------------------------------- hand-computed 1-D examples

X1 = [1.0, 2.0, 4.0, -1.0, 3.0]
# (geometry, valid taps of each window listed by hand)
HAND_CASES = [
    (_geo(1, 3, 2, 1), [[0, 1], [1, 2, 3], [3, 4]]),
    (_geo(1, 2, 2, 0, 1, True), [[0, 1], [2, 3], [4]]),  # ceil mode: last window half outside
    (_geo(1, 2, 2, 0, 1, False), [[0, 1], [2, 3]]),  # floor mode drops position 4
    (_geo(1, 2, 1, 0, 2), [[0, 2], [1, 3], [2, 4]]),  # dilation
    (_geo(1, 3, 1, 1, 2, True), [[1, 3], [0, 2, 4], [1, 3]]),  # dilation + padding
]


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("geo,windows", HAND_CASES)
def test_pool_matches_hand_windows(ref, name, geo, windows):
    y = _pool(ref, name, _t(X1), geo)
    expected = [_py_pool(name, [X1[i] for i in taps]) for taps in windows]
    torch.testing.assert_close(y, _t(expected), rtol=1e-12, atol=1e-12)


def test_literal_values(ref):
    """A few windows worked out on paper."""
    geo = _geo(1, 2, 2)
    x = _t([1.0, 2.0, 3.0, 3.0])
    e = math.e
    torch.testing.assert_close(ref.empool(x, *geo), _t([(1 + 2 * e) / (1 + e), 3.0]))
    # Two taps are equidistant from their mean: IDW is the plain mean.
    torch.testing.assert_close(ref.idwpool(x, *geo), _t([1.5, 3.0]))
    # a = 1.5: D = 3 / 3.25 and 6 / 6.25.
    d1, d2 = 3 / (3.25 + EPS), 6 / (6.25 + EPS)
    y = (math.exp(d1) * 1 + math.exp(d2) * 2) / (math.exp(d1) + math.exp(d2))
    torch.testing.assert_close(ref.edscwpool(x, *geo), _t([y, 3.0]))


def test_channels_and_batch_are_independent(ref):
    x = torch.randn(3, 4, 9, dtype=torch.float64)
    geo = _geo(1, 3, 2, 1)
    windows = [[0, 1], [1, 2, 3], [3, 4, 5], [5, 6, 7], [7, 8]]
    for name in POOLS:
        y = _pool(ref, name, x, geo, beta=0.3)
        for n, c in itertools.product(range(3), range(4)):
            row = x[n, c].tolist()
            expected = [_py_pool(name, [row[i] for i in taps], beta=0.3) for taps in windows]
            torch.testing.assert_close(y[n, c], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("normalize", ["mass", "mean"])
@pytest.mark.parametrize(
    "geo,windows,size",
    [
        (_geo(1, 3, 2, 1), [[0, 1], [1, 2, 3], [3, 4]], 5),  # overlaps, padding
        (_geo(1, 2, 2), [[0, 1], [2, 3]], 5),  # floor mode: position 4 uncovered
        (_geo(1, 1, 2), [[0], [2], [4]], 5),  # kernel < stride
        (_geo(1, 2, 3, 1), [[0], [2, 3], [5, 6]], 8),  # padding, kernel < stride
        (_geo(1, 4, 6, 2, 2), [[0, 2, 4], [4, 6, 8, 10]], 12),  # padding shifts the nearest window
    ],
)
def test_adaunpool_matches_hand_windows(ref, geo, windows, size, normalize):
    x = [1.0, 2.0, 4.0, -1.0, 3.0, 0.5, -2.0, 1.5, 2.5, -0.5, 0.25, 1.25][:size]
    z = [0.5, -2.0, 3.0][: len(windows)]
    beta = [0.25, 0.5, 0.75][: len(windows)]
    u = ref.adaunpool(_t(z), _t(x), _t(beta)[0, 0], *geo, normalize=normalize)
    expected = _py_unpool(z, x, beta, windows, size, normalize)
    if normalize == "mean":
        # Uncovered positions by hand: nearest window clamp(floor((i + p) / s), 0, O - 1).
        (s,), (p,) = geo[1], geo[2]
        for i, v in enumerate(expected):
            if v is None:
                expected[i] = z[min(max((i + p) // s, 0), len(windows) - 1)]
    torch.testing.assert_close(u, _t(expected), rtol=1e-12, atol=1e-12)


def test_adaunpool_rejects_unknown_normalize(ref):
    x = torch.randn(1, 1, 4)
    with pytest.raises(ValueError, match="normalize"):
        ref.adaunpool(torch.randn(1, 1, 2), x, torch.tensor(0.5), *_geo(1, 2), normalize="sum")


# ---------------------------------------------------------------- geometry against torch MaxPool


def _geometry_sweep():
    cases = []
    for size, k, s, d, ceil_mode in itertools.product(
        (5, 7, 8), range(1, 6), (1, 2, 3), (1, 2), (False, True)
    ):
        for p in range(k // 2 + 1):
            cases.append(((size,), _geo(1, k, s, p, d, ceil_mode)))
    rng = random.Random(0)
    for nd, count, kmax, sizes in ((2, 40, 5, (5, 6, 7, 9)), (3, 12, 3, (4, 5, 6))):
        for _ in range(count):
            k = tuple(rng.randint(1, kmax) for _ in range(nd))
            s = tuple(rng.randint(1, 3) for _ in range(nd))
            p = tuple(rng.randint(0, kk // 2) for kk in k)
            d = tuple(rng.randint(1, 2) for _ in range(nd))
            size = tuple(rng.choice(sizes) for _ in range(nd))
            cases.append((size, _geo(nd, k, s, p, d, rng.random() < 0.5)))
    return cases


def _torch_max_pool(x, geo):
    k, s, p, d, ceil_mode = geo
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[x.dim() - 3]
    return fn(x, k, s, p, d, ceil_mode)


def test_geometry_matches_max_pool(ref):
    """Output shapes and the exact set of valid taps of every window equal torch MaxPool's.

    Tap membership: pooling the one-hot input e_i marks the windows containing i. torch's max_pool
    gives 1 there (padding acts as -inf); eMPool of 50 * e_i divided by 50 gives ~1 there and 0
    elsewhere, because padding taps do not exist and 0 * e^0 = 0.
    """
    checked = 0
    for size, geo in _geometry_sweep():
        positions = math.prod(size)
        onehot = torch.eye(positions, dtype=torch.float64).reshape(positions, 1, *size)
        try:
            expected = _torch_max_pool(onehot, geo)
        except RuntimeError:
            continue  # geometry torch rejects (empty output)
        checked += 1
        for name in POOLS:
            assert _pool(ref, name, onehot, geo).shape == expected.shape, (name, size, geo)
        z = torch.randn(1, 1, *expected.shape[2:], dtype=torch.float64)
        u = ref.adaunpool(z, onehot[:1], torch.tensor(0.5, dtype=torch.float64), *geo)
        assert u.shape == onehot[:1].shape, (size, geo)
        member = ref.empool(50 * onehot, *geo) / 50 > 0.5
        assert torch.equal(member, expected > 0.5), (size, geo)
    assert checked > 400


def test_max_pool_limit(ref):
    """A very peaked eMPool is max pooling, also for all-negative inputs (no zero padding)."""
    for size, geo in _geometry_sweep()[::7]:
        values = torch.randperm(math.prod(size), dtype=torch.float64) - 1000.0  # gaps >= 1
        x = values.reshape(1, 1, *size)
        try:
            expected = _torch_max_pool(x, geo)
        except RuntimeError:
            continue
        y = ref.empool(50 * x, *geo) / 50
        finite = torch.isfinite(expected)  # windows without valid taps are -inf in torch
        torch.testing.assert_close(y[finite], expected[finite], rtol=0, atol=1e-9)


def test_window_without_valid_taps(ref):
    """k=2, d=3, p=1 on 2 samples: taps at -1 and 2, both outside. Output 0, gradient 0."""
    geo = _geo(1, 2, 1, 1, 3)
    x = torch.randn(1, 2, 2, dtype=torch.float64, requires_grad=True)
    for name in POOLS:
        y = _pool(ref, name, x, geo)
        assert y.shape == (1, 2, 1)
        assert torch.equal(y, torch.zeros_like(y))
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g, torch.zeros_like(g))
    z = torch.randn(1, 2, 1, dtype=torch.float64, requires_grad=True)
    u = ref.adaunpool(z, x, torch.tensor(0.5, dtype=torch.float64), *geo)
    torch.testing.assert_close(u, z.expand(1, 2, 2))  # no window covers anything: nearest z
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(u.sum(), (z, x)))


# ---------------------------------------------------------------- constants and uniform weights

CONST_GEOS = [
    ((7,), _geo(1, 3, 2, 1, 1, True)),
    ((6, 7), _geo(2, (3, 2), (2, 1), (1, 0), (1, 2), False)),
    ((5, 4, 6), _geo(3, 2, (1, 2, 3), 1, 1, True)),
]


@pytest.mark.parametrize("size,geo", CONST_GEOS)
def test_constant_input_gives_constant(ref, size, geo):
    x = torch.full((2, 3, *size), -2.5, dtype=torch.float64)
    for name in POOLS:
        y = _pool(ref, name, x, geo)
        torch.testing.assert_close(y, torch.full_like(y, -2.5))
    z = torch.full_like(_pool(ref, "empool", x, geo), 1.75)
    for beta in (0.0, 0.3, 1.0):
        u = ref.adaunpool(z, x, torch.tensor(beta, dtype=x.dtype), *geo, normalize="mean")
        torch.testing.assert_close(u, torch.full_like(x, 1.75))


@pytest.mark.parametrize("nd,k", [(1, 3), (2, (2, 3)), (3, 2)])
def test_adaunpool_uniform_weights_is_nearest_upsampling(ref, nd, k):
    """Constant x makes both weight rules uniform; with kernel == stride, "mean" is nearest
    upsampling and "mass" spreads each z evenly over its window."""
    geo = _geo(nd, k)
    out = (3, 2, 2)[:nd]
    size = tuple(o * kk for o, kk in zip(out, geo[0]))
    x = torch.full((2, 3, *size), 0.7, dtype=torch.float64)
    z = torch.randn(2, 3, *out, dtype=torch.float64)
    beta = torch.rand(out, dtype=torch.float64)
    nearest = F.interpolate(z, size=size, mode="nearest")
    torch.testing.assert_close(ref.adaunpool(z, x, beta, *geo, normalize="mean"), nearest)
    mass = ref.adaunpool(z, x, beta, *geo, normalize="mass")
    torch.testing.assert_close(mass, nearest / math.prod(geo[0]))


@pytest.mark.parametrize("size,geo", CONST_GEOS)
def test_adaunpool_mass_is_preserved(ref, size, geo):
    """Every window's weights sum to 1, so "mass" mode preserves sum(z) (paper Eq. 7)."""
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    z = torch.randn_like(_pool(ref, "empool", x, geo))
    beta = torch.rand(z.shape[1:], dtype=torch.float64)
    u = ref.adaunpool(z, x, beta, *geo, normalize="mass")
    torch.testing.assert_close(u.flatten(2).sum(-1), z.flatten(2).sum(-1))


def test_adaunpool_batch_and_channels_use_their_own_weights(ref):
    geo = _geo(2, 3, 2, 1)
    x = torch.randn(3, 2, 7, 6, dtype=torch.float64)
    z = torch.randn(3, 2, 4, 3, dtype=torch.float64)
    beta = torch.rand(4, 3, dtype=torch.float64)
    u = ref.adaunpool(z, x, beta, *geo)
    for n in range(3):
        for c in range(2):
            one = ref.adaunpool(z[n : n + 1, c : c + 1], x[n : n + 1, c : c + 1], beta, *geo)
            torch.testing.assert_close(u[n : n + 1, c : c + 1], one)


# ---------------------------------------------------------------- adaPool's beta


@pytest.mark.parametrize("beta_shape", ["spatial", "channel", "scalar"])
def test_adapool_beta_broadcast_and_gradient(ref, beta_shape):
    geo = _geo(2, 3, 2, 1, 1, True)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    out = ref.empool(x, *geo).shape[2:]
    shape = {"spatial": out, "channel": (3, 1, 1), "scalar": ()}[beta_shape]
    beta = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    y = ref.adapool(x, beta, *geo)
    y_d, y_e = ref.edscwpool(x, *geo), ref.empool(x, *geo)
    torch.testing.assert_close(y, beta * y_d + (1 - beta) * y_e)
    # dL/dbeta = sum over broadcast dims of g * (y_eDSCW - y_eM)   (DESIGN 2.4)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, beta, g)
    expected = (g * (y_d - y_e)).sum_to_size(beta.shape) if shape else (g * (y_d - y_e)).sum()
    torch.testing.assert_close(grad, expected)


# ---------------------------------------------------------------- gradients


def test_empool_closed_form_gradient(ref):
    """dy/dx_i = w_i (1 + x_i - y) for one window (DESIGN 2.1)."""
    x = torch.tensor([[[0.3, -1.2, 2.0, 0.7]]], dtype=torch.float64, requires_grad=True)
    y = ref.empool(x, *_geo(1, 4))
    (g,) = torch.autograd.grad(y.sum(), x)
    w = torch.softmax(x.detach(), -1)
    torch.testing.assert_close(g, w * (1 + x.detach() - y.detach()))


GRAD_CASES = [
    ((9,), _geo(1, 3, 2, 1, 2, True)),
    ((5, 6), _geo(2, (3, 2), (2, 1), (1, 1), 1, True)),
    ((3, 4, 3), _geo(3, 2, (1, 2, 2), (1, 0, 1), 1, False)),
    ((5,), _geo(1, 1, 2)),  # kernel < stride: uncovered positions in adaUnPool
]


@pytest.mark.parametrize("size,geo", GRAD_CASES)
def test_gradcheck_pools(ref, size, geo):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, *size, dtype=torch.float64, generator=gen, requires_grad=True)
    out = ref.empool(x, *geo).shape[2:]
    beta = torch.rand(out, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ref.empool(t, *geo), (x,))
    assert torch.autograd.gradcheck(lambda t: ref.edscwpool(t, *geo), (x,))
    assert torch.autograd.gradcheck(lambda t: ref.idwpool(t, *geo), (x,))
    assert torch.autograd.gradcheck(lambda t, b: ref.adapool(t, b, *geo), (x, beta))


@pytest.mark.parametrize("normalize", ["mean", "mass"])
@pytest.mark.parametrize("size,geo", GRAD_CASES)
def test_gradcheck_adaunpool(ref, size, geo, normalize):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, *size, dtype=torch.float64, generator=gen, requires_grad=True)
    out = ref.empool(x, *geo).shape[2:]
    z = torch.randn(2, 2, *out, dtype=torch.float64, generator=gen, requires_grad=True)
    beta = torch.rand(2, *([1] * len(out)), dtype=torch.float64, generator=gen)
    beta.requires_grad_(True)

    def fn(z_, x_, b_):
        return ref.adaunpool(z_, x_, b_, *geo, normalize=normalize)

    assert torch.autograd.gradcheck(fn, (z, x, beta))


# ---------------------------------------------------------------- dtypes and magnitudes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_is_computed_in_float32(ref, dtype):
    geo = _geo(2, 3, 2, 1)
    # 300 squared overflows float16; the float32 computation must not see that.
    x = (torch.randn(2, 3, 7, 7) * 300).to(dtype)
    beta = torch.tensor(0.4)
    for name in POOLS:
        y = _pool(ref, name, x, geo, beta=0.4)
        assert y.dtype == dtype
        assert torch.equal(y, _pool(ref, name, x.float(), geo, beta=0.4).to(dtype))
    z = ref.empool(x, *geo)
    u = ref.adaunpool(z, x, beta, *geo)
    assert u.dtype == dtype
    assert torch.equal(u, ref.adaunpool(z.float(), x.float(), beta, *geo).to(dtype))


def test_float64_stays_float64(ref):
    x = torch.randn(1, 2, 6, dtype=torch.float64)
    for name in POOLS:
        assert _pool(ref, name, x, _geo(1, 2)).dtype == torch.float64


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e15])
def test_finite_output_and_gradient_at_any_magnitude(ref, scale):
    """float32, values up to 1e15 (eDSCW squares them; float32 holds 1e30)."""
    geo = _geo(2, 3, 2, 1, 1, True)
    x = (torch.randn(2, 3, 8, 7) * scale).requires_grad_(True)
    z = torch.randn_like(ref.empool(x, *geo)).requires_grad_(True)
    beta = torch.full(z.shape[2:], 0.5, requires_grad=True)
    for name in POOLS:
        y = _pool(ref, name, x, geo)
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(y).all() and torch.isfinite(g).all(), name
    for normalize in ("mean", "mass"):
        u = ref.adaunpool(z, x, beta, *geo, normalize=normalize)
        grads = torch.autograd.grad(u.sum(), (z, x, beta))
        assert torch.isfinite(u).all() and all(torch.isfinite(g).all() for g in grads)


def test_empool_does_not_overflow(ref):
    x = torch.tensor([[[1e30, -1e30, 3e38, 2e38]]], requires_grad=True)
    y = ref.empool(x, *_geo(1, 2))
    torch.testing.assert_close(y, torch.tensor([[[1e30, 3e38]]]))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()
