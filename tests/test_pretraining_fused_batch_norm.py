"""temzoo.training.fused_batch_norm: BatchNormalization trained through FusedBatchNormV3 computes what Keras does,
and the pretraining trainers use it (traced once per fit)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from temzoo.models.patchgan import PatchGANDiscriminator
from temzoo.models.unet import UNet
from temzoo.pretraining import Autoencoder, Pix2Pix
from temzoo.training.fused_batch_norm import batch_norm_layers, fused_batch_norm


def _bn_model(seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)(x)
    y = keras.layers.BatchNormalization(synchronized=True, momentum=0.9)(y)
    return keras.Model(x, y)


def _training_step(model, bn, upstream, fused):
    @tf.function
    def step(x):
        with fused_batch_norm([model], enabled=fused), tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, [x, bn.gamma, bn.beta])

    return step


@pytest.mark.parametrize("batch", [1, 3])
def test_fused_training_call_matches_keras(batch):
    """Output, gradients (input, gamma, beta) and moving statistics equal Keras' own training call."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, size=(batch, 6, 7, 3)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(batch, 6, 7, 5)).astype("float32"))
    gamma = rng.uniform(0.5, 2.0, 5).astype("float32")
    results = []
    for fused in (False, True):
        model = _bn_model(1)
        bn = batch_norm_layers([model])[0]
        bn.gamma.assign(gamma)
        bn.beta.assign(np.arange(5, dtype="float32"))

        step = _training_step(model, bn, upstream, fused)
        y, grads = step(x)
        ops = {op.type for op in step.get_concrete_function(x).graph.get_operations()}
        assert ("FusedBatchNormV3" in ops) == fused
        assert "call" not in vars(bn)  # the layer's own call again after the context
        results.append([y.numpy()] + [g.numpy() for g in grads] + [bn.moving_mean.numpy(), bn.moving_variance.numpy()])
    assert np.abs(results[0][4] - 0.0).max() > 0.05 and np.abs(results[0][5] - 1.0).max() > 0.05  # stats moved
    for keras_value, fused_value in zip(*results, strict=True):
        np.testing.assert_allclose(fused_value, keras_value, rtol=2e-4, atol=2e-4)


def test_inference_and_disabled_keep_keras_path():
    model = _bn_model(2)

    @tf.function
    def infer(x):
        with fused_batch_norm([model]):
            return model(x, training=False)

    ops = {op.type for op in infer.get_concrete_function(tf.TensorSpec((1, 4, 4, 3))).graph.get_operations()}
    assert "FusedBatchNormV3" not in ops


def test_trainers_trace_their_step_once_with_the_fused_kernel():
    """One trace per fit (the optimizers are built in compile) and the traced step uses FusedBatchNormV3."""
    traces, fused = [], []

    def traced_ops():
        return {op.type for op in tf.compat.v1.get_default_graph().get_operations()}

    class CountingPix2Pix(Pix2Pix):
        def train_step(self, data):
            traces.append("pix2pix")
            outputs = super().train_step(data)
            fused.append("FusedBatchNormV3" in traced_ops())
            return outputs

    class CountingAutoencoder(Autoencoder):
        def train_step(self, data):
            traces.append("autoencoder")
            outputs = super().train_step(data)
            fused.append("FusedBatchNormV3" in traced_ops())
            return outputs

    x = np.random.default_rng(0).random((8, 16, 16, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, x)).batch(4)
    keras.utils.set_random_seed(0)
    pix2pix = CountingPix2Pix(UNet(depth=1, base_filters=4), PatchGANDiscriminator(num_layers=1, base_filters=4))
    pix2pix.compile()
    autoencoder = CountingAutoencoder(UNet(depth=1, base_filters=4))
    autoencoder.compile()
    for trainer in (pix2pix, autoencoder):
        trainer.fit(data, epochs=2, verbose=0, shuffle=False)
    assert traces == ["pix2pix", "autoencoder"]
    assert fused == [True, True]
