"""Slow background variation (support thickness, illumination) taken out before a particle model sees an image."""

import numpy as np


def flattened(image, sigma_px):
    """``image`` minus its Gaussian-smoothed background of standard deviation ``sigma_px`` (pixels).

    ``sigma_px`` 0 or ``None`` returns ``image`` unchanged. The smoothing runs on a block-averaged copy
    (blocks of about ``sigma_px / 4``) and is resized back, so it costs little at any ``sigma_px``.
    """
    image = np.asarray(image, np.float32)
    if not sigma_px:
        return image
    from scipy.ndimage import gaussian_filter
    from skimage.measure import block_reduce
    from skimage.transform import resize

    step = max(int(float(sigma_px) // 4), 1)
    # block means over the pixels each block holds (the last row and column of blocks may be partial)
    rows, cols = (np.minimum(step, n - np.arange(0, n, step)).astype(np.float32) for n in image.shape)
    small = block_reduce(image, (step, step), np.sum) / np.outer(rows, cols)
    background = gaussian_filter(small, float(sigma_px) / step, mode="reflect")
    full = resize(background, tuple(n * step for n in small.shape), order=1, mode="edge")
    return image - full[: image.shape[0], : image.shape[1]].astype(np.float32)


def model_flatten_px(model):
    """The background sigma (model pixels) a particle model was trained with: its card's ``training.flatten_px``."""
    from temzoo.zoo.pretrained import card

    return ((card(model) or {}).get("training") or {}).get("flatten_px")
