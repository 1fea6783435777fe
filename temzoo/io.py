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
more than three dimensions. RGB/RGBA images are converted to grayscale
(luminance) with a warning.

Writing (always atomic, never over an existing file unless ``overwrite=True``):
float32 or uint8 TIFF with a JSON description (provenance), and PNG.
"""

import json
import os
import warnings

import numpy as np

from temzoo.atomic import atomic_path
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


class MissingExtraError(BadInputError):
    """A file format that needs an optional dependency that is not installed."""


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


def count_frames(path):
    """Number of 2-D frames in ``path`` (1 for a single image)."""
    path = os.fspath(path)
    check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in TIFF_EXTENSIONS:
        with _open_tiff(path) as tif:
            return _tiff_layout(path, tif)[0]
    if ext in PNG_EXTENSIONS:
        return 1
    return len(_read_rsciio(path, ext))


def iter_frames(path):
    """Yield the frames of ``path`` as float32 2-D arrays (checked: finite values)."""
    path = os.fspath(path)
    check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in TIFF_EXTENSIONS:
        frames = _tiff_frames(path)
    elif ext in PNG_EXTENSIONS:
        frames = iter([_read_png(path)])
    else:
        frames = iter(_read_rsciio(path, ext))
    for index, frame in enumerate(frames):
        yield _checked(path, index, frame)


def read_image(path):
    """All frames of ``path``: ``(H, W)`` float32 for one image, ``(N, H, W)`` for a stack."""
    frames = list(iter_frames(path))
    return frames[0] if len(frames) == 1 else np.stack(frames)


# ----------------------------------------------------------------------------- TIFF
def _open_tiff(path):
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc}).") from exc


def _tiff_layout(path, tif):
    """(number of frames, axes) of the first series; raises for layouts temzoo cannot read."""
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


def _tiff_frames(path):
    with _open_tiff(path) as tif:
        frames, axes = _tiff_layout(path, tif)
        series = tif.series[0]
        try:
            if frames > 1 and len(series.pages) == frames:
                for i in range(frames):  # page by page: a stack is never read whole
                    page = _samples_last(tif.asarray(key=i, series=0), axes)
                    yield _to_gray(path, page, "S" in axes)
            else:
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
def _read_png(path):
    from PIL import Image  # pillow is a dependency of matplotlib

    try:
        with Image.open(path) as img:
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


def _read_rsciio(path, ext):
    plugin = _rsciio_plugin(path, ext)
    try:
        signals = plugin.file_reader(path)
    except Exception as exc:
        raise BadInputError(f"{path}: could not read the {ext} file ({type(exc).__name__}: {exc}).") from exc
    images = [s for s in signals if np.ndim(s.get("data")) >= 2]
    if not images:
        raise BadInputError(f"{path}: the file holds no image.")
    data = np.asarray(images[0]["data"])
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
    frame = frame.astype(np.float32, copy=False)
    finite = np.isfinite(frame)
    if not finite.all():
        bad = int(frame.size - np.count_nonzero(finite))
        where = f"frame {index} has" if index else "has"
        raise BadInputError(
            f"{path}: {where} {bad} NaN or infinite pixel(s); replace them (e.g. with numpy.nan_to_num) and retry."
        )
    return frame


# ----------------------------------------------------------------------------- writing
def refuse_existing(path, overwrite):
    """Raise :class:`BadInputError` if ``path`` exists and ``overwrite`` is false."""
    if os.path.exists(path) and not overwrite:
        raise BadInputError(f"{path}: the output file exists; pass --overwrite (overwrite=True) to replace it.")


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
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tiff:
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
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp, format="PNG")
