"""The scale a particle model sees an image at: resampling and choosing the factor.

A model trained by :func:`temzoo.analysis.box_training.train_on_boxes` learns particles of
about ``target_particle_px`` pixels (its card's ``training``), give or take the
training's scale jitter. Real micrographs hold particles of 4 to 160 pixels, so
an image is resampled by a factor of :data:`SCALES` (half-octave steps from 1/2,
i.e. upsampled twice, to 8) before the model sees it, and the probabilities are
resized back to the full image, so everything is measured in the image's own
pixels.

``scale="auto"`` (:func:`choose_factor`): the model predicts at the coarse factors
:data:`COARSE` (those leaving at least 32 pixels); at each, the particles it finds
(connected components of the foreground, border ones left out) measure a median
diameter ``d`` in the image's pixels, and ``d / size`` is that factor's estimate
of the right one (never enlarging an image beyond :data:`MAX_AUTO_SIDE`), where ``size`` is the particle size the model measured on its
own training images at the target scale (card: ``measured_particle_px``; weak
labels make predictions somewhat smaller than the boxes), else the target. The estimate of the factor whose own particles came out
closest to the target size (in log) is kept and, if it is not a factor already
predicted, the model predicts once more there. A known particle size
(``particle_size_px``) or a forced ``scale`` skips the search.
"""

import logging

import numpy as np

from temzoo.errors import BadInputError
from temzoo.names import PARTICLE_DEFAULTS as POST

log = logging.getLogger(__name__)

SCALES = tuple(round(2.0 ** (k / 2), 4) for k in range(-2, 7))  # 0.5, 0.7071, 1, ..., 8
COARSE = (1.0, 2.0, 4.0, 8.0)
MIN_SIDE = 32  # smallest side (px) an image is resampled to
MAX_AUTO_SIDE = 2048  # scale="auto" enlarges no image beyond this (a forced scale may)


def foreground_probability(probabilities):
    """Foreground probability from a model's output: ``H x W`` as is, ``H x W x C`` as 1 - channel 0."""
    p = np.asarray(probabilities, np.float32)
    if p.ndim == 2:
        return p
    if p.ndim == 3 and p.shape[-1] == 1:
        return p[..., 0]
    if p.ndim == 3:
        return 1.0 - p[..., 0]
    raise ValueError(f"probabilities must be H x W or H x W x C, got shape {p.shape}.")


def particle_maps(probabilities):
    """``H x W x K`` float32 maps from a model's class probabilities: channel 0 the foreground probability
    (:func:`foreground_probability`); a three-class model (background / boundary / core, as
    :func:`temzoo.data.boxes.boxes_to_classes` trains) adds its core probability as channel 1."""
    p = np.asarray(probabilities, np.float32)
    foreground = foreground_probability(p)
    if p.ndim == 3 and p.shape[-1] == 3:
        return np.stack([foreground, p[..., 2]], axis=-1)
    return foreground[..., None]


def scaled_post(factor, *, threshold=POST["threshold"], min_area=POST["min_area"],
                split_depth=POST["split_depth"]):
    """:func:`temzoo.analysis.particles.instances`' settings in the image's pixels for a model that saw the image at ``factor``.

    ``min_area`` is in the pixels the model saw (an area: times ``factor ** 2``); ``split_depth`` too,
    times ``factor`` when it is above 1.
    """
    return {"threshold": threshold, "min_area": (min_area or 0) * float(factor) ** 2,
            "split_depth": None if split_depth is None else split_depth * max(float(factor), 1.0)}


def rescale(image, factor):
    """``image`` resampled to ``1/factor`` of its size (``factor`` > 1 shrinks, with anti-aliasing)."""
    from skimage.transform import resize

    image = np.asarray(image, np.float32)
    if float(factor) == 1.0:
        return image
    shape = tuple(max(1, int(round(n / float(factor)))) for n in image.shape)
    return resize(image, shape, order=1, mode="reflect", anti_aliasing=float(factor) > 1).astype(np.float32)


def upscale_to(foreground, shape):
    """Bilinear resize of a probability map (``H x W`` or ``H x W x K``) predicted at another scale back to ``shape``."""
    from skimage.transform import resize

    shape = tuple(shape)[:2]
    if tuple(foreground.shape[:2]) == shape:
        return np.asarray(foreground, np.float32)
    return resize(foreground, shape, order=1, mode="edge", anti_aliasing=False).astype(np.float32)


def factor_for_size(size_px, target_px):
    """The factor of :data:`SCALES` that brings particles of ``size_px`` closest (in log) to ``target_px``."""
    if not target_px or not size_px or size_px <= 0:
        return 1.0
    return min(SCALES, key=lambda f: abs(np.log(size_px / f / target_px)))


def target_particle_px(model):
    """The particle size (px) a model was trained to see, from its card (``None`` if it does not say)."""
    from temzoo.zoo.pretrained import card

    value = ((card(model) or {}).get("training") or {}).get("target_particle_px")
    return float(value) if value else None


def measured_particle_px(model):
    """The size (px) the model's particles come out at on its training images at the target scale (card), else
    the target size: what ``scale="auto"`` compares the particles it finds with."""
    from temzoo.zoo.pretrained import card

    value = ((card(model) or {}).get("training") or {}).get("measured_particle_px")
    return float(value) if value else target_particle_px(model)


def median_diameter(foreground, threshold, min_area):
    """Median equivalent diameter (px) of the foreground's components not touching the border, or ``None``."""
    sizes = diameters(foreground, threshold, min_area)
    return float(np.median(sizes)) if len(sizes) else None


