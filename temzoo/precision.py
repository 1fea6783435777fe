"""Mixed precision for training: policy names, a scope to build models under, and
float32 copies for export.

``"mixed_float16"`` (NVIDIA GPUs with tensor cores) needs loss scaling, which
the trainers get from ``keras.optimizers.LossScaleOptimizer``;
``"mixed_bfloat16"`` (recent GPUs, TPUs, CPUs with AVX-512 BF16/AMX) has the
range of float32 and needs none. Variables stay float32 in both; every temzoo
model ends in a float32 activation, so losses are computed in float32.
"""

import contextlib

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check_precision(name):
    if name not in PRECISIONS:
        raise ValueError(f"precision={name!r} is not supported; choose one of: {', '.join(PRECISIONS)}.")
    return name


def needs_loss_scaling(name):
    """True for policies whose float16 gradients underflow without loss scaling."""
    return check_precision(name) == "mixed_float16"


@contextlib.contextmanager
def policy_scope(name):
    """Build models under the dtype policy ``name``; the previous global policy is restored after."""
    import keras

    check_precision(name)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer, name):
    """``optimizer`` wrapped in a LossScaleOptimizer when ``name`` needs loss scaling."""
    import keras

    if needs_loss_scaling(name) and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def model_precision(model):
    """The policy name of a model's layers (``"float32"`` when not mixed)."""
    names = {layer.dtype_policy.name for layer in model.layers if hasattr(layer, "dtype_policy")}
    names.discard("float32")
    return names.pop() if len(names) == 1 else ("float32" if not names else "mixed")


def float32_copy(model, always=False):
    """A float32 copy of ``model`` (same class, config and weights), for export.

    Models trained under a mixed policy are exported in float32 so that they
    load and run anywhere (CPUs have no fast float16 convolutions). A float32
    model is returned as it is unless ``always`` (a copy to change, e.g. its
    BatchNormalization statistics, without touching the original).
    """
    if model_precision(model) == "float32" and not always:
        return model
    with policy_scope("float32"):
        clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone
