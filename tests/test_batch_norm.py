"""Precise BN: BatchNormalization moving statistics re-estimated from batches after training."""

import json

import keras
import numpy as np
import pytest

from temzoo.training.batch_norm import batch_norm_layers, recalibrate_batch_norm


def _model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.99, name="bn")(x)
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.BatchNormalization(name="inner_bn")], name="inner")
    return keras.Model(inputs, inner(x))


def test_moving_statistics_become_the_mean_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=i, scale=1 + i, size=(4, 8, 8, 1)).astype("float32") for i in range(3)]
    weights_before = [w.copy() for w in model.get_weights()]
    conv = keras.Model(model.input, model.get_layer("conv").output)
    features = [conv(b).numpy() for b in batches]
    want_mean = np.mean([f.mean(axis=(0, 1, 2)) for f in features], axis=0)
    want_var = np.mean([f.var(axis=(0, 1, 2)) for f in features], axis=0)

    assert recalibrate_batch_norm(model, batches) == 3
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), want_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), want_var, rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99  # restored
    names = {layer.name for layer in batch_norm_layers(model)}
    assert names == {"bn", "inner_bn"}  # nested models are reached
    inner = model.get_layer("inner").get_layer("inner_bn")
    assert not np.allclose(inner.moving_mean.numpy(), 0.0)  # it saw the normalised features
    changed = [not np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights(), strict=True)]
    trainable = [not np.array_equal(a, b) for a, b in
                 zip(weights_before[:2], model.get_weights()[:2], strict=True)]  # conv kernel and bias
    assert any(changed) and not any(trainable)


def test_no_batches_is_an_error_and_leaves_the_model_as_it_was():
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batch_norm(model, [])
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.get_layer("bn").momentum == 0.99


def test_a_model_without_batch_norm_is_left_alone():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same")])

    def never():
        raise AssertionError("batches must not be read")
        yield

    assert recalibrate_batch_norm(model, never()) == 0


def test_pretrain_exports_a_recalibrated_generator_and_keeps_the_trained_one(tmp_path):
    from test_pretraining import TINY, _images

    import temzoo
    from temzoo.pretraining import pretrain

    args = {**TINY, "epochs": 1, "validation_steps": 0}
    result = pretrain("unet_b2_p22", _images(), "autoencoder", out=tmp_path / "r",
                      batch_norm_recalibration_batches=2, **args)
    record = result.card["batch_norm_recalibration"]
    assert record["batches"] == 2 and record["images"] == 2 * args["batch_size"] and record["layers"] > 0
    exported = temzoo.load(result.model_path)
    trained = {layer.path: layer.moving_mean.numpy() for layer in batch_norm_layers(result.generator)}
    shipped = {layer.path: layer.moving_mean.numpy() for layer in batch_norm_layers(exported)}
    assert len(trained) == len(shipped) == record["layers"]
    assert any(not np.allclose(a, b) for a, b in zip(trained.values(), shipped.values(), strict=True))
    # same weights otherwise: the kernels of the export are the trained ones
    np.testing.assert_array_equal(exported.get_weights()[0], result.generator.get_weights()[0])
    assert json.loads((tmp_path / "r" / "run.json").read_text())["batch_norm_recalibration_batches"] == 2

    # A finished run re-exported without recalibration (resume: only the export changes).
    again = pretrain("unet_b2_p22", _images(), "autoencoder", out=tmp_path / "r", resume=True, **args)
    assert again.resumed_from_step == result.step and "batch_norm_recalibration" not in again.card
    plain = temzoo.load(again.model_path)
    for layer, want in zip(batch_norm_layers(plain), trained.values(), strict=True):
        np.testing.assert_allclose(layer.moving_mean.numpy(), want, rtol=1e-6, atol=1e-6)


def test_negative_recalibration_is_refused(tmp_path):
    from test_pretraining import TINY, _images

    from temzoo.pretraining import pretrain

    with pytest.raises(ValueError, match="batch_norm_recalibration_batches"):
        pretrain("unet_b2_p22", _images(), "autoencoder", out=tmp_path / "r", batch_norm_recalibration_batches=-1,
                 **TINY)
    assert not (tmp_path / "r").exists()


def test_a_traced_forward_kept_between_calls_gives_the_eager_statistics():
    from temzoo.training.batch_norm import training_forward

    rng = np.random.default_rng(1)
    batches = [rng.normal(loc=i, scale=1 + i, size=(4, 8, 8, 1)).astype("float32") for i in range(4)]
    eager, traced = _model(), _model()
    traced.set_weights(eager.get_weights())
    forward = training_forward(traced)
    for part in (batches[:2], batches[2:]):  # two recalibrations through one traced function
        recalibrate_batch_norm(eager, part)
        assert recalibrate_batch_norm(traced, part, forward) == 2
        for a, b in zip(eager.get_weights(), traced.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert traced.get_layer("bn").momentum == 0.99
    assert len(forward.get_concrete_function(batches[0]).graph.get_operations()) > 0  # it is a graph
