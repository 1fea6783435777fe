"""Particles from a segmentation: ``temzoo.particles(model, image)``.

From a model's class probabilities to one row per particle:

1. **Scale** (:mod:`temzoo.analysis.scale`): the image is resampled so that its
   particles come out near the size the model learnt, the probabilities resized
   back to the full image (everything is measured in the image's own pixels).
2. **Foreground**: the foreground probability (1 - background for models with
   several classes) above ``threshold``; holes are filled and objects smaller
   than ``min_area`` pixels (in the pixels the model saw: times the resampling
   factor squared) removed (scikit-image).
3. **Instances**: for a three-class model (background / particle boundary /
   particle core, trained on :func:`temzoo.data.boxes.boxes_to_classes`), each
   core region is one particle's marker, grown over the foreground by a
   watershed; for a two-class model, connected components, with touching particles split by a
   distance-transform watershed (``scipy.ndimage.distance_transform_edt``,
   ``skimage.morphology.h_maxima`` markers, ``skimage.segmentation.watershed``):
   a component is split where its distance map has several maxima at least
   ``split_depth`` pixels higher than the neck between them (in the pixels the
   model saw: multiplied by the resampling factor). ``split_depth=math.inf``
   (``None`` in :func:`instances`) disables the splitting.
4. **Confidence** (optional, :func:`found_particles`): a particle's confidence is its highest core
   probability (three-class models; foreground for two-class ones). Particles below ``min_confidence`` are
   dropped; with ``finer_scale`` the image is also seen half an octave finer (particles 1.41x larger, so
   small and faint ones reach the size the model learnt) and the particles found there that overlap none
   kept at the chosen scale are added when their confidence reaches ``finer_confidence``.
5. **Measurements** (``skimage.measure.regionprops``), in pixels with
   x = column and y = row, bounding boxes ``[x0, x1) x [y0, y1)`` (end
   exclusive); ``equivalent_diameter_px`` is the diameter of the disk of the same
   area; ``touches_border`` marks particles cut by the image edge (size
   statistics leave them out). Given a pixel size, ``_nm`` columns follow.

Post-processing settings left at ``None`` take the model card's ``postprocessing`` (chosen for that
model, as StarDist keeps the thresholds optimised for each model), else
:data:`temzoo.names.PARTICLE_DEFAULTS` (:func:`postprocessing`).

Files and figures for many images: :mod:`temzoo.analysis.files` (``temzoo-cli
analyze``); scores against hand-drawn boxes: :mod:`temzoo.analysis.scoring`.
"""

import dataclasses
import logging
import math

import numpy as np

from temzoo.analysis.scale import scaled_post
from temzoo.errors import BadInputError
from temzoo.names import PARTICLE_DEFAULTS as DEFAULTS

log = logging.getLogger(__name__)

_DEPTH_STEPS = 8  # the distance map is quantised to 1/8 px for the split-depth test
COLUMNS = (
    "id", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area_px",
    "equivalent_diameter_px", "major_axis_px", "minor_axis_px", "mean_probability", "touches_border",
)
NM_COLUMNS = ("centroid_x_nm", "centroid_y_nm", "area_nm2", "equivalent_diameter_nm", "major_axis_nm", "minor_axis_nm")


@dataclasses.dataclass
class ParticleResult:
    """What :func:`particles` returns: the instance labels, the table rows and the probabilities."""

    labels: np.ndarray  # int32, 0 = background, 1..N = particle ids (the ``id`` column)
    rows: list  # one dict per particle, keys COLUMNS (+ NM_COLUMNS with a pixel size)
    foreground: np.ndarray  # float32 foreground probability
    pixel_size_nm: float | None = None
    scale: float = 1.0  # the resampling factor the model saw the image at (2: half size)
    settings: dict = dataclasses.field(default_factory=dict)  # the post-processing used (:func:`postprocessing`)

    def inside(self):
        """Rows of the particles that do not touch the image border."""
        return [r for r in self.rows if not r["touches_border"]]

    def diameters(self, unit="px"):
        """Equivalent diameters of the particles not touching the border (``unit`` "px" or "nm")."""
        key = "equivalent_diameter_nm" if unit == "nm" else "equivalent_diameter_px"
        if unit == "nm" and self.pixel_size_nm is None:
            raise ValueError("no pixel size: pass pixel_size_nm to have diameters in nm.")
        return np.array([r[key] for r in self.inside()], np.float64)


