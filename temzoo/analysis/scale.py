"""The scale a particle model sees an image at: resampling and choosing the factor.

A model trained by :func:`temzoo.analysis.box_training.train_on_boxes` learns particles of
about ``target_particle_px`` pixels (its card's ``training``), give or take the
training's scale jitter. Real micrographs hold particles of 4 to 160 pixels, so
an image is resampled by a factor of :data:`SCALES` (half-octave steps from 1/2,
i.e. upsampled twice, to 8) before the model sees it, and the probabilities are
resized back to the full image, so everything is measured in the image's own
pixels.

``scale="auto"`` (:func:`auto_factor`, rule :data:`AUTO_RULE`): the model predicts at the
octave factors (0.5 to 8, those :func:`allowed_factors` allows) and then at the half-octave
neighbours of the best one; the best is the factor whose foreground the model is surest of (the
smallest fraction of its soft foreground with probabilities between 0.2 and 0.8:
:func:`uncertain_fraction`) among those finding a plausible number of particles
(:func:`confident_factor`). A model trained on particles of about the target size sees
particles of that size at every factor (too small an image merges clusters into blobs of that
size), so the size of what it finds does not tell the right factor; how sure it is does. The
older rule ``"fit"`` (:func:`choose_factor`: the factor whose particles' median size, compared
with the card's ``measured_particle_px``, came out closest to the target) picked the annotated
factor within half an octave on 9 of the 22 box-labelled real images (exactly on 3),
``"confidence"`` on 21 (exactly on 12), with models that had not seen the image (2-fold
leave-images-out; pooled F1 0.36 -> 0.49, 0.505 at the annotated factor; issue 18,
``benchmarks/results/particles_real_2fold_scale_rules.json``). The thresholds
(:data:`MIN_PARTICLES`, :data:`MAX_COUNT_RATIO`, :data:`UNSURE`) were chosen on those 22 images: with the
later models (bright polarity, 1000 steps on 2 CPU cores; 10,000 steps of 32 on a GPU), a lower bound on the count
(a third of the most an octave finds) and a ceiling of 5x the octaves' median count cost pooled F1 (0.614 -> 0.645
and 0.589 -> 0.666 without that bound and with a ceiling of 10x; issue 18, ``docs/benchmarks.md``). A known particle size
(``particle_size_px``) or a forced ``scale`` skips the search.
"""

import logging
import math

import numpy as np

from temzoo.analysis.flatten import flattened, model_flatten_px
from temzoo.analysis.resample import rescale
from temzoo.errors import BadInputError
from temzoo.names import PARTICLE_DEFAULTS as POST

log = logging.getLogger(__name__)

SCALES = tuple(round(2.0 ** (k / 2), 4) for k in range(-2, 7))  # 0.5, 0.7071, 1, ..., 8
COARSE = (1.0, 2.0, 4.0, 8.0)
MIN_SIDE = 32  # smallest side (px) an image is resampled to
MAX_AUTO_SIDE = 2048  # scale="auto" enlarges no image beyond this (a forced scale may)
AUTO_RULES = ("confidence", "fit", "count")  # how scale="auto" chooses (auto_factor)
AUTO_RULE = "confidence"
OCTAVES = (0.5, 1.0, 2.0, 4.0, 8.0)  # the confidence rule's first look, then the best one's half-octave neighbours
UNSURE = (0.2, 0.8)  # foreground probabilities the model is unsure of
MIN_PARTICLES = 5  # the confidence rule trusts factors finding at least this many particles,
MAX_COUNT_RATIO = 10.0  # at most this many times the octave factors' median count (more: a flood of specks)


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


def trained_polarity(model):
    """``"bright"`` if the model was trained on bright particles only (its card's ``training``), else ``None``."""
    from temzoo.zoo.pretrained import card

    return ((card(model) or {}).get("training") or {}).get("polarity")


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
    allowed = [f for f in SCALES if _allowed(f, shape)]
    return allowed or [1.0]


