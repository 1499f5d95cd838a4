"""The registry: names, aliases, factories, errors."""

import pytest
import torch
from torch import nn

import poolswap
from poolswap import nn as pnn


def test_builtin_names():
    assert poolswap.list_pools() == ["adapool", "avg", "edscwpool", "empool", "idwpool", "liftpool", "max", "softpool"]
    assert poolswap.get_pool("softpool") is pnn.EMPool2d
    assert poolswap.get_pool("SoftPool", nd=3) is pnn.EMPool3d
    assert poolswap.get_pool("max", nd=1) is nn.MaxPool1d
    assert poolswap.get_pool("liftpool", nd=1) is pnn.LiftDownPool1d


@pytest.mark.parametrize("name", ["adapool", "empool", "edscwpool", "idwpool", "max", "avg", "liftpool"])
def test_create_pool_gives_maxpool_shapes(name):
    extras = {"adapool": {"beta_mode": "scalar"}, "liftpool": {"channels": 3}}.get(name, {})
    pool = poolswap.create_pool(name, 3, 2, 1, **extras)
    x = torch.randn(2, 3, 11, 10)
    assert pool(x).shape == nn.MaxPool2d(3, 2, 1)(x).shape


def test_pool_from_uses_the_module_geometry():
    source = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), ceil_mode=True)
    pool = poolswap.pool_from("idwpool", source)
    assert isinstance(pool, pnn.IDWPool3d) and pool.ceil_mode and pool.kernel_size == (1, 3, 3)
    with pytest.raises(TypeError, match="MaxPool/AvgPool"):
        poolswap.pool_from("idwpool", nn.Identity())


def test_errors_name_the_choices():
    with pytest.raises(ValueError, match="valid names: adapool, avg"):
        poolswap.create_pool("maxx", 2)
    with pytest.raises(ValueError, match=r"supports \[1, 2\]-d"):
        poolswap.get_pool("liftpool", nd=3)
    with pytest.raises(TypeError, match="method must be"):
        poolswap.get_pool(3)
    with pytest.raises(ValueError, match="no dilation"):
        poolswap.create_pool("avg", 3, dilation=2)


def test_register_pool_and_refuse_duplicates():
    poolswap.register_pool("myidw", {2: pnn.IDWPool2d}, aliases=("idw2",))
    try:
        assert poolswap.get_pool("idw2") is pnn.IDWPool2d
        with pytest.raises(ValueError, match="already registered"):
            poolswap.register_pool("myidw", {2: pnn.IDWPool2d})
        with pytest.raises(ValueError, match="spatial dims"):
            poolswap.register_pool("bad", {4: pnn.IDWPool2d})
    finally:
        from poolswap import registry

        registry._METHODS.pop("myidw")
        registry._ALIASES.pop("idw2")
