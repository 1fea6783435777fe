"""Shared base of the pretext trainers: a ``keras.Model`` that wraps a generator.

``fit`` trains the generator (and whatever else a subclass adds); ``evaluate``
and the validation part of ``fit`` report the generator's L1, PSNR and SSIM
(:mod:`temzoo.pretraining.metrics`). ``call`` is the generator, so the wrapper
predicts like the model it trains; what is exported is the generator alone.

Loss values under a ``tf.distribute`` strategy: each replica computes the mean
loss over its slice of the global batch. Gradients are summed across replicas
by the optimizer, so the loss that is differentiated is divided by
``num_replicas_in_sync``; the metric trackers are fed the *undivided* per-replica
means and average them across replicas (Keras metrics are sum-on-read), so the
reported values are the true global-batch means whatever the number of replicas.
"""

import keras
import tensorflow as tf

from temzoo.pretraining import metrics as image_metrics


def default_optimizer():
    """Adam(2e-4, beta_1=0.5), the choice of Isola et al. for both networks."""
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


def num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def step_outputs(values):
    """What a train/test step returns: scalars, or shape-[1] tensors under a multi-worker strategy.

    Keras (3.15) reduces step outputs across workers with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars; a
    one-element vector reduces to the mean over replicas, a scalar.
    """
    from temzoo.training.distribute import is_multi_worker

    if is_multi_worker(tf.distribute.get_strategy()):
        return {k: tf.reshape(v, [1]) for k, v in values.items()}
    return values


class GeneratorTrainer(keras.Model):
    """Base class: holds ``generator``; validation metrics l1, psnr, ssim."""

    def __init__(self, generator, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{type(self).__name__.lower()}_trainer"), **kwargs)
        self.generator = generator
        self.val_l1_tracker = keras.metrics.Mean(name="l1")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.ssim_tracker = keras.metrics.Mean(name="ssim")
        # The wrapped networks are functional models, built at construction; the
        # wrapper has no weights of its own.
        self.built = True

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def test_step(self, data):
        noisy, clean = data[0], data[1]
        restored = self.generator(noisy, training=False)
        self.val_l1_tracker.update_state(image_metrics.mean_absolute_error(restored, clean))
        self.psnr_tracker.update_state(image_metrics.psnr(restored, clean))
        self.ssim_tracker.update_state(image_metrics.ssim(restored, clean))
        return step_outputs({
            "l1": self.val_l1_tracker.result(),
            "psnr": self.psnr_tracker.result(),
            "ssim": self.ssim_tracker.result(),
        })

    def _compile_common(self, optimizer, precision, jit_compile, steps_per_execution, fused_batch_norm=True):
        if jit_compile and num_replicas() > 1:
            raise ValueError("jit_compile=True does not work under a replicating tf.distribute strategy; "
                             "use jit_compile=False (temzoo.pretraining.build_trainer does this for you).")
        super().compile(optimizer=optimizer, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        self.precision = precision
        self.fused_batch_norm = bool(fused_batch_norm)

    def _training_graph(self):
        """Context for tracing the training step: BatchNormalization through the fused kernel
        (:mod:`temzoo.training.fused_batch_norm`; same updates, one kernel instead of a dozen ops) unless
        ``compile(fused_batch_norm=False)``."""
        from temzoo.training.fused_batch_norm import fused_batch_norm

        return fused_batch_norm(self.networks, enabled=getattr(self, "fused_batch_norm", True))

    @property
    def networks(self):
        """The models this trainer trains."""
        return [self.generator]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # compile() builds the optimizers and the networks are built, so there is
        # nothing to build. Keras' own version (3.15) first pulls a batch and
        # all-reduces it eagerly, which fails under MultiWorkerMirroredStrategy
        # ("Attempt to convert a value (PerReplica...) to a Tensor").
        if self.optimizer is not None and self.optimizer.built and all(
            layer.built for layer in self._flatten_layers()
        ):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def export_generator(self, path, card, generator=None):
        """Save the generator (float32, not the wrapper) as ``.keras`` with its card; returns the card.

        ``generator``: export this model instead (e.g. a copy with recalibrated BatchNormalization).
        """
        from temzoo.inference.precision import float32_copy
        from temzoo.zoo.cards import export_model

        return export_model(float32_copy(generator or self.generator), path, card)

    @property
    def step_metric_names(self):
        """Names of the training metrics, in display order."""
        raise NotImplementedError
