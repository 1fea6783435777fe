"""Noiseless image content the lattice and HRTEM simulators do not cover.

* :func:`supported_particles` - low-magnification supported-catalyst images:
  an agglomerate of amorphous support spheres (silica, alumina, carbon) with
  small metal particles on it, in HAADF-STEM (bright particles and support on
  dark vacuum) or bright-field TEM (dark particles on a grey film with
  phase-contrast speckle of amorphous carbon).
* :func:`overview` - piecewise-smooth low-magnification regions (grains,
  lamellae, holes) with sharp edges, shading and thickness gradients.
* :func:`varied_lattice` - atomic-resolution STEM lattices with non-round
  columns (dumbbells, elliptical probes from astigmatism/coma-like tails),
  column intensity that varies with a thickness field, a thickness ramp and an
  amorphous surface layer.

Every function returns a float32 non-negative image (arbitrary scale, mean of
order 1) of ``size`` x ``size`` pixels and draws its randomness from ``rng``.
"""

import numpy as np

from temzoo.simulate import optics, potential, stem


def random_field(rng, size, length_px):
    """Gaussian random field, zero mean, unit std, correlation length ``length_px`` pixels."""
    k2 = np.square(optics.frequency_magnitude((size, size), 1.0, rfft=True))
    noise = np.fft.rfft2(rng.standard_normal((size, size)))
    field = np.fft.irfft2(noise * np.exp(-2 * np.pi**2 * length_px**2 * k2), s=(size, size))
    field -= field.mean()
    return (field / max(field.std(), 1e-12)).astype(np.float32)


def ring_texture(rng, size, period_px, width=0.3):
    """Band-pass noise (ring of radius 1/``period_px`` in Fourier space): amorphous-film speckle, unit std."""
    k = optics.frequency_magnitude((size, size), 1.0, rfft=True)
    k0 = 1.0 / period_px
    ring = np.exp(-0.5 * ((k - k0) / (width * k0)) ** 2)
    noise = np.fft.rfft2(rng.standard_normal((size, size)))
    field = np.fft.irfft2(noise * ring, s=(size, size))
    field -= field.mean()
    return (field / max(field.std(), 1e-12)).astype(np.float32)


def sphere_thickness(shape, centres, radii):
    """Projected thickness (px) of spheres: ``sum 2 sqrt(r^2 - d^2)``, each drawn in its own window."""
    out = np.zeros(shape, dtype=np.float64)
    height, width = shape
    for (row, col), radius in zip(centres, radii, strict=True):
        r0, r1 = max(int(row - radius) - 1, 0), min(int(row + radius) + 2, height)
        c0, c1 = max(int(col - radius) - 1, 0), min(int(col + radius) + 2, width)
        if r0 >= r1 or c0 >= c1:
            continue
        rr, cc = np.mgrid[r0:r1, c0:c1]
        d2 = (rr - row) ** 2 + (cc - col) ** 2
        out[r0:r1, c0:c1] += 2 * np.sqrt(np.clip(radius**2 - d2, 0, None))
    return out


def _agglomerate(rng, size, count, radius_range):
    """Centres and radii of support spheres grown as a random-walk cluster (partly outside the frame)."""
    centres, radii = [], []
    position = rng.uniform(0.2 * size, 0.8 * size, 2)
    for _ in range(count):
        radius = rng.uniform(*radius_range)
        if centres and rng.uniform() < 0.85:
            anchor = centres[int(rng.integers(len(centres)))]
            angle = rng.uniform(0, 2 * np.pi)
            position = np.asarray(anchor) + (radius + radii[-1]) * 0.8 * np.array([np.sin(angle), np.cos(angle)])
        else:
            position = rng.uniform(-0.1 * size, 1.1 * size, 2)
        centres.append(position)
        radii.append(radius)
    return centres, radii


def supported_particles(rng, size, mode="haadf"):
    """Low-magnification supported metal particles, ``mode`` ``"haadf"`` or ``"bf"``; returns (image, info)."""
    if mode not in ("haadf", "bf"):
        raise ValueError(f"mode {mode!r} is not supported; choose 'haadf' or 'bf'.")
    scale = size / 256.0
    support_radius = (np.exp(rng.uniform(np.log(8), np.log(60))) * scale,) * 2
    support_radius = (0.5 * support_radius[0], 1.5 * support_radius[1])
    count = int(rng.integers(5, 80))
    centres, radii = _agglomerate(rng, size, count, support_radius)
    support = sphere_thickness((size, size), centres, radii)
    support /= max(np.percentile(support, 99), 1e-6)
    # particles sit on the support (rejection sampling on its thickness)
    n_particles = int(rng.integers(0, 120))
    radius_px = np.exp(rng.uniform(np.log(0.8), np.log(12.0), n_particles)) * scale
    positions = []
    for radius in radius_px:
        for _attempt in range(10):
            p = rng.uniform(0, size, 2)
            if support[int(p[0]), int(p[1])] > 0.05 or rng.uniform() < 0.05:
                positions.append((p, radius))
                break
    metal = sphere_thickness((size, size), [p for p, _ in positions], [r for _, r in positions])
    metal /= max(2 * 8.0 * scale, 1e-6)
    roughness = random_field(rng, size, rng.uniform(0.7, 3.0))
    if mode == "haadf":
        support_level = rng.uniform(0.15, 0.6)
        metal_level = rng.uniform(0.6, 1.5)
        grain = rng.uniform(0.0, 0.25)
        image = support_level * support * (1 + grain * roughness) + metal_level * metal
        image = image + rng.uniform(0.0, 0.05)  # vacuum / detector offset
    else:
        film = rng.uniform(0.0, 0.3)  # carbon film optical depth
        mu_support = rng.uniform(0.2, 1.5)
        mu_metal = rng.uniform(1.0, 4.0)
        speckle = ring_texture(rng, size, rng.uniform(2.5, 8.0))
        depth = film + mu_support * support + mu_metal * metal
        image = np.exp(-depth) * (1 + rng.uniform(0.02, 0.2) * speckle * (film + support > 0.02))
    image = np.clip(image, 0, None)
    return image.astype(np.float32), {"particles": len(positions), "supports": count}


