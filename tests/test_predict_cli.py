"""``temzoo-cli predict``: formats, stacks, provenance, overlays, refusals and bad input."""

import json
import os
import re

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


def test_unwritable_output_folder_fails_before_the_model_loads(tmp_path, models, monkeypatch):
    import temzoo.zoo.resolve

    tifffile.imwrite(tmp_path / "x.tif", np.ones((20, 20), "uint8"))
    (tmp_path / "afile").write_text("x")
    loaded = []
    real = temzoo.zoo.resolve.resolve_model
    monkeypatch.setattr(temzoo.zoo.resolve, "resolve_model", lambda *a, **k: loaded.append(1) or real(*a, **k))
    result = CliRunner().invoke(cli, ["predict", "--model", models["seg"][0], str(tmp_path / "x.tif"),
                                      "--out", str(tmp_path / "afile" / "out")])
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.output and "Traceback" not in result.output
    assert loaded == []
    if os.path.isdir("/sys"):  # Linux
        # sysfs refuses new files even to root: a PermissionError that used to surface as a traceback
        result = run("--model", models["seg"][0], tmp_path / "x.tif", "--out", "/sys/temzoo-test-out")
        assert result.exit_code == 1 and "/sys, where the output folder would be created, is not writable" in result.output
        assert loaded == []
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            result = run("--model", models["seg"][0], tmp_path / "x.tif", "--out", locked)
            assert result.exit_code == 1 and "not writable" in result.output
        finally:
            locked.chmod(0o755)


def test_an_output_created_by_another_run_meanwhile_is_not_replaced(tmp_path, models, monkeypatch):
    tifffile.imwrite(tmp_path / "x.tif", np.ones((20, 20), "uint8"))
    out = tmp_path / "out"
    import tifffile as tf_module

    real_writer = tf_module.TiffWriter

    class OtherRunFirst(real_writer):  # the other run commits its output while this one predicts
        def __init__(self, *args, **kwargs):
            out.mkdir(exist_ok=True)
            (out / "x_segmentation.tif").write_bytes(b"the other run's result")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tf_module, "TiffWriter", OtherRunFirst)
    result = run("--model", models["seg"][0], tmp_path / "x.tif", "--out", out)
    assert result.exit_code == 1, result.output
    assert "x_segmentation.tif: the output file was created by another process" in result.output
    assert (out / "x_segmentation.tif").read_bytes() == b"the other run's result"
    assert os.listdir(out) == ["x_segmentation.tif"]


def test_max_pixels_refuses_large_images_before_the_model_loads(tmp_path, models):
    tifffile.imwrite(tmp_path / "big.tif", np.ones((40, 50), "uint8"))
    result = run("--model", models["seg"][0], tmp_path / "big.tif", "--out", tmp_path / "out", "--max-pixels", 1999)
    assert result.exit_code == 1
    assert "big.tif: the image is 40 x 50 = 2,000 pixels, above the limit of 1,999 pixels" in result.output
    assert not (tmp_path / "out").exists()


def test_tile_progress_goes_to_the_commands_stderr(tmp_path, models):
    # click.get_text_stream("stderr") opened the process's own stderr, bypassing click's (and a caller's)
    # redirection; the bar now writes to sys.stderr as seen when the command runs
    tifffile.imwrite(tmp_path / "x.tif", np.ones((300, 300), "uint8"))  # several tiles: a progress bar
    result = run("--model", models["seg"][0], tmp_path / "x.tif", "--out", tmp_path / "out", "--tile-size", 128)
    assert result.exit_code == 0, result.output
    assert re.search(r"  \d+ tiles", result.stderr) and "x_segmentation.tif" in result.stdout  # how many


def test_float64_beyond_float32_is_refused_by_predict_and_the_cli(tmp_path, models):
    from temzoo.errors import BadInputError

    image = np.random.default_rng(3).random((32, 32)) * 1e300
    model = temzoo.load(models["den"][0])
    with pytest.raises(BadInputError, match=r"values up to 1e\+300, beyond the float32 range"):
        temzoo.predict(model, image)
    np.testing.assert_array_equal(np.isfinite(temzoo.predict(model, image / 1e280)), True)  # 1e20: fine
    tifffile.imwrite(tmp_path / "huge.tif", image)
    result = run("--model", models["den"][0], tmp_path / "huge.tif", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "huge.tif: has values up to 1e+300, beyond the float32 range" in result.output
    assert "NaN" not in result.output


def test_precision_option_runs_the_model_in_bfloat16_and_records_it(tmp_path, models):
    image = np.random.default_rng(7).normal(500.0, 20.0, (64, 48)).astype("float32")
    tifffile.imwrite(tmp_path / "x.tif", image)
    path, _ = models["den"]
    result = run("--model", path, tmp_path / "x.tif", "--out", tmp_path / "out", "--precision", "mixed_bfloat16")
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(tmp_path / "out" / "x_denoising.tif") as tif:
        out = tif.asarray()
        assert json.loads(tif.pages[0].description)["precision"] == "mixed_bfloat16"
    full = temzoo.predict(temzoo.load(path), image)
    assert out.dtype == np.float32 and not np.array_equal(out, full)
    assert np.abs(out - full).max() < 0.05 * np.abs(full - full.mean()).max() + 1e-3 * abs(full.mean())
    assert run("--model", path, tmp_path / "x.tif", "--out", tmp_path / "o2", "--precision", "bf16").exit_code == 2


def test_a_bad_memory_target_fails_with_its_name_and_writes_nothing(tmp_path, models, monkeypatch):
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.ones((20, 24), "uint16"))
    monkeypatch.setenv("TEMZOO_PREDICT_MEMORY", "lots")
    out = tmp_path / "out"
    result = run("--model", models["seg"][0], image, "--out", out)
    assert result.exit_code != 0
    assert "TEMZOO_PREDICT_MEMORY='lots'" in result.output and "8G" in result.output
    assert not out.exists() or os.listdir(out) == []
    monkeypatch.setenv("TEMZOO_PREDICT_MEMORY", "3G")
    assert run("--model", models["seg"][0], image, "--out", out).exit_code == 0
