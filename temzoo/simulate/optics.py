"""Electron optics: wavelength, interaction constant and the contrast transfer function.

Conventions follow Kirkland, *Advanced Computing in Electron Microscopy*
(2nd ed., 2010): the aberration phase is

    chi(k) = pi * lambda * k**2 * (0.5 * Cs * lambda**2 * k**2 - defocus)

with ``defocus > 0`` meaning underfocus, and the objective lens multiplies the
exit wave's spectrum by ``exp(-i chi(k))`` times the partial-coherence
envelopes and the aperture.
"""

import functools

import numpy as np

ELECTRON_REST_ENERGY_EV = 510_998.95  # m0 c^2
HC_EV_ANGSTROM = 12_398.419843  # h c in eV * Å


def electron_wavelength(voltage_kv):
    """Relativistic electron wavelength in Å for an accelerating voltage in kV.

    ``lambda = h c / sqrt(E (2 m0 c^2 + E))``; 300 kV gives 0.01969 Å.
    """
    energy = np.asarray(voltage_kv, dtype=np.float64) * 1e3
    return HC_EV_ANGSTROM / np.sqrt(energy * (2 * ELECTRON_REST_ENERGY_EV + energy))


def interaction_constant(voltage_kv):
    """Interaction constant sigma in rad / (V Å): phase shift per unit projected potential.

    ``sigma = 2 pi / (lambda V) * (m0 c^2 + e V) / (2 m0 c^2 + e V)``
    (Kirkland eq. 5.6); 300 kV gives 6.53e-4 rad/(V Å).
    """
    energy = np.asarray(voltage_kv, dtype=np.float64) * 1e3
    wavelength = electron_wavelength(voltage_kv)
    return 2 * np.pi / (wavelength * energy) * (ELECTRON_REST_ENERGY_EV + energy) / (2 * ELECTRON_REST_ENERGY_EV + energy)


def aberration_phase(k, wavelength, defocus, cs):
    """chi(k) in rad for spatial frequency magnitude ``k`` (1/Å); defocus and Cs in Å."""
    k2 = np.square(k)
    return np.pi * wavelength * k2 * (0.5 * cs * wavelength**2 * k2 - defocus)


def temporal_envelope(k, wavelength, focal_spread):
    """Partial temporal coherence: ``exp(-(pi lambda Delta)^2 k^4 / 2)``, Delta = focal spread (Å)."""
    return np.exp(-0.5 * (np.pi * wavelength * focal_spread) ** 2 * np.power(k, 4))


def spatial_envelope(k, wavelength, defocus, cs, convergence):
    """Partial spatial coherence: ``exp(-(pi alpha)^2 (Cs lambda^2 k^3 - defocus k)^2)``.

    ``convergence`` is the illumination semi-angle alpha in rad.
    """
    return np.exp(-((np.pi * convergence) ** 2) * np.square(cs * wavelength**2 * np.power(k, 3) - defocus * k))


def ctf(k, wavelength, defocus, cs, focal_spread=0.0, convergence=0.0):
    """Phase contrast transfer function of a weak phase object: ``-sin(chi) * E_t * E_s``.

    Its zeros are where ``chi(k) = n pi``; the envelopes only damp it.
    """
    envelope = temporal_envelope(k, wavelength, focal_spread) * spatial_envelope(k, wavelength, defocus, cs, convergence)
    return -np.sin(aberration_phase(k, wavelength, defocus, cs)) * envelope


def wave_transfer(k, wavelength, defocus, cs, focal_spread, convergence, aperture):
    """Complex transfer function applied to the exit-wave spectrum (complex64).

    ``exp(-i chi) * E_t * E_s`` inside the objective aperture ``|k| <= aperture`` (1/Å),
    zero outside. Applying the envelopes to the wave is the usual quasi-coherent
    approximation (Kirkland sec. 3.3). Computed in float32 (``k`` may be float32).
    """
    k = np.asarray(k, dtype=np.float32)
    k2 = k * k
    f32 = np.float32
    chi = f32(np.pi * wavelength) * k2 * (f32(0.5 * cs * wavelength**2) * k2 - f32(defocus))
    spatial = k * (f32(cs * wavelength**2) * k2 - f32(defocus))
    exponent = f32(0.5 * (np.pi * wavelength * focal_spread) ** 2) * k2 * k2
    exponent += f32((np.pi * convergence) ** 2) * spatial * spatial
    envelope = np.exp(-exponent) * (k <= aperture)
    transfer = np.empty(k.shape, dtype=np.complex64)
    transfer.real = np.cos(chi) * envelope
    transfer.imag = -np.sin(chi) * envelope
    return transfer


def frequency_grid(shape, pixel_size, rfft=False):
    """(kx, ky) grids in 1/Å for an image of ``shape`` sampled at ``pixel_size`` Å/px."""
    ky = np.fft.fftfreq(shape[0], d=pixel_size)
    kx = np.fft.rfftfreq(shape[1], d=pixel_size) if rfft else np.fft.fftfreq(shape[1], d=pixel_size)
    return np.meshgrid(kx, ky)


def frequency_magnitude(shape, pixel_size, rfft=False):
    """|k| in 1/Å (float32) on the FFT grid of ``shape`` at ``pixel_size`` Å/px."""
    return _unit_frequency_magnitude(tuple(shape), bool(rfft)) * np.float32(1.0 / pixel_size)


@functools.lru_cache(maxsize=16)
def _unit_frequency_magnitude(shape, rfft):
    kx, ky = frequency_grid(shape, 1.0, rfft)
    k = np.sqrt(kx**2 + ky**2).astype(np.float32)
    k.flags.writeable = False
    return k
