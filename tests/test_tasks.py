"""Task builders: heads, freezing, losses/metrics, fit in a user's script, save/reload, cards."""

import json

import keras
import numpy as np
import pytest

import temzoo
import temzoo.tasks as tasks
from temzoo.errors import UnknownNameError
from temzoo.tasks.losses import CrossEntropyDice, dice, psnr, ssim
from temzoo.zoo.cards import export_model, make_card
from temzoo.zoo.normalization import Normalizer


def tiny_unet():
    return temzoo.build("unet_b2_p22", base_filters=4)


def eager(model):
    """Run fit/evaluate eagerly: seconds instead of tracing a graph on a 2-core CI machine.
    (test_fit_in_a_user_script... keeps the graph mode a user gets.)"""
    model.run_eagerly = True
    return model


def masks(images):
    return (images > 0.5).astype("int32")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 1)).astype("float32")
    return x, masks(x)


def test_segmentation_head_replaces_generator_head():
    backbone = tiny_unet()
    model = tasks.segmentation(backbone, num_classes=3)
    assert model.output_shape == (None, None, None, 3)
    assert model.get_layer("head_activation").activation.__name__ == "softmax"
    assert model.get_layer("head").filters == 3
    # the backbone's own head is not part of the task model
    assert backbone.get_layer("head") not in model.layers
    probs = model.predict_on_batch(np.zeros((1, 32, 32, 1), "float32"))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_fit_in_a_user_script_with_integer_and_one_hot_masks(data):
    x, y = data
    model = tasks.segmentation(tiny_unet(), learning_rate=1e-2)
    history = model.fit(x, y, epochs=4, batch_size=4, verbose=0)
    assert set(history.history) >= {"loss", "mean_iou_with_background", "iou", "dice"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    one_hot = keras.utils.to_categorical(y[..., 0], 2)
    assert np.isfinite(eager(model).fit(x, one_hot, epochs=1, verbose=0).history["loss"][0])


def test_freeze_encoder_keeps_encoder_weights_and_unfreeze_trains_them(data):
    x, y = data
    model = eager(tasks.segmentation(tiny_unet(), freeze="encoder"))
    enc = model.get_layer("enc0_0_conv")
    dec = model.get_layer("dec0_0_conv")
    assert not enc.trainable and dec.trainable
    enc_before, dec_before = enc.kernel.numpy().copy(), dec.kernel.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(enc.kernel.numpy(), enc_before)
    assert not np.allclose(dec.kernel.numpy(), dec_before)

    tasks.unfreeze(model)
    assert all(layer.trainable for layer in model.layers)
    eager(model)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(enc.kernel.numpy(), enc_before)


def test_freeze_all_but_head_trains_only_the_head():
    model = tasks.denoising(tiny_unet(), freeze="all_but_head")
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"head"}


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="all_but_head"):
        tasks.segmentation(tiny_unet(), freeze="decoder")
    with pytest.raises(ValueError, match="scale"):
        tasks.super_resolution(tiny_unet(), scale=3)
    with pytest.raises(ValueError, match="at least 2"):
        tasks.segmentation(tiny_unet(), num_classes=1)


def test_encoder_rule_without_family_stops_at_first_upsampling():
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = keras.layers.MaxPooling2D(name="b")(x)
    x = keras.layers.UpSampling2D(name="c")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="d")(x)
    x = keras.layers.Conv2D(1, 1, name="head")(x)
    x = keras.layers.Activation("linear", name="head_activation")(x)
    model = keras.Model(inputs, x)
    assert tasks.encoder_layer_names(model) == ["a", "b"]
    assert tasks.encoder_layer_names(tiny_unet())[:3] == ["enc0_0_conv", "enc0_0_norm", "enc0_0_act"]


def test_super_resolution_scale_2_doubles_the_size():
    model = eager(tasks.super_resolution(tiny_unet(), scale=2))
    x = np.random.default_rng(1).random((2, 16, 16, 1)).astype("float32")
    assert model.predict_on_batch(x).shape == (2, 32, 32, 1)
    history = model.fit(x, np.repeat(np.repeat(x, 2, 1), 2, 2), epochs=1, verbose=0)
    assert {"psnr", "ssim"} <= set(history.history)


