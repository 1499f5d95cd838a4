"""`poolswap similarity`: the similarity and reconstruction studies (poolswap/similarity.py, reconstruction.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import skimage.data  # noqa: E402

from poolswap import cli, reconstruction, similarity  # noqa: E402

SMALL = "text"  # 172x448 grey: the smallest bundled photograph


def test_identical_images_score_ssim_1_psnr_inf():
    a = np.random.default_rng(0).random((32, 40, 3))
    assert similarity.score(a, a) == {"psnr": math.inf, "ssim": pytest.approx(1.0)}
    s = similarity.score(a[..., 0], a[..., 0])
    assert s["psnr"] == math.inf and s["ssim"] == pytest.approx(1.0)
    noisy = similarity.score(a, np.clip(a + 0.01, 0, 1))
    assert math.isfinite(noisy["psnr"]) and 30 < noisy["psnr"] < 50 and noisy["ssim"] < 1
    with pytest.raises(ValueError, match="shapes differ"):
        similarity.score(a, a[:-1])


def test_inf_and_na_in_json_and_tables():
    """+inf PSNR becomes "inf", n/a cells null; strict JSON; the table shows both."""
    report = {
        "meta": {"methods": {"avg": "AvgPool", "liftpool_ll": "LiftDownPool LL"}, "protocols": {"p": "test"}},
        "images": [{"name": "a"}, {"name": "b"}],
        "scores": {"p": {"3": {"avg": [{"psnr": math.inf, "ssim": 1.0}, {"psnr": 30.0, "ssim": 0.9}],
                               "liftpool_ll": [None, None]}}},
    }
    data = similarity.to_json(report)
    text = json.dumps(data, allow_nan=False)
    assert data["scores"]["p"]["3"]["avg"][0]["psnr"] == "inf"
    assert data["summary"]["p"]["3"]["avg"]["psnr"] == {"mean": "inf", "std": None}
    assert data["summary"]["p"]["3"]["liftpool_ll"] is None and '"liftpool_ll": null' in text
    table = similarity.format_tables(report)
    assert "| AvgPool | ∞ (exact) | 0.950 ± 0.050 |" in table and "| LiftDownPool LL | n/a | n/a |" in table


def test_photos_are_bundled_and_every_skimage_image_is_accounted_for():
    """Every photo loads from the package (no download) in [0, 1]; every skimage.data image function is either a
    photo or excluded with a reason."""
    helpers = {"data_dir", "download_all", "file_hash", "lbp_frontal_face_cascade_filename"}
    used = {function for function, _, _ in similarity.PHOTOS.values()}
    assert set(skimage.data.__all__) - helpers <= used | set(similarity.EXCLUDED)
    for name, (_, _, colour) in similarity.PHOTOS.items():
        x = similarity.load_photo(name, multiple_of=5)
        assert x.dtype == torch.float32 and x.shape[1] == (3 if colour else 1), name
        assert x.shape[2] % 5 == 0 and x.shape[3] % 5 == 0 and x.shape[2] >= 150, name
        assert 0 <= float(x.min()) and float(x.max()) <= 1, name
    assert similarity.load_photo("moon").shape == (1, 1, 256, 256)  # stored 2x pixel-repeated
    with pytest.raises(ValueError, match="astronaut"):
        similarity.load_photo("lena")


def test_pool_methods():
    """Every method gives the pooled shape; the adaPool ends equal eMPool / eDSCWPool; LiftPool LL is the 2x2
    mean (untrained = Haar) and n/a at k != 2."""
    x = similarity.load_photo(SMALL, multiple_of=6)[..., :60, :90]
    out = {m: similarity.pool(x, m, 2) for m in similarity.METHODS}
    for m, y in out.items():
        assert y.shape == (1, 1, 30, 45), m
    torch.testing.assert_close(out["adapool_b0"], out["empool"])
    torch.testing.assert_close(out["adapool_b1"], out["edscwpool"])
    torch.testing.assert_close(out["liftpool_ll"], out["avg"])
    assert similarity.pool(x, "liftpool_sum", 3) is None and similarity.pool(x, "idwpool", 3).shape == (1, 1, 20, 30)


def test_reconstruction_pairs():
    x = similarity.load_photo("chelsea", multiple_of=2)[..., :64, :96]
    for pair in reconstruction.PAIRS:
        u = reconstruction.reconstruct(x, pair, 2)
        assert u.shape == x.shape and torch.isfinite(u).all(), pair
    torch.testing.assert_close(reconstruction.reconstruct(x, "liftpool+liftuppool", 2), x)  # keeps the details
    torch.testing.assert_close(  # without them: nearest upsampling of the 2x2 mean (Haar)
        reconstruction.reconstruct(x, "liftpool+liftuppool_no_details", 2),
        reconstruction.reconstruct(x, "avg+nearest", 2),
    )
    assert reconstruction.reconstruct(x, "liftpool+liftuppool", 3) is None


def _check_report(data: dict, rows: dict, protocols: list[str], k: str, na_ok: bool) -> None:
    assert [i["name"] for i in data["images"]] == [SMALL]
    assert list(data["scores"]) == protocols
    for protocol in protocols:
        cells = data["scores"][protocol][k]
        assert list(cells) == list(rows), protocol  # every method present
        for key, (cell,) in cells.items():
            if cell is None:
                assert na_ok and "liftpool" in key
                continue
            exact = key == "liftpool+liftuppool"
            assert (cell["psnr"] == "inf" or cell["psnr"] > 100) if exact else math.isfinite(cell["psnr"]), key
            assert isinstance(cell["ssim"], float) and -1 <= cell["ssim"] <= 1, key
            stats = data["summary"][protocol][k][key]
            assert stats["ssim"]["mean"] == pytest.approx(cell["ssim"]) and stats["ssim"]["std"] == 0


def test_similarity_cli_json(tmp_path):
    """`python -m poolswap similarity --images text --kernels 2 --json -`: both studies, every method, finite
    scores, the figure written."""
    figure = tmp_path / "fig.png"
    cmd = [sys.executable, "-m", "poolswap", "similarity", "--images", SMALL, "--kernels", "2", "--json", "-",
           "--figure", str(figure), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"similarity", "reconstruction", "figure"}
    _check_report(data["similarity"], similarity.METHODS, list(similarity.PROTOCOLS), "2", na_ok=False)
    _check_report(data["reconstruction"], reconstruction.PAIRS, ["reconstruction"], "2", na_ok=False)
    assert data["figure"]["figure"] == str(figure) and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| MaxPool |" in proc.stderr  # the tables go to stderr when the JSON takes stdout


def test_similarity_cli_tables_and_na(tmp_path, capsys):
    """k = 3: LiftPool cells are n/a; tables printed; JSON file and the default figure path in --out."""
    out = tmp_path / "out"
    assert cli.main(["similarity", "--images", SMALL, "--kernels", "3", "--study", "similarity", "--out", str(out),
                     "--json", str(tmp_path / "r.json"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| LiftDownPool LL | n/a | n/a |" in text and "| adaPool β=0.5 |" in text
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == {"similarity", "figure"}
    _check_report(data["similarity"], similarity.METHODS, list(similarity.PROTOCOLS), "3", na_ok=True)
    assert (out / f"similarity_{SMALL}.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv",
    [
        ["similarity", "--images", "lena"],
        ["similarity", "--kernels", "1"],
        ["similarity", "--input-scale", "0"],
        ["similarity", "--images", SMALL, "--figure-image", "lena"],
    ],
)
def test_similarity_cli_user_errors(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
