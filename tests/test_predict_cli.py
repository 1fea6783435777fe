"""``temzoo-cli predict``: formats, stacks, provenance, overlays, refusals and bad input."""

import json
import os

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from temzoo_cli.main import cli

import temzoo
import temzoo.tasks as tasks


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    backbone = temzoo.build("unet_b2_p22", base_filters=4)
    seg, den = tasks.segmentation(backbone, num_classes=2), tasks.denoising(backbone)
    cards = {
        "seg": tasks.save(seg, folder / "seg.keras", name="tiny_seg"),
        "den": tasks.save(den, folder / "den.keras", name="tiny_den"),
    }
    return {key: (str(folder / f"{key}.keras"), card) for key, card in cards.items()}


def run(*args):
    return CliRunner().invoke(cli, ["predict", *[str(a) for a in args]], catch_exceptions=False)


def test_segmentation_of_tiff_stack_and_png_with_provenance_and_overlays(tmp_path, models):
    from PIL import Image

    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a.tif", (rng.random((70, 90)) * 60000).astype("uint16"))
    tifffile.imwrite(inputs / "stack.tif", rng.random((3, 50, 40)).astype("float32"), photometric="minisblack")
    Image.fromarray((rng.random((33, 47)) * 255).astype("uint8")).save(inputs / "c.png")
    path, card = models["seg"]
    out = tmp_path / "out"
    result = run("--model", path, inputs / "a.tif", inputs / "stack.tif", inputs / "c.png", "--out", out, "--overlay")
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(out / "a_segmentation.tif")
    assert labels.dtype == np.uint8 and labels.shape == (70, 90) and set(np.unique(labels)) <= {0, 1}
    stack = tifffile.imread(out / "stack_segmentation.tif")
    assert stack.shape == (3, 50, 40) and stack.dtype == np.uint8
    assert tifffile.imread(out / "c_segmentation.tif").shape == (33, 47)
    with tifffile.TiffFile(out / "stack_segmentation.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    assert meta["model"] == "tiny_seg" and meta["model_sha256"] == card["sha256"]
    assert meta["temzoo_version"] == temzoo.__version__ and meta["input"] == "stack.tif" and meta["frames"] == 3
    assert sorted(p.name for p in out.glob("*.png")) == [
        "a_overlay.png", "c_overlay.png", "stack_overlay_0000.png", "stack_overlay_0001.png", "stack_overlay_0002.png"]
    # the same labels as temzoo.predict on the array
    frame = tifffile.imread(inputs / "a.tif").astype("float32")
    expected = temzoo.predict(temzoo.load(path), frame).argmax(-1)
    np.testing.assert_array_equal(labels, expected)


def test_restoration_writes_float32_in_the_input_scale(tmp_path, models):
    image = np.random.default_rng(1).normal(500.0, 20.0, (200, 180)).astype("float32")
    tifffile.imwrite(tmp_path / "x.tif", image)
    path, _ = models["den"]
    result = run("--model", path, tmp_path / "x.tif", "--out", tmp_path / "out", "--tile-size", "160")
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "out" / "x_denoising.tif")
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, temzoo.predict(temzoo.load(path), image, tile_size=160), rtol=1e-5)


def test_existing_outputs_are_refused_unless_overwrite(tmp_path, models):
    tifffile.imwrite(tmp_path / "x.tif", np.ones((20, 20), "uint8"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_segmentation.tif").write_bytes(b"keep me")
    path, _ = models["seg"]
    result = run("--model", path, tmp_path / "x.tif", "--out", out)
    assert result.exit_code != 0
    assert "x_segmentation.tif: the output file exists" in result.output and "--overwrite" in result.output
    assert (out / "x_segmentation.tif").read_bytes() == b"keep me"
    assert run("--model", path, tmp_path / "x.tif", "--out", out, "--overwrite").exit_code == 0
    assert tifffile.imread(out / "x_segmentation.tif").shape == (20, 20)


def _nan(path):
    data = np.ones((16, 16), "float32")
    data[3, 3] = np.nan
    tifffile.imwrite(path, data)


def _one_pixel(path):
    tifffile.imwrite(path, np.ones((1, 1), "float32"))


def _truncated(path):
    tifffile.imwrite(path, np.random.default_rng(2).random((64, 64)).astype("float32"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make,message", [
    (None, "no such file"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_bytes(b"II*\0garbage"), "not a readable TIFF"),
    (_truncated, "corrupt or truncated"),
    (_nan, "NaN or infinite"),
    (_one_pixel, "1x1"),
])
def test_bad_input_fails_naming_the_file_and_leaves_no_output(tmp_path, models, make, message):
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((20, 24), "uint16"))
    bad = tmp_path / "bad.tif"
    if make is not None:
        make(bad)
    out = tmp_path / "out"
    result = run("--model", models["seg"][0], good, bad, "--out", out)
    assert result.exit_code != 0
    assert str(bad) in result.output and message in result.output
    leftovers = os.listdir(out) if out.exists() else []
    assert not any(name.startswith("bad") or ".partial" in name for name in leftovers), leftovers
    # problems visible without reading pixels stop the run before anything is written
    if message in ("no such file", "the file is empty", "not a readable TIFF"):
        assert leftovers == []


def test_rgb_input_is_converted_with_a_warning(tmp_path, models):
    tifffile.imwrite(tmp_path / "rgb.tif", np.full((24, 24, 3), 90, np.uint8), photometric="rgb")
    with pytest.warns(UserWarning, match="rgb.tif: RGB image converted to grayscale"):
        result = run("--model", models["seg"][0], tmp_path / "rgb.tif", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert tifffile.imread(tmp_path / "out" / "rgb_segmentation.tif").shape == (24, 24)


def test_model_names_are_checked(tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", np.ones((20, 20), "uint8"))
    result = run("--model", "unet_b2_p2", tmp_path / "x.tif", "--out", tmp_path / "out")
    assert result.exit_code != 0 and "Unknown model 'unet_b2_p2'" in result.output
    result = run("--model", "unet_b2_p22", tmp_path / "x.tif", "--out", tmp_path / "out")
    assert result.exit_code != 0 and "architecture without trained weights" in result.output
