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
"""

import json
import os
import warnings

import numpy as np

from temzoo.atomic import atomic_path
from temzoo.atomic import refuse_existing as _refuse_existing
from temzoo.errors import BadInputError

TIFF_EXTENSIONS = (".tif", ".tiff")
PNG_EXTENSIONS = (".png",)
# extension -> RosettaSciIO plugin module
FORMATS_EXTENSIONS = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".ser": "rsciio.tia",
    ".mrc": "rsciio.mrc",
}
SUPPORTED_EXTENSIONS = TIFF_EXTENSIONS + PNG_EXTENSIONS + tuple(FORMATS_EXTENSIONS)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "TEMZOO_MAX_PIXELS"
FLOAT32_MAX = float(np.finfo(np.float32).max)


class MissingExtraError(BadInputError):
    """A file format that needs an optional dependency that is not installed."""


def max_pixels(value=None):
    """The pixel limit per frame: ``value``, else ``$TEMZOO_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    source = "max_pixels"
    if value is None:
        value, source = os.environ.get(MAX_PIXELS_ENV), MAX_PIXELS_ENV
        if value in (None, ""):
            return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a whole number of pixels, got {value!r}.") from None
    if limit < 1:
        raise ValueError(f"{source} must be at least 1, got {value!r}.")
    return limit


def check_pixels(path, height, width, limit=None, frames=1):
    """Raise :class:`BadInputError` if a ``height x width`` frame (times ``frames`` when they
    are read at once) is above the pixel limit."""
    limit = max_pixels(limit)
    pixels = int(height) * int(width) * int(frames)
    if pixels > limit:
        what = f"{height} x {width}" + (f" x {frames} frames read at once" if frames > 1 else "")
        raise BadInputError(
            f"{path}: the image is {what} = {pixels:,} pixels, above the limit of "
            f"{limit:,} pixels per frame. Crop or bin it first, or raise the limit "
            f"(--max-pixels, max_pixels=, or ${MAX_PIXELS_ENV}) if this machine has the memory "
            f"(about {16 * pixels / 2**30:.1f} GiB for prediction)."
        )


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
        _rsciio_plugin(path, ext)


def count_frames(path, max_pixels=None):
    """Number of 2-D frames in ``path`` (1 for a single image); checks the header against the pixel limit."""
    path = os.fspath(path)
    check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in TIFF_EXTENSIONS:
        with _open_tiff(path) as tif:
            return _tiff_layout(path, tif, max_pixels)[0]
    if ext in PNG_EXTENSIONS:
        _read_png(path, max_pixels, header_only=True)
        return 1
    return _read_rsciio(path, ext, max_pixels, frames_only=True)


def iter_frames(path, max_pixels=None):
    """Yield the frames of ``path`` as float32 2-D arrays (checked: finite values within float32's range).

    Frames above the pixel limit (``max_pixels``, see the module docstring) are refused
    from the file's header, before their pixels are decoded.
    """
    path = os.fspath(path)
    check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in TIFF_EXTENSIONS:
        frames = _tiff_frames(path, max_pixels)
    elif ext in PNG_EXTENSIONS:
        frames = iter([_read_png(path, max_pixels)])
    else:
        frames = iter(_read_rsciio(path, ext, max_pixels))
    for index, frame in enumerate(frames):
        yield _checked(path, index, frame)


def read_image(path, max_pixels=None):
    """All frames of ``path``: ``(H, W)`` float32 for one image, ``(N, H, W)`` for a stack."""
    frames = list(iter_frames(path, max_pixels))
    return frames[0] if len(frames) == 1 else np.stack(frames)


# ----------------------------------------------------------------------------- TIFF
def _open_tiff(path):
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc}).") from exc


def _tiff_layout(path, tif, max_pixels=None):
    """(number of frames, axes) of the first series; raises for layouts temzoo cannot read.

    Only the header is read. Axes come from tifffile (``Y``, ``X``, ``S`` samples of
    an RGB(A) pixel, ``T``/``Z``/``C``/... named by ImageJ or OME metadata, ``Q`` for a
    dimension the file does not name). A file of more than three dimensions is read
    only when the file names them all; the frames are then its non-YXS axes, in order.
    """
    try:
        series = tif.series[0]
        axes, shape = series.axes, series.shape
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc}).") from exc
    declared = _declared_shape(tif)
    if declared is not None and int(np.prod(declared)) != int(np.prod(shape)):
        raise BadInputError(
            f"{path}: the TIFF file is corrupt or truncated (it declares shape {tuple(declared)}, "
            f"but only {tuple(shape)} can be read)."
        )
    spatial = sum(a in "YX" for a in axes)
    if spatial != 2:
        raise BadInputError(f"{path}: a TIFF with axes {axes!r} and shape {shape} is not an image or image stack.")
    samples = shape[axes.index("S")] if "S" in axes else 1
    frames = int(np.prod([n for a, n in zip(axes, shape, strict=True) if a not in "YXS"], dtype=np.int64))
    if samples not in (1, 3, 4):
        raise BadInputError(f"{path}: {samples} samples per pixel; temzoo reads grayscale, RGB and RGBA images.")
    # RGB stored pixel by pixel (YXS) is TIFF's own colour layout; any other axis counts as a dimension.
    interleaved = "S" in axes and axes.index("S") > axes.index("X")
    dims = sum(1 for a, n in zip(axes, shape, strict=True) if a in "YX" or (n > 1 and not (a == "S" and interleaved)))
    if dims > 3 and "Q" in axes:
        raise BadInputError(
            f"{path}: a TIFF of shape {tuple(shape)} has {dims} dimensions, and the file does not say what "
            f"they are (tifffile reads its axes as {axes!r}; Q = unknown"
            + (", S = colour samples guessed from a size of 3 or 4" if "S" in axes and not interleaved else "")
            + "). temzoo reads 2-D images, 3-D stacks (frames, height, width) and RGB images. Save the frames "
            "as a 3-D stack (e.g. tifffile.imwrite(path, array.reshape(-1, height, width), photometric='minisblack')) "
            "or name the axes (tifffile.imwrite(..., metadata={'axes': 'TZYX'}))."
        )
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    check_pixels(path, height, width, max_pixels)
    return frames, axes


