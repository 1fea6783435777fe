"""Reading and writing micrographs: formats, stacks, bad files, atomic writes."""

import importlib
import json
import os
import struct
import sys

import numpy as np
import pytest
import tifffile

from temzoo import io
from temzoo.errors import BadInputError


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "uint32", "float32", "float64"])
def test_tiff_dtypes_read_as_float32(tmp_path, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    data = rng.integers(info.min, info.max, (20, 30), endpoint=True).astype(dtype) if info else rng.random((20, 30)).astype(dtype)
    path = tmp_path / f"{dtype}.tif"
    tifffile.imwrite(path, data)
    image = io.read_image(path)
    assert image.dtype == np.float32 and image.shape == (20, 30)
    np.testing.assert_allclose(image, data.astype(np.float32))


def test_stack_is_read_frame_by_frame(tmp_path):
    stack = np.random.default_rng(1).random((3, 24, 40)).astype("float32")
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    assert io.count_frames(path) == 3
    frames = io.iter_frames(path)
    first = next(frames)  # a generator: frames come one at a time
    np.testing.assert_array_equal(first, stack[0])
    np.testing.assert_array_equal(np.stack([first, *frames]), stack)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_png_8_and_16_bit(tmp_path, dtype):
    from PIL import Image

    data = np.random.default_rng(2).integers(0, np.iinfo(dtype).max, (12, 17)).astype(dtype)
    path = tmp_path / "image.png"
    Image.fromarray(data).save(path)
    np.testing.assert_array_equal(io.read_image(path), data.astype(np.float32))


@pytest.mark.parametrize("channels,kind", [(3, "RGB"), (4, "RGBA")])
def test_rgb_is_converted_to_gray_with_a_warning(tmp_path, channels, kind):
    rgb = np.zeros((8, 9, channels), np.uint8)
    rgb[..., 0] = 100  # red only
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    with pytest.warns(UserWarning, match=f"colour.tif: {kind} image converted to grayscale"):
        gray = io.read_image(path)
    np.testing.assert_allclose(gray, 29.9, rtol=1e-5)
    from PIL import Image

    png = tmp_path / "colour.png"
    Image.fromarray(rgb).save(png)
    with pytest.warns(UserWarning, match=kind):
        assert io.read_image(png).shape == (8, 9)


def test_missing_empty_corrupt_and_truncated_files_name_the_file(tmp_path):
    with pytest.raises(BadInputError, match="nope.tif: no such file"):
        io.read_image(tmp_path / "nope.tif")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty.tif: the file is empty"):
        io.check_readable(empty)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(BadInputError, match="garbage.tif: not a readable TIFF"):
        io.read_image(garbage)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.random.default_rng(3).random((64, 64)).astype("float32"))
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadInputError, match="truncated.tif: the TIFF file is corrupt or truncated"):
        io.read_image(truncated)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.ones((3, 40, 50), "float32"), photometric="minisblack", compression="zlib")
    cut = tmp_path / "cut_stack.tif"
    cut.write_bytes(stack.read_bytes()[: stack.stat().st_size * 2 // 3])
    with pytest.raises(BadInputError, match="cut_stack.tif: the TIFF file is corrupt or truncated"):
        io.read_image(cut)
    with pytest.raises(BadInputError, match="unsupported file type '.jpg'"):
        (tmp_path / "a.jpg").write_bytes(b"x")
        io.check_readable(tmp_path / "a.jpg")


def test_nan_and_inf_pixels_are_refused(tmp_path):
    data = np.ones((3, 10, 10), "float32")
    data[1, 2, 3] = np.nan
    data[1, 4, 4] = np.inf
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with pytest.raises(BadInputError, match="nan.tif: frame 1 has 2 NaN or infinite"):
        io.read_image(path)


def test_formats_extra_missing_gives_the_install_command(tmp_path, monkeypatch):
    path = tmp_path / "image.mrc"
    path.write_bytes(b"\0" * 2048)
    for name in [m for m in sys.modules if m == "rsciio" or m.startswith("rsciio.")]:
        monkeypatch.delitem(sys.modules, name)
    real_import_module = importlib.import_module

    def no_rsciio(name, *args, **kwargs):
        if name == "rsciio" or name.startswith("rsciio."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import_module(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_rsciio)
    monkeypatch.setattr(sys, "meta_path", [])  # nothing can be found, should anything import it directly
    with pytest.raises(io.MissingExtraError, match=r'image.mrc: .*pip install "temzoo\[formats\]"'):
        io.read_image(path)


def write_mrc(path, data):
    """A minimal MRC2014 file (mode 2, float32), header written by hand from the spec."""
    data = np.asarray(data, "<f4")
    if data.ndim == 2:
        data = data[None]
    nz, ny, nx = data.shape
    header = bytearray(1024)
    struct.pack_into("<4i", header, 0, nx, ny, nz, 2)  # NX NY NZ MODE
    struct.pack_into("<3i", header, 28, nx, ny, nz)  # MX MY MZ
    struct.pack_into("<6f", header, 40, nx, ny, nz, 90, 90, 90)  # cell lengths (Å) and angles
    struct.pack_into("<3i", header, 64, 1, 2, 3)  # MAPC MAPR MAPS
    struct.pack_into("<3f", header, 76, data.min(), data.max(), data.mean())  # DMIN DMAX DMEAN
    struct.pack_into("<i", header, 108, 20140)  # NVERSION
    header[208:212] = b"MAP "
    header[212:216] = bytes([0x44, 0x44, 0, 0])  # little-endian machine stamp
    with open(path, "wb") as f:
        f.write(bytes(header))
        f.write(data.tobytes())


def test_mrc_via_rosettasciio(tmp_path):
    pytest.importorskip("rsciio.mrc")
    stack = np.arange(3 * 20 * 30, dtype="float32").reshape(3, 20, 30)
    write_mrc(tmp_path / "stack.mrc", stack)
    assert io.count_frames(tmp_path / "stack.mrc") == 3
    np.testing.assert_array_equal(io.read_image(tmp_path / "stack.mrc"), stack)
    write_mrc(tmp_path / "single.mrc", stack[1])
    np.testing.assert_array_equal(io.read_image(tmp_path / "single.mrc"), stack[1])


def test_write_tiff_is_atomic_refuses_existing_and_keeps_provenance(tmp_path):
    path = tmp_path / "out.tif"
    frames = [np.full((5, 6), i, "float32") for i in range(3)]
    assert io.write_tiff(path, iter(frames), {"model": "m", "sha256": "abc"}) == 3
    np.testing.assert_array_equal(tifffile.imread(path), np.stack(frames))
    assert io.read_description(path) == {"model": "m", "sha256": "abc"}
    with pytest.raises(BadInputError, match="out.tif: the output file exists"):
        io.write_tiff(path, frames[0])

    def failing():
        yield frames[0]
        raise BadInputError("frame 1 is bad")

    before = path.read_bytes()
    with pytest.raises(BadInputError, match="frame 1"):
        io.write_tiff(path, failing(), overwrite=True)
    assert path.read_bytes() == before  # the old file is intact
    with pytest.raises(BadInputError):
        io.write_tiff(tmp_path / "new.tif", failing())
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]  # no partial or temporary file left
    assert json.loads(tifffile.TiffFile(path).pages[0].description)["model"] == "m"


# ----------------------------------------------------------------------------- issue 15: bad input
def _bomb(path, side=12000, tile=4096):
    """A small zlib TIFF holding a ``side x side`` uint8 image of zeros (a "decompression bomb")."""
    with tifffile.TiffWriter(path) as tif:
        tif.write(shape=(side, side), dtype="uint8", tile=(tile, tile), compression="zlib",
                  data=(np.zeros((tile, tile), "uint8") for _ in range((-(-side // tile)) ** 2)))


def test_images_above_the_pixel_limit_are_refused_from_the_header_before_decoding(tmp_path, monkeypatch):
    import tracemalloc

    path = tmp_path / "bomb.tif"
    _bomb(path)
    assert path.stat().st_size < 1_000_000  # small on disk, 144 million pixels
    tracemalloc.start()
    try:
        with pytest.raises(BadInputError, match=r"bomb.tif: the image is 12000 x 12000 = 144,000,000 pixels, above"):
            io.count_frames(path)
        with pytest.raises(BadInputError, match="above the limit of 100,000,000 pixels"):
            next(io.iter_frames(path))
        assert tracemalloc.get_traced_memory()[1] < 50_000_000  # nothing was decoded
    finally:
        tracemalloc.stop()
    # configurable: argument, then $TEMZOO_MAX_PIXELS
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((30, 40), "uint8"))
    with pytest.raises(BadInputError, match="limit of 1,000 pixels"):
        io.read_image(small, max_pixels=1000)
    monkeypatch.setenv("TEMZOO_MAX_PIXELS", "1199")
    with pytest.raises(BadInputError, match="limit of 1,199 pixels"):
        io.read_image(small)
    assert io.read_image(small, max_pixels=1200).shape == (30, 40)
    monkeypatch.setenv("TEMZOO_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="TEMZOO_MAX_PIXELS must be a whole number"):
        io.read_image(small)


def test_png_above_the_pixel_limit_is_refused_before_decoding(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((50, 60), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(BadInputError, match="a.png: the image is 50 x 60 = 3,000 pixels"):
        io.count_frames(tmp_path / "a.png", max_pixels=2999)
    assert io.count_frames(tmp_path / "a.png", max_pixels=3000) == 1


@pytest.mark.parametrize("shape", [(2, 5, 16, 16), (2, 3, 16, 16), (2, 3, 4, 16, 16)])
def test_more_than_three_dimensions_with_unknown_axes_are_refused(tmp_path, shape):
    path = tmp_path / "nd.tif"
    with _no_check():
        tifffile.imwrite(path, np.zeros(shape, "uint8"))
    with pytest.raises(BadInputError, match=rf"nd.tif: a TIFF of shape \({shape[0]}, .*dimensions.*does not say"):
        io.count_frames(path)
    with pytest.raises(BadInputError, match="does not say"):
        io.read_image(path)


def _no_check():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def quiet():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tifffile's own warning about guessing RGB
            yield

    return quiet()


def test_named_axes_and_rgb_stacks_are_read(tmp_path):
    data = np.arange(2 * 5 * 8 * 9, dtype="float32").reshape(2, 5, 8, 9)
    tifffile.imwrite(tmp_path / "tz.tif", data, metadata={"axes": "TZYX"})
    assert io.count_frames(tmp_path / "tz.tif") == 10
    np.testing.assert_array_equal(io.read_image(tmp_path / "tz.tif"), data.reshape(10, 8, 9))
    rgb = np.zeros((2, 8, 9, 3), np.uint8)
    rgb[..., 1] = 100
    tifffile.imwrite(tmp_path / "rgb_stack.tif", rgb, photometric="rgb")  # pixel-interleaved RGB frames
    with pytest.warns(UserWarning, match="RGB image converted"):
        frames = io.read_image(tmp_path / "rgb_stack.tif")
    np.testing.assert_allclose(frames, np.full((2, 8, 9), 58.7), rtol=1e-5)
    with _no_check():
        tifffile.imwrite(tmp_path / "stack3.tif", np.zeros((3, 8, 9), "uint8"), photometric="minisblack")
    assert io.count_frames(tmp_path / "stack3.tif") == 3


def test_float64_values_beyond_float32_are_refused_with_the_reason(tmp_path):
    data = np.ones((16, 16))
    data[2, 2] = 1e300
    tifffile.imwrite(tmp_path / "huge.tif", data)
    with pytest.raises(BadInputError, match=r"huge.tif: has values up to 1e\+300, beyond the float32 range"):
        io.read_image(tmp_path / "huge.tif")
    ok = np.full((16, 16), 1e30)
    tifffile.imwrite(tmp_path / "large.tif", ok)
    np.testing.assert_allclose(io.read_image(tmp_path / "large.tif"), ok.astype("float32"))


def test_reading_mrc_closes_the_file(tmp_path):
    pytest.importorskip("rsciio.mrc")
    import gc
    import warnings

    write_mrc(tmp_path / "s.mrc", np.ones((2, 8, 9), "float32"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert io.count_frames(tmp_path / "s.mrc") == 2
        assert io.read_image(tmp_path / "s.mrc").shape == (2, 8, 9)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]
    fd_dir = "/proc/self/fd"
    if os.path.isdir(fd_dir):
        open_files = []
        for fd in os.listdir(fd_dir):
            try:
                open_files.append(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                pass
        assert str(tmp_path / "s.mrc") not in open_files


def test_normalizer_statistics_need_no_float64_copy_and_do_not_overflow():
    import tracemalloc

    from temzoo.zoo.normalization import Normalizer

    image = np.random.default_rng(0).normal(5.0, 2.0, (2000, 2000)).astype("float32")  # 16 MB
    tracemalloc.start()
    try:
        mean, scale = Normalizer("standardize").stats(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak  # a float64 copy alone is 32 MB
    exact = image.astype(np.float64)
    assert mean == pytest.approx(exact.mean(), rel=1e-12) and scale == pytest.approx(exact.std() + 1e-6, rel=1e-9)
    huge = np.full((64, 64), 1e30, "float32")
    huge[0] = 3e30
    mean, scale = Normalizer("standardize").stats(huge)
    assert np.isfinite(mean) and np.isfinite(scale) and scale == pytest.approx(huge.astype(np.float64).std(), rel=1e-6)
