"""Particles from a segmentation: ``temzoo.particles(model, image)`` and ``temzoo-cli analyze``.

From a model's class probabilities to one row per particle:

1. **Foreground**: the foreground probability (1 - background for models with
   several classes) above ``threshold``; holes are filled and objects smaller
   than ``min_area`` pixels removed (scikit-image).
2. **Instances**: connected components, with touching particles split by a
   distance-transform watershed (``scipy.ndimage.distance_transform_edt``,
   ``skimage.morphology.h_maxima`` markers, ``skimage.segmentation.watershed``):
   a component is split where its distance map has several maxima at least
   ``split_depth`` pixels higher than the neck between them. ``split_depth=None``
   disables the splitting.
   **Scale**: particles far larger than the model's receptive field come out as
   specks. A model trained by :func:`temzoo.analysis.box_training.train_on_boxes` learns
   particles of about ``target_particle_px`` pixels (its card's ``training``);
   with ``scale="auto"`` the image is predicted at downsampling factors
   :data:`SCALES` (box-filter averages) and the factor whose particles come out
   closest to that size (median equivalent diameter, in log) is kept; the
   probabilities are resized back to the full image, so everything is measured
   in the image's own pixels. ``scale=2`` forces a factor; models without a
   target size are used at factor 1.
3. **Measurements** (``skimage.measure.regionprops``), in pixels with
   x = column and y = row, bounding boxes ``[x0, x1) x [y0, y1)`` (end
   exclusive); ``equivalent_diameter_px`` is the diameter of the disk of the same
   area; ``touches_border`` marks particles cut by the image edge (size
   statistics leave them out). Given a pixel size, ``_nm`` columns follow.

:func:`analyze_files` writes, per input ``NAME``, ``NAME_particles.csv``,
``NAME_histogram.png`` (equivalent diameters of the particles not touching the
border) and ``NAME_overlay.png`` (particles coloured over the image, outlines in
yellow), and over all inputs ``particles_summary.csv``. Every input and every
output path is checked before anything is predicted; existing outputs are
refused unless ``overwrite=True``; every file is written atomically.
"""

import csv
import dataclasses
import io
import json
import logging
import os

import numpy as np

from temzoo.errors import BadInputError

log = logging.getLogger(__name__)

DEFAULTS = {"threshold": 0.5, "min_area": 5, "split_depth": 2.0, "scale": "auto"}
SCALES = (1, 2, 4)
COLUMNS = (
    "id", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area_px",
    "equivalent_diameter_px", "major_axis_px", "minor_axis_px", "mean_probability", "touches_border",
)
NM_COLUMNS = ("centroid_x_nm", "centroid_y_nm", "area_nm2", "equivalent_diameter_nm", "major_axis_nm", "minor_axis_nm")
SUMMARY_COLUMNS = (
    "file", "model", "width_px", "height_px", "pixel_size_nm", "particles", "particles_inside",
    "mean_diameter_px", "median_diameter_px", "std_diameter_px",
    "mean_diameter_nm", "median_diameter_nm", "std_diameter_nm", "area_fraction", "scale",
)
SUMMARY_FILE = "particles_summary.csv"


@dataclasses.dataclass
class ParticleResult:
    """What :func:`particles` returns: the instance labels, the table rows and the probabilities."""

    labels: np.ndarray  # int32, 0 = background, 1..N = particle ids (the ``id`` column)
    rows: list  # one dict per particle, keys COLUMNS (+ NM_COLUMNS with a pixel size)
    foreground: np.ndarray  # float32 foreground probability
    pixel_size_nm: float | None = None
    scale: int = 1  # the downsampling factor the model saw the image at

    def inside(self):
        """Rows of the particles that do not touch the image border."""
        return [r for r in self.rows if not r["touches_border"]]

    def diameters(self, unit="px"):
        """Equivalent diameters of the particles not touching the border (``unit`` "px" or "nm")."""
        key = "equivalent_diameter_nm" if unit == "nm" else "equivalent_diameter_px"
        if unit == "nm" and self.pixel_size_nm is None:
            raise ValueError("no pixel size: pass pixel_size_nm to have diameters in nm.")
        return np.array([r[key] for r in self.inside()], np.float64)


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


