"""Test-time self-ensemble (temzoo.inference.ensemble, temzoo.predict(..., ensemble=N))."""

import os

import keras
import numpy as np
import pytest

import temzoo
from temzoo.inference.ensemble import dihedral, inverse_dihedral, self_ensemble


def test_the_eight_transforms_are_distinct_and_undone():
    image = np.random.default_rng(0).random((5, 7, 2))
    seen = set()
    for k in range(8):
        turned = dihedral(image, k)
        assert turned.shape == ((5, 7, 2) if k % 2 == 0 else (7, 5, 2))
        np.testing.assert_array_equal(inverse_dihedral(turned, k), image)
        seen.add(np.ascontiguousarray(dihedral(image[..., 0][:5, :5], k)).tobytes())
    assert len(seen) == 8


def test_orientation_dependent_errors_average_out():
    """A predictor that adds a left-to-right ramp: averaged over the 8 symmetries the ramp becomes its mean."""
    image = np.random.default_rng(1).random((6, 6)).astype(np.float32)
    ramp = np.arange(6, dtype=np.float32)[None, :].repeat(6, 0)
    calls = []

    def biased(x, report):
        calls.append(x.shape)
        report(1, 1)
        return x + ramp

    ticks = []
    out = self_ensemble(biased, image, 8, progress=lambda done, total: ticks.append((done, total)))
    np.testing.assert_allclose(out, image + 2.5, atol=1e-6)
    assert len(calls) == 8 and ticks[-1] == (8, 8)
    np.testing.assert_allclose(self_ensemble(biased, image, 1), image + ramp)
    flips = self_ensemble(biased, image, 2)  # identity and left-right flip: the ramp and its mirror
    np.testing.assert_allclose(flips, image + 2.5, atol=1e-6)


def _shift_left():
    """out[i, j] = in[i, j - 1]: a model that is not invariant to rotations or flips."""
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 0] = 1.0
    inputs = keras.Input((None, None, 1))
    outputs = keras.layers.Conv2D(1, 3, padding="same", use_bias=False,
                                  kernel_initializer=keras.initializers.Constant(kernel))(inputs)
    return keras.Model(inputs, outputs)


def test_predict_with_ensemble_averages_the_four_neighbours():
    model = _shift_left()
    image = np.random.default_rng(2).random((40, 48)).astype(np.float32)
    plain = temzoo.predict(model, image)
    np.testing.assert_allclose(plain[5:-5, 5:-5], image[5:-5, 4:-6], atol=1e-6)
    averaged = temzoo.predict(model, image, ensemble=8)
    assert averaged.shape == image.shape
    neighbours = (image[4:-6, 5:-5] + image[6:-4, 5:-5] + image[5:-5, 4:-6] + image[5:-5, 6:-4]) / 4
    np.testing.assert_allclose(averaged[5:-5, 5:-5], neighbours, atol=1e-5)
    np.testing.assert_array_equal(temzoo.predict(model, image, ensemble=1), plain)
    with pytest.raises(ValueError, match="ensemble must be one of"):
        temzoo.predict(model, image, ensemble=3)


def test_cli_predict_ensemble_option(tmp_path):
    import tifffile
    from click.testing import CliRunner
    from temzoo_cli.main import cli

    model = _shift_left()
    path = tmp_path / "shift.keras"
    model.save(path)
    image = np.random.default_rng(3).random((40, 48)).astype(np.float32)
    tif = tmp_path / "scan.tif"
    tifffile.imwrite(tif, image)
    runner = CliRunner()
    done = runner.invoke(cli, ["predict", "--model", str(path), "--out", str(tmp_path / "p"), "--ensemble", "8", str(tif)])
    assert done.exit_code == 0, done.output
    written = tifffile.imread(tmp_path / "p" / "scan_denoising.tif")
    np.testing.assert_allclose(written, temzoo.predict(model, image, ensemble=8), atol=1e-5)
    assert not np.allclose(written, temzoo.predict(model, image), atol=1e-3)
    bad = runner.invoke(cli, ["predict", "--model", str(path), "--out", str(tmp_path / "q"), "--ensemble", "3", str(tif)])
    assert bad.exit_code != 0 and "3" in bad.output and not os.path.exists(tmp_path / "q")