def finer_factor(factor, shape):
    """The factor half an octave finer than ``factor`` (``factor / sqrt 2``: particles come out 1.41x larger),
    or ``None`` where ``scale="auto"`` would not resample an image of ``shape`` that far (see
    :func:`allowed_factors`; never upsampled more than :data:`SCALES`' finest, 2x). Used by
    :func:`temzoo.analysis.particles.found_particles`' ``finer_scale``."""
    finer = round(float(factor) / math.sqrt(2.0), 4)
    return finer if finer >= SCALES[0] and _allowed(finer, shape) else None


def _allowed(factor, shape):
    return min(shape[:2]) / factor >= MIN_SIDE and (factor >= 1 or max(shape[:2]) / factor <= MAX_AUTO_SIDE)


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
                  min_area=POST["min_area"], tile_size=None, progress=None, keep=None, dark=None,
                  ensemble=POST["ensemble"]):
    """:func:`particle_maps` of ``image`` (full size, ``H x W x K``) and the factor used (see the module docstring).

    ``keep``: optional dict that receives ``{factor: full-size maps}`` of every factor predicted.
    ``dark``: for a model trained on bright particles only (card ``training.polarity == "bright"``), whether
    the image's particles are dark (bright field: the image is inverted first); ``None`` decides from the
    image (:func:`temzoo.analysis.polarity.particles_look_dark`). Other models see the image as it is.
    ``ensemble``: the maps at the factor finally used are the average over that many flips and quarter
    turns (:func:`temzoo.predict`'s ``ensemble``); the factor itself is chosen from single predictions, and
    ``keep`` receives those.
    """
    import keras

    from temzoo.inference.tiling import predict
    from temzoo.tasks.backbone import resolve_model

    if not isinstance(model, keras.Model):
        model = resolve_model(model, allow_architecture=False).model
    from temzoo.inference.ensemble import check_size

    target = target_particle_px(model)
    scale, ensemble = _checked_scale(scale), check_size(ensemble)  # bad values fail before any prediction
    if particle_size_px is not None:
        if not float(particle_size_px) > 0:
            raise BadInputError(f"the particle size must be positive, got {particle_size_px}.")
        if not target:
            log.warning("%s does not say which particle size it learnt; particle_size_px is ignored", model.name)
        scale = factor_for_size(float(particle_size_px), target)
    if scale == "auto" and not target:
        scale = 1.0
    if trained_polarity(model) == "bright":
        from temzoo.analysis.polarity import inverted, particles_look_dark

        if dark is None:
            dark = particles_look_dark(image)
        if dark:
            log.info("particles look darker than their support (bright field): the model sees the image inverted")
            image = inverted(image)
    maps = {} if keep is None else keep

    flatten_px = model_flatten_px(model)

    def predicted(factor, ensemble=1):
        probabilities = predict(model, flattened(rescale(image, factor), flatten_px), tile_size=tile_size,
                                progress=progress, ensemble=ensemble)
        if probabilities.ndim != 3 or probabilities.shape[-1] < 2:
            raise BadInputError(
                "the model does not output class probabilities (H x W x classes); particles() needs a segmentation "
                "model such as 'nanoparticles' or one fine-tuned with task 'segmentation'."
            )
        return upscale_to(particle_maps(probabilities), image.shape)

    def at(factor):
        if factor not in maps:
            maps[factor] = predicted(factor)
        return maps[factor]

    if scale == "auto":
        scale = auto_factor(lambda f: at(f)[..., 0], image.shape, measured_particle_px(model), threshold=threshold,
                            min_area=min_area)
    return (at(scale) if ensemble == 1 else predicted(scale, ensemble)), scale


def uncertain_fraction(foreground, low=UNSURE[0], high=UNSURE[1]):
    """The fraction of the soft foreground (probability above ``low``) the model is unsure of (below ``high``)."""
    soft = foreground > low
    count = int(soft.sum())
    return float((soft & (foreground < high)).sum()) / count if count else 1.0


