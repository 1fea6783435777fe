"""Task models keep a pretrained denoising head, and fine-tune with BatchNormalization in inference mode (issue 17)."""

import keras
import numpy as np
import pytest

import temzoo
import temzoo.tasks as tasks
from temzoo.zoo.cards import export_model, make_card

PRETEXT = {"task": "restore the clean image from a Poisson-noised copy", "noise_model": "poisson"}


@pytest.fixture(scope="module")
def pretrained_path(tmp_path_factory):
    """A tiny generator saved with a pretext card, as `temzoo-cli pretrain` exports one; its
    BatchNormalization statistics are those of a short training (not the initial 0/1)."""
    keras.utils.set_random_seed(1)
    generator = temzoo.build("unet_b2_p22", base_filters=4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        generator(rng.normal(2.0, 3.0, (4, 32, 32, 1)).astype("float32"), training=True)
    path = tmp_path_factory.mktemp("gen") / "gen.keras"
    export_model(generator, path, make_card(generator, name="gen", architecture="unet_b2_p22", pretext=PRETEXT))
    return str(path)


def batch_norm_layers(model):
    from temzoo.training.batch_norm import batch_norm_layers as layers

    return layers(model)


def test_denoising_keeps_the_pretrained_head_and_starts_from_the_shipped_output(pretrained_path):
    generator = temzoo.load(pretrained_path)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 1)).astype("float32")
    model = tasks.denoising(pretrained_path)
    np.testing.assert_allclose(model(x, training=False), generator(x, training=False), atol=1e-5)
    assert temzoo.card(model)["head"] == "kept"
    new = tasks.denoising(pretrained_path, head="new")
    assert temzoo.card(new)["head"] == "new"
    assert not np.allclose(new(x, training=False), generator(x, training=False), atol=1e-3)


def test_head_is_new_for_other_tasks_random_weights_and_refused_when_it_cannot_be_kept(pretrained_path):
    assert temzoo.card(tasks.background_removal(pretrained_path))["head"] == "new"
    assert temzoo.card(tasks.denoising("unet_b2_p22"))["head"] == "new"  # random weights: nothing to keep
    with pytest.raises(ValueError, match="random"):
        tasks.denoising("unet_b2_p22", head="keep")
    with pytest.raises(ValueError, match="2x head"):
        tasks.super_resolution(pretrained_path, scale=2, head="keep")
    with pytest.raises(ValueError, match="head='sometimes'"):
        tasks.denoising(pretrained_path, head="sometimes")


def test_fine_tuning_trained_weights_exports_what_it_trained(pretrained_path):
    """The bug of issue 17: with trainable BatchNormalization, fine-tuning on small batches of
    one image left the inference-mode model (the one exported and predicted with) far from
    the training-mode model that the loss improved. With the layers frozen in inference
    mode, both modes compute the same function and the moving statistics stay as trained."""
    model = tasks.denoising(pretrained_path, learning_rate=1e-2)
    layers = batch_norm_layers(model)
    before = [keras.ops.convert_to_numpy(layer.moving_mean) for layer in layers]
    rng = np.random.default_rng(2)
    clean = rng.random((8, 32, 32, 1)).astype("float32") * 4
    noisy = (clean + rng.normal(0, 1, clean.shape)).astype("float32")
    model.run_eagerly = True  # seconds instead of tracing a graph on a 2-core CI machine
    model.fit(noisy, clean, epochs=2, batch_size=4, verbose=0)
    for layer, mean in zip(layers, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), mean)
    x = noisy[:4]
    np.testing.assert_allclose(model(x, training=False), model(x, training=True), atol=1e-5)
    assert temzoo.card(model)["batch_norm"] == "frozen"
    assert layers and not any(layer.trainable for layer in layers)
    # tasks.unfreeze (after a frozen-encoder phase) keeps them frozen
    tasks.unfreeze(model)
    assert not any(layer.trainable for layer in layers)


def test_random_weights_train_batch_norm_and_it_can_be_chosen(pretrained_path):
    model = tasks.denoising("unet_b2_p22")
    assert temzoo.card(model)["batch_norm"] == "train"
    assert all(layer.trainable for layer in batch_norm_layers(model))
    chosen = tasks.denoising(pretrained_path, batch_norm="train")
    assert all(layer.trainable for layer in batch_norm_layers(chosen))
    with pytest.raises(ValueError, match="batch_norm"):
        tasks.denoising(pretrained_path, batch_norm="maybe")
    # a new segmentation head on pretext features: the statistics must adapt (frozen ones left
    # README's main command predicting only background)
    segmentation = tasks.segmentation(pretrained_path, num_classes=2)
    assert temzoo.card(segmentation)["batch_norm"] == "train"
    assert all(layer.trainable for layer in batch_norm_layers(segmentation))
