"""Reading and writing micrographs.

Reading gives float32 2-D frames, one at a time, so a large stack never has to
fit in memory twice:

* TIFF (``.tif``/``.tiff``; 8/16/32-bit integer and 16/32/64-bit float; single
  images and stacks, read page by page), PNG (``.png``; 8/16-bit);
* with the optional extra ``formats`` (``pip install "temzoo[formats]"``, which
  installs RosettaSciIO): Digital Micrograph ``.dm3``/``.dm4``, Velox/Berkeley
  ``.emd``, TIA ``.ser`` and ``.mrc``.

Problems are :class:`~temzoo.errors.BadInputError` naming the file: missing,
empty, unreadable/truncated, unsupported extension, NaN or infinite pixels,
values beyond float32's range, frames larger than the pixel limit (checked on
the header, before any pixel is decoded), more than three dimensions whose
meaning the file does not state. RGB/RGBA images (TIFF samples axis ``S``,
PNG colour modes) are converted to grayscale (luminance) with a warning.

The pixel limit per frame is ``max_pixels=`` where a function takes it, else the
environment variable ``TEMZOO_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`
(100 million pixels, 400 MB as float32: a 10000 x 10000 frame).

Writing (always atomic, never over an existing file unless ``overwrite=True``,
even when another process creates it meanwhile): float32 or uint8 TIFF with a
JSON description (provenance), and PNG.

This module is the public reader and writer; what each format needs (headers,
pixel limit, TIFF layouts, RosettaSciIO plugins) is in :mod:`temzoo.inference.formats`.
"""

import json
import os

import numpy as np

from temzoo.atomic import atomic_path
from temzoo.atomic import refuse_existing as _refuse_existing
from temzoo.errors import BadInputError
from temzoo.inference import formats as _formats
from temzoo.inference.formats import (  # noqa: F401  (re-exported: temzoo.io.check_pixels, ... keep working)
    DEFAULT_MAX_PIXELS,
    FORMATS_EXTENSIONS,
    MAX_PIXELS_ENV,
    PNG_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    TIFF_EXTENSIONS,
    MissingExtraError,
    check_pixels,
    frame_count,
    raw_frames,
    read_pixel_size_nm,
    rsciio_plugin,
)

FLOAT32_MAX = float(np.finfo(np.float32).max)
max_pixels = _formats.max_pixels  # re-exported (parameters below share its name)


def check_readable(path):
    """Raise :class:`BadInputError` unless ``path`` is an existing, non-empty file of a supported kind.

    Cheap (no pixels are read): the CLI checks every input with it before writing anything.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such file.")
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: not a file.")
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise BadInputError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; temzoo reads "
            + ", ".join(SUPPORTED_EXTENSIONS) + "."
        )
    if os.path.getsize(path) == 0:
        raise BadInputError(f"{path}: the file is empty.")
    if ext in FORMATS_EXTENSIONS:
        rsciio_plugin(path, ext)


def count_frames(path, max_pixels=None):
    """Number of 2-D frames in ``path`` (1 for a single image); checks the header against the pixel limit."""
    path = os.fspath(path)
    check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    return frame_count(path, ext, max_pixels)


def iter_frames(path, max_pixels=None):
    """Yield the frames of ``path`` as float32 2-D arrays (checked: finite values within float32's range).

    Frames above the pixel limit (``max_pixels``, see the module docstring) are refused
    from the file's header, before their pixels are decoded.
    """
    path = os.fspath(path)
    check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    for index, frame in enumerate(raw_frames(path, ext, max_pixels)):
        yield _checked(path, index, frame)


def read_image(path, max_pixels=None):
    """All frames of ``path``: ``(H, W)`` float32 for one image, ``(N, H, W)`` for a stack."""
    frames = list(iter_frames(path, max_pixels))
    return frames[0] if len(frames) == 1 else np.stack(frames)


# ----------------------------------------------------------------------------- checks
def _checked(path, index, frame):
    frame = np.asarray(frame)
    if frame.dtype == bool:
        frame = frame.astype(np.uint8)
    if not np.issubdtype(frame.dtype, np.number) or np.issubdtype(frame.dtype, np.complexfloating):
        raise BadInputError(f"{path}: pixel type {frame.dtype} is not a real number type.")
    if frame.ndim != 2:
        raise BadInputError(f"{path}: frame {index} has shape {frame.shape}, not a 2-D image.")
    where = f"{path}: frame {index} has" if index else f"{path}: has"
    check_float32(frame, where)
    return frame.astype(np.float32, copy=False)


def check_float32(array, where="The image has"):
    """Raise :class:`BadInputError` for NaN or infinite values, or values beyond float32's range.

    temzoo computes in float32 (largest value about 3.4e38): a float64 image with larger
    values would silently turn into infinities and then NaN. ``where`` starts the message
    (e.g. ``"scan.tif: frame 2 has"``).
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        raise BadInputError(
            f"{where} {bad} NaN or infinite pixel(s); replace them (e.g. with numpy.nan_to_num) and retry."
        )
    if array.dtype.itemsize > 4 and array.size:
        largest = float(np.max(np.abs(array)))
        if largest > FLOAT32_MAX:
            raise BadInputError(
                f"{where} values up to {largest:.3g}, beyond the float32 range (about {FLOAT32_MAX:.3g}) that temzoo "
                "computes in; they would become infinite. Rescale the image (divide it by a power of ten) and retry."
            )


# ----------------------------------------------------------------------------- writing
def refuse_existing(path, overwrite):
    """Raise :class:`BadInputError` if ``path`` exists and ``overwrite`` is false."""
    _refuse_existing(path, overwrite)


def write_tiff(path, frames, description=None, *, overwrite=False):
    """Write 2-D arrays (one image, or an iterable of frames) to a TIFF, atomically.

    ``description`` (a dict) is stored as JSON in the first page's
    ImageDescription. Frames are written one by one as they come from the
    iterable, so a stack need not be in memory. Returns the number of frames.
    """
    import tifffile

    path = os.fspath(path)
    refuse_existing(path, overwrite)
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        frames = [frames]
    text = json.dumps(description, default=str) if description is not None else None
    count = 0
    with atomic_path(path, exclusive=not overwrite) as tmp, tifffile.TiffWriter(tmp) as tiff:
        for frame in frames:
            tiff.write(
                np.asarray(frame), photometric="minisblack", metadata=None,
                description=text if count == 0 else None,
            )
            count += 1
    return count


def read_description(path):
    """The JSON description written by :func:`write_tiff` (``None`` if there is none)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        text = tif.pages[0].description
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def write_png(path, rgb, *, overwrite=False):
    """Write an ``H x W x 3`` uint8 array (or ``H x W``) as PNG, atomically."""
    from PIL import Image

    path = os.fspath(path)
    refuse_existing(path, overwrite)
    with atomic_path(path, exclusive=not overwrite) as tmp:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp, format="PNG")