def diameters(foreground, threshold, min_area):
    """Equivalent diameters (px) of the foreground's components not touching the border."""
    from skimage import measure, morphology

    mask = foreground > threshold
    if min_area > 1:
        mask = morphology.remove_small_objects(mask, max_size=int(min_area) - 1)
    labels = measure.label(mask, connectivity=2)
    height, width = mask.shape
    return np.array([r.equivalent_diameter_area for r in measure.regionprops(labels)
                     if r.bbox[0] > 0 and r.bbox[1] > 0 and r.bbox[2] < height and r.bbox[3] < width], np.float64)


def allowed_factors(shape):
    """The factors of :data:`SCALES` ``scale="auto"`` may use for an image of ``shape``."""
    allowed = [f for f in SCALES if min(shape) / f >= MIN_SIDE and (f >= 1 or max(shape) / f <= MAX_AUTO_SIDE)]
    return allowed or [1.0]


def choose_factor(sizes, target, allowed=SCALES):
    """The factor to predict at, from ``{factor: median diameter in image pixels (or None)}`` at the coarse factors.

    Each factor's particles give an estimate ``d / target``; the estimate of the factor
    whose particles came out closest to the target size is kept, snapped to ``allowed``.
    """
    measured = {f: d for f, d in sizes.items() if d}
    if not measured or not target:
        return min(sizes, default=1.0)
    best = min(measured, key=lambda f: abs(np.log(measured[f] / f / target)))
    return min(allowed, key=lambda f: abs(np.log(measured[best] / f / target)))


def _checked_scale(scale):
    if scale == "auto":
        return scale
    if isinstance(scale, bool) or not isinstance(scale, int | float | np.integer | np.floating) or not scale > 0:
        raise BadInputError(f"scale must be 'auto' or a positive resampling factor (e.g. 2), got {scale!r}.")
    return float(scale)


def foreground_at_scale(model, image, **kwargs):
    """Foreground probability of ``image`` (full size) and the factor used: :func:`maps_at_scale`'s channel 0."""
    maps, factor = maps_at_scale(model, image, **kwargs)
    return maps[..., 0], factor


def maps_at_scale(model, image, *, scale="auto", particle_size_px=None, threshold=POST["threshold"],
                  min_area=POST["min_area"], tile_size=None, progress=None, keep=None):
    """:func:`particle_maps` of ``image`` (full size, ``H x W x K``) and the factor used (see the module docstring).

    ``keep``: optional dict that receives ``{factor: full-size maps}`` of every factor predicted.
    """
    import keras

    from temzoo.inference.tiling import predict
    from temzoo.tasks.backbone import resolve_model

    if not isinstance(model, keras.Model):
        model = resolve_model(model, allow_architecture=False).model
    target = target_particle_px(model)
    scale = _checked_scale(scale)
    if particle_size_px is not None:
        if not float(particle_size_px) > 0:
            raise BadInputError(f"the particle size must be positive, got {particle_size_px}.")
        if not target:
            log.warning("%s does not say which particle size it learnt; particle_size_px is ignored", model.name)
        scale = factor_for_size(float(particle_size_px), target)
    if scale == "auto" and not target:
        scale = 1.0
    maps = {} if keep is None else keep

    def at(factor):
        if factor not in maps:
            probabilities = predict(model, rescale(image, factor), tile_size=tile_size, progress=progress)
            if probabilities.ndim != 3 or probabilities.shape[-1] < 2:
                raise BadInputError(
                    "the model does not output class probabilities (H x W x classes); particles() needs a segmentation "
                    "model such as 'nanoparticles' or one fine-tuned with task 'segmentation'."
                )
            maps[factor] = upscale_to(particle_maps(probabilities), image.shape)
        return maps[factor]

    if scale != "auto":
        return at(scale), scale
    factor = auto_factor(lambda f: at(f)[..., 0], image.shape, measured_particle_px(model), threshold=threshold,
                         min_area=min_area)
    return at(factor), factor


def auto_factor(at, shape, target, *, threshold=POST["threshold"], min_area=POST["min_area"], rule="fit"):
    """The factor ``scale="auto"`` picks for an image of ``shape``; ``at(factor)`` gives the full-size foreground.

    ``min_area``: objects smaller than this in the pixels the model saw at a factor are not particles.

    ``rule="fit"``: :func:`choose_factor` over the coarse factors' median sizes. ``rule="count"``: the
    coarse factor that finds the most particles within a factor 2 of ``target`` (as the model saw
    them) gives the estimate (its median size / ``target``).
    """
    coarse = [f for f in COARSE if min(shape) / f >= MIN_SIDE] or [1.0]
    found = {f: diameters(at(f), threshold, scaled_post(f, min_area=min_area)["min_area"]) for f in coarse}
    sizes = {f: float(np.median(d)) if len(d) else None for f, d in found.items()}
    if rule == "count" and target:
        counts = {f: int(((d / f >= target / 2) & (d / f <= target * 2)).sum()) for f, d in found.items()}
        best = max(coarse, key=lambda f: counts[f])
        sizes = {best: sizes[best]} if counts[best] else sizes
    elif rule not in ("fit", "count"):
        raise ValueError(f"rule must be 'fit' or 'count', got {rule!r}.")
    factor = choose_factor(sizes, target, allowed_factors(shape))
    log.info("scale: median particle %s px at factors %s (target %.0f px): factor %.3g", sizes, coarse, target, factor)
    return factor
