"""A mixture of simulated micrographs that looks like what microscopists record, artefacts included.

:func:`simulate_realistic` draws one content family (:mod:`temzoo.simulate.content`,
:mod:`temzoo.simulate.hrtem`), then the acquisition chain of its modality
(:mod:`temzoo.simulate.artefacts`):

* STEM (lattices, HAADF particles, half of the overviews): probe/detector
  blur (elliptical), drift shear and scan-line jitter on the noiseless image;
  shot noise at the reference's own dose; detector afterglow along the scan
  lines (streaky noise); per-line gain bands and a flyback ramp.
* TEM (HRTEM, bright-field particles, the other overviews): shot noise, then
  detector blur (which correlates the noise) and Gaussian read noise.
* Export, for a share of images: percentile stretch to 8 bit and a JPEG round trip.

Two images come back: ``image``, the simulated *reference* as a real
high-dose acquisition would give it (its own residual shot noise, streaks,
quantisation and JPEG blocks), and ``clean``, the same chain without any noise
(geometric and gain artefacts kept, no quantisation), on the same intensity scale.
Pretraining on ``image`` teaches a denoiser to restore what a real reference
looks like after much lower-dose Poisson noise is added on top of it, which is
how the real-data benchmark (``benchmarks/real_denoising.py``) scores it.
"""

import dataclasses

import numpy as np

from temzoo.simulate import artefacts, content
from temzoo.simulate.noise import loguniform

FAMILIES = ("lattice", "hrtem", "particles_haadf", "particles_bf", "overview")
STEM_FAMILIES = ("lattice", "particles_haadf")


@dataclasses.dataclass(frozen=True)
class RealisticRanges:
    """Mixture weights and artefact ranges (uniform unless noted)."""

    family_weights: tuple = (0.25, 0.15, 0.25, 0.2, 0.15)  # in the order of FAMILIES
    residual_counts: tuple = (20.0, 3000.0)  # the reference's own dose, counts/px at the mean, log-uniform
    noiseless_probability: float = 0.15  # share of references without residual noise
    blur_px: tuple = (0.0, 1.2)  # detector / probe blur std, px
    blur_aspect: tuple = (1.0, 2.0)
    scan_jitter_px: tuple = (0.0, 0.6)
    drift_shear: tuple = (-0.05, 0.05)  # px per line
    afterglow: tuple = (0.0, 0.6)  # recursive decay along the fast scan axis
    line_gain: tuple = (0.0, 0.08)
    flyback_probability: float = 0.3
    read_noise: tuple = (0.0, 0.03)  # relative to the mean intensity
    export_8bit_probability: float = 0.5
    jpeg_probability: float = 0.6  # of the 8-bit exports
    jpeg_quality: tuple = (60, 95)
    hrtem_pixel_size: tuple = (0.2, 1.0)  # Å/px


def _content(rng, family, size, ranges):
    if family == "lattice":
        image, info = content.varied_lattice(rng, size)
        return image, float(info["pixel_size"])
    if family == "hrtem":
        from temzoo.simulate.crystal import MATERIALS
        from temzoo.simulate.hrtem import HrtemRanges, simulate_nanoparticles

        hrtem = HrtemRanges(materials=tuple(MATERIALS), pixel_size=tuple(ranges.hrtem_pixel_size))
        sim = simulate_nanoparticles(rng, size, hrtem)
        return sim["clean"], float(sim["pixel_size"])
    if family == "particles_haadf":
        return content.supported_particles(rng, size, "haadf")[0], 0.0
    if family == "particles_bf":
        return content.supported_particles(rng, size, "bf")[0], 0.0
    return content.overview(rng, size)[0], 0.0


