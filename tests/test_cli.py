"""The `poolswap` command line: `bench` (one real CLI invocation, JSON checked) and `demo` (end to end).
`similarity` is tested in test_similarity.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from poolswap import bench, cli


def test_bench_cli_json():
    """`python -m poolswap.cli bench ... --json -`: every op and its reference, finite positive times, ratios
    that match the times."""
    cmd = [sys.executable, "-m", "poolswap.cli", "bench", "--shape", "2", "8", "16", "16", "--repeat", "2"]
    proc = subprocess.run([*cmd, "--json", "-"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["meta"]["device"] == "cpu" and report["meta"]["threads"] >= 1
    (case,) = report["cases"]
    assert case["shape"] == [2, 8, 16, 16] and case["output_shape"] == [2, 8, 8, 8]
    rows = {(r["op"], r["impl"]): r for r in case["results"]}
    expected = {(op, "torch") for op in bench.NATIVE_OPS}
    expected |= {(op, impl) for op in bench.POOLSWAP_OPS for impl in ("poolswap", "reference")}
    assert set(rows) == expected
    base = rows["max_pool2d", "torch"]
    for (op, impl), r in rows.items():
        for key in ("fwd_ms", "fwd_bwd_ms"):
            assert math.isfinite(r[key]) and r[key] > 0, (op, impl, key)
        assert isinstance(r["peak_bytes"], int) and r["peak_bytes"] > 0, (op, impl)
        assert r["fwd_vs_max"] == pytest.approx(r["fwd_ms"] / base["fwd_ms"])
        assert r["fwd_bwd_vs_max"] == pytest.approx(r["fwd_bwd_ms"] / base["fwd_bwd_ms"])
        for key in ("fwd_runs", "fwd_bwd_runs"):
            assert 1 <= r[key] <= bench.MAX_REFERENCE_REPEAT if impl == "reference" else r[key] == 2, (op, impl)
        if impl == "poolswap":
            ref = rows[op, "reference"]
            assert r["speedup_fwd_vs_reference"] == pytest.approx(ref["fwd_ms"] / r["fwd_ms"])
            assert r["speedup_fwd_bwd_vs_reference"] == pytest.approx(ref["fwd_bwd_ms"] / r["fwd_bwd_ms"])
    assert "adaunpool" in proc.stderr  # the table goes to stderr when the JSON takes stdout


def test_bench_run_options():
    """--ops keeps the max_pool2d baseline, --no-reference drops reference rows; the table shows every row."""
    report = bench.run(bench.make_cases([(1, 4, 9, 9)], kernel=2, stride=2, padding=0), ["adapool"], repeat=1,
                       reference=False, dtype="bfloat16")
    (case,) = report["cases"]
    assert [(r["op"], r["impl"]) for r in case["results"]] == [("max_pool2d", "torch"), ("adapool", "poolswap")]
    assert case["output_shape"] == [1, 4, 4, 4] and report["meta"]["reference_repeat"] == 0
    table = bench.format_report(report)
    assert "1x4x9x9 k2 s2 p0 -> 1x4x4x4" in table and "adapool" in table and "memory:" in table


def test_bench_peak_memory_counts_allocations():
    """The CPU memory method sees a known allocation pattern: two 4 MiB buffers alive at once."""

    def run():
        a = torch.empty(2**20)
        b = torch.empty(2**20)
        del a, b
        torch.empty(2**20)

    assert bench._peak_bytes(run, torch.device("cpu")) == 2 * 4 * 2**20


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--shape", "1", "1", "2", "2", "--kernel", "5"],
        ["bench", "--padding", "3", "--kernel", "3"],
        ["bench", "--ops", "maxpool"],
        ["demo", "--image", "lena", "--out", "unused"],
    ],
)
def test_cli_user_errors(argv, capsys):
    if argv[0] == "demo":
        pytest.importorskip("skimage")
        pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_demo(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    from poolswap import demo

    result = demo.run_demo(tmp_path / "out", image="chelsea", model=False)
    figure = tmp_path / "out" / "pooling_chelsea.png"
    assert result["figure"] == str(figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    assert set(result["scores"]) == set(demo.METHODS)
    for key, score in result["scores"].items():
        assert math.isfinite(score["psnr"]) and score["psnr"] > 5, key
        assert -1 <= score["ssim"] <= 1, key
    crop = result["crop"]
    assert crop["size"] % demo.FACTOR == 0 and crop["top"] + crop["size"] <= 300
    assert result["model"] is None and len(demo.summary(result)) == 3


def test_demo_cli_end_to_end(tmp_path, capsys):
    """`poolswap demo` as the README runs it (no arguments but --out): converts ResNet-18 and prints its plan,
    trains beta one step (non-zero gradient), pools the photo with every method, writes the figure."""
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    pytest.importorskip("torchvision")
    from poolswap import demo

    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "maxpool  mod   MaxPool2d          k3 s2 p1" in out and "AdaPool2d    56x56  3,136    convert" in out
    grad = float(out.split("maxpool.beta_mask.logit (3,136 values): grad norm ")[1].split()[0])
    assert math.isfinite(grad) and grad > 0
    figure = tmp_path / "pooling_astronaut.png"
    assert f"wrote {figure}" in out and figure.stat().st_size > 10_000
    assert all(label in out for label in demo.METHODS.values()) and "Reading:" in out
    assert "pooling" in captured.err  # the tqdm bar over the methods
