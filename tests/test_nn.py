"""Modules: drop-in geometry, β modes and resampling, adaUnPool pairing, compile and export."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import poolswap
from poolswap import nn as pnn
from poolswap import ops

POOL_CLASSES = {
    "EMPool": (pnn.EMPool1d, pnn.EMPool2d, pnn.EMPool3d),
    "EDSCWPool": (pnn.EDSCWPool1d, pnn.EDSCWPool2d, pnn.EDSCWPool3d),
    "IDWPool": (pnn.IDWPool1d, pnn.IDWPool2d, pnn.IDWPool3d),
    "AdaPool": (pnn.AdaPool1d, pnn.AdaPool2d, pnn.AdaPool3d),
}
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


def _make(family: str, nd: int, *geometry, **extras):
    cls = POOL_CLASSES[family][nd - 1]
    if family == "AdaPool":
        extras.setdefault("beta_mode", "scalar")
    return cls(*geometry, **extras)


@pytest.mark.parametrize("family", POOL_CLASSES)
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("geometry", [(2,), (3, 2, 1), (3, 2, 1, 1, True), (3, 1, 1, 2, False)])
def test_modules_are_drop_in_for_maxpool(family, nd, geometry):
    # torch's 5th positional argument is return_indices: pass ceil_mode by keyword there
    pool = _make(family, nd, *geometry)
    reference = MAX_POOLS[nd - 1](*geometry[:4], ceil_mode=geometry[4] if len(geometry) > 4 else False)
    for size in (7, 8):
        x = torch.randn(2, 3, *([size] * nd))
        assert pool(x).shape == reference(x).shape
        assert pool(x[0]).shape == reference(x[0]).shape  # unbatched
    for attr in ("kernel_size", "stride", "padding", "dilation", "ceil_mode"):
        assert getattr(pool, attr) is not None


@pytest.mark.parametrize("family", POOL_CLASSES)
def test_from_pool_copies_geometry(family):
    cls = POOL_CLASSES[family][1]
    extras = {"beta_mode": "scalar"} if family == "AdaPool" else {}
    for source in (nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, count_include_pad=False)):
        pool = cls.from_pool(source, **extras)
        x = torch.randn(1, 2, 9, 9)
        assert pool(x).shape == source(x).shape
        assert pool.ceil_mode == source.ceil_mode
    with pytest.raises(ValueError, match="return_indices"):
        cls.from_pool(nn.MaxPool2d(2, return_indices=True), **extras)
    with pytest.raises(TypeError, match="MaxPool/AvgPool"):
        cls.from_pool(nn.Conv2d(1, 1, 1), **extras)


def test_module_matches_functional():
    x = torch.randn(2, 3, 10, 10)
    pool = pnn.AdaPool2d(3, 2, 1, input_size=(10, 10), beta_init=0.3)
    beta = torch.full((5, 5), 0.3)
    torch.testing.assert_close(pool(x), ops.adapool(x, beta, 3, 2, 1))
    torch.testing.assert_close(pnn.SoftPool2d(2)(x), ops.empool(x, 2))
    torch.testing.assert_close(pnn.IDWPool2d(2, eps=1e-3)(x), ops.idwpool(x, 2, eps=1e-3))
    torch.testing.assert_close(pnn.EDSCWPool2d(2, eps=1e-3)(x), ops.edscwpool(x, 2, eps=1e-3))


def test_wrong_rank_names_the_layer():
    with pytest.raises(ValueError, match="AdaPool2d expects input"):
        pnn.AdaPool2d(2, beta_mode="scalar")(torch.randn(8, 8))


# ---- β ---------------------------------------------------------------------------------------------------


def test_beta_modes_shapes_and_parameter_counts():
    stem = pnn.AdaPool2d(3, 2, 1, input_size=(112, 112))
    assert stem.beta_logit.shape == (56, 56) and stem.beta_logit.numel() == 3136  # the paper's ResNet count
    assert pnn.AdaPool2d(3, 2, 1, beta_mode="channel", channels=64).beta_logit.shape == (64, 1, 1)
    assert pnn.AdaPool2d(3, 2, 1, beta_mode="scalar").beta_logit.shape == ()
    assert pnn.AdaPool2d(3, 2, 1, beta_shape=(7, 9)).beta_logit.shape == (7, 9)
    assert [name for name, _ in stem.named_parameters()] == ["beta_mask.logit"]


@pytest.mark.parametrize("init", [0.0, 0.25, 0.5, 1.0])
def test_beta_init_and_gradient_alive_at_bounds(init):
    pool = pnn.AdaPool2d(2, beta_mode="scalar", beta_init=init)
    beta = pool.beta(3, (4, 4))
    assert 0 < beta.item() < 1 and abs(beta.item() - init) <= 1e-3 + 1e-7
    x = torch.randn(2, 3, 8, 8)
    pool(x).pow(2).sum().backward()
    assert pool.beta_logit.grad is not None and pool.beta_logit.grad.abs().item() > 0


def test_beta_gradient_is_paper_eq6_through_sigmoid():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    pool = pnn.AdaPool2d(2, beta_shape=(4, 4)).double()
    with torch.no_grad():
        pool.beta_logit.normal_()
    g = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    (pool(x) * g).sum().backward()
    beta = torch.sigmoid(pool.beta_logit.detach())
    gap = ops.edscwpool(x, 2) - ops.empool(x, 2)
    torch.testing.assert_close(pool.beta_logit.grad, (g * gap).sum((0, 1)) * beta * (1 - beta))


def test_spatial_beta_is_resampled_or_refused():
    torch.manual_seed(0)
    pool = pnn.AdaPool2d(2, input_size=(8, 8))
    with torch.no_grad():
        pool.beta_logit.normal_()
    y = pool(torch.randn(1, 2, 12, 12))
    assert y.shape == (1, 2, 6, 6)
    y.sum().backward()
    assert pool.beta_logit.grad.abs().sum() > 0  # resampling is differentiable
    want = torch.sigmoid(F.interpolate(pool.beta_logit.detach()[None, None], size=(6, 6), mode="bilinear")[0, 0])
    torch.testing.assert_close(pool.beta(2, (6, 6)), want)
    strict = pnn.AdaPool2d(2, input_size=(8, 8), beta_resize="error")
    strict(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="beta_resize='error'"):
        strict(torch.randn(1, 2, 12, 12))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(beta_mode="pixel"), "beta_mode"),
        (dict(), "beta_shape"),
        (dict(beta_mode="channel"), "channels"),
        (dict(beta_mode="scalar", beta_init=1.5), "beta_init"),
        (dict(beta_mode="scalar", beta_resize="nearest"), "beta_resize"),
        (dict(beta_mode="scalar", eps=0.0), "eps"),
        (dict(input_size=(8,)), "input_size"),
    ],
)
def test_bad_module_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pnn.AdaPool2d(2, **kwargs)


def test_channel_beta_must_match_input_channels():
    with pytest.raises(ValueError, match="beta has 4 channels"):
        pnn.AdaPool2d(2, beta_mode="channel", channels=4)(torch.randn(1, 3, 4, 4))


# ---- adaUnPool -------------------------------------------------------------------------------------------


def test_unpool_shares_the_pool_beta_and_is_not_a_submodule():
    torch.manual_seed(0)
    pool = pnn.AdaPool2d(2, input_size=(8, 8))
    unpool = pnn.AdaUnPool2d(pool)
    model = nn.ModuleDict({"pool": pool, "unpool": unpool})
    assert list(model.state_dict()) == ["pool.beta_mask.logit"]
    x = torch.randn(2, 3, 8, 8)
    u = unpool(pool(x), x)
    assert u.shape == x.shape
    u.pow(2).sum().backward()
    assert pool.beta_logit.grad.abs().sum() > 0
    beta = pool.beta(3, (4, 4))
    torch.testing.assert_close(u, ops.adaunpool(pool(x), x, beta, 2))


def test_unpool_arguments():
    with pytest.raises(TypeError, match="AdaPool2d"):
        pnn.AdaUnPool2d(pnn.EMPool2d(2))
    with pytest.raises(ValueError, match="normalize"):
        pnn.AdaUnPool2d(pnn.AdaPool2d(2, beta_mode="scalar"), normalize="sum")


# ---- torch.compile, torch.export, copies, repr -----------------------------------------------------------------------


@pytest.mark.parametrize("family", POOL_CLASSES)
def test_torch_compile_fullgraph(family):
    pool = _make(family, 2, 3, 2, 1)
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    compiled = torch.compile(pool, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, pool(x))
    (g_compiled,) = torch.autograd.grad(out.sum(), x)
    (g_eager,) = torch.autograd.grad(pool(x).sum(), x)
    torch.testing.assert_close(g_compiled, g_eager)


def test_torch_compile_inductor_adapool_with_spatial_beta_resampling():
    pool = pnn.AdaPool2d(3, 2, 1, input_size=(8, 8))
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(torch.compile(pool, fullgraph=True)(x), pool(x))


def _call_targets(program) -> set[str]:
    return {str(node.target) for node in program.graph.nodes if node.op == "call_function"}


def test_torch_export_keeps_the_op_and_reference_mode_decomposes_it():
    """torch.export sees the custom op (fake kernel); under ops.reference_mode() the same model exports to
    plain aten ops (what ONNX export and other custom-op-blind tools need). Both match eager."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    model = poolswap.convert(model, "adapool", input_size=16).eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    program = torch.export.export(model, (x,))
    assert "poolswap.adapool.default" in _call_targets(program)
    torch.testing.assert_close(program.module()(x), expected)
    with ops.reference_mode():
        plain = torch.export.export(model, (x,))
    targets = _call_targets(plain)
    assert targets and not any("poolswap" in t for t in targets), targets
    torch.testing.assert_close(plain.module()(x), expected)


