"""Projected atomic potentials rendered on a pixel grid.

Atoms are placed on the grid by bilinear deposition (``np.bincount`` with
weights: exact centre of mass, sub-pixel positions kept), then convolved with
the projected potential of one atom in Fourier space.

The atom is a screened Coulomb (Wentzel) potential with Lenz screening
radius ``R = 0.885 a0 Z^(-1/3)``; its electron scattering factor is one
Lorentzian, ``f(k) = Z / (2 pi^2 a0) / (k^2 + (2 pi R)^-2)`` (Å), the
Rutherford law at large k. The 2D Fourier transform of the projected
potential of one atom is ``(h^2 / 2 pi m0 e) f(k) = 47.878 V Å^2 * f(k)``
(Kirkland eq. 5.16), damped by a Debye-Waller factor ``exp(-B k^2 / 4)`` for
thermal vibration. It is simpler than the tabulated fits (Kirkland 2010) and
about a factor 2 weaker in forward scattering for heavy atoms, which is
enough for images whose contrast we only need to be physically shaped.
"""

import numpy as np

BOHR_RADIUS = 0.529177  # Å
POTENTIAL_PREFACTOR = 47.878  # h^2 / (2 pi m0 e) in V Å^2


def scattering_factor(k, z):
    """Electron scattering factor f(k) in Å of element ``z`` (Wentzel model)."""
    screening = 0.885 * BOHR_RADIUS * z ** (-1.0 / 3.0)
    return z / (2 * np.pi**2 * BOHR_RADIUS) / (np.square(k) + (2 * np.pi * screening) ** -2)


def atom_potential_spectrum(k, z, debye_waller=0.5):
    """2D Fourier transform (V Å^2) of one atom's projected potential, Debye-Waller damped."""
    return POTENTIAL_PREFACTOR * scattering_factor(k, z) * np.exp(-debye_waller * np.square(k) / 4.0)


def deposit(shape, rows, cols, weights):
    """Sum ``weights`` at sub-pixel positions (``rows``, ``cols`` in pixels) by bilinear splatting.

    Points outside the grid are dropped. Returns a float32 array of ``shape``.
    """
    height, width = shape
    rows = np.asarray(rows, dtype=np.float64)
    cols = np.asarray(cols, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    r0 = np.floor(rows)
    c0 = np.floor(cols)
    fr = rows - r0
    fc = cols - c0
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    out = np.zeros(height * width, dtype=np.float64)
    for dr, dc, w in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        r = r0 + dr
        c = c0 + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        out += np.bincount(r[inside] * width + c[inside], weights=(weights * w)[inside], minlength=height * width)
    return out.reshape(shape).astype(np.float32)
