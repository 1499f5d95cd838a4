"""mmdetection plugin (DESIGN.md §4): configs build, mmengine's Runner trains/saves/resumes/predicts on CPU,
also as two distributed ranks (gloo).

Needs mmdet 3.3.0 + mmcv 2.1.0 with its compiled ops (``scripts/install_mmdet.sh``; ``scripts/test.sh`` runs
it); skipped with that reason otherwise. Nothing is downloaded: the configs' pretrained ``init_cfg`` is
overridden, and the dataset is a tiny COCO-format set written from scikit-image's photographs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

try:
    import mmcv.ops  # noqa: F401  (mmdet's detectors need the compiled ops)
    import mmdet  # noqa: F401
except Exception as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"mmdet/mmcv with compiled ops not importable ({type(exc).__name__}: {exc}); "
                "install them with scripts/install_mmdet.sh", allow_module_level=True)

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import MMDistributedDataParallel, is_model_wrapper  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import poolswap  # noqa: E402
from poolswap.integrations import mmdet as pmm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
RETINA = CONFIGS / "retinanet_r50_fpn_adapool_1x_coco.py"
MASK_RCNN = CONFIGS / "mask-rcnn_r50_fpn_adapool_1x_coco.py"
RETINA_LIFT = CONFIGS / "retinanet_r50_fpn_liftpool_1x_coco.py"
STOCK_RETINA = "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"
CLASSES = ("person", "cat", "cup", "rocket")
BETA = "backbone.maxpool.beta_mask.logit"


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    """Four photographs from scikit-image at ~160 px with a box and a polygon mask each, in COCO format."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    # (image, category, box x0, y0, x1, y1 in the original's pixels)
    items = [(data.astronaut(), 1, 150, 30, 470, 512), (data.chelsea(), 2, 40, 20, 430, 300),
             (data.coffee(), 3, 90, 20, 510, 330), (data.rocket(), 4, 270, 40, 340, 380)]  # fmt: skip
    images, anns = [], []
    for i, (img, cat, x0, y0, x1, y1) in enumerate(items, 1):
        h, w = img.shape[:2]
        s = 160 / max(h, w)
        nh, nw = round(h * s), round(w * s)
        Image.fromarray(img).resize((nw, nh), Image.BILINEAR).save(root / "images" / f"{i}.jpg")
        bx0, by0, bx1, by1 = x0 * s, y0 * s, x1 * s, y1 * s
        cx, cy, rx, ry = (bx0 + bx1) / 2, (by0 + by1) / 2, (bx1 - bx0) / 2, (by1 - by0) / 2
        poly = [v for t in range(16) for v in (cx + rx * math.cos(t * math.pi / 8), cy + ry * math.sin(t * math.pi / 8))]
        images.append({"id": i, "file_name": f"{i}.jpg", "height": nh, "width": nw})
        anns.append({"id": i, "image_id": i, "category_id": cat, "bbox": [bx0, by0, bx1 - bx0, by1 - by0],
                     "area": math.pi * rx * ry, "iscrowd": 0, "segmentation": [poly]})  # fmt: skip
    cats = [{"id": i, "name": n} for i, n in enumerate(CLASSES, 1)]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def tiny_cfg(path: Any, work_dir: Path, coco: Path, *, iters: int = 2, masks: bool = False, **backbone: Any) -> Config:
    """The config at ``path`` cut down for CPU: no pretrained download, 160 px images, batch 2, ``iters``
    iterations, a checkpoint at the end, no validation; ``backbone`` items override the PoolSwap builder's."""
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(work_dir)
    bb = cfg.model.backbone
    if bb.type == "poolswap.PoolSwap":
        bb.backbone.init_cfg = None
        bb.input_size = (128, 128)
        bb.update(backbone)
    else:
        bb.init_cfg = None
    if "bbox_head" in cfg.model:  # RetinaNet: untrained scores are ~0.01, keep every detection
        cfg.model.test_cfg.score_thr = 0.0
    else:
        cfg.model.test_cfg.rcnn.score_thr = 0.0
    pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True, with_mask=masks),
                dict(type="Resize", scale=(160, 128), keep_ratio=True), dict(type="RandomFlip", prob=0.5),
                dict(type="PackDetInputs")]  # fmt: skip
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(type="CocoDataset", data_root=str(coco), ann_file="ann.json", data_prefix=dict(img="images/"),
                     metainfo=dict(classes=CLASSES), filter_cfg=dict(filter_empty_gt=True, min_size=1), pipeline=pipeline),
    )  # fmt: skip
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=10**6)
    for key in ("val_dataloader", "val_evaluator", "val_cfg", "test_dataloader", "test_evaluator", "test_cfg"):
        cfg[key] = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=iters, by_epoch=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1)
    cfg.log_processor = dict(type="LogProcessor", window_size=1, by_epoch=False)
    cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.randomness = dict(seed=0)
    cfg.log_level = "WARNING"
    return cfg


class Record(Hook):
    """β before training (after load/resume) and after, and every iteration's losses."""

    def __init__(self) -> None:
        self.losses, self.before, self.after = [], None, None

    @staticmethod
    def beta(runner) -> torch.Tensor:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return model.state_dict()[BETA].clone()

    def before_train(self, runner) -> None:
        self.before = self.beta(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append({k: float(v.detach()) for k, v in outputs.items()})

    def after_train(self, runner) -> None:
        self.after = self.beta(runner)


def run(cfg: Config) -> tuple[Runner, Record]:
    runner = Runner.from_cfg(cfg)
    rec = Record()
    runner.register_hook(rec, priority="LOWEST")
    runner.train()
    return runner, rec


def predict(runner: Runner) -> list:
    model = runner.model
    model.eval()
    batch = next(iter(runner.train_dataloader))
    with torch.no_grad():
        return model.test_step(batch)


@MODEL_WRAPPERS.register_module(name="PoolswapTestCPUDistributedDataParallel", force=True)
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper on CPU: mmengine passes ``device_ids=[LOCAL_RANK]``, which torch's DDP accepts
    for GPU modules only. Everything else (train_step, gradient all-reduce) is mmengine's."""

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        super().__init__(module=module, device_ids=None, **kwargs)


def _ddp_worker(rank: int, world: int, init_file: str, coco: str, work_dir: str, out: str) -> None:
    """One rank of mmengine's distributed Runner (launcher "pytorch", gloo): the process group is made here,
    as torchrun would, because mmengine's own init_dist calls torch.cuda.set_device."""
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = tiny_cfg(RETINA, Path(work_dir), Path(coco), iters=2)
        cfg.launcher = "pytorch"
        cfg.model_wrapper_cfg = dict(type="PoolswapTestCPUDistributedDataParallel")
        runner, rec = run(cfg)
        wrapper = type(runner.model).__name__
        torch.save({"before": rec.before, "after": rec.after, "losses": rec.losses, "wrapper": wrapper}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------- tests


def test_core_imports_without_mmdet():
    code = ("import sys\nfor m in ('mmdet', 'mmcv', 'mmengine'): sys.modules[m] = None\n"
            "import torch, poolswap\nm = poolswap.convert(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.MaxPool2d(2)),"
            " input_size=16)\nassert 'mmdet' not in [k for k, v in sys.modules.items() if v is not None]\nprint('ok')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_scoped_type_resolves_without_custom_imports():
    """A fresh interpreter that never imports poolswap.integrations.mmdet: type="poolswap.PoolSwap" and
    "poolswap.PoolSwapHook" still resolve from mmdet's scope."""
    code = """
import sys
from mmengine.registry import init_default_scope, HOOKS
from mmdet.registry import MODELS
import mmdet.models  # noqa
init_default_scope("mmdet")
assert "poolswap.integrations.mmdet" not in sys.modules
m = MODELS.build(dict(type="poolswap.PoolSwap", backbone=dict(type="ResNet", depth=18), input_size=(64, 64)))
h = HOOKS.build(dict(type="poolswap.PoolSwapHook"))
print(type(m).__name__, type(h).__name__, "poolswap.integrations.mmdet" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-3:] == ["ResNet", "PoolSwapHook", "True"], out.stdout


def test_custom_imports_and_unscoped_type(tmp_path):
    (tmp_path / "c.py").write_text(
        'custom_imports = dict(imports=["poolswap.integrations.mmdet"], allow_failed_imports=False)\n'
        'model = dict(type="PoolSwap", backbone=dict(type="ResNet", depth=18, frozen_stages=0), input_size=64)\n')
    cfg = Config.fromfile(str(tmp_path / "c.py"))
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    m = MODELS.build(cfg.model)
    assert type(m).__name__ == "ResNet" and poolswap.plan_of(m) is not None
    assert not m.maxpool.beta_mask.logit.requires_grad  # stem frozen (frozen_stages=0) -> β frozen


@pytest.mark.parametrize("path", [RETINA, MASK_RCNN, RETINA_LIFT], ids=lambda p: p.stem)
def test_configs_build(path):
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.backbone.init_cfg.type == "Pretrained"  # the stock pretrained init is kept
    cfg.model.backbone.backbone.init_cfg = None
    cfg.model.backbone.input_size = (128, 128)
    model = MODELS.build(cfg.model)
    stock = Config.fromfile(str(path))
    stock.model.backbone = stock.model.backbone.backbone
    stock.model.backbone.init_cfg = None
    stock_keys = set(MODELS.build(stock.model).state_dict())
    keys = set(model.state_dict())
    assert type(model.backbone).__name__ == "ResNet"
    assert stock_keys <= keys and keys - stock_keys and all(k.startswith("backbone.maxpool.") for k in keys - stock_keys)
    added = [p for n, p in model.named_parameters() if n.startswith("backbone.maxpool.")]
    assert added and all(p.requires_grad for p in added)  # the shipped configs let the stem's new pool train
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("backbone.maxpool.")}
    model.init_weights()  # the default Kaiming init of the backbone's convs leaves poolswap's parameters alone
    for n, p in model.named_parameters():
        if n in before:
            assert torch.equal(p, before[n]), n
    # optimizer: every added parameter is in it; β without weight decay (paramwise_cfg)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {id(p): g for g in optim.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in groups for p in added)
    if "adapool" in path.stem:
        assert groups[id(model.backbone.maxpool.beta_mask.logit)]["weight_decay"] == 0.0
        assert groups[id(model.backbone.layer2[0].conv1.weight)]["weight_decay"] > 0.0
        assert model.backbone.maxpool.beta_mask.mode == "channel"


def test_frozen_stem_freezes_beta_across_train():
    init_default_scope("mmdet")
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(RETINA))
    cfg.model.backbone.backbone.init_cfg = None
    cfg.model.backbone.update(input_size=(128, 128), freeze_with_stages=True)  # the builder's default
    model = MODELS.build(cfg.model)
    beta = model.backbone.maxpool.beta_mask.logit
    for mode in (True, False, True):
        model.train(mode)
        assert not beta.requires_grad and not model.backbone.conv1.weight.requires_grad
        assert model.backbone.layer2[0].conv1.weight.requires_grad
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)  # norm_eval=True still puts BN in eval mode


def test_retinanet_train_save_resume_predict(tmp_path, coco, monkeypatch):
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)  # resume under weights_only=True
    runner, rec = run(tiny_cfg(RETINA, tmp_path / "a", coco))
    assert len(rec.losses) == 2 and all(math.isfinite(v) for d in rec.losses for v in d.values())
    assert not torch.equal(rec.before, rec.after)  # β trained
    ckpt_path = tmp_path / "a" / "iter_2.pth"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    plan = ckpt["meta"]["poolswap"]["plans"]["backbone"]
    assert [s["name"] for s in plan["sites"] if s["status"] == "convert"] == ["maxpool"]
    assert torch.equal(ckpt["state_dict"][BETA], rec.after)
    results = predict(runner)
    assert len(results) == 2 and all(len(r.pred_instances) > 0 for r in results)
    assert results[0].pred_instances.bboxes.shape[1] == 4

    cfg = tiny_cfg(RETINA, tmp_path / "b", coco, iters=3)
    cfg.load_from, cfg.resume = str(ckpt_path), True
    runner2, rec2 = run(cfg)
    assert runner2.iter == 3 and len(rec2.losses) == 1
    assert torch.equal(rec2.before, ckpt["state_dict"][BETA])  # β resumed, not re-initialised
    assert not torch.equal(rec2.after, rec2.before)

    # an unconverted (stock) config refuses the converted checkpoint instead of dropping β with strict=False
    (tmp_path / "stock.py").write_text(f"_base_ = {STOCK_RETINA!r}\n")
    stock = tiny_cfg(tmp_path / "stock.py", tmp_path / "c", coco)
    stock.custom_hooks = [dict(type="poolswap.PoolSwapHook")]
    runner3 = Runner.from_cfg(stock)
    with pytest.raises(ValueError, match="'backbone' was converted .* is not"):
        runner3.load_checkpoint(str(ckpt_path))
    # and a converted model refuses a plan-less checkpoint, a stray β, or a different conversion
    model = runner.model
    plain = {"meta": {}, "state_dict": {k: v for k, v in ckpt["state_dict"].items() if "beta_mask" not in k}}
    with pytest.raises(ValueError, match="no poolswap plan"):
        pmm.check_checkpoint(model, plain)
    pmm.check_checkpoint(model, plain, allow_plain=True)
    with pytest.raises(ValueError, match="no plan"):
        pmm.check_checkpoint(runner3.model, {"meta": {}, "state_dict": ckpt["state_dict"]})
    other = json.loads(json.dumps(ckpt["meta"]["poolswap"]))
    for s in other["plans"]["backbone"]["sites"]:
        s["method"] = "softpool" if s["status"] == "convert" else s["method"]
    with pytest.raises(ValueError, match="converted differently"):
        pmm.check_checkpoint(model, {"meta": {"poolswap": other}, "state_dict": ckpt["state_dict"]})


def test_mask_rcnn_frozen_stem_trains_and_predicts_masks(tmp_path, coco):
    cfg = tiny_cfg(MASK_RCNN, tmp_path, coco, masks=True, freeze_with_stages=True)
    runner, rec = run(cfg)
    assert len(rec.losses) == 2 and all(math.isfinite(v) for d in rec.losses for v in d.values())
    assert {"loss_mask", "loss_rpn_cls", "loss_cls"} <= set(rec.losses[0])
    assert torch.equal(rec.before, rec.after)  # frozen stem (stock frozen_stages=1) -> β did not move
    assert not runner.model.backbone.maxpool.beta_mask.logit.requires_grad
    ckpt = torch.load(tmp_path / "iter_2.pth", map_location="cpu", weights_only=True)
    assert "backbone" in ckpt["meta"]["poolswap"]["plans"]
    results = predict(runner)
    inst = results[0].pred_instances
    assert len(inst) > 0 and inst.masks.shape[0] == len(inst) and inst.masks.ndim == 3


def test_retinanet_trains_beta_under_mmengine_distributed_runner(tmp_path, coco):
    """Two ranks (gloo, CPU) of mmengine's distributed Runner, each on its own half of the data: β trains and
    stays identical on both ranks (its gradient is all-reduced: without that, different data would give
    different β)."""
    import torch.multiprocessing as mp

    out = tmp_path / "result"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(coco), str(tmp_path / "work"), str(out)),
             nprocs=2, join=True)  # fmt: skip
    ranks = [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]
    assert all(r["wrapper"] == "CPUDistributedDataParallel" for r in ranks)
    assert all(math.isfinite(v) for r in ranks for d in r["losses"] for v in d.values())
    assert ranks[0]["losses"][0]["loss"] != ranks[1]["losses"][0]["loss"]  # the ranks saw different images
    assert torch.equal(ranks[0]["before"], ranks[1]["before"])
    assert not torch.equal(ranks[0]["after"], ranks[0]["before"])  # β trained
    assert torch.equal(ranks[0]["after"], ranks[1]["after"])  # and was synchronised