def confident_factor(at, shape, *, threshold=POST["threshold"], min_area=POST["min_area"]):
    """The factor whose prediction the model is surest of (``rule="confidence"`` of :func:`auto_factor`), or ``None``.

    At the octave factors (:data:`OCTAVES` that :func:`allowed_factors` allows) and then the
    half-octave neighbours of the best one, the factor with the smallest :func:`uncertain_fraction`
    among those that find at least :data:`MIN_PARTICLES` particles and at most :data:`MAX_COUNT_RATIO`
    times the median count of the octave factors (a flood of specks is noise, not particles; dense
    small particles seen at a fine factor can outnumber the coarse factors' merged blobs by 5-8x).
    """
    allowed = allowed_factors(shape)
    found = {}

    def measure(factor):
        if factor not in found:
            foreground = at(factor)
            count = len(diameters(foreground, threshold, scaled_post(factor, min_area=min_area)["min_area"]))
            found[factor] = (count, uncertain_fraction(foreground))
        return found[factor]

    octaves = [f for f in OCTAVES if f in allowed] or [1.0]
    for factor in octaves:
        measure(factor)
    most = MAX_COUNT_RATIO * float(np.median([found[f][0] for f in octaves]))

    def best_of(factors):
        good = [f for f in factors if MIN_PARTICLES <= found[f][0] <= most]
        good = good or [f for f in factors if 0 < found[f][0] <= most]
        return min(good, key=lambda f: found[f][1]) if good else None

    best = best_of(octaves)
    if best is None:
        return None
    neighbours = [f for f in allowed if f != best and abs(np.log(f / best)) < np.log(2.0) * 0.51]
    for factor in neighbours:
        measure(factor)
    best = best_of([best, *neighbours])
    log.info("scale: (particles, unsure fraction) per factor %s: factor %.3g",
             {round(f, 3): (n, round(u, 3)) for f, (n, u) in sorted(found.items())}, best)
    return best


def auto_factor(at, shape, target, *, threshold=POST["threshold"], min_area=POST["min_area"], rule=None):
    """The factor ``scale="auto"`` picks for an image of ``shape``; ``at(factor)`` gives the full-size foreground.

    ``min_area``: objects smaller than this in the pixels the model saw at a factor are not particles.

    ``rule`` (default :data:`AUTO_RULE`): ``"confidence"``: :func:`confident_factor` (the
    ``"fit"`` rule where it finds no particles). ``"fit"``: :func:`choose_factor` over the coarse
    factors' median sizes. ``"count"``: the coarse factor that finds the most particles within a
    factor 2 of ``target`` (as the model saw them) gives the estimate (its median size / ``target``).
    """
    rule = AUTO_RULE if rule is None else rule
    if rule not in AUTO_RULES:
        raise ValueError(f"rule must be one of {', '.join(AUTO_RULES)}, got {rule!r}.")
    if rule == "confidence":
        factor = confident_factor(at, shape, threshold=threshold, min_area=min_area)
        if factor is not None:
            return factor
    coarse = [f for f in COARSE if min(shape) / f >= MIN_SIDE] or [1.0]
    found = {f: diameters(at(f), threshold, scaled_post(f, min_area=min_area)["min_area"]) for f in coarse}
    sizes = {f: float(np.median(d)) if len(d) else None for f, d in found.items()}
    if rule == "count" and target:
        counts = {f: int(((d / f >= target / 2) & (d / f <= target * 2)).sum()) for f, d in found.items()}
        best = max(coarse, key=lambda f: counts[f])
        sizes = {best: sizes[best]} if counts[best] else sizes
    factor = choose_factor(sizes, target, allowed_factors(shape))
    log.info("scale: median particle %s px at factors %s (target %.0f px): factor %.3g", sizes, coarse, target, factor)
    return factor