def test_saved_task_model_reloads_safely_with_compile_and_card(tmp_path, data):
    x, y = data
    model = eager(tasks.segmentation(tiny_unet()))
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "seg.keras"
    card = tasks.save(model, path, dataset="in-memory")
    on_disk = json.loads((tmp_path / "seg.json").read_text())
    assert on_disk["task"] == "segmentation" and on_disk["num_classes"] == 2
    assert on_disk["dataset"] == "in-memory" and on_disk["sha256"] == card["sha256"]
    reloaded = keras.saving.load_model(path, compile=True, safe_mode=True)
    eager(reloaded)
    np.testing.assert_allclose(reloaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    a = model.evaluate(x, y, verbose=0, return_dict=True)
    b = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert temzoo.card(temzoo.load(path))["task"] == "segmentation"


def test_backbone_by_path_and_registry_name_carries_normalizer(tmp_path):
    generator = tiny_unet()
    path = tmp_path / "gen.keras"
    normalizer = Normalizer("percentile", low=2, high=98)
    card = export_model(generator, path, make_card(generator, name="gen", architecture="unet_b2_p22",
                                                   normalization=normalizer.get_config()))
    from_path = tasks.denoising(str(path))
    assert temzoo.card(from_path)["normalization"] == normalizer.get_config()
    assert temzoo.card(from_path)["backbone"]["sha256"] == card["sha256"]

    temzoo.register("test_tasks_generator", path)
    try:
        by_name = tasks.background_removal("test_tasks_generator")
        draft = temzoo.card(by_name)
        assert draft["backbone"] == {"name": "test_tasks_generator", "source": "pretrained",
                                     "sha256": card["sha256"], "random_init": False}
        assert draft["normalization"] == normalizer.get_config()
        assert draft["architecture"] == "unet_b2_p22"
        # the generator's weights are kept, not re-initialised
        np.testing.assert_array_equal(by_name.get_layer("enc0_0_conv").kernel.numpy(),
                                      generator.get_layer("enc0_0_conv").kernel.numpy())
    finally:
        from temzoo.zoo.pretrained import unregister

        unregister("test_tasks_generator")


def test_architecture_name_is_random_init_and_unknown_name_lists_matches():
    model = tasks.denoising("unet_b2_p22")
    assert temzoo.card(model)["backbone"]["random_init"] is True
    with pytest.raises(UnknownNameError, match="unet_b2_p22"):
        tasks.denoising("unet_b2_p2")


def test_losses_and_metrics_values():
    truth = np.zeros((1, 8, 8, 1), "int32")
    truth[0, :4] = 1
    perfect = keras.utils.to_categorical(truth[..., 0], 2).astype("float32")
    loss = CrossEntropyDice()
    assert float(loss(truth, np.clip(perfect, 1e-7, 1))) < 1e-3
    wrong = 1.0 - perfect
    assert float(loss(truth, np.clip(wrong, 1e-7, 1))) > 5
    assert float(np.asarray(dice(truth, perfect))[0]) == pytest.approx(1.0)
    half = perfect.copy()
    half[0, :2] = [1.0, 0.0]  # half the foreground predicted as background
    assert float(np.asarray(dice(truth, half))[0]) == pytest.approx(2 * 16 / (32 + 16), rel=1e-4)

    image = np.linspace(0, 1, 16 * 16, dtype="float32").reshape(1, 16, 16, 1)
    noisy = image + 0.1
    assert float(np.asarray(psnr(image, noisy))[0]) == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.01)
    assert float(np.asarray(ssim(image, image))[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(np.asarray(ssim(image, noisy[:, ::-1]))[0]) < 0.9


def test_task_models_use_the_fine_tuning_batchnorm_momentum():
    import keras

    from temzoo.tasks.builder import FINETUNE_BN_MOMENTUM, set_batchnorm_momentum

    backbone = temzoo.build("unet_b2_p22", base_filters=4)
    assert {layer.momentum for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}
    model = temzoo.tasks.denoising(backbone)
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {FINETUNE_BN_MOMENTUM}
    assert set_batchnorm_momentum(model, 0.5) == len(
        [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    )
