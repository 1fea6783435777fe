"""Replace a generator's output head and freeze or unfreeze parts of it.

Every temzoo dense model ends with a 1x1 ``Conv2D`` named ``"head"`` followed by
a float32 ``Activation`` named ``"head_activation"``. A task model is a new
functional ``keras.Model`` from the backbone's input to a new head attached to
``backbone.get_layer("head").input``; the new layers keep the names ``head`` and
``head_activation`` (a 2x super-resolution head adds ``head_upsample`` and
``head_refine`` before them), so a fine-tuned model can itself be fine-tuned.

Freezing (``freeze=``):

* ``"none"``: everything trains;
* ``"encoder"``: the encoder's layers are frozen (see :func:`encoder_layer_names`);
* ``"all_but_head"``: only the new head trains (a linear probe).

Frozen BatchNormalization layers run in inference mode (on trained weights the task
builders freeze every BatchNormalization layer anyway, see :mod:`temzoo.tasks.builder`). Unfreeze later with
:func:`unfreeze` (it recompiles with the model's compile configuration, so the
change takes effect; the optimizer state restarts).
"""

import keras

from temzoo.names import FREEZE_MODES

HEAD_LAYERS = ("head_upsample", "head_refine", "head", "head_activation")
# Per-family encoder rule: layer-name prefixes. A family can instead define a
# method ``encoder_layer_names()`` on its model class (the documented convention
# for HRNet, MobileNet-UNet and any later family).
ENCODER_PREFIXES = {"unet": ("enc", "pool", "bottleneck")}
UPSAMPLING_LAYERS = (keras.layers.UpSampling2D, keras.layers.Conv2DTranspose, keras.layers.Resizing)


def encoder_layer_names(backbone):
    """Names of the layers that make up ``backbone``'s encoder.

    In order of preference: the model's own ``encoder_layer_names()``; the
    family's name prefixes in :data:`ENCODER_PREFIXES`; otherwise every layer
    (in topological order) before the first upsampling layer
    (``UpSampling2D``, ``Conv2DTranspose`` or ``Resizing``), i.e. the layers
    that only ever see the image at the same or a coarser resolution.
    """
    own = getattr(backbone, "encoder_layer_names", None)
    if callable(own):
        return list(own())
    prefixes = ENCODER_PREFIXES.get(getattr(backbone, "family", None))
    if prefixes:
        return [layer.name for layer in backbone.layers if layer.name.startswith(prefixes)]
    names = []
    for layer in backbone.layers:
        if isinstance(layer, UPSAMPLING_LAYERS):
            break
        if not isinstance(layer, keras.layers.InputLayer):
            names.append(layer.name)
    return names


def attach_head(backbone, channels, activation, *, scale=1, name=None):
    """A new model: ``backbone`` up to its head's input, then a new head (:func:`new_head`)."""
    inputs = backbone.inputs[0] if len(backbone.inputs) == 1 else backbone.inputs
    return keras.Model(inputs, new_head(backbone, channels, activation, scale=scale), name=name or f"{backbone.name}_task")


def new_head(backbone, channels, activation, *, scale=1):
    """The output tensor of a new head on ``backbone``'s head input.

    ``scale=2`` adds a nearest-neighbour 2x upsampling and a 3x3 refining convolution
    before the 1x1 head, so the output is twice the input's height and width.
    """
    if scale not in (1, 2):
        raise ValueError(f"scale={scale!r} is not supported; choose 1 or 2.")
    try:
        features = backbone.get_layer("head").input
    except ValueError as exc:
        raise ValueError(
            f"{backbone.name}: no layer named 'head'. Task builders need a temzoo dense model "
            "(every family ends with a 1x1 Conv2D named 'head')."
        ) from exc
    x = features
    if scale == 2:
        width = int(features.shape[-1])
        # nearest + conv ("resize-convolution"): no checkerboard artefacts, and unlike
        # bilinear UpSampling2D it traces with unknown image sizes
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name="head_upsample")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="head_refine")(x)
    x = keras.layers.Conv2D(channels, 1, padding="same", name="head")(x)
    return keras.layers.Activation(activation, dtype="float32", name="head_activation")(x)


def freeze(model, mode, encoder_layers=()):
    """Set ``trainable`` per :data:`FREEZE_MODES`; ``encoder_layers`` names the encoder.

    Returns the names of the frozen layers. Recompile afterwards.
    """
    if mode not in FREEZE_MODES:
        raise ValueError(f"freeze={mode!r} is not supported; choose one of: {', '.join(FREEZE_MODES)}.")
    encoder = set(encoder_layers)
    frozen = []
    for layer in model.layers:
        if mode == "none":
            trainable = True
        elif mode == "encoder":
            trainable = layer.name not in encoder
        else:
            trainable = layer.name in HEAD_LAYERS
        layer.trainable = trainable
        if not trainable and layer.weights:
            frozen.append(layer.name)
    if mode == "encoder" and not frozen:
        raise ValueError(f"{model.name}: no encoder layers were found to freeze; use freeze='all_but_head' or 'none'.")
    return frozen


def unfreeze(model, recompile=True):
    """Make every layer trainable; recompile with the model's own compile config.

    Use this after a first phase with ``freeze="encoder"`` or ``"all_but_head"``
    to fine-tune the whole network. BatchNormalization layers stay in inference
    mode when the model's card says ``batch_norm: frozen`` (the default on trained
    weights, see :mod:`temzoo.tasks.builder`). Returns ``model``.
    """
    from temzoo.zoo.pretrained import card

    config = model.get_compile_config() if recompile and model.compiled else None
    for layer in model.layers:
        layer.trainable = True
    if (card(model) or {}).get("batch_norm") == "frozen":
        freeze_batch_norm(model)
    if config:
        model.compile_from_config(config)
    return model


def freeze_batch_norm(model):
    """Put every BatchNormalization layer of ``model`` (nested too) in inference mode for training.

    Keras 3 runs a non-trainable BatchNormalization layer in inference mode: ``fit`` then
    normalises with the moving statistics and updates neither them nor the scale and
    offset. Returns the number of layers frozen. Recompile a compiled model afterwards.
    """
    from temzoo.training.batch_norm import batch_norm_layers

    layers = batch_norm_layers(model)
    for layer in layers:
        layer.trainable = False
    return len(layers)
