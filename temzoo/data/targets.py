"""Which feature is the target of a task: the one table of it.

A dataset's features decide: the first of the task's ``keys`` that the dataset
has is the target. Datasets whose configs each hold one generic ``target``
feature (``temimagenet/<config>``) map through ``configs``: the config names
whose ``target`` serves that task.
"""

import dataclasses

from temzoo.errors import BadInputError, UnknownNameError


@dataclasses.dataclass(frozen=True)
class Task:
    keys: tuple  # feature names, in order of preference
    kind: str  # "labels" (integer class ids), "intensity" (an image; normalised like the input), "heatmap" (0..1)
    configs: tuple = ()  # config names whose generic `target` feature is this task's target
    binarize: bool = False  # labels: any non-zero value is class 1 (masks stored as 0/255)


TASKS = {
    "segmentation": Task(keys=("mask",), kind="labels"),
    "denoising": Task(keys=("clean",), kind="intensity", configs=("denoise",)),
    "background_removal": Task(keys=("clean_no_background",), kind="intensity", configs=("background_removal",)),
    "super_resolution": Task(keys=("super_resolution",), kind="intensity", configs=("super_resolution",)),
    "atom_segmentation": Task(keys=("circular_mask",), kind="labels", configs=("circular_mask",), binarize=True),
    "atom_heatmap": Task(keys=("gaussian_mask",), kind="heatmap", configs=("gaussian_mask",)),
}


def task(name):
    """The :class:`Task` entry of ``name``."""
    if name not in TASKS:
        raise UnknownNameError("task", name, TASKS)
    return TASKS[name]


def target_key(dataset, task_name, features=None):
    """Feature name holding the target of ``task_name`` in ``dataset``.

    Args:
        dataset: a dataset name (``"synthetic_tem/au_np"``, ``"temimagenet/denoise"``);
            its features are read from the builder (nothing needs to be prepared).
        task_name: a key of :data:`TASKS`.
        features: feature names, to skip the builder lookup (e.g. a tf.data
            element's keys).

    Raises:
        BadInputError: the dataset has no labels for the task (lists its features).
    """
    entry = task(task_name)
    if features is None:
        from temzoo.datasets import feature_keys

        features = feature_keys(dataset)
    features = list(features)
    for key in entry.keys:
        if key in features:
            return key
    config = str(dataset).partition("/")[2]
    if "target" in features and config in entry.configs:
        return "target"
    raise BadInputError(
        f"dataset {dataset} has no labels for {task_name} (features: {', '.join(sorted(features))}); "
        f"{task_name} needs one of: {', '.join(entry.keys)}"
        + (f", or a 'target' feature in a config named {' or '.join(entry.configs)}" if entry.configs else "")
        + "."
    )
