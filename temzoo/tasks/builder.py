"""What every task builder shares: resolve the backbone, keep or attach a head, freeze, attach a card draft.

**Head** (``head=``): ``"auto"`` (default) keeps the backbone's trained output layer when
the backbone was trained for the same task (its card names the task, or, for denoising,
the Poisson-denoising pretext every temzoo generator is pretrained on) and the layer
fits (same channels, linear activation, same scale); otherwise a new head is attached.
``"keep"`` insists on keeping it (an error when it cannot), ``"new"`` always attaches a
new, randomly initialised one (:func:`temzoo.tasks.heads.new_head`).

**BatchNormalization** (``batch_norm=``): ``"frozen"`` runs every BatchNormalization
layer in inference mode while fine-tuning, with its moving statistics and scale/offset
fixed, as Keras' transfer-learning guide recommends; ``"train"`` lets them train with
momentum :data:`FINETUNE_BN_MOMENTUM`. ``"auto"`` (default) is ``"frozen"`` for the
restoration tasks on trained weights, whose inputs and features are those of the
denoising pretext, and ``"train"`` for segmentation and for random weights (whose moving
statistics mean nothing yet). Measured (issue 17, ``docs/adapt.md``): fine-tuning
``hrnet_pretrained`` for denoising with trainable BatchNormalization, inference-mode PSNR
swung by up to 6 dB between epochs while training-mode PSNR rose smoothly; the layers'
batch statistics on small batches of one micrograph differ from the moving ones, which
chase them. With frozen layers the two modes compute the same function, so what is
trained is what is exported. For segmentation the frozen pretext statistics do not fit
the new head: README's main command (``hrnet_pretrained``, ``synthetic_tem/au_np``) ended
at test IoU 0.00 with frozen layers (everything predicted background) against 0.75 with
trainable ones and precise BN before validation (``temzoo.finetune``).
"""

from temzoo.names import BATCH_NORM_MODES, HEAD_MODES, RESTORATION_TASKS
from temzoo.names import TASKS as TASK_NAMES  # noqa: F401  (re-exported: temzoo.tasks.builder.TASK_NAMES)
from temzoo.tasks.backbone import resolve_model
from temzoo.tasks.heads import encoder_layer_names, freeze, freeze_batch_norm, new_head
from temzoo.zoo.normalization import Normalizer, normalizer_of
from temzoo.zoo.task_model import TaskModel

# BatchNormalization momentum while fine-tuning. Keras' default 0.99 (0.999 in the
# keras.applications encoders) leaves the moving statistics, which inference uses,
# hundreds of steps behind the weights; fine-tuning runs of a few dozen steps then
# validate far worse than they train (measured: unet_pretrained fine-tuned 32 steps
# for denoising, validation PSNR -0.1 dB at 0.99 against 29.0 dB at 0.9).
FINETUNE_BN_MOMENTUM = 0.9
# the task that temzoo's pretext (restore a clean image from a Poisson-noised copy) trains for
PRETEXT_TASK = "denoising"


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


def trained_task(card):
    """The task a backbone's card says its output layer was trained for, or ``None``.

    A task model's card names its ``task``; a pretrained generator's card holds its
    ``pretext`` (restore a clean image from a Poisson-noised copy), i.e. denoising.
    """
    card = card or {}
    if card.get("task"):
        return card["task"]
    if isinstance(card.get("pretext"), dict):
        return PRETEXT_TASK
    return None


def has_trained_weights(resolved):
    """True for a pretrained name, a ``.keras`` file, or a model that carries a card;
    False for an architecture name (random weights) or a bare model object (unknown)."""
    if resolved.random_init:
        return False
    return resolved.source in ("pretrained", "file") or resolved.card is not None


