"""The conversion pass (DESIGN.md §3): plan, convert, rules, functional sites, pairing, β sizing, save/load,
revert. Forward/backward runs use small inputs; β counts are planned at 224×224."""

from __future__ import annotations

import copy
import pathlib

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import poolswap
from poolswap import nn as pnn
from poolswap.convert.modules import PairedAdaUnPool, SamePadPool
from poolswap.convert.plan import Plan

EXPECTED = pathlib.Path(__file__).parent / "expected"


# -- toy models --------------------------------------------------------------------------------------------
class FunctionalNet(nn.Module):
    """Calls F.max_pool2d in its own forward (a functional site at the root)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 3, 2, 1)
        x = F.avg_pool2d(x, 2)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def extra_method(self):
        return "kept"


class SegNet(nn.Module):
    """MaxPool2d + Upsample encoder-decoder; channels match at each level."""

    def __init__(self, functional_up: bool = False):
        super().__init__()
        self.functional_up = functional_up
        self.enc1, self.enc2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.pool1, self.pool2 = nn.MaxPool2d(2), nn.MaxPool2d(2)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.up2, self.up1 = nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2)
        self.dec2, self.dec1 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        x = self.pool1(torch.relu(self.enc1(x)))
        x = self.pool2(torch.relu(self.enc2(x)))
        x = torch.relu(self.mid(x))
        x = F.interpolate(x, scale_factor=2.0) if self.functional_up else self.up2(x)
        x = torch.relu(self.dec2(x))
        return self.dec1(self.up1(x))


class FPNish(nn.Module):
    """A top-down upsample of features no pool produced: unpaired."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        a = self.c1(x)
        b = self.c2(a)
        return a + F.interpolate(b, size=a.shape[-2:], mode="nearest"), self.pool(a)


