"""The file formats temzoo reads, each from its header first: TIFF, PNG and, through RosettaSciIO, DM/EMD/SER/MRC.

:mod:`temzoo.io` is the public reader and writer; this module holds what each format
needs: the header is read and the frame checked against the pixel limit
(:func:`max_pixels`, :func:`check_pixels`) before any pixel is decoded; TIFF stacks
are read page by page; colour images become grayscale (luminance) with a warning.
Every problem is a :class:`~temzoo.errors.BadInputError` naming the file.
"""

import logging
import os
import warnings

import numpy as np

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
                    yield to_gray(path, page, "S" in axes)
            else:
                if frames > 1:  # the frames are read at once
                    check_pixels(path, series.shape[axes.index("Y")], series.shape[axes.index("X")], max_pixels, frames)
                data = series.asarray()
                layout = [a for a in axes if a not in "YXS"]
                data = data.reshape((frames, *data.shape[len(layout):]))
                for frame in data:
                    yield to_gray(path, _samples_last(frame, axes), "S" in axes)
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
    return to_gray(path, data, data.ndim == 3)


# ----------------------------------------------------------------------------- RosettaSciIO
def rsciio_plugin(path, ext):
    """The RosettaSciIO plugin module for ``ext``; :class:`MissingExtraError` if it is not installed."""
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
    plugin = rsciio_plugin(path, ext)
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
        return [to_gray(path, data, True)]
    if data.ndim == 2:
        return [data]
    if data.ndim == 3:
        return list(data)
    raise BadInputError(
        f"{path}: a {data.ndim}-dimensional dataset of shape {data.shape}; temzoo predicts images and image stacks "
        "(2 or 3 dimensions). Export the frames you need first."
    )


# ----------------------------------------------------------------------------- colour
def to_gray(path, data, has_samples):
    """``data`` as a 2-D grayscale frame: RGB(A) samples (last axis) become luminance, with a warning."""
    data = np.asarray(data)
    if has_samples and data.ndim == 3 and data.shape[-1] in (3, 4):
        kind = "RGBA" if data.shape[-1] == 4 else "RGB"
        warnings.warn(f"{path}: {kind} image converted to grayscale (luminance).", stacklevel=3)
        data = (data[..., :3].astype(np.float32) * _LUMA).sum(axis=-1)
    return data


# ----------------------------------------------------------------------------- by extension
def frame_count(path, ext, max_pixels=None):
    """Number of 2-D frames in ``path`` (of extension ``ext``), read from its header."""
    if ext in TIFF_EXTENSIONS:
        with _open_tiff(path) as tif:
            return _tiff_layout(path, tif, max_pixels)[0]
    if ext in PNG_EXTENSIONS:
        _read_png(path, max_pixels, header_only=True)
        return 1
    return _read_rsciio(path, ext, max_pixels, frames_only=True)


def raw_frames(path, ext, max_pixels=None):
    """An iterator over the 2-D frames of ``path`` as stored (not yet checked or converted to float32)."""
    if ext in TIFF_EXTENSIONS:
        return _tiff_frames(path, max_pixels)
    if ext in PNG_EXTENSIONS:
        return iter([_read_png(path, max_pixels)])
    return iter(_read_rsciio(path, ext, max_pixels))


_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "um": 1e3, "µm": 1e3, "\\u00b5m": 1e3, "micron": 1e3,
               "micrometer": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9, "a": 0.1, "å": 0.1, "angstrom": 0.1, "pm": 1e-3}


def read_pixel_size_nm(path):
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
        logging.getLogger(__name__).warning("%s: could not read a pixel size (%s)", path, exc)
        return None
