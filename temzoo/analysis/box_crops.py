"""Random training crops for particle segmentation (numpy): where they are cut and how they are varied.

:func:`crop_sampler` gives one ``(image, mask)`` crop at a time for
:func:`temzoo.analysis.box_training.train_on_boxes`:

* position: anywhere in the image, or, with probability ``foreground``, around
  a randomly chosen particle pixel (the particle lands anywhere in the crop).
  Sparse micrographs (a few particles on a wide support) otherwise give mostly
  empty crops, which teach the background only;
* geometry: one of the 8 symmetries of the square (90-degree rotations, flip);
* intensity (``intensity=True``, :func:`vary_intensity`): the images are
  already normalised by the model's normaliser, so contrast and offset are
  varied around it, and some crops are blurred or get extra Gaussian noise.
  Micrographs of other instruments and supports differ from the training ones in
  exactly these ways (dose, detector, defocus, carbon texture);
* ``invert``: the probability of reversed intensities (``-image``), so one
  model learns particles brighter (HAADF) and darker (bright field) than their support.

The mask travels with the image through every geometric step, never through
the intensity ones. Measured on the 22 box images (2-fold leave-images-out,
``docs/benchmarks.md``, sixth pass), ``intensity`` and ``foreground=0.5`` both
cost about 0.05 F1 (the model then calls faint support blobs particles), so
:func:`temzoo.analysis.box_training.train_on_boxes` leaves them off by default.
"""

import numpy as np

CONTRAST = (0.67, 1.5)  # crop contrast multiplied by a log-uniform factor in this range
OFFSET_SD = 0.2  # added offset, in standard deviations of the normalised image
BLUR = (0.5, 1.5)  # Gaussian blur sigma (px), on BLUR_P of the crops
BLUR_P = 0.25
NOISE = (0.05, 0.3)  # extra Gaussian noise sd (normalised units), on NOISE_P of the crops
NOISE_P = 0.5
FOREGROUND_SAMPLES = 4096  # particle pixels kept per image to centre crops on


def vary_intensity(crop, rng):
    """``crop`` (normalised float image) with random contrast and offset, sometimes blurred or noisier."""
    from scipy import ndimage

    crop = np.asarray(crop, np.float32)
    mean = float(crop.mean())
    factor = float(np.exp(rng.uniform(np.log(CONTRAST[0]), np.log(CONTRAST[1]))))
    crop = (crop - mean) * factor + mean + float(rng.normal(0.0, OFFSET_SD))
    if rng.random() < BLUR_P:
        crop = ndimage.gaussian_filter(crop, float(rng.uniform(*BLUR)))
    if rng.random() < NOISE_P:
        crop = crop + rng.normal(0.0, float(rng.uniform(*NOISE)), crop.shape).astype(np.float32)
    return crop.astype(np.float32)


def _particle_pixels(mask, rng):
    """Up to :data:`FOREGROUND_SAMPLES` ``(row, col)`` of ``mask > 0`` (empty: ``None``)."""
    where = np.flatnonzero(np.asarray(mask) > 0)
    if not len(where):
        return None
    if len(where) > FOREGROUND_SAMPLES:
        where = rng.choice(where, FOREGROUND_SAMPLES, replace=False)
    return np.stack(np.unravel_index(where, np.shape(mask)), axis=1)


def crop_sampler(images, masks, patch, rng, invert=0.0, foreground=0.0, intensity=False):
    """A function giving one random augmented ``(image, mask)`` crop from the lists (see the module docstring)."""
    sizes = np.array([min(im.shape) for im in images])
    if (sizes < patch).any():
        small = int(np.argmin(sizes))
        raise ValueError(f"image {small} ({images[small].shape}) is smaller than patch_size={patch}.")
    if not 0.0 <= foreground <= 1.0:
        raise ValueError(f"foreground must be a probability in [0, 1], got {foreground}.")
    particles = [_particle_pixels(m, rng) for m in masks] if foreground else [None] * len(masks)

    def corner(i, shape):
        if particles[i] is not None and rng.random() < foreground:
            y, x = particles[i][rng.integers(len(particles[i]))]
            y, x = y - rng.integers(patch), x - rng.integers(patch)  # the pixel anywhere in the crop
            return int(np.clip(y, 0, shape[0] - patch)), int(np.clip(x, 0, shape[1] - patch))
        return int(rng.integers(shape[0] - patch + 1)), int(rng.integers(shape[1] - patch + 1))

    def sample():
        i = rng.integers(len(images))
        image, mask = images[i], masks[i]
        y, x = corner(i, image.shape)
        a, b = image[y:y + patch, x:x + patch], mask[y:y + patch, x:x + patch]
        k = rng.integers(4)
        a, b = np.rot90(a, k), np.rot90(b, k)
        if rng.integers(2):
            a, b = a[:, ::-1], b[:, ::-1]
        if intensity:
            a = vary_intensity(a, rng)
        if invert and rng.random() < invert:
            a = -a
        return a, b

    return sample