def downscale(image, factor):
    """``image`` averaged over ``factor x factor`` blocks (edges padded by reflection); factor 1 returns it."""
    from skimage.transform import downscale_local_mean

    factor = int(factor)
    if factor == 1:
        return np.asarray(image, np.float32)
    image = np.asarray(image, np.float32)
    pad = [(0, (-n) % factor) for n in image.shape]
    if any(p for _, p in pad):
        image = np.pad(image, pad, mode="reflect" if min(image.shape) > factor else "edge")
    return downscale_local_mean(image, (factor, factor)).astype(np.float32)


def upscale_to(foreground, factor, shape):
    """Bilinear resize of a probability map predicted at ``1/factor`` back to ``shape``."""
    from skimage.transform import resize

    if int(factor) == 1:
        return foreground
    padded = tuple(n * int(factor) for n in foreground.shape)
    full = resize(foreground, padded, order=1, mode="edge", anti_aliasing=False)
    return full[: shape[0], : shape[1]].astype(np.float32)


def factor_for_size(size_px, target_px):
    """The factor of :data:`SCALES` that brings particles of ``size_px`` closest (in log) to ``target_px``."""
    if not target_px or not size_px or size_px <= 0:
        return 1
    return min(SCALES, key=lambda f: abs(np.log(size_px / f / target_px)))


def target_particle_px(model):
    """The particle size (px) a model was trained to see, from its card (``None`` if it does not say)."""
    from temzoo.zoo.pretrained import card

    value = ((card(model) or {}).get("training") or {}).get("target_particle_px")
    return float(value) if value else None


def _median_diameter(foreground, threshold, min_area):
    labels = instances(foreground, threshold=threshold, min_area=min_area, split_depth=None)
    rows = [r for r in particle_table(labels) if not r["touches_border"]]
    return float(np.median([r["equivalent_diameter_px"] for r in rows])) if rows else None


