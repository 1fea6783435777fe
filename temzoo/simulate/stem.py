"""Atomic-resolution STEM images of 2D lattices with TEMImageNet-style targets.

A projected crystal is a random 2D Bravais lattice (square, rectangular,
hexagonal, centred rectangular or oblique) with one or two column species,
random spacing, rotation and a fraction of vacancies. Column brightness
follows HAADF Z-contrast, ``(Z / 80)^1.7``, with a few percent of
thickness jitter. Each column is imaged as a Gaussian probe of standard
deviation ``probe_sigma``: columns are deposited bilinearly on the grid and
convolved with the probe in Fourier space (bilinear deposition adds a
variance of 1/6 px^2 per axis, small next to the probe widths used here).

Targets, as in TEMImageNet (Lin et al. 2021):

* ``clean_no_background``: the columns only, peak intensity ~1.
* ``clean``: plus a smooth non-negative background (a low-pass random field).
* ``image``: ``clean`` with shot noise (``Poisson(clean * counts) / counts``,
  ``counts`` = electrons per pixel at unit intensity) and Gaussian read noise.
* ``super_resolution``: the columns imaged with a probe ``super_resolution_factor``
  times narrower, no background, no noise, same size.
* ``circular_mask`` (uint8 0/1): disks of radius 1.5 ``probe_sigma`` around
  every column centre.
* ``gaussian_mask`` (float32 0..1): a unit-peak Gaussian of standard
  deviation ``probe_sigma`` at every column (maximum where two overlap).

Scan distortion (optional): each scan line gets a random horizontal offset;
a column is displaced by the offset of the line through its centre, in every
target alike, so targets stay aligned with the input.
"""

import dataclasses

import numpy as np

from temzoo.simulate import optics, potential
from temzoo.simulate.noise import loguniform

LATTICES = ("square", "rectangular", "hexagonal", "centered_rectangular", "oblique")


@dataclasses.dataclass(frozen=True)
class StemRanges:
    """Ranges the random STEM parameters are drawn from (uniform unless noted)."""

    lattices: tuple = LATTICES
    pixel_size: tuple = (0.12, 0.25)  # Å / px
    spacing: tuple = (2.5, 4.5)  # Å, first lattice vector
    two_species_probability: float = 0.5
    atomic_number: tuple = (14, 83)
    intensity_jitter: float = 0.05  # relative std of column brightness
    vacancy_fraction: tuple = (0.0, 0.05)
    probe_sigma: tuple = (0.35, 0.55)  # Å
    super_resolution_factor: float = 0.5
    background_amplitude: tuple = (0.0, 0.6)  # relative to the peak column
    background_length: tuple = (0.25, 1.0)  # correlation length / image size
    counts: tuple = (5.0, 200.0)  # electrons / px at unit intensity, log-uniform
    read_noise: tuple = (0.0, 0.05)  # Gaussian std, intensity units
    scan_jitter: tuple = (0.0, 0.0)  # px rms per scan line; (0, 0) = none


def _lattice(rng, kind, spacing):
    """(vectors 2x2 rows, basis fractional coords Nx2, species per basis site)."""
    ratio = rng.uniform(1.1, 1.6)
    if kind == "square":
        vectors = [[1, 0], [0, 1]]
    elif kind == "rectangular":
        vectors = [[1, 0], [0, ratio]]
    elif kind == "hexagonal":
        vectors = [[1, 0], [0.5, np.sqrt(3) / 2]]
    elif kind == "centered_rectangular":
        vectors = [[1, 0], [0, ratio]]
    elif kind == "oblique":
        gamma = np.deg2rad(rng.uniform(60, 85))
        r = rng.uniform(1.0, 1.4)
        vectors = [[1, 0], [r * np.cos(gamma), r * np.sin(gamma)]]
    else:
        raise ValueError(f"lattice {kind!r} is not supported; choose one of {', '.join(LATTICES)}.")
    basis, species = [[0.0, 0.0]], [0]
    if kind == "centered_rectangular":
        basis.append([0.5, 0.5])
        species.append(0)
    return spacing * np.asarray(vectors, dtype=np.float64), np.asarray(basis), species


def _columns(rng, size, margin, ranges, kind, spacing_px):
    """Column positions (rows, cols in px) and brightness covering the padded field."""
    vectors, basis, species = _lattice(rng, kind, spacing_px)
    if rng.uniform() < ranges.two_species_probability:
        second = [1 / 3, 1 / 3] if kind == "hexagonal" else [0.5, 0.5]
        if kind == "centered_rectangular":
            species[1] = 1  # the centring column becomes the second species
        else:
            basis = np.vstack([basis, second])
            species.append(1)
    z = rng.uniform(*ranges.atomic_number, size=2)
    brightness = (z / 80.0) ** 1.7
    brightness /= brightness.max()
    extent = (size + 2 * margin) * np.sqrt(2)
    step = min(np.abs(np.linalg.det(vectors)) / np.linalg.norm(v) for v in vectors)
    n = int(np.ceil(extent / step)) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = i.reshape(-1, 1) * vectors[0] + j.reshape(-1, 1) * vectors[1]
    sites = basis @ vectors
    points = (cells[:, None, :] + sites[None, :, :]).reshape(-1, 2)
    weights = np.tile(brightness[species], len(cells))
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    points = points @ rot + rng.uniform(0, size, 2)
    inside = np.all((points > -margin) & (points < size + margin), axis=1)
    points, weights = points[inside], weights[inside]
    keep = rng.uniform(size=len(points)) >= rng.uniform(*ranges.vacancy_fraction)
    weights = weights * (1 + ranges.intensity_jitter * rng.standard_normal(len(weights)))
    return points[keep, 1], points[keep, 0], np.clip(weights[keep], 0.05, None)