def _declared_shape(tif):
    """The shape a tifffile-written ("shaped") TIFF says it holds, or ``None``."""
    try:
        meta = tif.shaped_metadata
    except Exception:
        return None
    if meta and isinstance(meta[0], dict) and "shape" in meta[0]:
        return [int(n) for n in meta[0]["shape"]]
    return None


def _tiff_frames(path, max_pixels=None):
    with _open_tiff(path) as tif:
        frames, axes = _tiff_layout(path, tif, max_pixels)
        series = tif.series[0]
        try:
            if frames > 1 and len(series.pages) == frames:
                for i in range(frames):  # page by page: a stack is never read whole
                    page = _samples_last(tif.asarray(key=i, series=0), axes)
                    yield _to_gray(path, page, "S" in axes)
            else:
                if frames > 1:  # the frames are read at once
                    check_pixels(path, series.shape[axes.index("Y")], series.shape[axes.index("X")], max_pixels, frames)
                data = series.asarray()
                layout = [a for a in axes if a not in "YXS"]
                data = data.reshape((frames, *data.shape[len(layout):]))
                for frame in data:
                    yield _to_gray(path, _samples_last(frame, axes), "S" in axes)
        except BadInputError:
            raise
        except Exception as exc:  # truncated strips, broken compression
            raise BadInputError(f"{path}: the TIFF file is corrupt or truncated ({type(exc).__name__}: {exc}).") from exc


def _samples_last(frame, axes):
    spatial = [a for a in axes if a in "YXS"]
    if "S" in spatial and spatial[0] == "S":
        return np.moveaxis(frame, 0, -1)
    return frame


# ----------------------------------------------------------------------------- PNG
def _read_png(path, max_pixels=None, header_only=False):
    from PIL import Image  # pillow is a dependency of matplotlib

    try:
        with warnings.catch_warnings():
            # temzoo's own pixel limit (checked below, before decoding) replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img_cm = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"{path}: the PNG is too large to decode safely ({exc}).") from exc
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable PNG file ({type(exc).__name__}: {exc}).") from exc
    with img_cm as img:
        width, height = img.size
        check_pixels(path, height, width, max_pixels)
        if header_only:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                mode = img.mode
            data = np.asarray(img)
        except Exception as exc:
            raise BadInputError(f"{path}: not a readable PNG file ({type(exc).__name__}: {exc}).") from exc
    if mode == "LA":
        warnings.warn(f"{path}: the alpha channel of a grayscale+alpha PNG is ignored.", stacklevel=3)
        data = data[..., 0]
    return _to_gray(path, data, data.ndim == 3)


# ----------------------------------------------------------------------------- RosettaSciIO
def _rsciio_plugin(path, ext):
    import importlib

    module = FORMATS_EXTENSIONS[ext]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{path}: reading {ext} files needs RosettaSciIO, which is not installed. "
            'Install it with: pip install "temzoo[formats]"'
        ) from exc


def _read_rsciio(path, ext, max_pixels=None, frames_only=False):
    """The frames of a RosettaSciIO file (or, with ``frames_only``, their number, read from the header)."""
    plugin = _rsciio_plugin(path, ext)
    try:
        # Lazily: the shape is checked against the pixel limit before the pixels are read.
        # RosettaSciIO 0.15's MRC reader never closes its file: it is closed here when the
        # reader's last reference goes, so its ResourceWarning says nothing to the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            signals = plugin.file_reader(path, lazy=True)
            images = [s for s in signals if np.ndim(s.get("data")) >= 2]
            if images:
                shape = np.shape(images[0]["data"])
                check_pixels(path, shape[-2], shape[-1], max_pixels)
                dtype = images[0]["data"].dtype
                data = None if frames_only else np.asarray(images[0]["data"])
            del signals
            import gc

            gc.collect()
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"{path}: could not read the {ext} file ({type(exc).__name__}: {exc}).") from exc
    if not images:
        raise BadInputError(f"{path}: the file holds no image.")
    del images
    if frames_only:
        rgb = dtype.names and set("RGB").issubset({n.upper()[0] for n in dtype.names})
        if len(shape) in (2, 3) or rgb:
            return 1 if rgb or len(shape) == 2 else int(shape[0])
        data = np.empty(shape, dtype)  # shape only: falls through to the error below
    if data.dtype.names and set("RGB").issubset({n.upper()[0] for n in data.dtype.names}):  # DM RGB structs
        data = np.stack([data[n] for n in data.dtype.names[:3]], axis=-1)
        return [_to_gray(path, data, True)]
    if data.ndim == 2:
        return [data]
    if data.ndim == 3:
        return list(data)
    raise BadInputError(
        f"{path}: a {data.ndim}-dimensional dataset of shape {data.shape}; temzoo predicts images and image stacks "
        "(2 or 3 dimensions). Export the frames you need first."
    )


# ----------------------------------------------------------------------------- checks
def _to_gray(path, data, has_samples):
    data = np.asarray(data)
    if has_samples and data.ndim == 3 and data.shape[-1] in (3, 4):
        kind = "RGBA" if data.shape[-1] == 4 else "RGB"
        warnings.warn(f"{path}: {kind} image converted to grayscale (luminance).", stacklevel=3)
        data = (data[..., :3].astype(np.float32) * _LUMA).sum(axis=-1)
    return data


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
