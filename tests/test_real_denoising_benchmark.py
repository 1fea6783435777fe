"""benchmarks/real_denoising.py: its functions on tiny synthetic arrays (no real micrographs here)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import real_denoising as rd  # noqa: E402


def smooth_image(size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    return 1.0 + 0.5 * np.sin(2 * np.pi * 3 * xx) * np.cos(2 * np.pi * 2 * yy) + 0.01 * rng.random((size, size))


def test_reference_from_removes_offset_and_scales_to_mean_one():
    image = 1000.0 + 50.0 * smooth_image()
    ref = rd.reference_from(image)
    assert ref.min() == 0.0 and np.isclose(ref.mean(), 1.0)
    # the offset is gone: the contrast is far above 1000 + small variations divided by their mean
    assert ref.max() > 2.0
    with pytest.raises(ValueError, match="constant"):
        rd.reference_from(np.full((8, 8), 3.0))
    with pytest.raises(ValueError, match="2-D"):
        rd.reference_from(np.zeros((2, 8, 8)))


def test_central_crop_is_centred_and_a_multiple_of_32():
    image = np.arange(100 * 90).reshape(100, 90)
    crop = rd.central_crop(image, 512)
    assert crop.shape == (64, 64)
    assert crop[0, 0] == image[18, 13]
    assert rd.central_crop(image, 32).shape == (32, 32)


def test_inverse_anscombe_is_unbiased_where_the_algebraic_inverse_is_not():
    from scipy.stats import poisson

    for lam in (1.0, 2.0, 5.0, 20.0):
        k = np.arange(0, 200)
        expected = np.sum(poisson.pmf(k, lam) * rd.anscombe(k))
        assert rd.inverse_anscombe(expected) == pytest.approx(lam, rel=0.02)
        algebraic = (expected / 2) ** 2 - 3 / 8
        if lam <= 2:
            assert abs(algebraic - lam) > 0.1  # the naive inverse is biased at low counts


def test_bm3d_poisson_denoises_and_keeps_the_mean():
    pytest.importorskip("bm3d")
    ref = rd.reference_from(smooth_image(48))
    noisy = rd.add_poisson_noise(ref, 5.0, np.random.default_rng(0))
    out = rd.bm3d_poisson(noisy, 5.0)
    assert out.shape == ref.shape
    assert rd.psnr(out, ref) > rd.psnr(noisy, ref) + 5
    assert out.mean() == pytest.approx(ref.mean(), rel=0.05)


def test_leave_one_out_sigma_ignores_the_image_itself():
    scores = [{1.0: 10.0, 2.0: 0.0}, {1.0: 0.0, 2.0: 5.0}, {1.0: 0.0, 2.0: 5.0}]
    assert rd.leave_one_out_sigma(scores, 0) == 2.0  # images 1 and 2 prefer 2.0
    assert rd.leave_one_out_sigma(scores, 1) == 1.0  # images 0 and 2: 1.0 (mean 5) beats 2.0 (2.5)


def test_reference_noise_measures_white_noise():
    ref = rd.reference_from(smooth_image(128))
    noisy = ref + 0.1 * np.random.default_rng(1).standard_normal(ref.shape)
    sigma, cap = rd.reference_noise(noisy)
    assert sigma == pytest.approx(0.1, rel=0.15)
    assert cap == pytest.approx(20 * np.log10((noisy.max() - noisy.min()) / sigma))
    assert rd.reference_noise(ref)[0] < 0.02


def test_texture_measure_flags_added_high_frequency_power():
    rng = np.random.default_rng(2)
    ref = rd.reference_from(smooth_image(128)) + 0.05 * rng.standard_normal((128, 128))
    assert rd.texture_db(ref, ref) == pytest.approx(0.0)
    smoothed = rd.gaussian_filter(ref, 2.0)
    painted = ref + 0.2 * rng.standard_normal(ref.shape)
    assert rd.texture_db(smoothed, ref) < -10
    assert rd.texture_db(painted, ref) > 5
    power = rd.radial_power(ref)
    assert 1 <= rd.signal_band_edge(power) <= int(0.9 * power.size)


def test_evaluate_on_a_tiny_folder(tmp_path):
    pytest.importorskip("bm3d")
    tifffile = pytest.importorskip("tifffile")
    for i in range(3):
        tifffile.imwrite(tmp_path / f"img{i}.tif", (1000 * smooth_image(64, seed=i)).astype(np.uint16))
    tifffile.imwrite(tmp_path / "raw.tif", np.zeros((64, 64), np.uint16))
    (tmp_path / "manifest.csv").write_text("file,modality\nimg0.tif,HRTEM\nimg1.tif,STEM-HAADF\n")
    result = rd.evaluate(str(tmp_path), models=[], doses=(5.0,), crop=64, exclude=("raw.tif",),
                         panels=str(tmp_path / "panels"), panel_dose=5.0, log=lambda *_: None)
    assert [r["file"] for r in result["rows"]] == ["img0.tif", "img1.tif", "img2.tif"]
    assert {r["modality"] for r in result["rows"]} == {"HRTEM", "STEM-HAADF", "unknown"}
    for row in result["rows"]:
        assert set(row["psnr"]) == set(rd.BASELINES)
        assert row["psnr"]["bm3d"] > row["psnr"]["noisy"]
        assert row["psnr"]["gauss_oracle"] >= row["psnr"]["gauss_loo"] - 1e-9
    means = {s["restorer"]: s for s in result["summary"] if s["group"] == "all"}
    assert means["bm3d"]["vs_bm3d"] == 0.0 and means["noisy"]["wins_vs_bm3d"] == 0
    assert len(os.listdir(tmp_path / "panels")) == 3
    with pytest.raises(SystemExit, match="512"):
        rd.evaluate(str(tmp_path), models=[], crop=1024)
    with pytest.raises(SystemExit, match="no such folder"):
        rd.list_references(str(tmp_path / "missing"))


def test_shipped_denoisers_are_the_models_with_a_denoising_report():
    from temzoo.zoo import pretrained

    names = rd.shipped_denoisers()
    assert "unet_pretrained_autoencoder" in names
    assert all((pretrained.card(n) or {}).get("denoising") for n in names)


def test_merge_adds_restorers_of_a_models_only_run(tmp_path):
    pytest.importorskip("bm3d")
    tifffile = pytest.importorskip("tifffile")
    for i in range(2):
        tifffile.imwrite(tmp_path / f"img{i}.tif", (1000 * smooth_image(64, seed=i)).astype(np.uint16))
    full = rd.evaluate(str(tmp_path), models=[], doses=(5.0,), crop=64, exclude=(), log=lambda *_: None)
    partial = rd.evaluate(str(tmp_path), models=[], doses=(5.0,), crop=64, exclude=(), log=lambda *_: None,
                          baselines=False)
    assert partial["restorers"] == ["noisy"] and all(set(r["psnr"]) == {"noisy"} for r in partial["rows"])
    # a stand-in "model": the second run's noisy scores under another name
    for row in partial["rows"]:
        for metric in ("psnr", "ssim", "texture_db"):
            row[metric]["fake_model"] = row[metric]["noisy"] + 1.0
    partial["restorers"].append("fake_model")
    merged = rd.merge(full, partial)
    assert merged["restorers"] == list(rd.BASELINES) + ["fake_model"]
    for row in merged["rows"]:
        assert row["psnr"]["fake_model"] == pytest.approx(row["psnr"]["noisy"] + 1.0)
        assert row["psnr"]["bm3d"] > row["psnr"]["noisy"]
    other_seed = rd.evaluate(str(tmp_path), models=[], doses=(5.0,), crop=64, exclude=(), seed=1,
                             log=lambda *_: None, baselines=False)
    with pytest.raises(SystemExit, match="seed"):
        rd.merge(full, other_seed)


def test_card_real_data_section_from_a_benchmark_json(tmp_path):
    import json

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes"))
    import ship

    rows = []
    for file, modality, gap in (("a.tif", "HRTEM", 1.0), ("b.tif", "STEM-HAADF", -0.5)):
        rows.append({"file": file, "modality": modality, "dose": 2.0,
                     "psnr": {"noisy": 10.0, "gauss_loo": 19.0, "bm3d": 20.0, "m": 20.0 + gap},
                     "ssim": {"noisy": 0.1, "gauss_loo": 0.3, "bm3d": 0.5, "m": 0.6},
                     "texture_db": {"noisy": 5.0, "gauss_loo": -20.0, "bm3d": -9.0, "m": -7.0}})
    restorers = ["noisy", "gauss_loo", "bm3d", "m"]
    result = {"rows": rows, "restorers": restorers, "doses": [2.0], "crop": 64, "seed": 0,
              "summary": rd.summarise(rows, restorers, [2.0])}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(result))
    section = ship.real_data_section(str(path), "m")
    (dose,) = section["doses"]
    assert dose["psnr_model_db"] == pytest.approx(20.25) and dose["psnr_bm3d_db"] == pytest.approx(20.0)
    assert dose["gain_over_bm3d_db"] == pytest.approx(0.25) and dose["wins_over_bm3d"] == 1
    assert dose["worst_vs_bm3d_db"] == pytest.approx(-0.5)
    assert dose["by_modality"]["HRTEM"]["gain_over_bm3d_db"] == pytest.approx(1.0)
    with pytest.raises(SystemExit, match="no results"):
        ship.real_data_section(str(path), "other_model")


def test_list_references_excludes_and_selects(tmp_path):
    for name in ("a.tif", "b.tif", "raw.tif", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "manifest.csv").write_text("file,modality\na.tif,HRTEM\n")
    assert rd.list_references(str(tmp_path), exclude=("raw.tif",)) == [("a.tif", "HRTEM"), ("b.tif", "unknown")]
    assert rd.list_references(str(tmp_path), exclude=(), only=["b.tif"]) == [("b.tif", "unknown")]
    with pytest.raises(SystemExit, match="no file"):
        rd.list_references(str(tmp_path), only=["c.tif"])
    with pytest.raises(SystemExit, match="no reference images"):
        rd.list_references(str(tmp_path), exclude=("a.tif", "b.tif", "raw.tif"))