def simulate_realistic(rng, image_size, ranges=RealisticRanges(), family=None):
    """One simulated reference micrograph; returns ``image``, ``clean`` (float32 HxW) and metadata.

    ``family`` pins the content family (one of :data:`FAMILIES`); default: drawn
    with ``ranges.family_weights``. Metadata: ``family``, ``modality`` (``stem``/``tem``),
    ``pixel_size`` (Å/px; 0 for low-magnification content), ``residual_counts``
    (0 = no residual noise), ``export`` (``float``, ``8bit`` or ``jpegQ``).
    """
    size = int(image_size)
    weights = np.asarray(ranges.family_weights, dtype=np.float64)
    if family is None:
        family = FAMILIES[int(rng.choice(len(FAMILIES), p=weights / weights.sum()))]
    elif family not in FAMILIES:
        raise ValueError(f"family {family!r} is not supported; choose one of {', '.join(FAMILIES)}.")
    image, pixel_size = _content(rng, family, size, ranges)
    stem_like = family in STEM_FAMILIES or (family == "overview" and rng.uniform() < 0.5)
    image = np.clip(image, 0, None)
    image = image / max(float(image.mean()), 1e-6)

    blur = rng.uniform(*ranges.blur_px)
    aspect = rng.uniform(*ranges.blur_aspect)
    angle = rng.uniform(0, np.pi)
    counts = 0.0 if rng.uniform() < ranges.noiseless_probability else loguniform(rng, *ranges.residual_counts)
    if stem_like:
        if blur > 0:
            image = artefacts.anisotropic_blur(image, blur * aspect**0.5, blur / aspect**0.5, angle)
        image = artefacts.drift_shear(image, rng.uniform(*ranges.drift_shear))
        image = artefacts.scan_jitter(image, rng, rng.uniform(*ranges.scan_jitter_px), rng.uniform(0.5, 4.0))
        clean = np.clip(image, 0, None)
        noisy = artefacts.shot_noise(clean, rng, counts) if counts else clean
        decay = rng.uniform(*ranges.afterglow)
        clean, noisy = artefacts.detector_afterglow(clean, decay), artefacts.detector_afterglow(noisy, decay)
        gain_seed = int(rng.integers(2**31))
        gain = rng.uniform(*ranges.line_gain)
        clean = artefacts.line_gain(clean, np.random.default_rng(gain_seed), gain, 0.3 * gain)
        noisy = artefacts.line_gain(noisy, np.random.default_rng(gain_seed), gain, 0.3 * gain)
        if rng.uniform() < ranges.flyback_probability:
            amplitude, width = rng.uniform(-0.3, 0.3), rng.uniform(2, 20)
            clean, noisy = artefacts.flyback(clean, amplitude, width), artefacts.flyback(noisy, amplitude, width)
    else:
        clean = np.clip(image, 0, None)
        noisy = artefacts.shot_noise(clean, rng, counts) if counts else clean
        if blur > 0:
            clean = artefacts.anisotropic_blur(clean, blur * aspect**0.5, blur / aspect**0.5, angle)
            noisy = artefacts.anisotropic_blur(noisy, blur * aspect**0.5, blur / aspect**0.5, angle)
        read = rng.uniform(*ranges.read_noise)
        if counts and read > 0:
            noisy = noisy + read * float(clean.mean()) * rng.standard_normal(noisy.shape)
    clean = np.clip(np.asarray(clean, dtype=np.float64), 0, None)
    noisy = np.clip(np.asarray(noisy, dtype=np.float64), 0, None)

    export = "float"
    if rng.uniform() < ranges.export_8bit_probability:
        low, high = np.percentile(noisy, [rng.uniform(0.0, 2.0), rng.uniform(98.0, 100.0)])
        span = max(high - low, 1e-12)
        noisy = np.clip(np.rint((noisy - low) / span * 255.0), 0, 255)
        clean = np.clip((clean - low) / span * 255.0, 0, 255)
        export = "8bit"
        if rng.uniform() < ranges.jpeg_probability:
            quality = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
            noisy = artefacts.jpeg(noisy, quality)
            export = f"jpeg{quality}"
    scale = max(float(np.mean(noisy)), 1e-6)
    return {
        "image": (noisy / scale).astype(np.float32),
        "clean": (clean / scale).astype(np.float32),
        "family": family,
        "modality": "stem" if stem_like else "tem",
        "pixel_size": float(pixel_size),
        "residual_counts": float(counts),
        "export": export,
    }
