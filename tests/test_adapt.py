"""Self-supervised adaptation: masking, splitting, the run (export, resume, refusals) and the CLI."""

import json
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import temzoo
from temzoo.adaptation import AdaptConfig, RunExistsError
from temzoo.adaptation.inputs import choose_method, load_frames
from temzoo.adaptation.masking import blind_spot_batch, mask_coordinates, neighbourhood_median
from temzoo.adaptation.splitting import binomial_split, to_counts
from temzoo.errors import BadInputError
from temzoo.zoo.cards import export_model, make_card

PRETEXT = {"task": "restore the clean image from a Poisson-noised copy", "noise_model": "poisson"}
TINY = dict(steps=4, batch_size=2, patch_size=16, checkpoint_every=2, recalibration_batches=2)


@pytest.fixture(scope="module")
def generator_path(tmp_path_factory):
    """A tiny generator saved with a pretext card, as `temzoo-cli pretrain` exports one."""
    keras.utils.set_random_seed(3)
    generator = temzoo.build("unet_b2_p22", base_filters=4)
    path = tmp_path_factory.mktemp("gen") / "gen.keras"
    export_model(generator, path, make_card(generator, name="gen", architecture="unet_b2_p22", pretext=PRETEXT))
    return str(path)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    clean = np.kron(rng.random((4, 4)), np.ones((8, 8))) * 8 + 1
    return rng.poisson(clean).astype(np.float32)  # 32 x 32 whole numbers


# ----------------------------------------------------------------------------- masking
def test_masked_pixels_get_the_median_of_their_neighbours_without_themselves():
    rng = np.random.default_rng(1)
    patch = rng.normal(size=(20, 24)).astype("float32")
    rows, cols = mask_coordinates(patch.shape, 0.05, rng)
    assert 0.03 <= len(rows) / patch.size <= 0.06
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == len(rows)  # one per grid cell
    r, c = 10, 12
    window = patch[r - 2:r + 3, c - 2:c + 3].ravel()
    expected = np.median(np.delete(window, 12))
    assert neighbourhood_median(patch, np.array([r]), np.array([c]), 5)[0] == pytest.approx(expected)
    spiked = patch.copy()
    spiked[r, c] = 1e6  # the centre never leaks into its replacement
    assert neighbourhood_median(spiked, np.array([r]), np.array([c]), 5)[0] == pytest.approx(expected)

    inputs, targets, weights = blind_spot_batch(patch[None], 0.05, 5, np.random.default_rng(2))
    masked = weights[0, ..., 0] == 1
    np.testing.assert_array_equal(targets[0, ..., 0], patch)
    np.testing.assert_array_equal(inputs[0, ..., 0][~masked], patch[~masked])
    assert masked.sum() > 10 and not np.allclose(inputs[0, ..., 0][masked], patch[masked])


# ----------------------------------------------------------------------------- splitting
def test_binomial_halves_add_up_and_are_independent_for_poisson_counts():
    rng = np.random.default_rng(4)
    counts = rng.poisson(6.0, size=(300, 300)).astype(np.float64)
    first, second = binomial_split(counts, 0.5, rng)
    np.testing.assert_allclose(0.5 * first + 0.5 * second, counts)
    assert first.mean() == pytest.approx(6.0, abs=0.05) and second.mean() == pytest.approx(6.0, abs=0.05)
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.02  # Poisson thinning: independent


def test_counts_are_required_for_splitting_with_clear_errors(counts):
    np.testing.assert_array_equal(to_counts(counts * 2.5 + 100, gain=2.5, offset=100), counts)
    with pytest.raises(BadInputError, match=r"scan\.tif.*not whole numbers.*--gain"):
        to_counts(counts + 0.3, name="scan.tif")
    with pytest.raises(BadInputError, match=r"below zero.*--offset"):
        to_counts(counts - 5)
    assert choose_method(AdaptConfig(), [("a", counts)]) == "binomial"
    assert choose_method(AdaptConfig(), [("a", counts), ("b", counts + 0.5)]) == "blind_spot"
    with pytest.raises(BadInputError, match="b: binomial"):
        choose_method(AdaptConfig(method="binomial"), [("a", counts), ("b", counts + 0.5)])


def test_bad_inputs_and_settings_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="missing.tif: no such file"):
        load_frames([str(tmp_path / "missing.tif")])
    with pytest.raises(BadInputError, match="constant"):
        load_frames(np.ones((32, 32)))
    with pytest.raises(BadInputError, match="too small"):
        load_frames(np.random.default_rng(0).random((8, 40)))
    with pytest.raises(BadInputError, match="no input images"):
        load_frames([])
    with pytest.raises(ValueError, match="method='n2v'"):
        AdaptConfig(method="n2v")
    with pytest.raises(ValueError, match="split_fraction"):
        AdaptConfig(split_fraction=1.0)


