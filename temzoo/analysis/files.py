"""Particle tables and figures for image files: ``temzoo-cli analyze``.

:func:`analyze_files` writes, per input ``NAME``, ``NAME_particles.csv`` (the
columns of :data:`temzoo.analysis.particles.COLUMNS`), ``NAME_histogram.png``
(equivalent diameters of the particles not touching the border) and
``NAME_overlay.png`` (particles coloured over the image, outlines in yellow), and
over all inputs ``particles_summary.csv``. Every input and every output path is
checked before anything is predicted; existing outputs are refused unless
``overwrite=True``; every file is written atomically.
"""

import csv
import io
import json
import logging
import os

import numpy as np

from temzoo.analysis.particles import COLUMNS, NM_COLUMNS, particles
from temzoo.errors import BadInputError
from temzoo.inference.ensemble import check_size
from temzoo.io import read_pixel_size_nm

log = logging.getLogger(__name__)

SETTINGS_COLUMNS = ("threshold", "min_area", "split_depth", "ensemble", "min_confidence", "finer_scale",
                    "finer_confidence")  # the post-processing used, per file
SUMMARY_COLUMNS = (
    "file", "model", "width_px", "height_px", "pixel_size_nm", "particles", "particles_inside",
    "mean_diameter_px", "median_diameter_px", "std_diameter_px",
    "mean_diameter_nm", "median_diameter_nm", "std_diameter_nm", "area_fraction", "scale",
    *SETTINGS_COLUMNS,
)
SUMMARY_FILE = "particles_summary.csv"


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
        **{key: result.settings.get(key) for key in SETTINGS_COLUMNS},
    }
    for unit, scale in (("px", 1.0), ("nm", result.pixel_size_nm)):
        stats = (float(np.mean(d_px)), float(np.median(d_px)), float(np.std(d_px))) if len(d_px) and scale else (None,) * 3
        for key, value in zip(("mean", "median", "std"), stats, strict=True):
            row[f"{key}_diameter_{unit}"] = None if value is None else value * scale
    return row


def analyze_files(model, inputs, out, *, pixel_size_nm=None, threshold=None, min_area=None, split_depth=None,
                  scale=None, particle_size_nm=None, tile_size=None, overwrite=False, on_file=None, on_tiles=None,
                  dark=None, ensemble=None, min_confidence=None, finer_scale=None, finer_confidence=None):
    """Find and measure the particles of every file of ``inputs``; write tables and figures into ``out``.

    Args:
        model: segmentation model (pretrained name such as ``"nanoparticles"``, ``.keras`` path, Keras model).
        pixel_size_nm: pixel size for every file; ``None`` reads it from each TIFF (:func:`temzoo.io.read_pixel_size_nm`)
            and leaves the ``_nm`` columns out where a file has none.
        particle_size_nm: a rough typical particle diameter in nm (needs a pixel size): picks the scale
            factor directly instead of ``scale``.
        on_file: optional ``callable(index, total, path)`` before each file; ``on_tiles`` per batch of tiles.
        dark: whether the particles are darker than their support (bright field) in every file; ``None``
            decides per image. Only models trained on bright particles alone read it (see
            :func:`temzoo.analysis.particles.particles`).
        ensemble: test-time self-ensemble size (1, 2, 4, 8; see :func:`temzoo.analysis.particles.particles`).
        threshold, min_area, split_depth, scale, ensemble, min_confidence, finer_scale, finer_confidence:
            ``None`` takes the model card's setting, else the library default
            (:func:`temzoo.analysis.particles.postprocessing`; what they do: :func:`temzoo.analysis.particles.particles`).

    Returns the list of written paths (the summary last).
    """
    from temzoo.io import read_image, write_png
    from temzoo.tasks.backbone import resolve_model

    if threshold is not None and not 0.0 < float(threshold) < 1.0:
        raise BadInputError(f"threshold must be between 0 and 1 (exclusive), got {threshold}.")
    for name, value in (("min_confidence", min_confidence), ("finer_confidence", finer_confidence)):
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise BadInputError(f"{name} must be a probability between 0 and 1, got {value}.")
    if pixel_size_nm is not None and not float(pixel_size_nm) > 0:
        raise BadInputError(f"the pixel size must be positive, got {pixel_size_nm}.")
    if particle_size_nm is not None and not float(particle_size_nm) > 0:
        raise BadInputError(f"the particle size must be positive, got {particle_size_nm}.")
    try:
        ensemble = None if ensemble is None else check_size(ensemble)
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    jobs = plan(inputs, out, overwrite=overwrite)
    if particle_size_nm is not None and pixel_size_nm is None:
        for path, _ in jobs:  # before anything is written
            if read_pixel_size_nm(path) is None:
                raise BadInputError(f"{path}: no pixel size in the file, so a particle size in nm cannot be used; "
                                    "pass the pixel size (--pixel-size) too.")
    resolved = resolve_model(model, allow_architecture=False)
    os.makedirs(out, exist_ok=True)
    written, summary = [], []
    for index, (path, paths) in enumerate(jobs):
        if on_file is not None:
            on_file(index, len(jobs), path)
        image = read_image(path)
        size = pixel_size_nm if pixel_size_nm is not None else read_pixel_size_nm(path)
        typical = None
        if particle_size_nm is not None:
            if size is None:
                raise BadInputError(f"{path}: no pixel size in the file, so a particle size in nm cannot be used; "
                                    "pass the pixel size (--pixel-size) too.")
            typical = float(particle_size_nm) / size
        try:
            result = particles(resolved.model, image, pixel_size_nm=size, threshold=threshold, min_area=min_area,
                               split_depth=split_depth, scale=scale, particle_size_px=typical, tile_size=tile_size,
                               progress=on_tiles, dark=dark, ensemble=ensemble, min_confidence=min_confidence,
                               finer_scale=finer_scale, finer_confidence=finer_confidence)
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
