"""Zoo sweep (slow; CI runs it): torchvision and timm models × every method.

For each (model, method): conversion succeeds, every site is converted or skipped with a reason, the output
shapes are unchanged, and forward + backward run. Models are converted at a small example input (the sweep
checks the pass, not β counts; those are in test_convert.py at 224×224) and built once per model.
``python tests/test_convert_sweep.py`` prints the results table quoted in the README.
"""

from __future__ import annotations

import copy
import functools
import time

import pytest
import torch

import poolswap

METHODS = ["adapool", "empool", "edscwpool", "idwpool", "liftpool"]

# name -> (builder kwargs, example size); detection models get small transforms
TORCHVISION = {
    "resnet18": {}, "resnet50": {}, "resnet152": {}, "resnext50_32x4d": {}, "wide_resnet50_2": {},
    "densenet121": {}, "densenet161": {}, "vgg11_bn": {}, "vgg16": {}, "alexnet": {},
    "googlenet": {"init_weights": False, "aux_logits": False}, "inception_v3": {"init_weights": False, "aux_logits": False},
    "squeezenet1_0": {}, "squeezenet1_1": {}, "shufflenet_v2_x1_0": {}, "mobilenet_v3_small": {}, "efficientnet_b0": {},
    "s3d": {}, "fcn_resnet50": {"weights_backbone": None, "aux_loss": False},
    "retinanet_resnet50_fpn": {"weights_backbone": None, "min_size": 96, "max_size": 96},
    "maskrcnn_resnet50_fpn": {"weights_backbone": None, "min_size": 96, "max_size": 96},
}  # fmt: skip
ZERO_SITE = {"mobilenet_v3_small", "efficientnet_b0"}
DETECTION = {"retinanet_resnet50_fpn", "maskrcnn_resnet50_fpn"}

TIMM = {
    "resnet18": {}, "resnet50d": {}, "resnet26d": {}, "resnest14d": {}, "skresnet18": {}, "seresnext26d_32x4d": {},
    "ecaresnet26t": {}, "cspresnet50": {}, "ese_vovnet19b_dw": {}, "vovnet39a": {}, "densenet121": {}, "dla34": {},
    "dla46_c": {}, "dpn68": {}, "res2net50_26w_4s": {}, "inception_v3": {}, "inception_v4": {},
    "inception_resnet_v2": {}, "vgg16": {}, "legacy_senet154": {}, "poolformer_s12": {},
    "maxvit_tiny_tf_224": {"img_size": 128},  # TF-"SAME" AvgPool2dSame sites
}  # fmt: skip
SIZE = {"inception_v3": 96, "s3d": None}


@functools.lru_cache(maxsize=1)
def _build(source: str, name: str):
    torch.manual_seed(0)
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False, **TIMM[name])
    import torchvision

    model = torchvision.models.get_model(name, weights=None, **TORCHVISION[name])
    if name == "s3d":  # its head is AvgPool3d((2, 7, 7)), sized for 16x224x224 clips: sweep small clips
        model.avgpool = torch.nn.AdaptiveAvgPool3d(1)
    return model


def _example(source: str, name: str):
    if name == "s3d":
        return (torch.randn(2, 3, 8, 64, 64),)
    size = SIZE.get(name) or (128 if source == "timm" else 64)
    if name in DETECTION:
        return ([torch.rand(3, 96, 96), torch.rand(3, 96, 96)],)
    return (torch.randn(2, 3, size, size),)


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []


def _targets():
    box = torch.tensor([[10.0, 10.0, 60.0, 70.0]])
    mask = torch.zeros(1, 96, 96, dtype=torch.uint8)
    mask[0, 10:70, 10:60] = 1
    return [{"boxes": box, "labels": torch.tensor([1]), "masks": mask} for _ in range(2)]


def sweep_one(source: str, name: str, method: str) -> dict:
    original = _build(source, name)
    example = _example(source, name)
    model = copy.deepcopy(original)
    t0 = time.perf_counter()
    poolswap.convert(model, method, tuple(_first(e) for e in example))
    seconds = time.perf_counter() - t0
    plan = poolswap.plan_of(model)
    for site in plan:
        assert site.status in ("convert", "skip") and (site.converted or site.reason), site
    if name in ZERO_SITE:
        assert not plan.converted
    original.eval(), model.eval()
    with torch.no_grad():
        ref = [t.shape for t in _tensors(original(*example))]
    out = [t.shape for t in _tensors(model(*example))]
    if name not in DETECTION:  # detections: a variable number of boxes
        assert out == ref
    model.train()
    result = model(*example, _targets()) if name in DETECTION else model(*example)
    loss = sum(t.float().sum() for t in _tensors(result) if t.is_floating_point())
    loss.backward()
    betas = [p for n, p in model.named_parameters() if n in set(poolswap.no_weight_decay(model))]
    if method == "adapool" and betas:
        assert all(p.grad is not None for p in betas)
    return {"converted": len(plan.converted), "skipped": len(plan.skipped), "params": plan.params, "seconds": seconds}


def _first(e):
    if isinstance(e, list):
        return e[:1]
    return e[:1]


CASES = [("torchvision", n, m) for n in TORCHVISION for m in METHODS] + [("timm", n, m) for n in TIMM for m in METHODS]


@pytest.mark.slow
@pytest.mark.parametrize("source, name, method", CASES, ids=[f"{s}-{n}-{m}" for s, n, m in CASES])
def test_zoo(source, name, method):
    sweep_one(source, name, method)


def main() -> None:
    """Prints the README table: model, sites converted/skipped (adapool), β params (adapool at the sweep size)."""
    start = time.perf_counter()
    print("| source | model | converted | skipped | added params (adapool) |")
    print("|---|---|---|---|---|")
    for source, names in (("torchvision", TORCHVISION), ("timm", TIMM)):
        for name in names:
            rows = {m: sweep_one(source, name, m) for m in METHODS}
            r = rows["adapool"]
            print(f"| {source} | {name} | {r['converted']} | {r['skipped']} | {r['params']:,} |", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
