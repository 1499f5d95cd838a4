"""poolswap.torchvision.get_model and the `poolswap plan` sub-command."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision

import poolswap
from poolswap.cli import build_parser, main


def test_get_model_converts_at_the_weights_crop_size():
    model = poolswap.torchvision.get_model("inception_v3", weights=None, pool="adapool", init_weights=False)
    assert type(model) is torchvision.models.Inception3
    assert poolswap.plan_of(model).example == [[1, 3, 299, 299]]
    assert poolswap.plan_of(model)["Mixed_6a/max_pool2d/0"].converted


def test_get_model_weights_preserved():
    torch.manual_seed(0)
    ref = torchvision.models.resnet18()
    torch.manual_seed(0)
    model = poolswap.torchvision.get_model("resnet18", pool="adapool")
    ref_sd, sd = ref.state_dict(), model.state_dict()
    assert set(sd) - set(ref_sd) == {"maxpool.beta_mask.logit"}
    assert all(torch.equal(ref_sd[k], sd[k]) for k in ref_sd)
    assert model.no_weight_decay() == {"maxpool.beta_mask.logit"}


def test_plan_command(capsys):
    assert main(["plan", "resnet18", "--source", "torchvision", "--method", "empool", "--input-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "maxpool" in out and "EMPool2d" in out and "1x3x128x128" in out


@pytest.mark.parametrize("size", ["0x", "1,2,3,4", "abc"])
def test_plan_command_bad_size(size):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plan", "resnet18", "--input-size", size])


def test_plan_command_timm_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "poolswap", "plan", "resnet26d", "--source", "timm"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "layer2.0.downsample.0" in out and "4 converted" in out