# ----------------------------------------------------------------------------- runs
def test_adapt_writes_a_loadable_denoiser_with_its_card_and_resumes_exactly(generator_path, counts, tmp_path):
    """An interrupted run, re-run with the same call, ends with the weights of an uninterrupted one."""
    whole = temzoo.adapt(generator_path, counts, out=tmp_path / "whole", **TINY)
    card = json.load(open(tmp_path / "whole" / "model.json"))
    assert card["task"] == "denoising" and card["head"] == "kept" and card["batch_norm"] == "frozen"
    assert card["adaptation"]["method"] == "binomial" and card["adaptation"]["from"]["name"] == "gen"
    loaded = temzoo.load(whole.model_path)
    restored = temzoo.predict(loaded, counts)
    assert restored.shape == counts.shape and np.isfinite(restored).all()
    assert abs(restored.mean() - counts.mean()) < 0.5 * counts.std()  # mapped back to the input's scale

    class Stop(Exception):
        pass

    def interrupt(step, model):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        temzoo.adapt(generator_path, counts, out=tmp_path / "cut", callback=interrupt, **TINY)
    assert not os.path.exists(tmp_path / "cut" / "model.keras")
    resumed = temzoo.adapt(generator_path, counts, out=tmp_path / "cut", **TINY)
    assert resumed.resumed_from_step == 2
    for a, b in zip(resumed.model.weights, whole.model.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5)

    with pytest.raises(RunExistsError, match="finished"):
        temzoo.adapt(generator_path, counts, out=tmp_path / "cut", **TINY)
    with pytest.raises(RunExistsError, match="different adaptation run.*config"):
        temzoo.adapt(generator_path, counts, out=tmp_path / "cut", **{**TINY, "steps": 5})


def test_cli_adapts_files_and_predict_uses_the_result(generator_path, counts, tmp_path):
    import tifffile
    from temzoo_cli.main import cli

    tif = tmp_path / "scan.tif"
    tifffile.imwrite(tif, (counts + 0.25).astype("float32"))  # not counts: auto falls back to the blind spot
    runner = CliRunner()
    out = tmp_path / "adapted"
    result = runner.invoke(cli, ["adapt", "--model", generator_path, "--out", str(out), str(tif), "--steps", "2",
                                 "--batch-size", "2", "--patch-size", "16"])
    assert result.exit_code == 0, result.output
    assert json.load(open(out / "model.json"))["adaptation"]["method"] == "blind_spot"
    predicted = runner.invoke(cli, ["predict", "--model", str(out / "model.keras"), "--out", str(tmp_path / "p"),
                                    str(tif)])
    assert predicted.exit_code == 0, predicted.output
    assert os.path.exists(tmp_path / "p" / "scan_denoising.tif")

    bad = runner.invoke(cli, ["adapt", "--model", generator_path, "--out", str(tmp_path / "b"), str(tif),
                              "--method", "binomial"])
    assert bad.exit_code != 0 and "not whole numbers" in bad.output
    assert not os.path.exists(tmp_path / "b" / "model.keras")


def test_adapt_trains_in_bfloat16_and_exports_float32(generator_path, counts, tmp_path):
    from temzoo.inference.precision import model_precision

    seen = []
    result = temzoo.adapt(generator_path, counts, out=tmp_path / "bf16", precision="mixed_bfloat16",
                          callback=lambda step, model: seen.append(model_precision(model)), **TINY)
    assert set(seen) == {"mixed_bfloat16"}
    card = json.load(open(tmp_path / "bf16" / "model.json"))
    assert card["adaptation"]["settings"]["precision"] == "mixed_bfloat16" and card["task"] == "denoising"
    loaded = temzoo.load(result.model_path)
    assert model_precision(loaded) == "float32"
    assert np.isfinite(temzoo.predict(loaded, counts)).all()
    with pytest.raises(ValueError, match="precision"):
        AdaptConfig(precision="half")


def test_batch_norm_can_train_on_pretrained_weights_and_is_recalibrated(generator_path, counts, tmp_path):
    def moving(model):
        return [keras.ops.convert_to_numpy(w) for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization) for w in (layer.moving_mean, layer.moving_variance)]

    before = moving(temzoo.load(generator_path))
    assert before  # the tiny generator has BatchNormalization
    trained = temzoo.adapt(generator_path, counts, out=tmp_path / "train", batch_norm="train", **TINY)
    card = json.load(open(tmp_path / "train" / "model.json"))
    assert card["batch_norm"] == "train" and card["adaptation"]["batch_norm_recalibration_batches"] == 2
    assert card["adaptation"]["settings"]["batch_norm"] == "train"
    after = moving(temzoo.load(trained.model_path))
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))
    with pytest.raises(ValueError, match="batch_norm"):
        AdaptConfig(batch_norm="sometimes")


def test_cli_options_are_generated_from_the_config():
    import dataclasses

    from temzoo_cli.adapt_cmd import adapt as command

    options = {p.name: p for p in command.params}
    for field in dataclasses.fields(AdaptConfig):
        assert options[field.name].default == field.default, field.name
        assert options[field.name].help == field.metadata["help"], field.name
    assert tuple(options["head"].type.choices) == ("auto", "keep", "new")
    assert "``batch_size`` = ``8`` (``--batch-size``): Patches per step." in AdaptConfig.__doc__


def test_cli_keeps_the_earlier_new_head_flag(monkeypatch, tmp_path):
    """`--new-head` (the flag before `--head`) still means `--head new`."""
    from click.testing import CliRunner
    from temzoo_cli.main import cli

    import temzoo.adaptation
    from temzoo.errors import TemzooError

    seen = {}

    def fake_adapt(model, images, *, out, overwrite, progress=None, **settings):
        seen.update(settings)
        raise TemzooError("stop here")

    monkeypatch.setattr(temzoo.adaptation, "adapt", fake_adapt)
    image = tmp_path / "x.tif"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["adapt", "--new-head", "--out", str(tmp_path / "o"), str(image)])
    assert seen.get("head") == "new", (result.output, seen)
