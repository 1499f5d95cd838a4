"""poolswap.timm.create_model: converts at pretrained_cfg's input size, features_only, no_weight_decay."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import poolswap

timm = pytest.importorskip("timm")


def test_import_poolswap_is_lazy():
    code = "import sys, poolswap; assert 'timm' not in sys.modules and 'torchvision' not in sys.modules; poolswap.timm; assert 'timm' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_create_model_converts_and_keeps_weights():
    torch.manual_seed(0)
    ref = timm.create_model("resnet50d", pretrained=False)
    torch.manual_seed(0)
    model = poolswap.timm.create_model("resnet50d", pool="adapool", pretrained=False)
    assert type(model) is type(ref)
    ref_sd, sd = ref.state_dict(), model.state_dict()
    assert set(ref_sd) <= set(sd) and all(torch.equal(ref_sd[k], sd[k]) for k in ref_sd)
    plan = poolswap.plan_of(model)
    assert plan.example == [[1, 3, 224, 224]]
    assert plan.params == 3136 + 784 + 196 + 49  # stem + three ceil_mode avg_down pools
    assert set(poolswap.no_weight_decay(model)) <= model.no_weight_decay()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_no_weight_decay_reaches_timm_optimizer_groups():
    from timm.optim import create_optimizer_v2

    model = poolswap.timm.create_model("resnet18", pool="adapool")
    opt = create_optimizer_v2(model, "sgd", lr=0.1, weight_decay=1e-4)
    beta = model.maxpool.beta_logit
    group = next(g for g in opt.param_groups if any(p is beta for p in g["params"]))
    assert group["weight_decay"] == 0.0


def test_features_only():
    model = poolswap.timm.create_model("resnet18", pool="empool", features_only=True)
    plan = poolswap.plan_of(model)
    assert [s.name for s in plan.converted] == ["maxpool"]
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]


def test_pool_rules_and_revert():
    model = poolswap.timm.create_model("densenet121", pool="idwpool", pool_rules={"include": "features.pool0"})
    assert [s.name for s in poolswap.plan_of(model).converted] == ["features.pool0"]
    poolswap.revert(model)
    assert "no_weight_decay" not in model.__dict__ and not poolswap.convert.is_converted(model)