def test_onnx_export_in_reference_mode_runs_in_onnxruntime():
    pytest.importorskip("onnxscript", reason="ONNX export needs the test extra (onnx, onnxscript, onnxruntime)")
    pytest.importorskip("onnxruntime", reason="ONNX export needs the test extra (onnx, onnxscript, onnxruntime)")
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 2, 1))
    model = poolswap.convert(model, "adapool", input_size=16).eval()
    with torch.no_grad():
        model[1].beta_mask.logit.normal_()  # a β that is not uniform, to check its layout survives export
    x = torch.randn(2, 3, 16, 16)
    with ops.reference_mode():
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    assert not any("poolswap" in node.domain for node in program.model_proto.graph.node)
    (out,) = program(x)  # ONNX Runtime
    torch.testing.assert_close(out, model(x).detach(), rtol=1e-5, atol=1e-5)


def test_deepcopy_and_state_dict_round_trip():
    pool = pnn.AdaPool2d(3, 2, 1, input_size=(16, 16), beta_init=0.2)
    clone = copy.deepcopy(pool)
    fresh = pnn.AdaPool2d(3, 2, 1, input_size=(16, 16))
    fresh.load_state_dict(pool.state_dict())
    x = torch.randn(1, 2, 16, 16)
    torch.testing.assert_close(fresh(x), clone(x))
    assert "beta_mode='spatial'" not in repr(pool) and "mode='spatial'" in repr(pool)


def test_lift_and_registry_expose_liftpool():
    pool = poolswap.pool_from("liftpool", nn.MaxPool2d(3, 2, 1), channels=3)
    x = torch.randn(2, 3, 9, 9)
    assert pool(x).shape == nn.MaxPool2d(3, 2, 1)(x).shape
