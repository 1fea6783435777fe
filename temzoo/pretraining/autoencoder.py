"""Plain encoder-decoder pretraining: the same pretext (noisy -> clean) with an L1 or L2 loss only."""

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

LOSSES = {"l1": image_metrics.mean_absolute_error, "l2": image_metrics.mean_squared_error}


class Autoencoder(GeneratorTrainer):
    """Train ``generator`` to restore clean images from noisy ones with an L1 (default) or L2 loss.

    The twin of :class:`temzoo.pretraining.Pix2Pix` without the discriminator:
    same data, same validation metrics (``l1, psnr, ssim``), same export.
    Training reports ``loss`` (the chosen loss) as its true global-batch mean.
    """

    step_metric_names = ("loss",)

    def __init__(self, generator, **kwargs):
        super().__init__(generator, **kwargs)
        self.loss_tracker_ = keras.metrics.Mean(name="loss")

    def compile(self, optimizer=None, loss="l1", precision="float32", jit_compile=False, steps_per_execution=1,
                fused_batch_norm=True):
        """Args: optimizer (default Adam(2e-4, beta_1=0.5)), loss ``"l1"`` or ``"l2"``,
        precision (``"mixed_float16"`` adds loss scaling), jit_compile (single device only),
        steps_per_execution, fused_batch_norm (BatchNormalization through TensorFlow's fused
        kernel, :mod:`temzoo.training.fused_batch_norm`: same updates, less time)."""
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not supported; choose one of: {', '.join(map(repr, LOSSES))}.")
        check_precision(precision)
        self.loss_name = loss
        self.g_optimizer = wrap_optimizer(optimizer or default_optimizer(), precision)
        self.g_optimizer.build(self.generator.trainable_variables)
        self._compile_common(self.g_optimizer, precision, jit_compile, steps_per_execution, fused_batch_norm)

    def train_step(self, data):
        noisy, clean = data[0], data[1]
        with self._training_graph(), tf.GradientTape() as tape:
            restored = self.generator(noisy, training=True)
            loss = LOSSES[self.loss_name](restored, clean)
            scaled = self.g_optimizer.scale_loss(loss / num_replicas())
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker_.update_state(loss)
        return step_outputs({"loss": self.loss_tracker_.result()})
