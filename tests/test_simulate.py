"""Physics sanity of the synthetic TEM simulator (temzoo.simulate)."""

import numpy as np
import pytest

from temzoo.simulate import crystal, optics
from temzoo.simulate.hrtem import HrtemRanges, simulate_nanoparticles
from temzoo.simulate.noise import apply_dose
from temzoo.simulate.stem import StemRanges, simulate_lattice

AU = crystal.MATERIALS["Au"].lattice_constant


def test_electron_wavelength_and_interaction_constant():
    assert optics.electron_wavelength(300) == pytest.approx(0.019687, abs=2e-5)
    assert optics.electron_wavelength(200) == pytest.approx(0.025079, abs=2e-5)
    assert optics.electron_wavelength(100) == pytest.approx(0.037014, abs=2e-5)
    # Kirkland (2010) table 5.1: 300 kV -> 6.526e-4 rad/(V Å)
    assert optics.interaction_constant(300) == pytest.approx(6.526e-4, rel=5e-3)


def _analytic_zeros(wavelength, defocus, cs, k_max):
    """k > 0 with chi(k) = n pi: 0.5 Cs lam^3 k^4 - df lam k^2 - n = 0, solved for k^2."""
    a, b = 0.5 * cs * wavelength**3, -defocus * wavelength
    zeros = []
    for n in range(-50, 50):
        disc = b * b + 4 * a * n
        if disc < 0:
            continue
        for k2 in ((-b + np.sqrt(disc)) / (2 * a), (-b - np.sqrt(disc)) / (2 * a)):
            if k2 > 1e-12 and np.sqrt(k2) < k_max:
                zeros.append(np.sqrt(k2))
    return np.unique(np.round(zeros, 9))


@pytest.mark.parametrize("defocus,cs_mm", [(500.0, 1.2), (-200.0, 0.5), (900.0, 2.0)])
def test_ctf_zero_crossings_match_analytic(defocus, cs_mm):
    lam = optics.electron_wavelength(300)
    cs = cs_mm * 1e7
    k = np.linspace(1e-4, 0.8, 400_001)
    values = optics.ctf(k, lam, defocus, cs, focal_spread=30.0, convergence=2e-4)  # envelopes only damp
    crossings = k[:-1][np.sign(values[:-1]) != np.sign(values[1:])]
    expected = _analytic_zeros(lam, defocus, cs, 0.8)
    assert len(expected) >= 3
    assert len(crossings) == len(expected)
    np.testing.assert_allclose(crossings, expected, atol=5e-5)


def test_wave_transfer_is_exp_minus_i_chi_times_envelopes():
    lam = optics.electron_wavelength(300)
    k = optics.frequency_magnitude((64, 64), 0.4)
    transfer = optics.wave_transfer(k, lam, 400.0, 1.2e7, 30.0, 3e-4, aperture=0.7)
    ctf = optics.ctf(k, lam, 400.0, 1.2e7, 30.0, 3e-4)
    inside = k <= 0.7
    np.testing.assert_allclose(transfer.imag[inside], ctf[inside], atol=1e-5)
    assert np.all(transfer[~inside] == 0)
    assert transfer[0, 0] == pytest.approx(1.0)


def test_vacuum_images_to_unit_intensity():
    ranges = HrtemRanges(carbon_thickness=(0.0, 0.0))
    out = simulate_nanoparticles(np.random.default_rng(0), 64, ranges, particles=[])
    np.testing.assert_allclose(out["clean"], 1.0, atol=1e-4)
    assert out["mask"].sum() == 0


@pytest.mark.parametrize(
    "zone_axis,d_spacing,band",
    [
        ("[100]", AU / 2, (0.3, 0.6)),  # d200; d220 lies outside the band
        ("[110]", AU / np.sqrt(3), (0.3, 0.46)),  # d111; d200 at 0.49 lies outside
        ("[111]", AU / (2 * np.sqrt(2)), (0.55, 0.8)),  # d220, the first spacing seen down [111]
    ],
)
def test_lattice_spacing_is_the_power_spectrum_peak(zone_axis, d_spacing, band):
    size, pixel = 256, 0.4
    field = size * pixel
    ranges = HrtemRanges(carbon_thickness=(0.0, 0.0), pixel_size=(pixel, pixel))
    out = simulate_nanoparticles(
        np.random.default_rng(1), size, ranges, zone_axis=zone_axis, pixel_size=pixel, defocus=570.0,
        cs=1.0e7, focal_spread=20.0, convergence=1e-4, lattice_angle=0.3,
        particles=[((field / 2, field / 2), (40.0, 40.0), 0.0)],
    )
    image = out["clean"] - out["clean"].mean()
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.abs(np.fft.fft2(image * window)) ** 2
    k = optics.frequency_magnitude((size, size), pixel)
    in_band = (k > band[0]) & (k < band[1])
    k_peak = k[in_band][np.argmax(power[in_band])]
    assert k_peak == pytest.approx(1.0 / d_spacing, abs=1.5 / field)
    assert power[in_band].max() > 100 * np.median(power[in_band])


