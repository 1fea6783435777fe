"""Shared model checks (keras-hub ``run_backbone_test`` style) and the receptive-field probe.

``run_model_test`` checks, for one built model, everything a family must do:
output size, clear size errors, config round trip, ``.keras`` save/load with
``safe_mode=True`` and one ``model.fit`` step. Each family's test only builds a
tiny instance and calls it.
"""

import contextlib

import keras
import numpy as np
import pytest

from temzoo.errors import InputSizeError


def _inputs(model, batch, size, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.random((batch, size, size, t.shape[-1]), dtype=np.float32) for t in model.inputs]
    return arrays if len(arrays) > 1 else arrays[0]


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def run_model_test(model, tmp_path, size=32, bad_size=None, output_size=None, fit=True, run_eagerly=False):
    """Build/call, size error, config round trip, save/load, one fit step.

    Args:
        size: an input height/width the model takes.
        bad_size: a height/width it must refuse with an InputSizeError that
            names sizes that work (None: the model takes any size).
        output_size: expected output height/width (default: ``size``, dense).
        run_eagerly: fit eagerly. Tracing the train step of a deep graph
            (MobileNet encoder, HRNet) costs 30-40 s on 2 cores, eagerly it
            is ~5 s; families with a small graph are fitted in graph mode.
    """
    output_size = size if output_size is None else output_size
    x = _inputs(model, 2, size)
    y = _predict(model, x)
    assert y.shape[:3] == (2, output_size, output_size), y.shape
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))

    # 1. a size that does not fit the stride: clear error naming sizes that work
    if bad_size is not None:
        stride = model.total_stride
        with pytest.raises(InputSizeError) as info:
            model(_inputs(model, 1, bad_size))
        message = str(info.value)
        assert f"{bad_size}x{bad_size}" in message and str(stride) in message
        down, up = max(stride, bad_size // stride * stride), -(-bad_size // stride) * stride
        assert f"{down}x{down}" in message and f"{up}x{up}" in message

    # 2. get_config / from_config: same config, same structure, same function
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(_predict(clone, x), y, rtol=1e-5, atol=1e-6)
    del clone

    # 3. .keras round trip with safe_mode=True: identical outputs
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.get_config() == config
    np.testing.assert_allclose(_predict(loaded, x), y, rtol=0, atol=1e-6)
    del loaded

    # 4. one training step changes the weights and gives a finite loss
    if fit:
        before = [w.copy() for w in model.get_weights()]
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", run_eagerly=run_eagerly)
        history = model.fit(x, np.zeros_like(y), batch_size=2, epochs=1, steps_per_epoch=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
        assert changed > len(before) // 2, f"only {changed} of {len(before)} weight arrays changed"


# ---------------------------------------------------------------- receptive field probe


def _walk_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _walk_layers(layer)
        yield layer


def make_probe_weights(model):
    """Set every weight so that every path carries a positive, bounded signal.

    Kernels become averaging kernels (positive, summing to about 1 per output,
    so activations neither vanish nor saturate), biases and BN betas/means
    zero, BN gammas/variances one (identity statistics in inference).
    """
    for layer in _walk_layers(model):
        kind = type(layer).__name__
        for var in layer.weights:
            path = var.path.split("/")[-1]
            shape = tuple(var.shape)
            if path in ("bias", "beta", "moving_mean"):
                value = np.zeros(shape)
            elif path in ("gamma", "moving_variance"):
                value = np.ones(shape)
            elif kind == "DepthwiseConv2D" or path == "depthwise_kernel":
                value = np.full(shape, 1.0 / (shape[0] * shape[1]))
            elif path == "pointwise_kernel":
                value = np.full(shape, 1.0 / shape[2])
            elif kind == "Conv2DTranspose":  # (k, k, out, in); each output sees (k/s)^2 taps
                taps = max(1, (shape[0] // layer.strides[0]) * (shape[1] // layer.strides[1]))
                value = np.full(shape, 1.0 / (taps * shape[3]))
            elif path == "kernel":
                value = np.full(shape, 1.0 / int(np.prod(shape[:-1])))
            else:
                raise AssertionError(f"probe does not know weight {var.path} of {kind}")
            var.assign(value.astype(var.dtype))


@contextlib.contextmanager
def float64():
    """Build probe models in float64: a deep model's border taps carry ~1e-35 of the
    signal, which float32 flushes to zero."""
    previous = keras.config.floatx()
    # the global dtype policy is created from floatx the first time it is asked for; it is
    # set explicitly here and restored, so a policy first made inside is not left at float64
    previous_policy = keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(previous_policy)


@contextlib.contextmanager
def probe_semantics():
    """During the probe, make gradients show every pixel that can influence the output.

    * A max pool passes gradient only to the arg-max of each window, although
      any pixel of the window can influence the output: it is evaluated as an
      average pool (same windows).
    * Global pooling (squeeze-and-excitation gates) spreads gradient over the
      whole image; ``receptive_field`` ignores global statistics by
      definition, so the probe stops their gradient.
    """
    from keras.src.layers.pooling.global_average_pooling2d import GlobalAveragePooling2D
    from keras.src.layers.pooling.max_pooling2d import MaxPooling2D

    max_call, gap_call = MaxPooling2D.call, GlobalAveragePooling2D.call

    def avg_instead(self, inputs):
        return keras.ops.average_pool(inputs, self.pool_size, self.strides, self.padding)

    def stop_global(self, inputs):
        return keras.ops.stop_gradient(gap_call(self, inputs))

    MaxPooling2D.call, GlobalAveragePooling2D.call = avg_instead, stop_global
    try:
        yield
    finally:
        MaxPooling2D.call, GlobalAveragePooling2D.call = max_call, gap_call


def probe_receptive_width(model, width, height):
    """Empirical width of the set of input pixels with a nonzero gradient at the centre output.

    ``model`` must already carry probe weights (``make_probe_weights``) and use
    no batch-dependent normalisation (``"none"`` or BN in inference). The input
    is a constant 1e-3 (all activations stay positive and small). Returns
    ``(first, last)`` column indices of the nonzero gradient.
    """
    import tensorflow as tf

    dtype = model.inputs[0].dtype
    xs = [tf.Variable(np.full((1, height, width, t.shape[-1]), 1e-3, dtype)) for t in model.inputs]
    with probe_semantics(), tf.GradientTape() as tape:
        out = model(xs if len(xs) > 1 else xs[0], training=False)
        centre = out[0, out.shape[1] // 2, out.shape[2] // 2, 0]
    grads = tape.gradient(centre, xs)
    columns = np.zeros(width, bool)
    for g in grads:
        if g is not None:
            columns |= np.abs(g.numpy()).sum(axis=(0, 1, 3)) > 0
    nonzero = np.flatnonzero(columns)
    return int(nonzero[0]), int(nonzero[-1])
