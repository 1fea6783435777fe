"""Mixed precision for training: policy names, a scope to build models under, and
float32 copies for export.

``"mixed_float16"`` (NVIDIA GPUs with tensor cores) needs loss scaling, which
the trainers get from ``keras.optimizers.LossScaleOptimizer``;
``"mixed_bfloat16"`` (recent GPUs, TPUs, CPUs with AVX-512 BF16/AMX) has the
range of float32 and needs none. Variables stay float32 in both; every temzoo
model ends in a float32 activation, so losses are computed in float32.
"""

import contextlib
import functools
import logging

from temzoo.names import PRECISIONS  # noqa: F401  (re-exported; resolve_precision picks for "auto")

logger = logging.getLogger(__name__)

#: NVIDIA GPUs from this compute capability (Ampere) on compute bfloat16 at tensor-core speed.
BFLOAT16_GPU_CAPABILITY = (8, 0)
#: Linux /proc/cpuinfo flags of CPUs with native bfloat16 dot products (AVX512-BF16, AMX).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(name):
    if name not in PRECISIONS:
        raise ValueError(f"precision={name!r} is not supported; choose one of: {', '.join(PRECISIONS)}.")
    return name


def resolve_precision(name):
    """The dtype policy for ``name``: itself, or for ``"auto"`` the fastest one with float32's range.

    ``"auto"`` is ``"mixed_bfloat16"`` where the hardware computes bfloat16 natively
    (NVIDIA GPUs of compute capability 8.0 or more; CPUs with AVX512-BF16 or AMX) and
    ``"float32"`` elsewhere, where bfloat16 is emulated and slower. What it gains depends on the
    chip and the architecture: on an AMD EPYC with AVX512-BF16 but no AMX, pretext training ran
    1.22x (U-Net), 1.11x (HRNet) and 1.04x (MobileNet U-Net) as fast as float32
    (``benchmarks/precision.py``, docs/benchmarks.md).
    """
    if check_precision(name) != "auto":
        return name
    return "mixed_bfloat16" if fast_bfloat16() else "float32"


@functools.lru_cache(maxsize=1)
def fast_bfloat16():
    """True when this machine computes bfloat16 natively (see :func:`resolve_precision`)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
        fast = all(c is not None and tuple(c) >= BFLOAT16_GPU_CAPABILITY for c in capabilities)
        logger.debug("GPU compute capabilities %s: bfloat16 %s", capabilities, "fast" if fast else "slow")
        return fast
    return bool(set(_cpu_flags()) & set(BFLOAT16_CPU_FLAGS))


def _cpu_flags(path="/proc/cpuinfo"):
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def needs_loss_scaling(name):
    """True for policies whose float16 gradients underflow without loss scaling."""
    return resolve_precision(name) == "mixed_float16"


@contextlib.contextmanager
def policy_scope(name):
    """Build models under the dtype policy ``name`` (``"auto"`` resolved); the previous global policy is restored after."""
    import keras

    name = resolve_precision(name)
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


def precision_copy(model, name):
    """A copy of ``model`` (same class, config and weights) whose layers compute under policy ``name``.

    ``model`` itself is returned when it already uses that policy. Used to run
    or fine-tune a float32 (e.g. pretrained) model in bfloat16; the float32
    output layers of temzoo models stay float32. The copy carries the model's
    card (task, normaliser, recorded fields), so it predicts and exports alike.
    """
    from temzoo.zoo.pretrained import attach_card, card

    name = resolve_precision(name)
    if model_precision(model) == name:
        return model
    with policy_scope(name):
        clone = model.__class__.from_config(_without_dtype_policies(model.get_config()))
    clone.set_weights(model.get_weights())
    if card(model):
        attach_card(clone, card(model))
    return clone


def training_copy(model, name, trainer):
    """:func:`precision_copy` for a trainer without loss scaling (``trainer`` names it in the error):
    ``model`` itself for float32, its bfloat16 copy for ``"mixed_bfloat16"`` (or ``"auto"`` resolving to
    it); ``"mixed_float16"`` is refused, its float16 gradients would underflow."""
    from temzoo.errors import BadInputError

    resolved = resolve_precision(check_precision(name))
    if resolved == "mixed_float16":
        raise BadInputError(f"precision='mixed_float16' needs loss scaling, which {trainer} does not do; "
                            "use 'mixed_bfloat16' or 'auto'.")
    return precision_copy(model, resolved)


def _without_dtype_policies(config):
    """A functional model's ``config`` with every layer's recorded dtype policy dropped (so the
    global policy applies), except the model's output layers, which stay float32."""
    if not isinstance(config.get("layers"), list):  # not a functional model's config
        return config
    entries = config.get("output_layers") or []
    if entries and isinstance(entries[0], str):  # Keras writes one output as a flat [name, node, index]
        entries = [entries]
    outputs = {entry[0] for entry in entries if entry}

    def strip(layer_config, keep):
        layer_config = dict(layer_config)
        inner = dict(layer_config.get("config", {}))
        if not keep:
            inner.pop("dtype", None)
        if isinstance(inner.get("layers"), list):  # a nested model: nothing in it is an output
            inner["layers"] = [strip(layer, False) for layer in inner["layers"]]
        layer_config["config"] = inner
        return layer_config

    config = dict(config)
    config["layers"] = [strip(layer, layer.get("name") in outputs) for layer in config["layers"]]
    return config


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
        clone = model.__class__.from_config(_without_dtype_policies(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone
