"""Pix2Pix.fit against an independent training loop written as in TensorFlow's pix2pix tutorial.

The tutorial's ``train_step`` (GradientTape, ``BinaryCrossentropy(from_logits=True)``,
``gan_loss + LAMBDA * mean(|target - gen_output|)``, one update of each network from the same
forward pass) is re-written here without any temzoo training code. The one deliberate difference
is the discriminator loss: the tutorial sums the real and generated terms, temzoo halves the sum
as the paper does (Isola et al. 2017, section 3.3), so the reference halves it too.
"""

import keras
import numpy as np
import tensorflow as tf

from temzoo.models.patchgan import PatchGANDiscriminator
from temzoo.models.unet import UNet
from temzoo.pretraining import Pix2Pix

LAMBDA = 100.0
STEPS = 3


def _batches():
    rng = np.random.default_rng(1)
    clean = rng.normal(size=(STEPS * 4, 16, 16, 1)).astype("float32")
    noisy = (clean + 0.5 * rng.normal(size=clean.shape)).astype("float32")
    return noisy, clean


def _networks():
    generator = UNet(depth=1, base_filters=4, name="g")
    discriminator = PatchGANDiscriminator(num_layers=1, base_filters=4, name="d")
    return generator, discriminator


def _tutorial_loop(generator, discriminator, noisy, clean):
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt = keras.optimizers.SGD(learning_rate=0.05)
    d_opt = keras.optimizers.SGD(learning_rate=0.05)
    losses = {"g_loss": [], "g_l1": [], "d_loss": []}
    for i in range(STEPS):
        x, target = tf.constant(noisy[4 * i: 4 * i + 4]), tf.constant(clean[4 * i: 4 * i + 4])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            gen_output = generator(x, training=True)
            disc_real_output = discriminator([x, target], training=True)
            disc_generated_output = discriminator([x, gen_output], training=True)
            gan_loss = bce(tf.ones_like(disc_generated_output), disc_generated_output)
            l1_loss = tf.reduce_mean(tf.abs(target - gen_output))
            gen_total_loss = gan_loss + LAMBDA * l1_loss
            disc_loss = 0.5 * (bce(tf.ones_like(disc_real_output), disc_real_output)
                               + bce(tf.zeros_like(disc_generated_output), disc_generated_output))
        for key, value in (("g_loss", gen_total_loss), ("g_l1", l1_loss), ("d_loss", disc_loss)):
            losses[key].append(float(value))
        g_opt.apply(gen_tape.gradient(gen_total_loss, generator.trainable_variables), generator.trainable_variables)
        d_opt.apply(disc_tape.gradient(disc_loss, discriminator.trainable_variables),
                    discriminator.trainable_variables)
    return {key: np.mean(values) for key, values in losses.items()}


def test_pix2pix_fit_takes_the_tutorial_loops_steps():
    """Same initial weights, same three batches, SGD: the same weights come out of both.

    SGD makes each update proportional to the gradient, so a wrong loss weight, a missing
    halving or a sign error would show (Adam would hide a constant scale). BatchNorm moving
    statistics are compared too: both call the discriminator on the real pair first.
    """
    noisy, clean = _batches()
    keras.utils.set_random_seed(0)
    generator, discriminator = _networks()
    ref_generator, ref_discriminator = _networks()
    ref_generator.set_weights(generator.get_weights())
    ref_discriminator.set_weights(discriminator.get_weights())
    before = [w.copy() for w in generator.get_weights() + discriminator.get_weights()]

    trainer = Pix2Pix(generator, discriminator)
    trainer.compile(g_optimizer=keras.optimizers.SGD(learning_rate=0.05),
                    d_optimizer=keras.optimizers.SGD(learning_rate=0.05), l1_lambda=LAMBDA)
    history = trainer.fit(tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(4), epochs=1,
                          verbose=0, shuffle=False).history
    reference = _tutorial_loop(ref_generator, ref_discriminator, noisy, clean)

    ours = generator.get_weights() + discriminator.get_weights()
    theirs = ref_generator.get_weights() + ref_discriminator.get_weights()
    update = np.concatenate([(a - b).ravel() for a, b in zip(ours, before, strict=True)])
    assert np.abs(update).max() > 1e-3  # three real steps were taken
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(update).max())
    # fit reports the epoch's mean of the per-step losses
    for key, value in reference.items():
        np.testing.assert_allclose(history[key][0], value, rtol=1e-5, err_msg=key)
