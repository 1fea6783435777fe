"""PatchGAN discriminator: receptive field (analytic and measured), conditioning, presets, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import temzoo
from temzoo.models.patchgan import PatchGANDiscriminator, patchgan_receptive_field
from temzoo.models.patchgan_presets import PATCHGAN_PRESETS


def test_default_is_the_70x70_patchgan_of_isola_et_al():
    d = PatchGANDiscriminator()
    assert d.patch_size == 70
    convs = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 128, 256, 512, 1]
    assert [c.strides for c in convs] == [(2, 2)] * 3 + [(1, 1)] * 2
    assert all(c.kernel_size == (4, 4) for c in convs)
    # no normalisation after the first convolution, synchronized BN after the others
    norms = [layer for layer in d.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [n.name for n in norms] == ["block1_norm", "block2_norm", "block3_norm"]
    assert all(n.synchronized for n in norms)
    slopes = {layer.negative_slope for layer in d.layers if isinstance(layer, keras.layers.LeakyReLU)}
    assert slopes == {0.2}


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_measured_receptive_field_matches_the_formula(num_layers):
    """The input pixels that influence one central logit span exactly the analytic receptive field."""
    keras.utils.set_random_seed(0)
    d = PatchGANDiscriminator(num_layers=num_layers, base_filters=4, normalization="none")
    size = 128
    x = tf.Variable(tf.random.normal((1, size, size, 1)))
    y = tf.Variable(tf.random.normal((1, size, size, 1)))
    with tf.GradientTape() as tape:
        logits = d([x, y])
        centre = logits.shape[1] // 2
        value = logits[0, centre, centre, 0]
    grad = np.abs(tape.gradient(value, x).numpy()[0, ..., 0])
    rows, cols = np.nonzero(grad.sum(axis=1))[0], np.nonzero(grad.sum(axis=0))[0]
    expected = patchgan_receptive_field(num_layers)
    assert rows.max() - rows.min() + 1 == expected
    assert cols.max() - cols.min() + 1 == expected


def test_preset_names_state_their_receptive_field():
    assert {"patchgan_16", "patchgan_34", "patchgan_70", "patchgan_142"} <= set(PATCHGAN_PRESETS)
    for name, preset in PATCHGAN_PRESETS.items():
        assert preset["description"]
        assert int(name.split("_")[1]) == patchgan_receptive_field(preset["config"]["num_layers"])


def test_registry_builds_a_discriminator():
    d = temzoo.build("patchgan_34", base_filters=4)
    assert isinstance(d, PatchGANDiscriminator) and d.patch_size == 34
    assert "patchgan_70" in temzoo.list_architectures(kind="discriminator")


def test_conditional_logits_map_shape_dtype_and_dependence_on_both_inputs():
    keras.utils.set_random_seed(1)
    d = PatchGANDiscriminator(num_layers=2, base_filters=4, normalization="group", groups=2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 32, 48, 1)).astype("float32")
    y = rng.normal(size=(2, 32, 48, 1)).astype("float32")
    out = d([x, y]).numpy()
    assert out.shape == (2, 8, 12, 1) and out.dtype == np.float32
    assert not np.allclose(out, d([x, y + 1.0]).numpy())  # depends on the target
    assert not np.allclose(out, d([x + 1.0, y]).numpy())  # and on the conditioning input


def test_config_round_trip_and_safe_mode_save_load(tmp_path):
    keras.utils.set_random_seed(2)
    d = PatchGANDiscriminator(num_layers=2, base_filters=4, max_filters=8, kernel_size=3, normalization="instance",
                              negative_slope=0.1, input_channels=1, target_channels=2, name="disc")
    config = d.get_config()
    assert PatchGANDiscriminator.from_config(config).get_config() == config
    path = tmp_path / "d.keras"
    d.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 1)).astype("float32")
    y = np.random.default_rng(1).normal(size=(1, 16, 16, 2)).astype("float32")
    np.testing.assert_allclose(loaded([x, y]).numpy(), d([x, y]).numpy(), rtol=1e-6, atol=1e-6)


def test_bad_arguments_are_refused_with_the_valid_values():
    with pytest.raises(ValueError, match="normalization"):
        PatchGANDiscriminator(normalization="layer")
    with pytest.raises(ValueError, match="num_layers"):
        PatchGANDiscriminator(num_layers=0)


def test_logits_are_float32_under_mixed_precision():
    from temzoo.inference.precision import policy_scope

    with policy_scope("mixed_bfloat16"):
        d = PatchGANDiscriminator(num_layers=1, base_filters=4)
    x = np.zeros((1, 16, 16, 1), "float32")
    assert d([x, x]).dtype == tf.float32
    assert keras.config.dtype_policy().name == "float32"  # the scope restored the global policy