class Shared(nn.Module):
    """One pool module called at two places (SPPF-like)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.pool(self.conv(self.pool(x)))


def small(model, size=64, batch=2, channels=3):
    return torch.randn(batch, channels, size, size)


# -- plan / convert ----------------------------------------------------------------------------------------
def test_plan_does_not_change_the_model():
    model = torchvision.models.resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = poolswap.plan(model)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [s.name for s in plan.converted] == ["maxpool"] and plan["avgpool"].status == "skip"
    assert "adaptive" in plan["avgpool"].reason


def test_convert_keeps_class_methods_weights_and_keys():
    model = torchvision.models.resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = poolswap.convert(model, "adapool")
    assert out is model and type(model) is torchvision.models.ResNet and hasattr(model, "_forward_impl")
    after = model.state_dict()
    assert set(after) - set(before) == {"maxpool.beta_mask.logit"}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model.maxpool, pnn.AdaPool2d)
    y = model(small(model))
    y.sum().backward()
    assert model.maxpool.beta_logit.grad is not None and model.conv1.weight.grad is not None


@pytest.mark.parametrize(
    "name, expected",
    [("resnet18", 3136), ("resnet34", 3136), ("resnet50", 3136), ("resnet101", 3136), ("resnet152", 3136),
     ("densenet121", 4165)],
)  # fmt: skip
def test_beta_counts_match_the_paper(name, expected):
    model = torchvision.models.get_model(name, weights=None)
    assert poolswap.plan(model, "adapool").params == expected


def test_functional_sites_are_rewritten_and_class_kept():
    model = FunctionalNet()
    ref = copy.deepcopy(model)
    x = small(model)
    poolswap.convert(model, "empool")
    plan = poolswap.plan_of(model)
    assert [s.name for s in plan.converted] == ["max_pool2d/0", "avg_pool2d/0"]
    assert plan["adaptive_avg_pool2d/0"].status == "skip"
    assert type(model) is FunctionalNet and model.extra_method() == "kept"
    assert isinstance(model.poolswap_max_pool2d_0, pnn.EMPool2d)
    assert set(model.state_dict()) == set(ref.state_dict())  # eMPool has no parameters
    y = model(x)
    assert y.shape == ref(x).shape and not torch.allclose(y, ref(x))
    poolswap.revert(model)
    assert torch.equal(model(x), ref(x)) and "poolswap_max_pool2d_0" not in dict(model.named_children())


def test_inception_v3_functional_stride2_pools_are_converted():
    model = torchvision.models.inception_v3(weights=None, init_weights=False, aux_logits=False)
    plan = poolswap.plan(model, input_size=299)
    assert plan["Mixed_6a/max_pool2d/0"].status == "convert"
    assert plan["Mixed_7a/max_pool2d/0"].status == "convert"
    assert plan["Mixed_5b/avg_pool2d/0"].status == "skip" and "stride-1" in plan["Mixed_5b/avg_pool2d/0"].reason
    opt_in = poolswap.plan(model, input_size=299, stride1_pools=True)
    assert opt_in["Mixed_5b/avg_pool2d/0"].status == "convert"


def test_module_called_twice_is_converted_once_and_lists_both_calls():
    model = Shared()
    poolswap.convert(model, "adapool", torch.randn(1, 4, 32, 32))
    site = poolswap.plan_of(model)["pool"]
    assert site.status == "convert" and len(site.calls) == 2
    assert [c["output"][2:] for c in site.calls] == [[16, 16], [8, 8]]
    assert "call 2" in str(poolswap.plan_of(model))
    assert model(torch.randn(2, 4, 32, 32)).shape == (2, 4, 8, 8)


def test_plan_table_and_dict_are_plain_data():
    plan = poolswap.plan(torchvision.models.resnet18())
    text = str(plan)
    for column in ("site", "kind", "geometry", "in -> out", "replacement", "beta", "+params", "status", "reason"):
        assert column in text.splitlines()[0]
    data = plan.to_dict()

    def plain(v):
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool))

    assert plain(data)
    assert Plan.from_dict(data).to_dict() == data


# -- rules -------------------------------------------------------------------------------------------------
def test_rules_include_exclude_overrides():
    model = torchvision.models.densenet121()
    plan = poolswap.plan(model, exclude=["features.transition*"])
    assert [s.name for s in plan.converted] == ["features.pool0"]
    plan = poolswap.plan(model, include="re:transition[12]")
    assert {s.name for s in plan.converted} == {"features.transition1.pool", "features.transition2.pool"}
    plan = poolswap.plan(model, exclude=[nn.AvgPool2d])
    assert [s.name for s in plan.converted] == ["features.pool0"]
    plan = poolswap.plan(model, overrides={"features.pool0": "idwpool", "features.transition3.pool": None})
    assert plan["features.pool0"].replacement == "IDWPool2d" and plan["features.transition3.pool"].status == "skip"
    plan = poolswap.plan(model, targets="max")
    assert [s.name for s in plan.converted] == ["features.pool0"]


@pytest.mark.parametrize(
    "rules, match",
    [(dict(include="nothing.*"), "include"), (dict(exclude=["re:^zzz"]), "exclude"),
     (dict(overrides={"nope": "empool"}), "overrides"), (dict(targets=("max", "bad")), "targets"),
     (dict(beta_mode="pixel"), "beta_mode"), (dict(upsample="bilinear"), "upsample")],
)  # fmt: skip
def test_rules_that_match_nothing_or_are_invalid_raise(rules, match):
    with pytest.raises(ValueError, match=match):
        poolswap.plan(torchvision.models.resnet18(), **rules)


def test_bad_method_and_unknown_rule():
    with pytest.raises(ValueError, match="unknown pooling method"):
        poolswap.plan(torchvision.models.resnet18(), "nopool")
    with pytest.raises(TypeError, match="unknown rule"):
        poolswap.plan(torchvision.models.resnet18(), colour="red")
    with pytest.raises(TypeError, match="model"):
        poolswap.plan("resnet18")


def test_default_exclusions_and_opt_ins():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.k1 = nn.MaxPool2d(1, 2)
            self.s1 = nn.AvgPool2d(3, 1, 1)
            self.glob = nn.AvgPool2d(8)

        def forward(self, x):
            return self.glob(self.s1(self.k1(x)))

    x = torch.randn(1, 2, 16, 16)
    plan = poolswap.plan(M(), example_inputs=x)
    assert all(s.status == "skip" for s in plan)
    assert "kernel-1" in plan["k1"].reason and "stride-1" in plan["s1"].reason and "global" in plan["glob"].reason
    plan = poolswap.plan(M(), example_inputs=x, kernel1_pools=True, stride1_pools=True, global_pools=True)
    assert all(s.status == "convert" for s in plan)


def test_callable_method():
    seen = []

    def method(pool, site):
        seen.append((type(pool).__name__, site.name))
        return poolswap.pool_from("idwpool", pool)

    model = torchvision.models.resnet18()
    poolswap.convert(model, method)
    assert seen == [("MaxPool2d", "maxpool")] and isinstance(model.maxpool, pnn.IDWPool2d)
    assert poolswap.plan_of(model)["maxpool"].method.startswith("callable:")


def test_liftpool_gets_channels_and_stride_rule():
    model = torchvision.models.resnet18()
    plan = poolswap.plan(model, "liftpool")
    assert plan["maxpool"].kwargs == {"channels": 64} and plan["maxpool"].replacement == "LiftDownPool2d"
    plan = poolswap.plan(Shared(), "liftpool", torch.randn(1, 4, 16, 16))
    assert plan["pool"].status == "convert"


def test_same_padding_pools():
    from timm.layers.pool2d_same import MaxPool2dSame

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = MaxPool2dSame(3, 2)

        def forward(self, x):
            return self.pool(x)

    for method in ("adapool", "empool", "liftpool"):
        model = M()
        poolswap.convert(model, method, torch.randn(1, 3, 16, 16))
        assert isinstance(model.pool, SamePadPool) and poolswap.plan_of(model)["pool"].same_padding
        for size in (15, 16, 17):
            x = torch.randn(1, 3, size, size + 1)
            assert model(x).shape == M()(x).shape


# -- β sizing at other resolutions -------------------------------------------------------------------------
def test_variable_input_size_and_beta_resize_error():
    model = poolswap.convert(torchvision.models.resnet18(), "adapool")
    for size in (160, 224, 288):
        assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)
    strict = poolswap.convert(torchvision.models.resnet18(), "adapool", beta_resize="error")
    strict(torch.randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match="beta_resize"):
        strict(torch.randn(1, 3, 160, 160))


@pytest.mark.parametrize("mode, shape", [("channel", [64, 1, 1]), ("scalar", [])])
def test_beta_modes(mode, shape):
    plan = poolswap.plan(torchvision.models.resnet18(), beta_mode=mode)
    assert plan["maxpool"].beta_shape == shape


# -- pairing -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("functional_up", [False, True])
@pytest.mark.parametrize("upsample", ["adaunpool", "liftpool"])
def test_pairing_encoder_decoder(upsample, functional_up):
    model = SegNet(functional_up)
    x = torch.randn(2, 3, 32, 32)
    poolswap.convert(model, "empool", x[:1], upsample=upsample)
    plan = poolswap.plan_of(model)
    up2 = "interpolate/0" if functional_up else "up2"
    assert plan[up2].paired_with == ["pool2"] and plan["up1"].paired_with == ["pool1"]
    assert plan["pool2"].paired_with == [up2]
    y = model(x)
    assert y.shape == (2, 2, 32, 32)
    y.square().sum().backward()
    if upsample == "adaunpool":
        assert isinstance(model.up1, PairedAdaUnPool) and isinstance(model.pool1, pnn.AdaPool2d)
        assert model.pool1.beta_logit.grad is not None and model.pool1.beta_logit.grad.abs().sum() > 0
    else:
        assert isinstance(model.up1, pnn.LiftUpPool2d) and model.up1.down is model.pool1
        grad = model.pool1.horizontal.predict[2].weight.grad
        assert grad is not None and grad.abs().sum() > 0
    assert not model.pool1.__dict__.get("_poolswap_stash") and not getattr(model.pool1, "_pending", [])


def test_unpaired_upsample_is_skipped_with_reason():
    plan = poolswap.plan(FPNish(), example_inputs=torch.randn(1, 3, 32, 32), upsample="adaunpool")
    site = plan["interpolate/0"]
    assert site.status == "skip" and "unpaired" in site.reason
    assert plan["pool"].status == "convert"


def test_upsample_without_sites_raises():
    with pytest.raises(ValueError, match="no Upsample"):
        poolswap.plan(torchvision.models.resnet18(), upsample="adaunpool")


# -- save / load / revert ----------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    model = poolswap.convert(torchvision.models.resnet18(), "adapool", stride1_pools=True)
    with torch.no_grad():
        model.maxpool.beta_logit.normal_()
    path = tmp_path / "m.pt"
    poolswap.save(model, path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "poolswap/1" and raw["plan"]["sites"][0]["name"] == "maxpool"
    fresh = poolswap.load(torchvision.models.resnet18(), path)
    model.eval(), fresh.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), fresh(x))
    with pytest.raises(RuntimeError, match="beta_mask"):
        torchvision.models.resnet18().load_state_dict(raw["state_dict"])  # plain torch: strict error
    with pytest.raises(ValueError, match="no plan"):
        poolswap.load(torchvision.models.resnet18(), raw["state_dict"])
    with pytest.raises(ValueError, match="different plan"):
        poolswap.load(poolswap.convert(torchvision.models.resnet18(), "empool"), path)
    with pytest.raises(ValueError, match="is converted"):
        poolswap.load(fresh, torchvision.models.resnet18().state_dict())


def test_save_load_functional_and_paired(tmp_path):
    model = poolswap.convert(SegNet(True), "adapool", torch.randn(1, 3, 32, 32), upsample="adaunpool")
    poolswap.save(model, tmp_path / "s.pt")
    fresh = poolswap.load(SegNet(True), tmp_path / "s.pt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), fresh(x))


def test_revert_restores_original_outputs_exactly():
    model = torchvision.models.inception_v3(weights=None, init_weights=False, aux_logits=False).eval()
    x = torch.randn(1, 3, 96, 96)
    ref = model(x)
    keys = set(model.state_dict())
    poolswap.convert(model, "adapool", input_size=96)
    assert not torch.equal(model(x), ref)
    poolswap.revert(model)
    assert torch.equal(model(x), ref) and set(model.state_dict()) == keys and not poolswap.convert.is_converted(model)
    with pytest.raises(ValueError, match="not converted"):
        poolswap.revert(model)


def test_converted_model_deepcopies_and_no_weight_decay():
    model = poolswap.convert(FunctionalNet(), "adapool", torch.randn(1, 3, 32, 32))
    twin = copy.deepcopy(model)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), twin(x))
    assert poolswap.no_weight_decay(model) == ["poolswap_max_pool2d_0.beta_mask.logit", "poolswap_avg_pool2d_0.beta_mask.logit"]


def test_convert_twice_raises_and_train_eval_forward_kept():
    class Drop(nn.Module):
        def forward(self, x):
            x = F.max_pool2d(x, 2)
            return x * 2 if self.training else x

    model = poolswap.convert(Drop(), "empool", torch.randn(1, 1, 8, 8))
    x = torch.rand(1, 1, 8, 8)
    assert torch.allclose(model.train()(x), 2 * model.eval()(x))
    with pytest.raises(ValueError, match="already converted"):
        poolswap.convert(model)


def test_untraceable_enclosing_module_is_reported():
    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent: FX cannot trace
                return F.max_pool2d(x, 2)
            return F.max_pool2d(x, 2)

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Branchy()
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            return self.pool(self.inner(x))

    model = Outer()
    poolswap.convert(model, "empool", torch.rand(1, 1, 16, 16))
    plan = poolswap.plan_of(model)
    assert plan["inner/max_pool2d/0"].status == "skip" and "FX cannot trace" in plan["inner/max_pool2d/0"].reason
    assert plan["pool"].status == "convert" and any(u["where"] == "inner" for u in plan.unreached)


def test_detection_model_untraceable_forward_still_converts():
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=128, max_size=128
    )
    plan = poolswap.plan(model, example_inputs=([torch.rand(3, 128, 128)],))
    assert plan["backbone.body.maxpool"].status == "convert"
    k1 = [s for s in plan if s.fn == "max_pool2d"]
    assert k1 and all("kernel-1" in s.reason for s in k1)


# -- expected plan tables ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet50", "inception_v3"])
def test_plan_table_matches_expected(name):
    kwargs = {"init_weights": False} if name == "inception_v3" else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    from poolswap.integrations.torchvision import input_size_of

    text = str(poolswap.plan(model, "adapool", input_size=input_size_of(name))) + "\n"
    expected = (EXPECTED / f"plan_{name}.txt").read_text()
    assert text == expected, f"plan table changed; diff against tests/expected/plan_{name}.txt:\n{text}"
