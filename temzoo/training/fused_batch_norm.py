"""Run Keras ``BatchNormalization`` layers through TensorFlow's fused kernel while training.

Keras 3 (TensorFlow backend) normalises in training with separate ops: moments
(for ``synchronized=True``, which temzoo uses, a sum, a sum of squares and a
count over a tensor of ones), then ``tf.nn.batch_normalization`` (subtract,
rsqrt, multiply, add), and TensorFlow differentiates each of them. On a CPU
these element-wise passes and their gradients were 27 % of the operation
time of a Pix2Pix step at 64 px (``docs/benchmarks.md``). ``FusedBatchNormV3``
and its gradient do the same in one pass each (oneDNN on CPUs, cuDNN on GPUs).

:func:`fused_batch_norm` is a context manager for the time a training step is
*traced*: inside it, each BatchNormalization layer of the given models computes
its training output with ``FusedBatchNormV3`` and updates its moving statistics
exactly as Keras does (``moving = momentum * moving + (1 - momentum) * batch``,
with the biased batch variance). Nothing about the models changes: same
variables, same config, same saved files; outside the context they are the
Keras layers again. The fused path is taken only where it computes the same
thing: ``training=True`` on a trainable layer, 4-D input normalised over the
last axis, no mask, no renormalisation, one replica (a synchronized layer
under several replicas needs the all-reduce, so it keeps Keras' path).
"""

import contextlib

__all__ = ["fused_batch_norm", "batch_norm_layers"]


def batch_norm_layers(models):
    """Every ``keras.layers.BatchNormalization`` inside ``models`` (nested models included), once each."""
    import keras

    seen, layers = set(), []
    for model in models:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization) and id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
    return layers


def _fusable(layer, inputs, training, mask):
    import tensorflow as tf

    if not (training is True and layer.trainable) or mask is not None or layer.renorm:
        return False
    if len(inputs.shape) != 4 or layer.axis not in (-1, 3):
        return False
    context = tf.distribute.get_replica_context()
    return context is None or context.num_replicas_in_sync == 1


def _fused_call(layer, keras_call):
    import tensorflow as tf

    def call(inputs, training=None, mask=None):
        if not _fusable(layer, inputs, training, mask):
            return keras_call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        scale = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels], tf.float32)
        y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=scale, offset=offset, mean=tf.zeros([0], tf.float32), variance=tf.zeros([0], tf.float32),
            epsilon=layer.epsilon, is_training=True,
        )
        # The kernel returns the Bessel-corrected variance; Keras' moving variance uses the biased one.
        n = tf.cast(tf.size(x) // channels, tf.float32)
        variance = tf.where(n > 1.0, unbiased_variance * ((n - 1.0) / tf.maximum(n, 1.0)), 0.0)
        momentum = layer.momentum
        moving_mean = tf.cast(layer.moving_mean, tf.float32)
        moving_variance = tf.cast(layer.moving_variance, tf.float32)
        layer.moving_mean.assign(moving_mean * momentum + mean * (1.0 - momentum))
        layer.moving_variance.assign(moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(y, layer.compute_dtype)

    return call


@contextlib.contextmanager
def fused_batch_norm(models, enabled=True):
    """Within this context, the BatchNormalization layers of ``models`` train through the fused kernel.

    Enter it around the code that is traced into a training step (the step
    function keeps the fused ops after the context is left). ``enabled=False``
    does nothing, so callers can switch it with an argument.
    """
    if not enabled:
        yield
        return
    swapped = []
    try:
        for layer in batch_norm_layers(models):
            if "call" in vars(layer):  # already swapped (nested contexts) or patched by someone else
                continue
            layer.call = _fused_call(layer, layer.call)
            swapped.append(layer)
        yield
    finally:
        for layer in swapped:
            vars(layer).pop("call", None)  # the class's own call again
