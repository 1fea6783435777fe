"""HRTEM images of FCC metal nanoparticles on amorphous carbon.

Image formation (all numpy, float32/complex64):

1. Atomic columns of each particle (:mod:`temzoo.simulate.crystal`) are
   deposited on a padded pixel grid with their atom counts as weights; the
   amorphous-carbon support is a Poisson number of C atoms per pixel
   (number density 0.1 Å^-3 times the support thickness).
2. The projected potential ``V`` (V Å) is the deposit convolved with one
   atom's projected potential (:mod:`temzoo.simulate.potential`) in Fourier
   space, band-limited to 2/3 of Nyquist against aliasing.
3. Phase-object approximation with an absorptive potential: exit wave
   ``psi = exp((i - kappa) sigma V)``, sigma = :func:`interaction_constant`,
   ``kappa`` the ratio of absorptive to elastic potential (the metal's drawn
   from ``HrtemRanges.absorption``, carbon's :data:`CARBON_ABSORPTION`). The
   absorptive part stands for electrons scattered to angles the band limit
   and the objective aperture remove: it gives a heavy-metal particle its
   mass-thickness (amplitude) contrast, so a particle stays visible where its
   lattice fringes lie beyond the band limit (Au [111] at 0.5 Å/px; without it
   such particles were invisible in the clean image while the mask marked
   them, synthetic_tem 1.0.0). (Valid for thin specimens; thick columns of a
   heavy metal are outside its validity, which we accept for training data
   whose job is realistic-looking contrast.)
4. The objective lens multiplies the exit-wave spectrum by
   ``exp(-i chi) E_t E_s`` inside the aperture (:mod:`temzoo.simulate.optics`);
   the image intensity is ``|psi_image|^2`` (1 = vacuum), cropped to the
   output size (the padding keeps CTF delocalisation from wrapping around).
5. Shot noise at the dose (:func:`temzoo.simulate.noise.apply_dose`).

The particle mask is exact: pixels whose centre lies inside a particle's
projected outline.
"""

import dataclasses

import numpy as np

from temzoo.simulate import crystal, optics, potential
from temzoo.simulate.noise import apply_dose, loguniform

CARBON_DENSITY = 0.1  # atoms / Å^3 (amorphous carbon, ~2 g/cm^3)
CARBON_Z = 6
# Absorptive / elastic potential of the light carbon support: it scatters little outside the
# aperture; the metal's ratio is drawn (HrtemRanges.absorption), larger, as for heavy atoms.
CARBON_ABSORPTION = 0.02


@dataclasses.dataclass(frozen=True)
class HrtemRanges:
    """Ranges the random HRTEM parameters are drawn from (uniform unless noted)."""

    materials: tuple = ("Au",)
    zone_axes: tuple = crystal.ZONE_AXES
    pixel_size: tuple = (0.35, 0.6)  # Å / px
    diameter: tuple = (20.0, 80.0)  # Å
    max_particles: int = 3
    aspect: tuple = (1.0, 1.3)  # ratio of the in-plane semi-axes
    carbon_thickness: tuple = (20.0, 80.0)  # Å
    voltage_kv: float = 300.0
    defocus: tuple = (-100.0, 800.0)  # Å, > 0 underfocus
    cs_mm: tuple = (0.5, 1.3)
    focal_spread: tuple = (20.0, 50.0)  # Å
    convergence_mrad: tuple = (0.1, 0.5)
    aperture: float = 1.0  # 1/Å, objective aperture (also capped at 2/3 Nyquist)
    dose: tuple = (100.0, 5000.0)  # e-/Å^2, log-uniform
    absorption: tuple = (0.08, 0.2)  # metal's absorptive / elastic potential (mass-thickness contrast)


def _place_particles(rng, field, ranges):
    """Centres (Å) and semi-axes of up to ``max_particles`` non-overlapping particles."""
    wanted = int(rng.integers(1, ranges.max_particles + 1))
    particles = []
    for _ in range(wanted):
        diameter = rng.uniform(*ranges.diameter)
        aspect = rng.uniform(*ranges.aspect)
        semi = (0.5 * diameter, 0.5 * diameter / aspect)
        for _attempt in range(20):
            center = rng.uniform(0.15 * field, 0.85 * field, 2)
            if all(np.hypot(*(center - c)) > semi[0] + s[0] + 5.0 for c, s, _ in particles):
                particles.append((center, semi, rng.uniform(0, np.pi)))
                break
    return particles