def _keepable_head(base, channels, activation, scale):
    """Why ``base``'s own head cannot serve (a string), or ``None`` when it can."""
    try:
        head = base.get_layer("head")
        head_activation = base.get_layer("head_activation")
    except ValueError:
        return f"{base.name} has no layers named 'head' and 'head_activation'"
    if scale != 1:
        return f"the task needs a {scale}x head"
    filters = getattr(head, "filters", None)
    if filters != channels:
        return f"its head has {filters} output channel(s), the task needs {channels}"
    have = getattr(getattr(head_activation, "activation", None), "__name__", None)
    if have != activation:
        return f"its head's activation is {have}, the task needs {activation}"
    if base.outputs[0] is not head_activation.output:
        return "its output is not its head's"
    return None


def choose_head(resolved, task, channels, activation, scale, head):
    """``"keep"`` or ``"new"``: what ``head`` (one of :data:`HEAD_MODES`) means for this backbone."""
    if head not in HEAD_MODES:
        raise ValueError(f"head={head!r} is not supported; choose one of: {', '.join(HEAD_MODES)}.")
    if head == "new":
        return "new"
    same_task = has_trained_weights(resolved) and trained_task(resolved.card) == task
    problem = _keepable_head(resolved.model, channels, activation, scale)
    if head == "keep":
        if not has_trained_weights(resolved):
            raise ValueError(f"head='keep': {resolved.name} has random (or unknown) weights; there is no trained "
                             "head to keep.")
        if problem:
            raise ValueError(f"head='keep': {resolved.name}'s head cannot serve for {task}: {problem}. Use head='new'.")
        return "keep"
    return "keep" if same_task and problem is None else "new"


def apply_batch_norm_mode(model, mode, momentum=FINETUNE_BN_MOMENTUM):
    """``"frozen"``: :func:`freeze_batch_norm`; ``"train"``: trainable with ``momentum``."""
    if mode == "frozen":
        return freeze_batch_norm(model)
    if mode == "train":
        return set_batchnorm_momentum(model, momentum)
    raise ValueError(f"batch_norm={mode!r} is not supported; choose one of: frozen, train.")


def build_task_model(
    backbone, *, task, channels, activation, scale=1, freeze_mode="none", normalizer=None, extra=None,
    bn_momentum=FINETUNE_BN_MOMENTUM, head="auto", batch_norm="auto",
):
    """Resolve ``backbone``, keep its head or attach a new one, freeze, and attach a card draft.

    ``head`` is one of :data:`HEAD_MODES`, ``batch_norm`` one of :data:`BATCH_NORM_MODES`
    (``"auto"``: ``"frozen"`` for restoration tasks on trained weights, else ``"train"`` with
    ``bn_momentum``: see :func:`has_trained_weights`); see the module docstring.

    The model is a :class:`~temzoo.zoo.task_model.TaskModel`: its own Keras config holds the
    task, the normalisation (``normalizer`` if given, else the backbone card's, else
    per-image standardisation) and the scale, so a saved ``.keras`` file predicts
    correctly alone. The draft card (``temzoo.card(model)``) adds the backbone's name,
    source and sha256, the freezing, head and BatchNormalization choices.
    """
    from temzoo.zoo.pretrained import attach_card

    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"batch_norm={batch_norm!r} is not supported; choose one of: {', '.join(BATCH_NORM_MODES)}.")
    resolved = resolve_model(backbone)
    base = resolved.model
    encoder = encoder_layer_names(base)
    head_mode = choose_head(resolved, task, channels, activation, scale, head)
    if normalizer is None:
        normalizer = normalizer_of(resolved.card, Normalizer("standardize"))
    inputs = base.inputs[0] if len(base.inputs) == 1 else base.inputs
    if head_mode == "keep":
        outputs = base.get_layer("head_activation").output
    else:
        outputs = new_head(base, channels, activation, scale=scale)
    model = TaskModel(inputs, outputs, name=f"{base.name}_{task}", task=task, normalization=normalizer, scale=scale)
    frozen = freeze(model, freeze_mode, encoder)
    if batch_norm == "auto":
        batch_norm = "frozen" if has_trained_weights(resolved) and task in RESTORATION_TASKS else "train"
    apply_batch_norm_mode(model, batch_norm, bn_momentum)
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
        "head": "kept" if head_mode == "keep" else "new",
        "batch_norm": batch_norm,
        **(extra or {}),
    }
    attach_card(model, draft)
    return model
