"""Pix2Pix (Isola et al. 2017): a conditional GAN whose generator restores clean
images from noisy ones, judged by a conditional PatchGAN, plus an L1 term."""

import keras
import tensorflow as tf

from temzoo.inference.precision import check_precision, wrap_optimizer
from temzoo.pretraining import metrics as image_metrics
from temzoo.pretraining.generator_trainer import (
    GeneratorTrainer,
    default_optimizer,
    num_replicas,
    step_outputs,
)

__all__ = ["Pix2Pix", "default_optimizer"]


def _bce_logits(labels_value, logits):
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), labels_value)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class Pix2Pix(GeneratorTrainer):
    """Train ``generator`` (any temzoo dense model) against ``discriminator`` (a PatchGAN).

    Losses (Isola et al.): the generator minimises
    ``g_loss = g_gan + l1_lambda * g_l1`` where ``g_gan`` is the binary
    cross-entropy of the discriminator's logits on generated images against
    "real", and ``g_l1`` the mean absolute error to the clean image. The
    discriminator minimises ``d_loss = 0.5 * (BCE(real, 1) + BCE(fake, 0))`` (the
    paper halves it to slow D down relative to G). Both networks are updated
    once per step from the same forward pass.

    Reported per epoch (true values under any number of replicas):
    ``g_loss, g_gan, g_l1, d_loss, d_real_acc, d_fake_acc`` (fraction of
    real/generated patches the discriminator classifies correctly), and in
    validation ``l1, psnr, ssim`` of the generator (see
    :mod:`temzoo.pretraining.metrics` for the data range used).

    Data: batches of ``(noisy, clean)`` with the global batch size.
    """

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(generator, **kwargs)
        self.discriminator = discriminator
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.g_gan_tracker = keras.metrics.Mean(name="g_gan")
        self.g_l1_tracker = keras.metrics.Mean(name="g_l1")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.d_real_acc_tracker = keras.metrics.Mean(name="d_real_acc")
        self.d_fake_acc_tracker = keras.metrics.Mean(name="d_fake_acc")

    step_metric_names = ("g_loss", "g_gan", "g_l1", "d_loss", "d_real_acc", "d_fake_acc")

    @property
    def networks(self):
        return [self.generator, self.discriminator]

    def compile(
        self,
        g_optimizer=None,
        d_optimizer=None,
        l1_lambda=100.0,
        precision="float32",
        jit_compile=False,
        steps_per_execution=1,
        fused_batch_norm=True,
    ):
        """Set optimizers and loss weight; builds both optimizers (call inside the strategy scope).

        Args:
            g_optimizer, d_optimizer: default Adam(2e-4, beta_1=0.5) each.
            l1_lambda: weight of the L1 term (100 in the paper).
            precision: the models' dtype policy; ``"mixed_float16"`` wraps the
                optimizers in ``LossScaleOptimizer``.
            jit_compile: XLA; single device only.
            steps_per_execution: training steps per call of the traced function.
            fused_batch_norm: train BatchNormalization layers through TensorFlow's fused
                kernel (:mod:`temzoo.training.fused_batch_norm`): same updates, less time.
        """
        check_precision(precision)
        self.g_optimizer = wrap_optimizer(g_optimizer or default_optimizer(), precision)
        self.d_optimizer = wrap_optimizer(d_optimizer or default_optimizer(), precision)
        self.l1_lambda = float(l1_lambda)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        # Keras' own optimizer slot is the (already built) generator optimizer,
        # so fit() builds nothing else.
        self._compile_common(self.g_optimizer, precision, jit_compile, steps_per_execution, fused_batch_norm)

    def _pix2pix_losses(self, noisy, clean, training):
        fake = self.generator(noisy, training=training)
        real_logits = self.discriminator([noisy, clean], training=training)
        fake_logits = self.discriminator([noisy, fake], training=training)
        g_gan = _bce_logits(1.0, fake_logits)
        g_l1 = image_metrics.mean_absolute_error(fake, clean)
        g_loss = g_gan + self.l1_lambda * g_l1
        d_loss = 0.5 * (_bce_logits(1.0, real_logits) + _bce_logits(0.0, fake_logits))
        d_real_acc = tf.reduce_mean(tf.cast(real_logits > 0, tf.float32))
        d_fake_acc = tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32))
        return {
            "g_loss": g_loss,
            "g_gan": g_gan,
            "g_l1": g_l1,
            "d_loss": d_loss,
            "d_real_acc": d_real_acc,
            "d_fake_acc": d_fake_acc,
        }

    def train_step(self, data):
        noisy, clean = data[0], data[1]
        replicas = num_replicas()
        with self._training_graph(), tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            values = self._pix2pix_losses(noisy, clean, training=True)
            # Gradients are summed over replicas: differentiate the per-replica
            # share of the global-batch mean.
            g_scaled = self.g_optimizer.scale_loss(values["g_loss"] / replicas)
            d_scaled = self.d_optimizer.scale_loss(values["d_loss"] / replicas)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        g_grads = g_tape.gradient(g_scaled, g_vars)
        d_grads = d_tape.gradient(d_scaled, d_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        self.d_optimizer.apply(d_grads, d_vars)
        return self._update_trackers(values)

    def _update_trackers(self, values):
        trackers = {
            "g_loss": self.g_loss_tracker,
            "g_gan": self.g_gan_tracker,
            "g_l1": self.g_l1_tracker,
            "d_loss": self.d_loss_tracker,
            "d_real_acc": self.d_real_acc_tracker,
            "d_fake_acc": self.d_fake_acc_tracker,
        }
        for key, tracker in trackers.items():
            tracker.update_state(values[key])
        return step_outputs({key: tracker.result() for key, tracker in trackers.items()})
