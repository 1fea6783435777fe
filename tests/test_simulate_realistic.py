"""temzoo.simulate.artefacts / content / realistic and the synthetic_tem/realistic config."""

import dataclasses

import numpy as np
import pytest

from temzoo.simulate import artefacts, content
from temzoo.simulate.realistic import FAMILIES, RealisticRanges, simulate_realistic


def test_shift_rows_moves_each_row_by_its_offset():
    image = np.tile(np.arange(16, dtype=np.float32), (3, 1))
    out = artefacts.shift_rows(image, [0.0, 2.0, -1.5])
    np.testing.assert_allclose(out[0], image[0])
    np.testing.assert_allclose(out[1, 2:], image[1, :-2])
    np.testing.assert_allclose(out[2, :10], image[2, :10] + 1.5)


def test_afterglow_is_causal_and_keeps_flat_images():
    flat = np.full((4, 32), 2.0)
    np.testing.assert_allclose(artefacts.detector_afterglow(flat, 0.5), flat, rtol=1e-4)
    impulse = np.zeros((1, 32))
    impulse[0, 10] = 1.0
    out = artefacts.detector_afterglow(impulse, 0.5)[0]
    assert np.all(np.abs(out[:10]) < 1e-6) and out[10] == pytest.approx(0.5, rel=1e-3)
    assert out[11] == pytest.approx(0.25, rel=1e-3)
    np.testing.assert_array_equal(artefacts.detector_afterglow(impulse, 0.0), impulse.astype(np.float32))


def test_anisotropic_blur_spreads_along_its_major_axis():
    image = np.zeros((41, 41))
    image[20, 20] = 1.0
    out = artefacts.anisotropic_blur(image, 3.0, 0.5, 0.0)  # angle 0: along columns (x)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    assert out[20, 24] > 10 * out[24, 20]


def test_line_gain_and_flyback_identities():
    rng = np.random.default_rng(0)
    image = rng.random((8, 16)) + 1
    np.testing.assert_allclose(artefacts.line_gain(image, rng, 0.0, 0.0), image, rtol=1e-6)
    banded = artefacts.line_gain(image, np.random.default_rng(1), 0.2)
    ratio = banded / image
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-5) and ratio.std() > 0.05  # one gain per row
    ramp = artefacts.flyback(np.ones((2, 40)), 0.5, 5.0)
    assert ramp[0, 0] == pytest.approx(1.5) and ramp[0, -1] == pytest.approx(1.0, abs=1e-3)


def test_shot_noise_variance_and_jpeg_quality():
    rng = np.random.default_rng(3)
    image = np.full((64, 64), 4.0)
    noisy = artefacts.shot_noise(image, rng, 100.0)
    assert noisy.mean() == pytest.approx(4.0, rel=0.02)
    assert noisy.var() == pytest.approx(16.0 / 100.0, rel=0.1)  # mean^2 / counts
    smooth = 128 + 60 * np.sin(np.linspace(0, 6, 64))[None, :] * np.ones((64, 1))
    textured = np.clip(smooth + 20 * rng.standard_normal((64, 64)), 0, 255)
    err_low = np.abs(artefacts.jpeg(textured, 20) - textured).mean()
    err_high = np.abs(artefacts.jpeg(textured, 95) - textured).mean()
    assert err_high < err_low


def test_content_generators_shapes_and_ranges():
    rng = np.random.default_rng(0)
    for image in (content.supported_particles(rng, 64, "haadf")[0], content.supported_particles(rng, 64, "bf")[0],
                  content.overview(rng, 64)[0], content.varied_lattice(rng, 64)[0]):
        assert image.shape == (64, 64) and image.dtype == np.float32
        assert np.all(np.isfinite(image)) and image.min() >= 0 and image.max() > 0
    with pytest.raises(ValueError, match="haadf"):
        content.supported_particles(rng, 64, "dark")


@pytest.mark.parametrize("family", FAMILIES)
def test_simulate_realistic_each_family(family):
    sim = simulate_realistic(np.random.default_rng([1, 2]), 64, family=family)
    again = simulate_realistic(np.random.default_rng([1, 2]), 64, family=family)
    np.testing.assert_array_equal(sim["image"], again["image"])
    assert sim["family"] == family and sim["modality"] in ("stem", "tem")
    for key in ("image", "clean"):
        assert sim[key].shape == (64, 64) and sim[key].dtype == np.float32 and sim[key].min() >= 0
    assert sim["image"].mean() == pytest.approx(1.0, rel=1e-4)


def test_residual_noise_is_in_image_not_in_clean():
    quiet = RealisticRanges(noiseless_probability=1.0, export_8bit_probability=0.0)
    sim = simulate_realistic(np.random.default_rng(0), 64, quiet, family="overview")
    np.testing.assert_allclose(sim["image"], sim["clean"], rtol=1e-5, atol=1e-6)
    assert sim["residual_counts"] == 0.0
    noisy = dataclasses.replace(quiet, noiseless_probability=0.0, residual_counts=(100.0, 100.0), blur_px=(0.0, 0.0),
                                read_noise=(0.0, 0.0), line_gain=(0.0, 0.0), afterglow=(0.0, 0.0))
    sim = simulate_realistic(np.random.default_rng(0), 128, noisy, family="particles_bf")
    residual = sim["image"] - sim["clean"]
    # Poisson at 100 counts/px at the mean: variance = clean * mean / 100 in these units
    assert residual.var() == pytest.approx(np.mean(sim["clean"]) * np.mean(sim["image"]) / 100, rel=0.25)
    with pytest.raises(ValueError, match="family"):
        simulate_realistic(np.random.default_rng(0), 32, family="cats")


def test_realistic_config_builds_deterministically(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import (
        SyntheticTem,
        SyntheticTemConfig,
    )

    def build(where, seed=0):
        config = SyntheticTemConfig(name="realistic_tiny", image_size=32, num_train=3, num_validation=1,
                                    num_test=0, seed=seed)
        builder = SyntheticTem(config=config, data_dir=str(tmp_path / where))
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            compute_stats=tfds.download.ComputeStatsMode.SKIP))
        return [ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))]

    first, second, other = build("a"), build("b"), build("c", seed=1)
    assert len(first) == 3
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        assert a["family"] == b["family"]
    assert any(not np.array_equal(a["image"], c["image"]) for a, c in zip(first, other, strict=True))
    ex = first[0]
    assert ex["image"].shape == (32, 32, 1) and ex["clean"].shape == (32, 32, 1)
    assert ex["family"].decode() in FAMILIES and ex["modality"].decode() in ("stem", "tem")