def instances(foreground, *, threshold=DEFAULTS["threshold"], min_area=DEFAULTS["min_area"],
              split_depth=DEFAULTS["split_depth"], core=None):
    """Instance labels (int32, 0 = background) from a foreground probability or a boolean mask.

    ``core``: the core-class probability of a three-class model (background / boundary / core,
    :func:`temzoo.data.boxes.boxes_to_classes`), same shape: each connected region of
    ``core > threshold`` inside the foreground is one particle's marker, grown over the foreground
    by a watershed of ``-core`` (``split_depth`` is then not used). Without ``core`` touching
    particles are split by the distance-transform watershed (``split_depth``, ``None`` or ``math.inf``: no split).
    Foreground components holding no marker are particles of their own.
    """
    from scipy import ndimage
    from skimage import measure, morphology, segmentation

    foreground = np.asarray(foreground)
    if foreground.ndim != 2:
        raise ValueError(f"expected a 2-D foreground map, got shape {foreground.shape}.")
    if core is not None and np.shape(core) != foreground.shape:
        raise ValueError(f"the core map {np.shape(core)} and the foreground {foreground.shape} differ in shape.")
    mask = foreground if foreground.dtype == bool else foreground > threshold
    mask = ndimage.binary_fill_holes(mask)
    if min_area and min_area > 1:
        mask = morphology.remove_small_objects(mask, max_size=int(min_area) - 1)
    if not mask.any() or (core is None and (split_depth is None or math.isinf(split_depth))):
        return measure.label(mask, connectivity=2).astype(np.int32)
    if core is not None:
        core = np.asarray(core, np.float32)
        markers = measure.label((core > threshold) & mask, connectivity=2)
        labels = segmentation.watershed(-core, markers, mask=mask, connectivity=2)
    else:
        distance = ndimage.distance_transform_edt(mask)
        # h_maxima on integers: on floats (scikit-image 0.26) it keeps maxima far shallower than h
        levels = np.round(distance * _DEPTH_STEPS).astype(np.int32)
        depth = max(int(round(float(split_depth) * _DEPTH_STEPS)), 1)
        markers = measure.label(morphology.h_maxima(levels, depth) & mask, connectivity=2)
        labels = segmentation.watershed(-distance, markers, mask=mask, connectivity=2)
    missed = mask & (labels == 0)  # components holding no marker (too thin for that depth, or no core)
    if missed.any():
        extra = measure.label(missed, connectivity=2)
        labels[missed] = extra[missed] + labels.max()
    if min_area and min_area > 1:  # splitting may leave slivers
        small = np.bincount(labels.ravel()) < min_area
        small[0] = False
        labels[small[labels]] = 0
    # dense ids 1..N
    return segmentation.relabel_sequential(labels.astype(np.int32))[0]


def particle_confidence(labels, score):
    """Each particle's confidence, the highest ``score`` over its pixels (entry ``i - 1`` for id ``i``)."""
    from scipy import ndimage

    count = int(labels.max()) if labels.size else 0
    if not count:
        return np.zeros(0, np.float32)
    return np.asarray(ndimage.maximum(score, labels, np.arange(1, count + 1)), np.float32)


def confident(labels, score, min_confidence):
    """``labels`` without the particles whose confidence (:func:`particle_confidence`) is below ``min_confidence``;
    ids stay dense."""
    from skimage import segmentation

    if not min_confidence:
        return labels
    unsure = np.concatenate([[False], particle_confidence(labels, score) < min_confidence])
    kept = np.where(unsure[labels], 0, labels)
    return segmentation.relabel_sequential(kept.astype(np.int32))[0]


def maps_instances(maps, factor, post, min_confidence=None):
    """The particles in ``maps`` (``H x W x K`` of :func:`temzoo.analysis.scale.particle_maps`: foreground, then
    the core for a three-class model) predicted at ``factor``, with the settings ``post``
    (:func:`postprocessing`'s keys, in the pixels the model saw); ``min_confidence`` overrides ``post``'s."""
    maps = maps if maps.ndim == 3 else maps[..., None]
    core = maps[..., 1] if maps.shape[-1] > 1 and post.get("core", True) else None
    labels = instances(maps[..., 0], core=core, **scaled_post(factor, threshold=post["threshold"],
                                                             min_area=post["min_area"],
                                                             split_depth=post["split_depth"]))
    floor = post.get("min_confidence", 0.0) if min_confidence is None else min_confidence
    return confident(labels, maps[..., 1] if maps.shape[-1] > 1 else maps[..., 0], floor)