def _draw_parameters(rng, ranges, fixed):
    """The imaging parameters: those in ``fixed``, the others drawn from ``ranges`` (in a fixed order)."""
    draw = {
        "material": lambda: ranges.materials[int(rng.integers(len(ranges.materials)))],
        "zone_axis": lambda: ranges.zone_axes[int(rng.integers(len(ranges.zone_axes)))],
        "pixel_size": lambda: rng.uniform(*ranges.pixel_size),
        "defocus": lambda: rng.uniform(*ranges.defocus),
        "cs": lambda: rng.uniform(*ranges.cs_mm) * 1e7,
        "focal_spread": lambda: rng.uniform(*ranges.focal_spread),
        "convergence": lambda: rng.uniform(*ranges.convergence_mrad) * 1e-3,
        "dose": lambda: loguniform(rng, *ranges.dose),
        "carbon_thickness": lambda: rng.uniform(*ranges.carbon_thickness),
        "lattice_angle": lambda: rng.uniform(0, 2 * np.pi),
        "absorption": lambda: rng.uniform(*ranges.absorption),
    }
    unknown = set(fixed) - set(draw) - {"particles"}
    if unknown:
        raise TypeError(f"unknown fixed parameter(s): {', '.join(sorted(unknown))}")
    return {name: fixed[name] if name in fixed else fn() for name, fn in draw.items()}


def _deposits(rng, p, particles, material, pixel, shape, pad):
    """Atoms per pixel on the padded grid: the particles' columns (weighted by atom count) and the carbon."""
    xs, ys, counts = [], [], []
    for center, semi, outline_angle in particles:
        x, y, n = crystal.particle_columns(
            center, semi, outline_angle, p["lattice_angle"] + rng.uniform(0, 2 * np.pi) * (len(particles) > 1),
            p["zone_axis"], material.lattice_constant, rng,
        )
        xs.append(x)
        ys.append(y)
        counts.append(n)
    metal = potential.deposit(
        shape,
        np.concatenate(ys or [np.zeros(0)]) / pixel - 0.5 + pad,
        np.concatenate(xs or [np.zeros(0)]) / pixel - 0.5 + pad,
        np.concatenate(counts or [np.zeros(0)]),
    )
    carbon = rng.poisson(CARBON_DENSITY * p["carbon_thickness"] * pixel**2, shape).astype(np.float32)
    return metal, carbon


def _phase(metal, carbon, material, pixel, cutoff, voltage_kv):
    """Phase shifts ``sigma * V`` of the metal and of the carbon, ``V`` the band-limited projected potential (V Å)."""
    shape = metal.shape
    k_r = optics.frequency_magnitude(shape, pixel, rfft=True)
    band = k_r <= cutoff
    metal_form = potential.atom_potential_spectrum(k_r, material.z, material.debye_waller) * band
    carbon_form = potential.atom_potential_spectrum(k_r, CARBON_Z) * band
    # phase = sigma * V, with V = projected potential in V Å (deposit per pixel area)
    scale = np.float32(float(optics.interaction_constant(voltage_kv)) / pixel**2)
    metal_phase = np.fft.irfft2(np.fft.rfft2(metal) * metal_form.astype(np.float32), s=shape) * scale
    carbon_phase = np.fft.irfft2(np.fft.rfft2(carbon) * carbon_form.astype(np.float32), s=shape) * scale
    return metal_phase, carbon_phase


def _image_intensity(metal_phase, carbon_phase, p, pixel, cutoff, ranges):
    """``|psi_image|^2`` on the padded grid: the absorbing phase-object exit wave through the objective lens."""
    shape = metal_phase.shape
    phase = metal_phase + carbon_phase
    amplitude = np.exp(-float(p["absorption"]) * metal_phase - CARBON_ABSORPTION * carbon_phase)
    exit_wave = np.empty(shape, dtype=np.complex64)
    exit_wave.real = amplitude * np.cos(phase)
    exit_wave.imag = amplitude * np.sin(phase)
    wavelength = float(optics.electron_wavelength(ranges.voltage_kv))
    k = optics.frequency_magnitude(shape, pixel)
    transfer = optics.wave_transfer(
        k, wavelength, p["defocus"], p["cs"], p["focal_spread"], p["convergence"], min(ranges.aperture, cutoff)
    )
    image_wave = np.fft.ifft2(np.fft.fft2(exit_wave) * transfer)
    return np.square(image_wave.real) + np.square(image_wave.imag)


def simulate_nanoparticles(rng, image_size, ranges=HrtemRanges(), **fixed):
    """One HRTEM image of nanoparticles; random parameters from ``ranges``.

    Keyword arguments in ``fixed`` pin parameters instead of drawing them:
    ``material``, ``zone_axis``, ``pixel_size``, ``defocus``, ``cs`` (Å),
    ``focal_spread``, ``convergence`` (rad), ``dose``, ``carbon_thickness``,
    ``lattice_angle`` (rad), ``absorption`` and ``particles`` (list of (centre Å, (ra, rb) Å,
    outline angle)).

    Returns a dict: ``image`` (noisy, float32 HxW), ``clean`` (noiseless
    intensity, 1 = vacuum), ``mask`` (uint8 HxW, 1 inside a particle) and the
    metadata ``pixel_size``, ``dose``, ``defocus``, ``cs``, ``zone_axis``,
    ``material``, ``num_particles``.
    """
    size = int(image_size)
    p = _draw_parameters(rng, ranges, fixed)
    material = crystal.MATERIALS[p["material"]]
    pixel = float(p["pixel_size"])
    particles = fixed["particles"] if "particles" in fixed else _place_particles(rng, size * pixel, ranges)

    pad = max(16, size // 16)  # margin for CTF delocalisation; particles sit in the central 70 %
    shape = (size + 2 * pad, size + 2 * pad)
    metal, carbon = _deposits(rng, p, particles, material, pixel, shape, pad)
    cutoff = (2.0 / 3.0) * 0.5 / pixel
    metal_phase, carbon_phase = _phase(metal, carbon, material, pixel, cutoff, ranges.voltage_kv)
    intensity = _image_intensity(metal_phase, carbon_phase, p, pixel, cutoff, ranges)[pad : pad + size, pad : pad + size]
    intensity = intensity.astype(np.float32)

    mask = np.zeros((size, size), dtype=np.uint8)
    for center, semi, outline_angle in particles:
        crystal.draw_ellipse(mask, pixel, center, semi, outline_angle)

    return {
        "image": apply_dose(intensity, p["dose"], pixel, rng),
        "clean": intensity,
        "mask": mask,
        "pixel_size": pixel,
        "dose": float(p["dose"]),
        "defocus": float(p["defocus"]),
        "cs": float(p["cs"]),
        "zone_axis": p["zone_axis"],
        "material": material.name,
        "num_particles": len(particles),
    }


def nanoparticle_set(count, seed=0, split_index=0, image_size=256, ranges=HrtemRanges()):
    """The first ``count`` images of a ``synthetic_tem/au_np`` split, made as its TFDS builder makes them.

    Image ``i`` is :func:`simulate_nanoparticles` with ``np.random.default_rng([seed, split_index, i])``
    (the builder's default config: seed 0, 256 px, these ranges; split index 0 = train), without
    TensorFlow Datasets, e.g. on a machine whose Keras runs another backend. The TFDS split lists
    these images in another order, so ``train[:count]`` is another subset of the same images.

    Returns ``{"name", "images", "masks"}``, a form :func:`temzoo.analysis.box_training.train_on_boxes`
    takes as ``synthetic``.
    """
    sims = [simulate_nanoparticles(np.random.default_rng([seed, split_index, i]), image_size, ranges)
            for i in range(int(count))]
    return {"name": f"synthetic_tem/au_np (simulated: split {split_index}, images 0-{int(count) - 1}, seed {seed})",
            "images": [s["image"] for s in sims], "masks": [s["mask"] for s in sims]}
