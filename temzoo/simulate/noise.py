"""Shot noise at a given electron dose."""

import numpy as np


def apply_dose(intensity, dose, pixel_size, rng):
    """Poisson-noisy image at ``dose`` e-/Å^2, in the same units as ``intensity``.

    ``intensity`` is relative to the incident beam (1 = vacuum). Each pixel
    receives ``Poisson(intensity * dose * pixel_size**2)`` electrons; the
    result is divided by ``dose * pixel_size**2`` so its mean is
    ``intensity`` and its variance ``intensity / (dose * pixel_size**2)``.
    """
    per_pixel = float(dose) * float(pixel_size) ** 2
    counts = rng.poisson(np.clip(intensity, 0, None).astype(np.float64) * per_pixel)
    return (counts / per_pixel).astype(np.float32)


def loguniform(rng, low, high):
    """One draw uniform in log between ``low`` and ``high``."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
