"""Make every serialisable temzoo object known to Keras before a ``.keras`` file is loaded.

This module is on the inference path (``temzoo.load``, ``temzoo.predict``): it imports the
model families and their layers, :class:`temzoo.zoo.task_model.TaskModel` and the metrics of
:mod:`temzoo.zoo.metrics`, never the task layer (:mod:`temzoo.tasks`). Only a model loaded
*compiled* for more training needs the task losses (``compile=True``).
"""

import importlib

# The module holding the losses of the task models (registered on import). Named, not
# imported, here: only ``compile=True`` (training) needs it.
TRAINING_OBJECTS = "temzoo.tasks.losses"


def register_custom_objects(compile=False):
    """Import every module that registers serialisable temzoo objects.

    Model families and their layers, task models and metrics: a saved temzoo model
    deserialises in a fresh process whatever it contains. ``compile=True`` also
    registers the task losses, which a compiled model's training configuration names.
    """
    import temzoo.zoo.metrics  # noqa: F401
    import temzoo.zoo.task_model  # noqa: F401
    from temzoo.models import registry

    registry.family_classes()
    if compile:
        importlib.import_module(TRAINING_OBJECTS)