def _render(shape, rows, cols, weights, sigmas_px, margin):
    """Sums of unit-peak Gaussians scaled by ``weights``, one image per std in ``sigmas_px``."""
    grid = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    points = np.fft.rfft2(potential.deposit(grid, rows + margin, cols + margin, weights))
    k2 = np.square(optics.frequency_magnitude(grid, 1.0, rfft=True))
    images = []
    for sigma in sigmas_px:
        kernel = np.exp(np.float32(-2 * np.pi**2 * sigma**2) * k2) * np.float32(2 * np.pi * sigma**2)
        image = np.fft.irfft2(points * kernel, s=grid)
        images.append(image[margin : margin + shape[0], margin : margin + shape[1]].astype(np.float32))
    return images


def _masks(shape, rows, cols, radius, sigma):
    """(circular uint8, gaussian float32) masks evaluated exactly around each column."""
    half = int(np.ceil(max(radius, 3 * sigma)))
    d = np.arange(-half, half + 1)
    dr, dc = (a.ravel() for a in np.meshgrid(d, d, indexing="ij"))
    base_r = np.rint(rows).astype(np.int64)[:, None] + dr[None, :]
    base_c = np.rint(cols).astype(np.int64)[:, None] + dc[None, :]
    dist2 = (base_r - rows[:, None]) ** 2 + (base_c - cols[:, None]) ** 2
    inside = (base_r >= 0) & (base_r < shape[0]) & (base_c >= 0) & (base_c < shape[1])
    flat = (base_r * shape[1] + base_c)[inside]
    dist2 = dist2[inside]
    circular = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    circular[flat[dist2 <= radius**2]] = 1
    gaussian = np.zeros(shape[0] * shape[1], dtype=np.float32)
    np.maximum.at(gaussian, flat, np.exp(-dist2 / (2 * sigma**2)).astype(np.float32))
    return circular.reshape(shape), gaussian.reshape(shape)


def _background(rng, size, length_px):
    """Smooth non-negative random field with max 1 (low-pass filtered white noise)."""
    k2 = np.square(optics.frequency_magnitude((size, size), 1.0, rfft=True))
    noise = np.fft.rfft2(rng.standard_normal((size, size), dtype=np.float32))
    field = np.fft.irfft2(noise * np.exp(np.float32(-2 * np.pi**2 * length_px**2) * k2), s=(size, size))
    field -= field.min()
    return (field / max(field.max(), 1e-12)).astype(np.float32)


def simulate_lattice(rng, image_size, ranges=StemRanges(), **fixed):
    """One STEM lattice image with its targets; random parameters from ``ranges``.

    ``fixed`` pins parameters: ``lattice``, ``pixel_size`` (Å/px), ``spacing`` (Å),
    ``probe_sigma`` (Å), ``background_amplitude``, ``counts``, ``read_noise``,
    ``scan_jitter`` (px).

    Returns float32 HxW ``image``, ``clean``, ``clean_no_background``,
    ``super_resolution``, ``gaussian_mask``; uint8 ``circular_mask``; and the
    metadata ``lattice``, ``pixel_size``, ``spacing`` (px), ``probe_sigma`` (px),
    ``counts``, ``num_columns``.
    """
    size = int(image_size)
    draw = {
        "lattice": lambda: ranges.lattices[int(rng.integers(len(ranges.lattices)))],
        "pixel_size": lambda: rng.uniform(*ranges.pixel_size),
        "spacing": lambda: rng.uniform(*ranges.spacing),
        "probe_sigma": lambda: rng.uniform(*ranges.probe_sigma),
        "background_amplitude": lambda: rng.uniform(*ranges.background_amplitude),
        "counts": lambda: loguniform(rng, *ranges.counts),
        "read_noise": lambda: rng.uniform(*ranges.read_noise),
        "scan_jitter": lambda: rng.uniform(*ranges.scan_jitter),
    }
    unknown = set(fixed) - set(draw)
    if unknown:
        raise TypeError(f"unknown fixed parameter(s): {', '.join(sorted(unknown))}")
    p = {name: fixed[name] if name in fixed else fn() for name, fn in draw.items()}
    pixel = float(p["pixel_size"])
    sigma = float(p["probe_sigma"]) / pixel
    spacing = float(p["spacing"]) / pixel
    margin = int(np.ceil(4 * sigma)) + 2
    rows, cols, weights = _columns(rng, size, margin, ranges, p["lattice"], spacing)
    if p["scan_jitter"] > 0:
        offsets = p["scan_jitter"] * rng.standard_normal(size + 2 * margin)
        cols = cols + offsets[np.clip(np.rint(rows).astype(np.int64) + margin, 0, size + 2 * margin - 1)]

    shape = (size, size)
    no_background, sharp = _render(shape, rows, cols, weights, (sigma, sigma * ranges.super_resolution_factor), margin)
    background = p["background_amplitude"] * _background(rng, size, rng.uniform(*ranges.background_length) * size)
    clean = no_background + background
    counts = float(p["counts"])
    noisy = rng.poisson(np.clip(clean, 0, None).astype(np.float64) * counts) / counts
    noisy = noisy + p["read_noise"] * rng.standard_normal(shape)
    circular, gaussian = _masks(shape, rows, cols, 1.5 * sigma, sigma)
    on_image = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return {
        "image": noisy.astype(np.float32),
        "clean": clean.astype(np.float32),
        "clean_no_background": no_background,
        "super_resolution": sharp,
        "circular_mask": circular,
        "gaussian_mask": gaussian,
        "lattice": p["lattice"],
        "pixel_size": pixel,
        "spacing": spacing,
        "probe_sigma": sigma,
        "counts": counts,
        "num_columns": int(on_image.sum()),
    }
