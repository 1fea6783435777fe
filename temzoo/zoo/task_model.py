"""A task model that carries its task and normalisation in its own Keras config (keras-hub's ``Task`` style).

:class:`TaskModel` is a functional ``keras.Model`` (the same layers and graph as before:
the backbone up to its head's input, then the head) whose ``get_config`` adds ``task``,
``normalization`` (a :class:`~temzoo.zoo.normalization.Normalizer` config) and ``scale``. So a
``.keras`` file alone, loaded with plain ``keras.saving.load_model``, knows how to predict:
:func:`temzoo.card` of the loaded model gives those fields (:meth:`TaskModel.own_card`)
when no side-car card is attached, and :func:`temzoo.predict` normalises and maps back as
training did.

Task models saved before this class existed (plain functional models whose task and
normaliser live only in the JSON card beside the file, such as the shipped
``nanoparticle_*`` weights) load and predict as before through :func:`temzoo.load`, which
attaches that card.

This module is below the task layer: loading a model (:mod:`temzoo.zoo.serialization`) needs it,
building one (:mod:`temzoo.tasks`) creates it.
"""

import keras

from temzoo.names import TASKS
from temzoo.zoo.normalization import Normalizer

#: The card fields a :class:`TaskModel` keeps in its Keras config.
OWN_FIELDS = ("task", "normalization", "scale")


@keras.saving.register_keras_serializable(package="temzoo")
class TaskModel(keras.Model):
    """A functional model plus what prediction needs to know about it.

    Build it like a functional model: ``TaskModel(inputs, outputs, name=..., task=...,
    normalization=..., scale=...)``.

    Args:
        task: one of :data:`temzoo.names.TASKS`.
        normalization: the :class:`~temzoo.zoo.normalization.Normalizer` (or its config) the
            model was trained with; prediction normalises its input the same way.
        scale: output size / input size (2 for 2x super-resolution).
    """

    def __init__(self, *args, task=None, normalization=None, scale=1, **kwargs):
        super().__init__(*args, **kwargs)
        if task not in TASKS:
            raise ValueError(f"TaskModel: task={task!r} is not one of {', '.join(TASKS)}.")
        if isinstance(normalization, Normalizer):
            normalization = normalization.get_config()
        self.task = task
        self.normalizer = Normalizer.from_config(normalization)
        self.scale = int(scale)

    def get_config(self):
        return {**super().get_config(), "task": self.task, "normalization": self.normalizer.get_config(),
                "scale": self.scale}

    def own_card(self):
        """The card fields of the model's own config: ``name``, ``task``, ``normalization``, ``scale``."""
        return {"name": self.name, "task": self.task, "normalization": self.normalizer.get_config(),
                "scale": self.scale}
