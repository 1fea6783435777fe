"""Acquisition artefacts of real micrographs, applied to a noiseless simulated image.

Real references are not noiseless: they carry their own shot noise, detector
blur (which correlates that noise), STEM scan artefacts and, when exported
for publication, 8-bit quantisation and JPEG compression. Each function here
takes a float image (non-negative intensity, any scale) and returns a new
float32 image; random choices come from the ``numpy.random.Generator`` passed in.

* :func:`scan_jitter` - each scan line shifted by a random sub-pixel offset
  (correlated from line to line, as slow beam/stage instability).
* :func:`drift_shear` - linear drift during a frame: a horizontal shear.
* :func:`line_gain` - per-scan-line gain and offset bands (horizontal noise bands).
* :func:`flyback` - brightness ramp at the start of each line (flyback not settled).
* :func:`detector_afterglow` - exponential smear along the fast scan axis
  (detector/amplifier response), which makes noise streaky along rows.
* :func:`anisotropic_blur` - elliptical Gaussian blur (probe astigmatism, detector MTF).
* :func:`shot_noise` - Poisson noise at ``counts`` per pixel at the mean intensity.
* :func:`jpeg` - JPEG round trip (Pillow) at a given quality.
"""

import io

import numpy as np


def _float(image):
    return np.asarray(image, dtype=np.float64)


def smooth_noise(rng, n, length):
    """1-D Gaussian-smoothed white noise of unit std and correlation ``length`` samples."""
    white = rng.standard_normal(n + 8 * int(np.ceil(length)) + 8)
    if length > 0:
        freq = np.fft.rfftfreq(white.size)
        white = np.fft.irfft(np.fft.rfft(white) * np.exp(-2 * (np.pi * length * freq) ** 2), n=white.size)
    out = white[: n]
    return out / max(out.std(), 1e-12)


def shift_rows(image, offsets):
    """Shift row ``i`` of ``image`` right by ``offsets[i]`` pixels (linear interpolation, edge values kept)."""
    image = _float(image)
    cols = np.arange(image.shape[1], dtype=np.float64)
    out = np.empty_like(image)
    for i, row in enumerate(image):
        out[i] = np.interp(cols - offsets[i], cols, row)
    return out.astype(np.float32)


def scan_jitter(image, rng, rms_px, correlation_lines=1.0):
    """Rows shifted by a random offset of std ``rms_px`` correlated over ``correlation_lines`` lines."""
    offsets = rms_px * smooth_noise(rng, image.shape[0], correlation_lines)
    return shift_rows(image, offsets)


def drift_shear(image, shear):
    """Horizontal shear: row ``i`` moves by ``shear * (i - centre)`` px (drift during the frame)."""
    centre = (image.shape[0] - 1) / 2
    return shift_rows(image, shear * (np.arange(image.shape[0]) - centre))


def line_gain(image, rng, gain_std, offset_std=0.0, correlation_lines=2.0):
    """Per-row multiplicative gain ``1 + gain_std * n`` and additive offset (in units of the mean)."""
    image = _float(image)
    rows = image.shape[0]
    gain = 1.0 + gain_std * smooth_noise(rng, rows, correlation_lines)
    offset = offset_std * image.mean() * smooth_noise(rng, rows, correlation_lines)
    return np.clip(image * gain[:, None] + offset[:, None], 0, None).astype(np.float32)


def flyback(image, amplitude, width_px):
    """Lines start ``amplitude`` (relative) brighter or darker, decaying over ``width_px`` pixels."""
    image = _float(image)
    ramp = 1.0 + amplitude * np.exp(-np.arange(image.shape[1]) / max(width_px, 1e-6))
    return np.clip(image * ramp[None, :], 0, None).astype(np.float32)


def detector_afterglow(image, decay):
    """First-order recursive filter along rows, ``y[j] = (1 - decay) x[j] + decay y[j-1]``, 0 <= decay < 1."""
    image = _float(image)
    if decay <= 0:
        return image.astype(np.float32)
    # Apply as an FFT convolution with the truncated exponential impulse response, padded on the left.
    length = int(np.ceil(np.log(1e-4) / np.log(decay))) + 1
    kernel = (1 - decay) * decay ** np.arange(length)
    kernel /= kernel.sum()
    padded = np.pad(image, ((0, 0), (length, 0)), mode="edge")
    n = padded.shape[1] + length
    spectrum = np.fft.rfft(padded, n=n, axis=1) * np.fft.rfft(kernel, n=n)[None, :]
    smeared = np.fft.irfft(spectrum, n=n, axis=1)[:, length : length + image.shape[1]]
    return smeared.astype(np.float32)


def anisotropic_blur(image, sigma_major, sigma_minor, angle):
    """Elliptical Gaussian blur (std ``sigma_major`` px along ``angle`` rad, ``sigma_minor`` across), reflect-padded."""
    image = _float(image)
    pad = int(np.ceil(4 * max(sigma_major, sigma_minor))) + 1
    padded = np.pad(image, pad, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    c, s = np.cos(angle), np.sin(angle)
    along = fx * c + fy * s
    across = -fx * s + fy * c
    transfer = np.exp(-2 * np.pi**2 * (sigma_major**2 * along**2 + sigma_minor**2 * across**2))
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * transfer, s=padded.shape)
    return blurred[pad:-pad, pad:-pad].astype(np.float32)


def shot_noise(image, rng, counts):
    """``Poisson(image / mean * counts) * mean / counts``: shot noise at ``counts`` e-/px at the mean intensity."""
    image = np.clip(_float(image), 0, None)
    mean = max(image.mean(), 1e-12)
    return (rng.poisson(image / mean * counts) * (mean / counts)).astype(np.float32)


def jpeg(image_8bit, quality):
    """JPEG round trip of a 0..255 image at ``quality`` (1-95, Pillow); returns float32 0..255."""
    from PIL import Image

    array = np.clip(np.rint(_float(image_8bit)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer), dtype=np.float32)
