"""Task builders: a pretrained generator plus a new head plus a loss.

    >>> import temzoo.tasks as tasks
    >>> model = tasks.segmentation("hrnet_pretrained", num_classes=2, freeze="encoder")
    >>> model.fit(images, one_hot_masks, epochs=5)        # an ordinary compiled Keras model
    >>> tasks.unfreeze(model)                              # then train everything
    >>> tasks.save(model, "particles.keras")               # .keras + JSON card (normalisation, task)

``backbone`` is a registry name, a ``.keras`` path or a Keras model. Builders:
:func:`segmentation`, :func:`denoising`, :func:`background_removal`,
:func:`super_resolution`; :func:`build` picks one by task name.
"""

from temzoo.names import RESTORATION_TASKS
from temzoo.names import TASKS as TASK_NAMES
from temzoo.tasks.background_removal import background_removal
from temzoo.tasks.denoising import denoising
from temzoo.tasks.export import save
from temzoo.tasks.heads import FREEZE_MODES, encoder_layer_names, freeze, unfreeze
from temzoo.tasks.segmentation import segmentation
from temzoo.tasks.super_resolution import super_resolution
from temzoo.zoo.normalization import normalizer_of

BUILDERS = {
    "segmentation": segmentation,
    "denoising": denoising,
    "background_removal": background_removal,
    "super_resolution": super_resolution,
}


def build(task, backbone, **kwargs):
    """Build the task model ``task`` (one of :data:`TASK_NAMES`) on ``backbone``."""
    if task not in BUILDERS:
        raise ValueError(f"task={task!r} is not supported; choose one of: {', '.join(TASK_NAMES)}.")
    return BUILDERS[task](backbone, **kwargs)


__all__ = [
    "BUILDERS", "FREEZE_MODES", "RESTORATION_TASKS", "TASK_NAMES", "background_removal", "build", "denoising",
    "encoder_layer_names", "freeze", "normalizer_of", "save", "segmentation", "super_resolution", "unfreeze",
]
