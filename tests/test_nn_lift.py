"""Tests for poolswap.nn.lift (LiftDownPool / LiftUpPool, DESIGN.md §2.6)."""

import copy
import importlib.util
import itertools
import pathlib

import pytest
import torch
from torch import nn

try:
    from poolswap.nn import lift
except Exception:  # the package __init__ may be under construction: load the module by path
    _path = pathlib.Path(__file__).resolve().parents[1] / "poolswap" / "nn" / "lift.py"
    _spec = importlib.util.spec_from_file_location("poolswap_nn_lift", _path)
    lift = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(lift)

LiftDownPool1d, LiftDownPool2d = lift.LiftDownPool1d, lift.LiftDownPool2d
LiftUpPool1d, LiftUpPool2d = lift.LiftUpPool1d, lift.LiftUpPool2d
aux_loss = lift.aux_loss

# (kernel_size, padding, dilation, ceil_mode): every stride-2 geometry torch accepts that we care about
GEOMETRIES = [
    (2, 0, 1, False),
    (2, 0, 1, True),
    (3, 1, 1, False),  # ResNet stem
    (3, 1, 1, True),
    (3, 0, 1, True),  # GoogLeNet
    (2, 1, 1, False),
    (3, 1, 2, False),
    (5, 0, 1, False),
]
SIZES = range(1, 18)