def foreground_at_scale(model, image, *, scale=DEFAULTS["scale"], particle_size_px=None,
                        threshold=DEFAULTS["threshold"], min_area=DEFAULTS["min_area"], tile_size=None, progress=None):
    """Foreground probability of ``image`` (full size) and the downsampling factor used (see the module doc).

    ``particle_size_px`` (a rough typical diameter, when you know it) picks the factor directly
    instead of trying each: the one that brings it closest to the model's target size.
    """
    from temzoo.inference.tiling import predict

    if not isinstance(model, _keras_model_type()):
        from temzoo.tasks.backbone import resolve_model

        model = resolve_model(model, allow_architecture=False).model
    target = target_particle_px(model)
    if particle_size_px is not None:
        if not float(particle_size_px) > 0:
            raise BadInputError(f"the particle size must be positive, got {particle_size_px}.")
        if not target:
            log.warning("%s does not say which particle size it learnt; particle_size_px is ignored", model.name)
        scale = factor_for_size(float(particle_size_px), target)
    if scale == "auto":
        candidates = [f for f in SCALES if min(image.shape) // f >= 32] if target else [1]
    else:
        if not (isinstance(scale, int | np.integer | float) and float(scale).is_integer() and scale >= 1):
            raise BadInputError(f"scale must be 'auto' or a whole downsampling factor >= 1, got {scale!r}.")
        candidates = [int(scale)]
    best = None
    for factor in candidates or [1]:
        probabilities = predict(model, downscale(image, factor), tile_size=tile_size, progress=progress)
        if probabilities.ndim != 3 or probabilities.shape[-1] < 2:
            raise BadInputError(
                "the model does not output class probabilities (H x W x classes); particles() needs a segmentation "
                "model such as 'nanoparticles' or one fine-tuned with task 'segmentation'."
            )
        foreground = foreground_probability(probabilities)
        if len(candidates) == 1:
            best = (0.0, factor, foreground)
            break
        size = _median_diameter(foreground, threshold, max(1, min_area // (factor * factor)))
        misfit = abs(np.log(size / target)) if size else np.inf
        log.info("scale 1/%d: median particle %s px (target %.0f)", factor, f"{size:.1f}" if size else "-", target)
        if best is None or misfit < best[0]:
            best = (misfit, factor, foreground)
    _, factor, foreground = best
    return upscale_to(foreground, factor, image.shape), factor


def _keras_model_type():
    import keras

    return keras.Model


def particles(model, image, *, pixel_size_nm=None, threshold=DEFAULTS["threshold"], min_area=DEFAULTS["min_area"],
              split_depth=DEFAULTS["split_depth"], scale=DEFAULTS["scale"], particle_size_px=None, tile_size=None,
              progress=None):
    """Segment ``image`` (2-D array) with ``model`` and measure every particle.

    Args:
        model: a segmentation model: Keras model, pretrained name (e.g. ``"nanoparticles"``) or ``.keras`` path.
        pixel_size_nm: adds the ``_nm`` columns.
        threshold, min_area, split_depth: see :func:`instances` (``split_depth`` in the image's pixels is
            multiplied by the downsampling factor).
        scale: ``"auto"`` or a downsampling factor (see the module docstring).
        particle_size_px: a rough typical particle diameter in pixels, if known: chooses the factor
            directly (overrides ``scale``).
        tile_size, progress: passed to :func:`temzoo.predict`.

    Returns a :class:`ParticleResult` (``scale`` holds the factor used).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise BadInputError(f"particles() takes one 2-D image, got an array of shape {image.shape}.")
    foreground, factor = foreground_at_scale(model, image, scale=scale, particle_size_px=particle_size_px,
                                             threshold=threshold, min_area=min_area, tile_size=tile_size,
                                             progress=progress)
    depth = None if split_depth is None else split_depth * factor
    labels = instances(foreground, threshold=threshold, min_area=min_area, split_depth=depth)
    rows = particle_table(labels, foreground, pixel_size_nm=pixel_size_nm)
    log.info("%d particles (%d not touching the border) at scale 1/%d", len(rows),
             sum(not r["touches_border"] for r in rows), factor)
    return ParticleResult(labels, rows, foreground, pixel_size_nm, factor)


# ----------------------------------------------------------------------------- pixel size
_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "um": 1e3, "µm": 1e3, "\\u00b5m": 1e3, "micron": 1e3,
               "micrometer": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9, "a": 0.1, "å": 0.1, "angstrom": 0.1, "pm": 1e-3}


def pixel_size_nm(path):
    """The pixel size in nm that a TIFF declares (ImageJ ``unit`` with X resolution), else ``None``.

    Reads the ImageJ metadata (``unit`` = nm, um/micron, A...) or, failing that,
    the resolution tags when their unit is centimetre; other files give ``None``
    (pass the pixel size yourself).
    """
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            tags = page.tags
            if "XResolution" not in tags:
                return None
            num, den = tags["XResolution"].value
            if not num or not den:
                return None
            per_unit = num / den  # pixels per unit
            unit = None
            if tif.imagej_metadata and tif.imagej_metadata.get("unit"):
                unit = str(tif.imagej_metadata["unit"]).strip().lower()
            elif "ResolutionUnit" in tags and int(tags["ResolutionUnit"].value) == 3:
                unit = "cm"
            if unit not in _UNIT_TO_NM:
                return None
            return _UNIT_TO_NM[unit] / per_unit
    except Exception as exc:  # a header we cannot parse: no pixel size rather than no analysis
        log.warning("%s: could not read a pixel size (%s)", path, exc)
        return None


# ----------------------------------------------------------------------------- files
def output_paths(input_path, out):
    stem = os.path.splitext(os.path.basename(os.fspath(input_path)))[0]
    return {
        "csv": os.path.join(out, f"{stem}_particles.csv"),
        "histogram": os.path.join(out, f"{stem}_histogram.png"),
        "overlay": os.path.join(out, f"{stem}_overlay.png"),
    }


def plan(inputs, out, *, overwrite=False):
    """Check every input and output before any work; return ``[(input, output paths)]``."""
    from temzoo.io import check_readable, count_frames, refuse_existing

    if not inputs:
        raise BadInputError("no input files given.")
    jobs, claimed = [], {}
    for path in inputs:
        path = os.fspath(path)
        check_readable(path)
        frames = count_frames(path)
        if frames != 1:
            raise BadInputError(
                f"{path}: a stack of {frames} frames; analyze takes single images (save the frame you want, "
                "or sum the stack, as its own file)."
            )
        paths = output_paths(path, out)
        for target in paths.values():
            if target in claimed:
                raise BadInputError(
                    f"{path}: its output {target} would also be written for {claimed[target]}; "
                    "inputs need different file names (or analyze them into different folders)."
                )
            claimed[target] = path
            refuse_existing(target, overwrite)
        jobs.append((path, paths))
    refuse_existing(os.path.join(out, SUMMARY_FILE), overwrite)
    return jobs


def write_csv(path, rows, columns, *, overwrite=False):
    """Rows (dicts) to CSV, atomically; floats with 4 decimals, booleans as yes/no."""
    from temzoo.atomic import atomic_open
    from temzoo.io import refuse_existing

    refuse_existing(path, overwrite)

    def cell(value):
        if isinstance(value, bool | np.bool_):
            return "yes" if value else "no"
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.4f}"
        return "" if value is None else value

    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([cell(row.get(c)) for c in columns])


def overlay_image(image, labels):
    """RGB uint8: particles coloured by id over the grayscale image, outlines in yellow."""
    from skimage import segmentation

    from temzoo.inference.plots import LABEL_COLOURS, to_uint8

    gray = to_uint8(image).astype(np.float32)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    inside = labels > 0
    colours = LABEL_COLOURS[(labels[inside] - 1) % len(LABEL_COLOURS)]
    rgb[inside] = 0.6 * rgb[inside] + 0.4 * colours
    rgb[segmentation.find_boundaries(labels, mode="inner")] = (255, 255, 0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_histogram(path, result, title, *, overwrite=False):
    """PNG histogram of the equivalent diameters of the particles not touching the border."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from temzoo.atomic import atomic_path
    from temzoo.io import refuse_existing

    refuse_existing(path, overwrite)
    unit = "nm" if result.pixel_size_nm is not None else "px"
    diameters = result.diameters(unit)
    fig = Figure(figsize=(5, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if len(diameters):
        ax.hist(diameters, bins=min(40, max(5, int(np.sqrt(len(diameters))) * 2)), color="#3070b0")
        ax.axvline(np.median(diameters), color="k", ls="--", lw=1, label=f"median {np.median(diameters):.3g} {unit}")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("particles")
    ax.set_title(f"{title}: {len(diameters)} particles (border excluded)", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getvalue())


def summary_row(path, model_name, result):
    d_px = result.diameters("px")
    row = {
        "file": os.path.basename(path), "model": model_name,
        "height_px": result.labels.shape[0], "width_px": result.labels.shape[1],
        "pixel_size_nm": result.pixel_size_nm, "particles": len(result.rows), "particles_inside": len(d_px),
        "area_fraction": float((result.labels > 0).mean()), "scale": result.scale,
    }
    for unit, scale in (("px", 1.0), ("nm", result.pixel_size_nm)):
        stats = (float(np.mean(d_px)), float(np.median(d_px)), float(np.std(d_px))) if len(d_px) and scale else (None,) * 3
        for key, value in zip(("mean", "median", "std"), stats, strict=True):
            row[f"{key}_diameter_{unit}"] = None if value is None else value * scale
    return row


def analyze_files(model, inputs, out, *, pixel_size_nm=None, threshold=DEFAULTS["threshold"],
                  min_area=DEFAULTS["min_area"], split_depth=DEFAULTS["split_depth"], scale=DEFAULTS["scale"],
                  particle_size_nm=None, tile_size=None, overwrite=False, on_file=None, on_tiles=None):
    """Find and measure the particles of every file of ``inputs``; write tables and figures into ``out``.

    Args:
        model: segmentation model (pretrained name such as ``"nanoparticles"``, ``.keras`` path, Keras model).
        pixel_size_nm: pixel size for every file; ``None`` reads it from each TIFF (:func:`pixel_size_nm`)
            and leaves the ``_nm`` columns out where a file has none.
        particle_size_nm: a rough typical particle diameter in nm (needs a pixel size): picks the scale
            factor directly instead of ``scale``.
        on_file: optional ``callable(index, total, path)`` before each file; ``on_tiles`` per batch of tiles.

    Returns the list of written paths (the summary last).
    """
    from temzoo.io import read_image, write_png
    from temzoo.tasks.backbone import resolve_model

    if threshold is not None and not 0.0 < float(threshold) < 1.0:
        raise BadInputError(f"threshold must be between 0 and 1 (exclusive), got {threshold}.")
    if pixel_size_nm is not None and not float(pixel_size_nm) > 0:
        raise BadInputError(f"the pixel size must be positive, got {pixel_size_nm}.")
    if particle_size_nm is not None and not float(particle_size_nm) > 0:
        raise BadInputError(f"the particle size must be positive, got {particle_size_nm}.")
    jobs = plan(inputs, out, overwrite=overwrite)
    if particle_size_nm is not None and pixel_size_nm is None:
        for path, _ in jobs:  # before anything is written
            if globals()["pixel_size_nm"](path) is None:
                raise BadInputError(f"{path}: no pixel size in the file, so a particle size in nm cannot be used; "
                                    "pass the pixel size (--pixel-size) too.")
    resolved = resolve_model(model, allow_architecture=False)
    os.makedirs(out, exist_ok=True)
    written, summary = [], []
    for index, (path, paths) in enumerate(jobs):
        if on_file is not None:
            on_file(index, len(jobs), path)
        image = read_image(path)
        size = pixel_size_nm if pixel_size_nm is not None else globals()["pixel_size_nm"](path)
        typical = None
        if particle_size_nm is not None:
            if size is None:
                raise BadInputError(f"{path}: no pixel size in the file, so a particle size in nm cannot be used; "
                                    "pass the pixel size (--pixel-size) too.")
            typical = float(particle_size_nm) / size
        try:
            result = particles(resolved.model, image, pixel_size_nm=size, threshold=threshold, min_area=min_area,
                               split_depth=split_depth, scale=scale, particle_size_px=typical, tile_size=tile_size,
                               progress=on_tiles)
        except (BadInputError, ValueError) as exc:
            raise type(exc)(f"{path}: {exc}") from exc
        columns = COLUMNS + (NM_COLUMNS if size is not None else ())
        write_csv(paths["csv"], result.rows, columns, overwrite=overwrite)
        write_histogram(paths["histogram"], result, os.path.basename(path), overwrite=overwrite)
        write_png(paths["overlay"], overlay_image(image, result.labels), overwrite=overwrite)
        written += [paths["csv"], paths["histogram"], paths["overlay"]]
        summary.append(summary_row(path, resolved.name, result))
    target = os.path.join(out, SUMMARY_FILE)
    write_csv(target, summary, SUMMARY_COLUMNS, overwrite=overwrite)
    written.append(target)
    log.info("wrote %s", json.dumps([os.path.basename(p) for p in written]))
    return written


# ----------------------------------------------------------------------------- evaluation against boxes
def box_iou(a, b):
    """IoU matrix ``(len(a), len(b))`` of boxes given as ``x0, y0, x1, y1`` (end exclusive)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def compare_to_boxes(rows, boxes, shape, *, iou_threshold=0.5, border_tolerance=1.0):
    """Match predicted particles (table rows) to reference boxes, one to one, at box IoU >= ``iou_threshold``.

    Particles touching the border are left out on both sides: predicted rows with
    ``touches_border`` and reference boxes within ``border_tolerance`` pixels of
    the edge (annotators skip particles cut by the edge). Matching maximises the
    summed IoU (Hungarian, ``scipy.optimize.linear_sum_assignment``).

    Returns a dict: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` and, per match,
    ``pred_diameters`` (equivalent diameter) and ``true_diameters`` (``sqrt(w h)``, the
    equivalent diameter of the ellipse inscribed in the box); ``pred_all``/``true_all`` are the
    diameters of every counted particle (for size-distribution distances).
    """
    from scipy.optimize import linear_sum_assignment

    from temzoo.data.boxes import box_touches_border

    kept = [r for r in rows if not r["touches_border"]]
    pred = np.array([[r["bbox_x0"], r["bbox_y0"], r["bbox_x1"], r["bbox_y1"]] for r in kept], np.float64).reshape(-1, 4)
    pred_d = np.array([r["equivalent_diameter_px"] for r in kept], np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    boxes = boxes[~box_touches_border(boxes, shape, border_tolerance)]
    true_d = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    iou = box_iou(pred, boxes)
    pi, ti = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    good = iou[pi, ti] >= iou_threshold
    pi, ti = pi[good], ti[good]
    tp, fp, fn = len(pi), len(pred) - len(pi), len(boxes) - len(ti)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
        "pred_diameters": pred_d[pi], "true_diameters": true_d[ti], "pred_all": pred_d, "true_all": true_d,
    }
