"""The denoising report that backs the numbers in the shipped cards."""

import numpy as np

from temzoo.analysis import denoising_baselines as db


def _smooth_images(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        fx, fy, phase = rng.uniform(0.05, 0.15, 2).tolist() + [rng.uniform(0, 6)]
        out.append(1.5 + np.sin(2 * np.pi * fx * xx + phase) * np.cos(2 * np.pi * fy * yy))
    return out


def test_gaussian_filter_keeps_constant_and_mean():
    img = np.full((20, 24), 3.0)
    np.testing.assert_allclose(db.gaussian_filter(img, 2.0), img, atol=1e-9)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, 64))
    assert db.gaussian_filter(noise, 2.0).std() < 0.3 * noise.std()


def test_psnr_of_known_error():
    clean = np.zeros((10, 10))
    clean[0, 0] = 1.0  # range 1
    assert abs(db.psnr(clean + 0.1, clean) - 20.0) < 1e-4  # temzoo.zoo.metrics: float32, as in training


class _IdentityModel:
    def __call__(self, x, training=False):
        return x


def test_report_of_identity_model_equals_noisy_and_gaussian_wins_on_smooth_images():
    images = _smooth_images(6)
    report = db.denoising_report(_IdentityModel(), images[:3], images[3:], dose=5.0)
    # identity returns the noisy image (normalise then map back exactly)
    assert abs(report["psnr_model_db"] - report["psnr_noisy_db"]) < 1e-4
    # on smooth images a tuned blur must beat doing nothing
    assert report["psnr_gaussian_db"] > report["psnr_noisy_db"] + 3
    assert report["gain_over_gaussian_db"] < 0
    assert report["images"] == 3