def found_particles(maps_at, factor, post):
    """``(labels, foreground)``: the particles :func:`particles` finds, from ``maps_at(f)`` (the full-size maps
    predicted at factor ``f``) at ``factor`` and, with ``post["finer_scale"]``, half an octave finer
    (:func:`temzoo.analysis.scale.finer_factor`): particles found there that overlap none of the first are added
    when their confidence reaches ``post["finer_confidence"]``; the foreground is theirs where they were added."""
    from temzoo.analysis.scale import finer_factor

    maps = maps_at(factor)
    maps = maps if maps.ndim == 3 else maps[..., None]
    labels, foreground = maps_instances(maps, factor, post), maps[..., 0]
    finer = finer_factor(factor, maps.shape) if post.get("finer_scale") else None
    if finer is None:
        return labels, foreground
    fine_maps = maps_at(finer)
    fine = maps_instances(fine_maps, finer, post, min_confidence=post["finer_confidence"])
    overlapping = np.unique(fine[labels > 0])
    added = (fine > 0) & ~np.isin(fine, overlapping)
    if added.any():
        from skimage import segmentation

        new_ids = segmentation.relabel_sequential(np.where(added, fine, 0).astype(np.int32))[0]
        labels = np.where(added, new_ids + labels.max(), labels).astype(np.int32)
        foreground = np.where(added, (fine_maps if fine_maps.ndim == 2 else fine_maps[..., 0]), foreground)
        log.info("%d more particles half an octave finer (scale 1/%.3g)", int(new_ids.max()), finer)
    return labels, foreground


def particle_table(labels, foreground=None, *, pixel_size_nm=None):
    """One dict per particle of ``labels`` (keys :data:`COLUMNS`, plus :data:`NM_COLUMNS` with a pixel size)."""
    from skimage import measure

    labels = np.asarray(labels)
    height, width = labels.shape
    rows = []
    for region in measure.regionprops(labels.astype(np.int32), intensity_image=foreground):
        y0, x0, y1, x1 = region.bbox
        cy, cx = region.centroid
        row = {
            "id": int(region.label),
            "centroid_x": float(cx),
            "centroid_y": float(cy),
            "bbox_x0": int(x0), "bbox_y0": int(y0), "bbox_x1": int(x1), "bbox_y1": int(y1),
            "area_px": int(region.area),
            "equivalent_diameter_px": float(np.sqrt(4.0 * region.area / np.pi)),
            "major_axis_px": float(region.axis_major_length),
            "minor_axis_px": float(region.axis_minor_length),
            "mean_probability": float(region.intensity_mean) if foreground is not None else float("nan"),
            "touches_border": bool(x0 == 0 or y0 == 0 or x1 == width or y1 == height),
        }
        if pixel_size_nm is not None:
            s = float(pixel_size_nm)
            row.update(
                centroid_x_nm=row["centroid_x"] * s, centroid_y_nm=row["centroid_y"] * s,
                area_nm2=row["area_px"] * s * s, equivalent_diameter_nm=row["equivalent_diameter_px"] * s,
                major_axis_nm=row["major_axis_px"] * s, minor_axis_nm=row["minor_axis_px"] * s,
            )
        rows.append(row)
    return rows


def postprocessing(model, **given):
    """The post-processing settings ``particles()`` uses with ``model`` (a loaded Keras model).

    Each of ``given`` (keys of :data:`temzoo.names.PARTICLE_DEFAULTS`) that is not
    ``None`` wins; the others come from the model card's ``postprocessing`` (the settings chosen for that
    model, e.g. on its cross-validation images), else from :data:`temzoo.names.PARTICLE_DEFAULTS`.
    """
    from temzoo.zoo.pretrained import card

    return merged_postprocessing((card(model) or {}).get("postprocessing") or {}, given)


