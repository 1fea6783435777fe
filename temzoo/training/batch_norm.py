"""Re-estimate BatchNormalization's moving statistics after training ("precise BN").

During training a BatchNormalization layer keeps an exponential moving average of its
batch statistics. When the weights keep changing, that average lags behind them, most of
all with a slow momentum (keras.applications' MobileNets use 0.999) and tiny late feature
maps (a 64 px patch is 2x2 at stride 32), and the model in inference mode computes
something other than what was trained. Wu & Johnson, "Rethinking 'Batch' in BatchNorm"
(2021), call the fix precise BN: with the weights frozen, set each layer's moving mean and
variance to the average of its batch statistics over a number of training batches.
"""

import keras
import numpy as np


def batch_norm_layers(model):
    """Every ``keras.layers.BatchNormalization`` inside ``model``, nested models included."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model, batches):
    """Set the moving statistics of ``model``'s BatchNormalization layers to the mean of
    their per-batch statistics over ``batches`` (an iterable of input arrays or tensors).

    Only the moving means and variances change; weights and the layers' momentum are
    left as they were. Returns the number of batches used (0 when the model has no
    BatchNormalization layer, in which case ``batches`` is not read).
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    saved = [(keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance))
             for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # moving statistic := this batch's statistic
        for batch in batches:
            model(batch, training=True)
            for total, layer in zip(sums, layers, strict=True):
                total[0] += keras.ops.convert_to_numpy(layer.moving_mean)
                total[1] += keras.ops.convert_to_numpy(layer.moving_variance)
            count += 1
        if not count:
            raise ValueError("recalibrate_batch_norm needs at least one batch; got none.")
    except BaseException:  # leave the model as it was, not half-recalibrated
        for layer, momentum, (mean, variance) in zip(layers, momenta, saved, strict=True):
            layer.momentum = momentum
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    for layer, momentum, (mean, variance) in zip(layers, momenta, sums, strict=True):
        layer.momentum = momentum
        layer.moving_mean.assign(mean / count)
        layer.moving_variance.assign(variance / count)
    return count
