"""How much a pretrained generator denoises: PSNR against the noisy input and a tuned Gaussian filter.

The numbers recorded in the cards of the shipped weights come from
:func:`denoising_report`: held-out clean images in mean-intensity units
(non-negative, mean 1, as in the pretext task), Poisson noise at a fixed low
dose, and PSNR computed per image with the clean image's range as peak
(``max - min``; :mod:`temzoo.zoo.metrics`, the training metric), averaged over images. The Gaussian filter's sigma is tuned on
separate images at the same dose, so the baseline is as good as a Gaussian
filter can be.
"""

import numpy as np

from temzoo.zoo.normalization import Normalizer

DEFAULT_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def mean_intensity_units(image, eps=1e-6):
    """NumPy twin of :func:`temzoo.data.pairs.mean_intensity_units`."""
    image = np.asarray(image, dtype=np.float64)
    image = image - min(image.min(), 0.0)
    return image / (image.mean() + eps)


def gaussian_filter(image, sigma):
    """Gaussian blur of a 2-D image (FFT, periodic boundary handled by reflection padding)."""
    image = np.asarray(image, dtype=np.float64)
    pad = int(np.ceil(4 * sigma))
    padded = np.pad(image, pad, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    transfer = np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * transfer, s=padded.shape)
    return blurred[pad : pad + image.shape[0], pad : pad + image.shape[1]]


def psnr(estimate, clean):
    """PSNR in dB with the clean image's range as peak: :func:`temzoo.zoo.metrics.image_psnr` (float32)."""
    from temzoo.zoo.metrics import image_psnr

    return image_psnr(clean, estimate)


def add_poisson_noise(clean, dose, rng):
    """``Poisson(clean * dose) / dose`` for an image in mean-intensity units."""
    return rng.poisson(clean * dose).astype(np.float64) / dose


def tune_gaussian_sigma(clean_images, dose, sigmas=DEFAULT_SIGMAS, seed=1):
    """The sigma that maximises mean PSNR on ``clean_images`` at ``dose``."""
    rng = np.random.default_rng(seed)
    pairs = [(c, add_poisson_noise(c, dose, rng)) for c in map(mean_intensity_units, clean_images)]
    scores = {s: np.mean([psnr(gaussian_filter(n, s), c) for c, n in pairs]) for s in sigmas}
    return max(scores, key=scores.get)


def denoise_with_model(model, noisy, normalizer=None):
    """Normalise ``noisy`` (2-D) as in the pretext task, run ``model``, map back."""
    normalizer = normalizer or Normalizer("standardize")
    x, stats = normalizer.before(noisy)
    y = np.asarray(model(x[None, ..., None], training=False))[0, ..., 0]
    return normalizer.after(y, stats)


def denoising_report(model, clean_images, tuning_images, dose, normalizer=None, seed=0):
    """Mean PSNR (dB) of the noisy input, the tuned Gaussian filter and the model.

    ``clean_images`` and ``tuning_images`` are lists of 2-D arrays whose sides
    fit the model's stride. Returns a dict with the three PSNRs, the gains of
    the model over both, the tuned sigma, the dose and the number of images.
    """
    sigma = tune_gaussian_sigma(tuning_images, dose)
    rng = np.random.default_rng(seed)
    rows = []
    for clean in map(mean_intensity_units, clean_images):
        noisy = add_poisson_noise(clean, dose, rng)
        rows.append(
            (
                psnr(noisy, clean),
                psnr(gaussian_filter(noisy, sigma), clean),
                psnr(denoise_with_model(model, noisy, normalizer), clean),
            )
        )
    noisy_db, gauss_db, model_db = (float(v) for v in np.mean(rows, axis=0))
    return {
        "dose": float(dose),
        "images": len(rows),
        "psnr_noisy_db": noisy_db,
        "psnr_gaussian_db": gauss_db,
        "gaussian_sigma": float(sigma),
        "psnr_model_db": model_db,
        "gain_over_noisy_db": model_db - noisy_db,
        "gain_over_gaussian_db": model_db - gauss_db,
    }
