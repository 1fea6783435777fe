"""Predict micrograph files to TIFF: the library side of ``temzoo-cli predict``.

For each input ``NAME.ext`` it writes, in ``out``:

* ``NAME_<task>.tif``: float32 for restoration tasks (in the input's intensity
  scale), uint8 class labels for segmentation; a stack stays a stack, predicted
  and written frame by frame;
* with ``overlay=True``, ``NAME_overlay.png`` (``NAME_overlay_NNNN.png`` per frame
  of a stack): labels over the image for segmentation, input | output for
  restoration.

Every TIFF carries its provenance as JSON in the ImageDescription: model name
and the sha256 of its weights file, task, temzoo version, input file, tiling.

Before the model is loaded, the output folder is checked (writable) and every
input is checked (exists, not empty, supported type, readable header, frames
within the pixel limit); before anything is predicted every output path is
checked (refused if it exists, unless ``overwrite``), so a typo costs nothing.
Files are written atomically and created exclusively: a failure leaves no
partial file behind, and an output that another run created meanwhile is
never replaced (unless ``overwrite``).
"""

import datetime
import os

import numpy as np

from temzoo.errors import BadInputError
from temzoo.names import task_or_default


def output_paths(input_path, out, task, frames, overlay):
    stem = os.path.splitext(os.path.basename(input_path))[0]
    paths = {"tiff": os.path.join(out, f"{stem}_{task}.tif"), "overlays": []}
    if overlay:
        if frames == 1:
            paths["overlays"] = [os.path.join(out, f"{stem}_overlay.png")]
        else:
            paths["overlays"] = [os.path.join(out, f"{stem}_overlay_{i:04d}.png") for i in range(frames)]
    return paths


def check_inputs(inputs, out, *, max_pixels=None):
    """Check the output folder and every input's header (no pixels read); return ``[(input, frames)]``."""
    from temzoo.atomic import check_writable_dir
    from temzoo.io import count_frames

    if not inputs:
        raise BadInputError("no input files given.")
    check_writable_dir(out)
    return [(os.fspath(path), count_frames(path, max_pixels)) for path in inputs]


def plan(inputs, out, task, *, overwrite=False, overlay=False, max_pixels=None):
    """Check every input and output up front; return ``[(input, frames, output paths)]``.

    ``inputs`` are paths, or the ``(path, frames)`` pairs :func:`check_inputs` returns.
    """
    from temzoo.io import refuse_existing

    checked = inputs
    if not inputs or not all(isinstance(item, tuple) for item in inputs):
        checked = check_inputs(inputs, out, max_pixels=max_pixels)
    jobs, claimed = [], {}
    for path, frames in checked:
        paths = output_paths(path, out, task, frames, overlay)
        for target in [paths["tiff"], *paths["overlays"]]:
            if target in claimed:
                raise BadInputError(
                    f"{path}: its output {target} would also be written for {claimed[target]}; "
                    "inputs need different file names (or predict them into different folders)."
                )
            claimed[target] = path
            refuse_existing(target, overwrite)
        jobs.append((path, frames, paths))
    return jobs


def predict_files(model, inputs, out, *, overwrite=False, overlay=False, tile_size=None, on_file=None,
                  on_tiles=None, max_pixels=None, precision="float32", ensemble=1):
    """Predict every file of ``inputs`` with ``model`` into the folder ``out``.

    Args:
        model: ``.keras`` path, pretrained registry name or Keras model.
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"auto"``: see :func:`temzoo.predict`.
        ensemble: average over 1, 2, 4 or 8 flips/quarter turns of each frame (see :func:`temzoo.predict`).
        max_pixels: largest frame read (default ``$TEMZOO_MAX_PIXELS`` or
            :data:`temzoo.io.DEFAULT_MAX_PIXELS`); larger ones are refused before decoding.
        on_file: optional ``callable(index, total, path, frames)`` before each file.
        on_tiles: optional ``callable(done, total)`` per batch of tiles.

    Returns the list of written paths.
    """
    from temzoo._version import __version__
    from temzoo.inference.ensemble import check_size
    from temzoo.inference.precision import resolve_precision
    from temzoo.inference.tiling import is_restoration, predict
    from temzoo.io import iter_frames, write_tiff
    from temzoo.zoo.resolve import resolve_model

    precision, ensemble = resolve_precision(precision), check_size(ensemble)
    checked = check_inputs([os.fspath(p) for p in inputs], out, max_pixels=max_pixels)  # before the model loads
    resolved = resolve_model(model, allow_architecture=False)
    card = resolved.card or {}
    restoring = is_restoration(resolved.model, card)
    task = task_or_default(card.get("task"), restoring)
    jobs = plan(checked, out, task, overwrite=overwrite, overlay=overlay)
    os.makedirs(out, exist_ok=True)
    written = []
    for index, (path, frames, paths) in enumerate(jobs):
        if on_file is not None:
            on_file(index, len(jobs), path, frames)
        description = {
            "temzoo_version": __version__,
            "model": resolved.name,
            "model_sha256": resolved.sha256,
            "task": task,
            "input": os.path.basename(path),
            "frames": frames,
            "tile_size": tile_size,
            "precision": precision,
            "ensemble": ensemble,
            "normalization": card.get("normalization"),
            "output": "float32 intensities" if restoring else "uint8 class labels",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }

        def outputs(path=path):
            for frame in iter_frames(path, max_pixels):
                try:
                    result = predict(resolved.model, frame, tile_size=tile_size, progress=on_tiles, precision=precision,
                                     ensemble=ensemble)
                except BadInputError as exc:
                    raise BadInputError(f"{path}: {exc}") from exc
                except ValueError as exc:  # InputSizeError and tiling errors
                    raise type(exc)(f"{path}: {exc}") from exc
                if restoring:
                    yield result.astype(np.float32) if result.ndim == 2 else result[..., 0].astype(np.float32)
                else:
                    yield result.argmax(-1).astype(np.uint8)

        write_tiff(paths["tiff"], outputs(), description, overwrite=overwrite)
        written.append(paths["tiff"])
        if overlay:
            written += _write_overlays(path, paths, restoring, overwrite, max_pixels)
    return written


def _write_overlays(input_path, paths, restoring, overwrite, max_pixels=None):
    """Overlays from the input and the TIFF just written, frame by frame."""
    import tifffile

    from temzoo.inference.plots import overlay, side_by_side
    from temzoo.io import iter_frames, write_png

    written = []
    with tifffile.TiffFile(paths["tiff"]) as tif:
        for i, (frame, target) in enumerate(zip(iter_frames(input_path, max_pixels), paths["overlays"], strict=True)):
            result = tif.pages[i].asarray()
            if restoring:
                if result.shape != frame.shape:  # super-resolution: show the input at the output's size
                    factor = result.shape[0] // frame.shape[0]
                    frame = np.repeat(np.repeat(frame, factor, 0), factor, 1)
                rgb = side_by_side(frame, result)
            else:
                rgb = overlay(frame, result)
            write_png(target, rgb, overwrite=overwrite)
            written.append(target)
    return written