def _randomise(module, seed=0):
    """Give every P~/U~ conv random weights, so inversion is tested with non-trivial predictors."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    return module


def _make(cls, geometry, **kwargs):
    kernel_size, padding, dilation, ceil_mode = geometry
    return cls(kernel_size, 2, padding, dilation, ceil_mode, **kwargs)


def _torch_out(size, k, p, d, ceil, n):
    pool = nn.MaxPool1d(k, 2, p, d, ceil_mode=ceil) if n == 1 else nn.MaxPool2d(k, 2, p, d, ceil_mode=ceil)
    try:
        return tuple(pool(torch.zeros((1, 1) + size)).shape[2:])
    except RuntimeError:
        return None


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_output_shapes_1d(geometry):
    down = _make(LiftDownPool1d, geometry, channels=2)
    for size in SIZES:
        expected = _torch_out((size,), *geometry, n=1)
        x = torch.randn(2, 2, size)
        if expected is None:
            with pytest.raises(ValueError, match="too small"):
                down(x)
        else:
            assert tuple(down(x).shape) == (2, 2) + expected, size


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_output_shapes_2d(geometry):
    down = _make(LiftDownPool2d, geometry, channels=2)
    for h, w in itertools.product(SIZES, (1, 2, 7, 16, 17)):
        expected = _torch_out((h, w), *geometry, n=2)
        x = torch.randn(2, 2, h, w)
        if expected is None:
            with pytest.raises(ValueError, match="too small"):
                down(x)
        else:
            assert tuple(down(x).shape) == (2, 2) + expected, (h, w)


@pytest.mark.parametrize(
    "pool",
    [
        nn.MaxPool2d(2),
        nn.MaxPool2d(3, 2, 1),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        nn.MaxPool1d(3, 2, 1),
        nn.AvgPool1d(2, ceil_mode=True),
    ],
)
def test_from_pool_matches_replaced_layer(pool):
    cls = LiftDownPool1d if isinstance(pool, (nn.MaxPool1d, nn.AvgPool1d)) else LiftDownPool2d
    down = cls.from_pool(pool, channels=3, predictor_kernel=3)
    assert down.predictor_kernel == 3
    for size in (5, 6, 11, 16):
        x = torch.randn((2, 3) + (size,) * cls._ndim)
        assert down(x).shape == pool(x).shape


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_roundtrip_1d(dtype, tol, geometry):
    down = _randomise(_make(LiftDownPool1d, geometry, channels=3)).to(dtype)
    up = LiftUpPool1d(down)
    for size in SIZES:
        if _torch_out((size,), *geometry, n=1) is None:
            continue
        x = torch.randn(4, 3, size, dtype=dtype)
        torch.testing.assert_close(up.invert(down.lift(x)), x, atol=tol, rtol=0)
        torch.testing.assert_close(up(down(x)), x, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("bands", [("LL",), None, ("LL", "HH")])
@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2], GEOMETRIES[4]])
def test_roundtrip_2d(dtype, tol, bands, geometry):
    down = _make(LiftDownPool2d, geometry, channels=3, bands=bands)
    down = _randomise(down).to(dtype)
    up = LiftUpPool2d(down)
    for h, w in ((8, 8), (7, 9), (2, 6), (10, 3)):
        x = torch.randn(3, 3, h, w, dtype=dtype)
        r = down.lift(x)
        torch.testing.assert_close(up.invert(r), x, atol=tol, rtol=0)
        torch.testing.assert_close(up(r.output, r), x, atol=tol, rtol=0)
        torch.testing.assert_close(up(down(x)), x, atol=tol, rtol=0)


def test_up_pool_takes_ll_band_in_place_of_output():
    down = _randomise(LiftDownPool2d(2, channels=2, bands=("LL",)))
    up = LiftUpPool2d(down)
    x = torch.randn(2, 2, 6, 8)
    r = down.lift(x)
    torch.testing.assert_close(up(r.bands["LL"], r), x, atol=1e-5, rtol=0)
    # a change of y moves the reconstruction: y is used, not ignored
    assert (up(r.output + 1.0, r) - x).abs().max() > 0.1


def test_reentrant_explicit_and_drop_in():
    down = _randomise(LiftDownPool2d(3, 2, 1, channels=2))
    up = LiftUpPool2d(down)
    x1, x2 = torch.randn(3, 2, 9, 7), torch.randn(2, 2, 6, 6)
    r1, r2 = down.lift(x1), down.lift(x2)
    torch.testing.assert_close(up.invert(r2), x2, atol=1e-5, rtol=0)
    torch.testing.assert_close(up.invert(r1), x1, atol=1e-5, rtol=0)
    y1, y2 = down(x1), down(x2)  # two drop-in forwards in flight, then the ups in LIFO order
    torch.testing.assert_close(up(y2), x2, atol=1e-5, rtol=0)
    torch.testing.assert_close(up(y1), x1, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="no pending result"):
        up(y1)


def test_unpaired_down_pool_keeps_no_results():
    down = LiftDownPool2d(2, channels=2)
    down(torch.randn(1, 2, 4, 4))
    assert not down.paired and down._pending == []


def test_constant_image_has_only_ll():
    down = LiftDownPool2d(3, 2, 1, channels=2)
    x = torch.full((2, 2, 7, 10), 3.5)
    r = down.lift(x)
    torch.testing.assert_close(r.bands["LL"], torch.full_like(r.bands["LL"], 3.5))
    for name in ("LH", "HL", "HH"):
        assert r.bands[name].abs().max() == 0, name
    torch.testing.assert_close(r.output, torch.full_like(r.output, 3.5))  # all-band sum has DC gain 1
    r1 = LiftDownPool1d(2, channels=2).lift(torch.full((2, 2, 9), -1.0))
    assert r1.bands["H"].abs().max() == 0
    torch.testing.assert_close(r1.bands["L"], torch.full_like(r1.bands["L"], -1.0))


def test_untrained_ll_is_average_pool():
    down = LiftDownPool2d(2, channels=3, bands=("LL",))
    x = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(down(x), nn.functional.avg_pool2d(x, 2))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_pairs_are_aligned_with_windows(geometry):
    """Untrained L band of a ramp = pair centre, which lies on the window centre or half a sample after it."""
    kernel_size, padding, dilation, _ = geometry
    down = _make(LiftDownPool1d, geometry, channels=1, bands=("L",))
    out = down(torch.arange(40.0).view(1, 1, 40))[0, 0, 2:-2]  # interior: no replicate padding involved
    centre = 2 * torch.arange(2, 2 + out.numel()) - padding + dilation * (kernel_size - 1) / 2
    assert set((out - centre).tolist()) <= {0.0, 0.5}


def test_deepcopy_after_training_forward_keeps_pairing():
    class ED(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = _randomise(LiftDownPool2d(2, channels=2, bands=("LL",)))
            self.up = LiftUpPool2d(self.down)

        def forward(self, x):
            return self.up(self.down(x))

    model = ED()
    x = torch.randn(2, 2, 6, 6, requires_grad=True)
    model.down(x)  # leaves a pending result and regularisers holding autograd graphs
    clone = copy.deepcopy(model)
    assert clone.up.down is clone.down and clone.down.paired
    assert clone.down._pending == [] and clone.down.last_c_u is None
    torch.testing.assert_close(clone(x), x, atol=1e-5, rtol=0)


def test_bands_are_named_by_axis():
    """First letter: pass along W, second: along H (untrained Haar: differences are odd - even)."""
    down = LiftDownPool2d(2, channels=1)
    x = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])  # rows (H) 0, 1; columns (W) 0, 1
    b = down.lift(x).bands
    assert b["LL"].item() == 3.75
    assert b["LH"].item() == 4.5  # mean of row 1 - mean of row 0
    assert b["HL"].item() == 2.5  # mean over rows of (column 1 - column 0)
    assert b["HH"].item() == 3.0  # (8 - 4) - (2 - 1)


def test_gradients_reach_predictors():
    down = LiftDownPool2d(3, 2, 1, channels=2)
    x = torch.randn(2, 2, 9, 8, requires_grad=True)
    (down(x).square().sum() + aux_loss(down)).backward()
    for name, p in down.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("2.weight"):  # zero-initialised last convs learn from the first step
            assert p.grad.abs().sum() > 0, name
    down.zero_grad()
    _randomise(down)
    down(x).square().sum().backward()
    for name, p in down.named_parameters():
        assert p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_up_pool_gradients_reach_predictors():
    down = _randomise(LiftDownPool1d(2, channels=2, bands=("L",)))
    up = LiftUpPool1d(down)
    x = torch.randn(2, 2, 10)
    y = down(x)
    up(y.detach().requires_grad_()).square().sum().backward()
    for name, p in down.named_parameters():
        assert p.grad.abs().sum() > 0, name


def test_state_dict_unchanged_by_forward():
    down = _randomise(LiftDownPool2d(2, channels=2))
    LiftUpPool2d(down)
    before = {k: v.clone() for k, v in down.state_dict().items()}
    down.train()(torch.randn(2, 2, 6, 6))
    after = down.state_dict()
    assert list(after) == list(before) and list(down.buffers()) == []
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def test_up_pool_adds_no_state():
    class ED(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = LiftDownPool2d(2, channels=2)
            self.up = LiftUpPool2d(self.down)

    model = ED()
    assert all(k.startswith("down.") for k in model.state_dict())
    assert len(list(model.parameters())) == len(list(model.down.parameters()))


def test_aux_loss_hand_computed_1d():
    down = LiftDownPool1d(2, channels=1)
    down(torch.tensor([[[1.0, 2.0, 4.0, 8.0]]]))
    # Haar (untrained): d = [2-1, 8-4] = [1, 4], s = [1.5, 6]; c_u = mean((s - x_o)^2) = (0.25 + 4) / 2,
    # c_p = mean(d^2) = (1 + 16) / 2
    expected = 0.01 * 2.125 + 0.1 * 8.5
    torch.testing.assert_close(aux_loss(down), torch.tensor(expected))
    torch.testing.assert_close(aux_loss(down, lambda_u=1.0, lambda_p=0.0), torch.tensor(2.125))


def test_aux_loss_hand_computed_2d():
    down = LiftDownPool2d(2, channels=1)
    down(torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]]))
    # horizontal: rows (1, 2), (4, 8): d = 1, 4; s = 1.5, 6 -> c_u = (0.25 + 4) / 2, c_p = (1 + 16) / 2
    # vertical on s: (1.5, 6) -> d = 4.5, s = 3.75 -> c_u = 2.25^2, c_p = 4.5^2
    # vertical on d: (1, 4) -> d = 3, s = 2.5 -> c_u = 1.5^2, c_p = 3^2
    c_u = 2.125 + 2.25**2 + 1.5**2
    c_p = 8.5 + 4.5**2 + 3.0**2
    torch.testing.assert_close(aux_loss(down), torch.tensor(0.01 * c_u + 0.1 * c_p))


def test_aux_loss_from_bands_with_learned_predictors():
    """c_u, c_p recomputed from the band tensors of lift(x): c_p = mean(H^2), c_u = mean((L - x_odd)^2)."""
    down = _randomise(LiftDownPool1d(2, channels=2)).double()
    x = torch.randn(3, 2, 8, dtype=torch.float64)
    r = down.lift(x)
    c_u = (r.bands["L"] - x[..., 1::2]).square().mean()
    c_p = r.bands["H"].square().mean()
    torch.testing.assert_close(aux_loss(down), 0.01 * c_u + 0.1 * c_p)
    torch.testing.assert_close((r.c_u, r.c_p), (c_u, c_p))


def test_aux_loss_model_semantics():
    model = nn.Sequential(LiftDownPool2d(2, channels=2), nn.Conv2d(2, 2, 1), LiftDownPool2d(3, 2, 1, channels=2))
    assert aux_loss(nn.Linear(2, 2)).item() == 0.0
    assert aux_loss(model).item() == 0.0  # nothing run yet
    x = torch.randn(2, 2, 8, 8)
    model(x)
    expected = sum(0.01 * m.last_c_u + 0.1 * m.last_c_p for m in (model[0], model[2]))
    torch.testing.assert_close(aux_loss(model), expected)
    model.eval()(x)
    assert aux_loss(model).item() == 0.0  # eval-mode calls clear the regularisers
    with pytest.raises(TypeError, match="model"):
        aux_loss([model])


def test_aux_loss_is_differentiable():
    down = _randomise(LiftDownPool2d(3, 2, 1, channels=2)).double()

    def f(x):
        down(x)
        return aux_loss(down)

    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x,))
    f(x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in down.parameters())


def test_compile_fullgraph_encoder_decoder():
    class ED(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = _randomise(LiftDownPool2d(3, 2, 1, channels=2, bands=("LL",)))
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.up = LiftUpPool2d(self.down)

        def forward(self, x):
            return self.up(self.conv(self.down(x)))

    model = ED()
    x = torch.randn(2, 2, 7, 10)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, model(x))
    assert model.down._pending == []
    (out.sum() + aux_loss(model)).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kernel_size=3), "stride"),  # stride defaults to kernel_size
        (dict(kernel_size=2, stride=1), "stride"),
        (dict(kernel_size=2, stride=(2, 3)), "stride"),
        (dict(kernel_size=3, stride=2, padding=2), "padding"),
        (dict(kernel_size=2, padding=-1), "padding"),
        (dict(kernel_size=0, stride=2), "kernel_size"),
        (dict(kernel_size=2, dilation=0), "dilation"),
        (dict(kernel_size=2, channels=0), "channels"),
        (dict(kernel_size=2, predictor_kernel=4), "predictor_kernel"),
        (dict(kernel_size=2, bands=("LL", "XX")), "bands"),
        (dict(kernel_size=2, bands=()), "bands"),
        (dict(kernel_size=2, bands=("LL", "LL")), "bands"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs.setdefault("channels", 2)
    with pytest.raises(ValueError, match=match):
        LiftDownPool2d(**kwargs)


def test_bad_inputs_and_pairings():
    down = LiftDownPool2d(2, channels=2)
    with pytest.raises(TypeError, match="kernel_size"):
        LiftDownPool2d((2, 2, 2), channels=2)
    with pytest.raises(TypeError, match="kernel_size"):
        LiftDownPool2d(2.0, channels=2)
    with pytest.raises(TypeError):
        LiftDownPool2d(2)  # channels is required
    with pytest.raises(ValueError, match="bands"):
        LiftDownPool1d(2, channels=2, bands=("LL",))
    with pytest.raises(ValueError, match="dims"):
        down(torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        down(torch.randn(1, 3, 4, 4))
    with pytest.raises(TypeError, match="floating"):
        down(torch.ones(1, 2, 4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="down"):
        LiftUpPool2d(LiftDownPool1d(2, channels=2))
    with pytest.raises(ValueError, match="bands"):
        LiftUpPool2d(LiftDownPool2d(2, channels=2, bands=("HH",)))
    up = LiftUpPool2d(down)
    r = down.lift(torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="y has shape"):
        up(torch.randn(1, 2, 3, 2), r)
    with pytest.raises(TypeError, match="MaxPool2d or AvgPool2d"):
        LiftDownPool2d.from_pool(nn.MaxPool1d(2), channels=2)
    with pytest.raises(ValueError, match="return_indices"):
        LiftDownPool2d.from_pool(nn.MaxPool2d(2, return_indices=True), channels=2)
    with pytest.raises(ValueError, match="stride"):
        LiftDownPool2d.from_pool(nn.MaxPool2d(3, 1, 1), channels=2)
