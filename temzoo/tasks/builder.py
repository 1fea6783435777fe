"""What every task builder shares: resolve the backbone, attach a head, freeze, attach a card draft."""

from temzoo.normalization import Normalizer
from temzoo.tasks.backbone import resolve_model
from temzoo.tasks.heads import attach_head, encoder_layer_names, freeze

TASK_NAMES = ("segmentation", "denoising", "background_removal", "super_resolution")

# BatchNormalization momentum while fine-tuning. Keras' default 0.99 (0.999 in the
# keras.applications encoders) leaves the moving statistics, which inference uses,
# hundreds of steps behind the weights; fine-tuning runs of a few dozen steps then
# validate far worse than they train (measured: unet_pretrained fine-tuned 32 steps
# for denoising, validation PSNR -0.1 dB at 0.99 against 29.0 dB at 0.9).
FINETUNE_BN_MOMENTUM = 0.9
RESTORATION_TASKS = ("denoising", "background_removal", "super_resolution")


def normalizer_of(card, default=None):
    """The :class:`Normalizer` stored in a card (``card["normalization"]``), else ``default``."""
    config = (card or {}).get("normalization")
    if isinstance(config, dict):
        return Normalizer.from_config(config)
    return default


def set_batchnorm_momentum(model, momentum):
    """Set the momentum of every BatchNormalization layer in ``model`` (nested models too).

    Returns the number of layers changed. Recompile a compiled model afterwards.
    """
    import keras

    changed = 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            changed += 1
        stack.extend(getattr(layer, "layers", ()))
    return changed


def build_task_model(
    backbone, *, task, channels, activation, scale=1, freeze_mode="none", normalizer=None, extra=None,
    bn_momentum=FINETUNE_BN_MOMENTUM,
):
    """Resolve ``backbone``, attach the task head, freeze, and attach a card draft.

    BatchNormalization layers get ``bn_momentum`` (see :data:`FINETUNE_BN_MOMENTUM`).

    The draft (``temzoo.card(model)``) holds the task, the backbone's name,
    source and sha256, and the normalisation: ``normalizer`` if given, else the
    backbone card's, else per-image standardisation.
    """
    from temzoo.pretrained import attach_card

    resolved = resolve_model(backbone)
    base = resolved.model
    encoder = encoder_layer_names(base)
    model = attach_head(base, channels, activation, scale=scale, name=f"{base.name}_{task}")
    frozen = freeze(model, freeze_mode, encoder)
    set_batchnorm_momentum(model, bn_momentum)
    if normalizer is None:
        normalizer = normalizer_of(resolved.card, Normalizer("standardize"))
    backbone_card = resolved.card or {}
    draft = {
        "name": model.name,
        "task": task,
        "architecture": backbone_card.get("architecture") or (resolved.name if resolved.source == "architecture" else None),
        "normalization": normalizer.get_config(),
        "backbone": {
            "name": resolved.name,
            "source": resolved.source,
            "sha256": resolved.sha256,
            "random_init": resolved.random_init,
        },
        "freeze": freeze_mode,
        "frozen_layers": len(frozen),
        **(extra or {}),
    }
    attach_card(model, draft)
    return model
