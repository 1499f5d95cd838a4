"""A converted model under DistributedDataParallel (gloo, CPU, 2 processes) gets the same β and conv
gradients as one process on the whole batch (DESIGN.md §4, distributed)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import poolswap


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.avg_pool2d(self.pool(torch.relu(self.conv(x))), 2)  # a module and a functional site
        return self.head(x.mean((2, 3)))


def _model():
    torch.manual_seed(0)
    return poolswap.convert(Net(), "adapool", torch.randn(1, 3, 16, 16))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, 5, (4,), generator=g)


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = nn.parallel.DistributedDataParallel(_model())
        x, y = _data()
        part = slice(rank * 2, rank * 2 + 2)
        F.cross_entropy(model(x[part]), y[part]).backward()
        if rank == 0:
            torch.save({n: p.grad.clone() for n, p in model.module.named_parameters()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradients_match_single_process(tmp_path):
    out = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    model = _model()
    x, y = _data()
    F.cross_entropy(model(x), y).backward()
    single = {n: p.grad for n, p in model.named_parameters()}
    assert set(ddp) == set(single)
    assert {"pool.beta_mask.logit", "poolswap_avg_pool2d_0.beta_mask.logit"} <= set(ddp)
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-5, atol=1e-6)