def test_mask_covers_the_particle_exactly():
    size, pixel = 128, 0.5
    center, semi, angle = (30.0, 34.0), (20.0, 14.0), 0.4
    ranges = HrtemRanges(carbon_thickness=(0.0, 0.0))
    out = simulate_nanoparticles(
        np.random.default_rng(2), size, ranges, pixel_size=pixel, defocus=570.0, cs=1e7,
        zone_axis="[100]", particles=[(center, semi, angle)],
    )
    mask = out["mask"]
    area_px = np.pi * semi[0] * semi[1] / pixel**2
    assert mask.sum() == pytest.approx(area_px, rel=0.02)
    x, y, atoms = crystal.particle_columns(center, semi, angle, 0.0, "[110]", AU, np.random.default_rng(0))
    rows, cols = np.floor(y / pixel).astype(int), np.floor(x / pixel).astype(int)
    assert len(atoms) > 50 and mask[rows, cols].mean() > 0.97  # columns sit on mask pixels (edge pixels aside)
    # Near Scherzer defocus the particle, not the vacuum around it, carries the contrast
    # (the vacuum only shows the particle's delocalised Fresnel fringes).
    assert out["clean"][mask == 1].std() > 3 * out["clean"][mask == 0].std()


def test_particle_beyond_the_band_limit_stays_visible_by_absorption():
    """Au [111] at 0.55 Å/px: its lattice lies beyond the band limit, so only absorption
    (mass-thickness contrast) shows the particle; a pure phase object left it invisible
    while the mask marked it (synthetic_tem 1.0.0: the quick start's unlearnable images)."""
    center, semi = (35.0, 35.0), (22.0, 22.0)
    common = dict(pixel_size=0.55, defocus=300.0, cs=1e7, zone_axis="[111]", particles=[(center, semi, 0.0)])
    ranges = HrtemRanges(carbon_thickness=(40.0, 40.0))
    out = simulate_nanoparticles(np.random.default_rng(3), 128, ranges, **common)
    inside, outside = out["clean"][out["mask"] == 1], out["clean"][out["mask"] == 0]
    assert inside.mean() < outside.mean() - 0.03  # a dark particle on the carbon
    phase_only = simulate_nanoparticles(np.random.default_rng(3), 128, HrtemRanges(
        carbon_thickness=(40.0, 40.0), absorption=(0.0, 0.0)), **common)
    flat_in, flat_out = phase_only["clean"][out["mask"] == 1], phase_only["clean"][out["mask"] == 0]
    assert abs(flat_in.mean() - flat_out.mean()) < 0.01  # what 1.0.0 drew: no contrast at all


def test_column_thickness_follows_the_ellipsoid():
    x, y, atoms = crystal.particle_columns((0, 0), (30.0, 30.0), 0.0, 0.0, "[100]", AU, np.random.default_rng(0))
    center = np.argmin(np.hypot(x, y))
    assert atoms[center] == pytest.approx(60.0 / AU, abs=1.0)  # 60 Å thick, 1 atom per a
    assert atoms.max() == atoms[center]
    # Column density x area = atoms in the sphere: 4 atoms per a^3.
    assert atoms.sum() == pytest.approx(4 / AU**3 * 4 / 3 * np.pi * 30.0**3, rel=0.05)


def test_poisson_noise_variance_equals_mean_at_the_dose():
    rng = np.random.default_rng(3)
    intensity = np.full((256, 256), 0.8, dtype=np.float32)
    dose, pixel = 200.0, 0.5
    noisy = apply_dose(intensity, dose, pixel, rng)
    per_pixel = dose * pixel**2
    counts = noisy * per_pixel
    assert counts.mean() == pytest.approx(0.8 * per_pixel, rel=0.01)
    assert counts.var() == pytest.approx(counts.mean(), rel=0.03)
    assert np.allclose(counts, np.round(counts), atol=1e-3)  # whole electrons


def test_stem_targets_are_consistent():
    ranges = StemRanges(vacancy_fraction=(0.0, 0.0), read_noise=(0.0, 0.0))
    out = simulate_lattice(np.random.default_rng(4), 96, ranges, lattice="square", pixel_size=0.15,
                           spacing=3.0, probe_sigma=0.45, counts=1e6)
    no_bg, sharp = out["clean_no_background"], out["super_resolution"]
    assert np.all(out["clean"] >= no_bg - 1e-6)
    # unit-peak Gaussians: the integral scales with sigma^2, i.e. by 0.5^2 for the sharper probe
    assert sharp.sum() / no_bg.sum() == pytest.approx(0.25, rel=0.05)
    assert sharp.max() == pytest.approx(no_bg.max(), rel=0.15)
    # the circular mask marks bright pixels, the Gaussian mask peaks at 1 on columns
    assert no_bg[out["circular_mask"] == 1].mean() > 3 * no_bg[out["circular_mask"] == 0].mean()
    assert 0.95 < out["gaussian_mask"].max() <= 1.0
    assert np.corrcoef(out["gaussian_mask"].ravel(), no_bg.ravel())[0, 1] > 0.9
    # very high counts: the noisy image is the clean one
    np.testing.assert_allclose(out["image"], out["clean"], atol=0.01)
    assert out["num_columns"] == pytest.approx((96 / 20) ** 2, rel=0.35)


def test_simulators_are_deterministic_per_seed():
    for simulate in (simulate_nanoparticles, simulate_lattice):
        a = simulate(np.random.default_rng(7), 48)
        b = simulate(np.random.default_rng(7), 48)
        c = simulate(np.random.default_rng(8), 48)
        np.testing.assert_array_equal(a["image"], b["image"])
        assert not np.array_equal(a["image"], c["image"])