def merged_postprocessing(own, given=None):
    """:data:`temzoo.names.PARTICLE_DEFAULTS` overridden by ``own`` (a card's settings), then by each of
    ``given`` that is not ``None``; unknown keys are refused."""
    given = given or {}
    unknown = (set(own) | set(given)) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown post-processing settings {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    settings = {key: own.get(key, value) for key, value in DEFAULTS.items()}
    settings.update({key: value for key, value in given.items() if value is not None})
    return settings


def particles(model, image, *, pixel_size_nm=None, threshold=None, min_area=None, split_depth=None, scale=None,
              particle_size_px=None, tile_size=None, progress=None, dark=None, ensemble=None, min_confidence=None,
              finer_scale=None, finer_confidence=None):
    """Segment ``image`` (2-D array) with ``model`` and measure every particle.

    Args:
        model: a segmentation model: Keras model, pretrained name (e.g. ``"nanoparticles"``) or ``.keras`` path.
        pixel_size_nm: adds the ``_nm`` columns.
        threshold, min_area, split_depth: see :func:`instances`, in the pixels the model saw
            (:func:`scaled_post` turns them into the image's pixels); ``split_depth=math.inf``: no split.
        scale: ``"auto"`` or a resampling factor (2: the model sees the image at half size); see
            :mod:`temzoo.analysis.scale`.
        particle_size_px: a rough typical particle diameter in pixels, if known: chooses the factor
            directly (overrides ``scale``).
        dark: whether the particles are darker than their support (bright field), for a model trained on
            bright particles only (it then sees the image inverted); ``None`` decides from the image
            (:mod:`temzoo.analysis.polarity`).
        ensemble: 1, 2, 4 or 8: the probabilities at the factor used are averaged over that many flips and
            quarter turns (test-time self-ensemble; the scale is chosen from single predictions). 8 took
            1.3-3.1x the time of 1 and gained 0.01-0.02 F1 on unseen images (docs/benchmarks.md).
        min_confidence, finer_scale, finer_confidence: drop particles whose highest core (or foreground)
            probability is below ``min_confidence``; with ``finer_scale`` also look half an octave finer
            and add the particles found there that overlap none kept and reach ``finer_confidence``
            (:func:`found_particles`; costs one more prediction, 2x the pixels, unless the scale search made it).
        tile_size, progress: passed to :func:`temzoo.predict`.

    Settings left at ``None`` (threshold, min_area, split_depth, scale, ensemble, min_confidence, finer_scale,
    finer_confidence) come from the model card, else the library defaults (:func:`postprocessing`).

    Returns a :class:`ParticleResult` (``scale`` holds the factor used).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise BadInputError(f"particles() takes one 2-D image, got an array of shape {image.shape}.")
    import keras

    from temzoo.analysis.scale import maps_at_scale
    from temzoo.tasks.backbone import resolve_model

    if not isinstance(model, keras.Model):
        model = resolve_model(model, allow_architecture=False).model
    post = postprocessing(model, threshold=threshold, min_area=min_area, split_depth=split_depth, scale=scale,
                          ensemble=ensemble, min_confidence=min_confidence, finer_scale=finer_scale,
                          finer_confidence=finer_confidence)
    threshold, min_area = post["threshold"], post["min_area"]
    scale, ensemble = post["scale"], post["ensemble"]
    kept = {}
    maps, factor = maps_at_scale(model, image, scale=scale, particle_size_px=particle_size_px,
                                 threshold=threshold, min_area=min_area, tile_size=tile_size,
                                 progress=progress, dark=dark, ensemble=ensemble, keep=kept)

    def maps_at(f):  # the finer factor's maps: kept from the scale search, else predicted alike
        if f == factor:
            return maps
        if ensemble == 1 and f in kept:
            return kept[f]
        return maps_at_scale(model, image, scale=f, tile_size=tile_size, progress=progress, dark=dark,
                             ensemble=ensemble)[0]

    labels, foreground = found_particles(maps_at, factor, post)
    rows = particle_table(labels, foreground, pixel_size_nm=pixel_size_nm)
    log.info("%d particles (%d not touching the border) at scale 1/%.3g", len(rows),
             sum(not r["touches_border"] for r in rows), factor)
    return ParticleResult(labels, rows, foreground, pixel_size_nm, factor, dict(post))