def overview(rng, size):
    """Piecewise-smooth regions with sharp edges (Voronoi grains, shaded), a low-magnification overview."""
    n = int(rng.integers(3, 16))
    seeds = rng.uniform(-0.2 * size, 1.2 * size, (n, 2))
    stretch = rng.uniform(0.3, 1.0)
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float64)
    warp = random_field(rng, size, size * rng.uniform(0.05, 0.2)) * size * rng.uniform(0.0, 0.08)
    d = (rr[None] + warp[None] - seeds[:, 0, None, None]) ** 2 * stretch + (cc[None] - seeds[:, 1, None, None]) ** 2
    labels = np.argmin(d, axis=0)
    levels = rng.uniform(0.05, 1.0, n)
    gradients = rng.normal(0, 0.5 / size, (n, 2))
    image = levels[labels] + gradients[labels, 0] * (rr - size / 2) + gradients[labels, 1] * (cc - size / 2)
    image += rng.uniform(0.0, 0.2) * random_field(rng, size, size * rng.uniform(0.02, 0.1))
    # a few holes / bright inclusions
    for _ in range(int(rng.integers(0, 4))):
        centre = rng.uniform(0, size, 2)
        radius = rng.uniform(0.03, 0.2) * size
        inside = (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 < radius**2
        image[inside] = rng.uniform(0.0, 1.2)
    return np.clip(image, 0, None).astype(np.float32), {"regions": n}


WIDE_STEM_RANGES = stem.StemRanges(pixel_size=(0.05, 0.4))  # Å/px: 6-90 px lattice spacings


def varied_lattice(rng, size, ranges=WIDE_STEM_RANGES):
    """STEM lattice with dumbbells, an elliptical probe, thickness-varying columns, ramp and amorphous layer."""
    pixel = rng.uniform(*ranges.pixel_size)
    spacing = rng.uniform(*ranges.spacing) / pixel
    lattice = ranges.lattices[int(rng.integers(len(ranges.lattices)))]
    probe = rng.uniform(*ranges.probe_sigma) / pixel
    margin = int(np.ceil(6 * probe)) + 2
    rows, cols, weights = stem._columns(rng, size, margin, ranges, lattice, spacing)
    if rng.uniform() < 0.4:  # dumbbells: each column split in two, 0.8-1.6 Å apart
        separation = rng.uniform(0.8, 1.6) / pixel
        angle = rng.uniform(0, np.pi)
        ratio = rng.uniform(0.4, 1.0)
        dr, dc = 0.5 * separation * np.sin(angle), 0.5 * separation * np.cos(angle)
        rows = np.concatenate([rows - dr, rows + dr])
        cols = np.concatenate([cols - dc, cols + dc])
        weights = np.concatenate([weights, ratio * weights])
    thickness = 1 + rng.uniform(0.0, 0.4) * random_field(rng, size + 2 * margin, rng.uniform(0.1, 0.5) * size)
    ri = np.clip(np.rint(rows).astype(int) + margin, 0, size + 2 * margin - 1)
    ci = np.clip(np.rint(cols).astype(int) + margin, 0, size + 2 * margin - 1)
    weights = weights * np.clip(thickness[ri, ci], 0.2, None)
    grid = (size + 2 * margin, size + 2 * margin)
    points = potential.deposit(grid, rows + margin, cols + margin, weights)
    aspect = rng.uniform(1.0, 1.8)
    columns = _elliptical_gaussian(points, probe * aspect**0.5, probe / aspect**0.5, rng.uniform(0, np.pi))
    # probe tails (coma / defocus spread): a broad, weak copy of the image
    tail = rng.uniform(0.0, 0.3)
    columns = (1 - tail) * columns + tail * _elliptical_gaussian(columns, 3 * probe, 3 * probe, 0.0) / (18 * np.pi * probe**2)
    columns = columns[margin : margin + size, margin : margin + size]
    rr, cc = np.mgrid[0:size, 0:size] / size
    ramp = 1 + rng.uniform(-0.5, 0.5) * (rr - 0.5) + rng.uniform(-0.5, 0.5) * (cc - 0.5)
    amorphous = rng.uniform(0.0, 0.15) * (1 + ring_texture(rng, size, max(2.0, rng.uniform(1.0, 2.5) * probe)))
    background = rng.uniform(0.0, 0.6) * stem._background(rng, size, rng.uniform(0.25, 1.0) * size)
    image = columns / max(np.percentile(columns, 99.5), 1e-6) * ramp + amorphous + background
    info = {"lattice": lattice, "pixel_size": pixel, "spacing": spacing}
    return np.clip(image, 0, None).astype(np.float32), info


def _elliptical_gaussian(image, sigma_major, sigma_minor, angle):
    """Unit-peak elliptical Gaussian convolution (periodic; callers crop a margin)."""
    shape = image.shape
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    c, s = np.cos(angle), np.sin(angle)
    along, across = fx * c + fy * s, -fx * s + fy * c
    transfer = np.exp(-2 * np.pi**2 * (sigma_major**2 * along**2 + sigma_minor**2 * across**2))
    transfer *= 2 * np.pi * sigma_major * sigma_minor  # unit peak for a unit point
    return np.fft.irfft2(np.fft.rfft2(image) * transfer, s=shape).astype(np.float32)
