"""Particles from a segmentation: ``temzoo.particles(model, image)``.

From a model's class probabilities to one row per particle:

1. **Scale** (:mod:`temzoo.analysis.scale`): the image is resampled so that its
   particles come out near the size the model learnt, the probabilities resized
   back to the full image (everything is measured in the image's own pixels).
2. **Foreground**: the foreground probability (1 - background for models with
   several classes) above ``threshold``; holes are filled and objects smaller
   than ``min_area`` pixels removed (scikit-image).
3. **Instances**: connected components, with touching particles split by a
   distance-transform watershed (``scipy.ndimage.distance_transform_edt``,
   ``skimage.morphology.h_maxima`` markers, ``skimage.segmentation.watershed``):
   a component is split where its distance map has several maxima at least
   ``split_depth`` pixels higher than the neck between them (in the pixels the
   model saw: multiplied by the resampling factor). ``split_depth=None``
   disables the splitting.
4. **Measurements** (``skimage.measure.regionprops``), in pixels with
   x = column and y = row, bounding boxes ``[x0, x1) x [y0, y1)`` (end
   exclusive); ``equivalent_diameter_px`` is the diameter of the disk of the same
   area; ``touches_border`` marks particles cut by the image edge (size
   statistics leave them out). Given a pixel size, ``_nm`` columns follow.

Files and figures for many images: :mod:`temzoo.analysis.files` (``temzoo-cli
analyze``); scores against hand-drawn boxes: :mod:`temzoo.analysis.scoring`.
"""

import dataclasses
import logging

import numpy as np

from temzoo.errors import BadInputError

log = logging.getLogger(__name__)

DEFAULTS = {"threshold": 0.5, "min_area": 5, "split_depth": 2.0, "scale": "auto"}
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
              split_depth=DEFAULTS["split_depth"]):
    """Instance labels (int32, 0 = background) from a foreground probability or a boolean mask."""
    from scipy import ndimage
    from skimage import measure, morphology, segmentation

    foreground = np.asarray(foreground)
    if foreground.ndim != 2:
        raise ValueError(f"expected a 2-D foreground map, got shape {foreground.shape}.")
    mask = foreground if foreground.dtype == bool else foreground > threshold
    mask = ndimage.binary_fill_holes(mask)
    if min_area and min_area > 1:
        mask = morphology.remove_small_objects(mask, max_size=int(min_area) - 1)
    if split_depth is None or not mask.any():
        return measure.label(mask, connectivity=2).astype(np.int32)
    distance = ndimage.distance_transform_edt(mask)
    markers = measure.label(morphology.h_maxima(distance, float(split_depth)) & mask, connectivity=2)
    labels = segmentation.watershed(-distance, markers, mask=mask, connectivity=2)
    missed = mask & (labels == 0)  # components too thin to hold a marker of that depth
    if missed.any():
        extra = measure.label(missed, connectivity=2)
        labels[missed] = extra[missed] + labels.max()
    # dense ids 1..N
    return segmentation.relabel_sequential(labels.astype(np.int32))[0]


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


def particles(model, image, *, pixel_size_nm=None, threshold=DEFAULTS["threshold"], min_area=DEFAULTS["min_area"],
              split_depth=DEFAULTS["split_depth"], scale=DEFAULTS["scale"], particle_size_px=None, tile_size=None,
              progress=None):
    """Segment ``image`` (2-D array) with ``model`` and measure every particle.

    Args:
        model: a segmentation model: Keras model, pretrained name (e.g. ``"nanoparticles"``) or ``.keras`` path.
        pixel_size_nm: adds the ``_nm`` columns.
        threshold, min_area, split_depth: see :func:`instances` (``split_depth`` in the image's pixels is
            multiplied by the resampling factor when it is above 1).
        scale: ``"auto"`` or a resampling factor (2: the model sees the image at half size); see
            :mod:`temzoo.analysis.scale`.
        particle_size_px: a rough typical particle diameter in pixels, if known: chooses the factor
            directly (overrides ``scale``).
        tile_size, progress: passed to :func:`temzoo.predict`.

    Returns a :class:`ParticleResult` (``scale`` holds the factor used).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise BadInputError(f"particles() takes one 2-D image, got an array of shape {image.shape}.")
    from temzoo.analysis.scale import foreground_at_scale

    foreground, factor = foreground_at_scale(model, image, scale=scale, particle_size_px=particle_size_px,
                                             threshold=threshold, min_area=min_area, tile_size=tile_size,
                                             progress=progress)
    depth = None if split_depth is None else split_depth * max(factor, 1.0)
    labels = instances(foreground, threshold=threshold, min_area=min_area, split_depth=depth)
    rows = particle_table(labels, foreground, pixel_size_nm=pixel_size_nm)
    log.info("%d particles (%d not touching the border) at scale 1/%.3g", len(rows),
             sum(not r["touches_border"] for r in rows), factor)
    return ParticleResult(labels, rows, foreground, pixel_size_nm, factor)
