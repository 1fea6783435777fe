"""Input pipelines: pretext pairs for pretraining, supervised pairs for fine-tuning.

    >>> from temzoo import datasets, data
    >>> ds = datasets.load("synthetic_tem/unlabeled", "train")
    >>> pairs = data.pretext_pairs(ds, patch_size=128, batch_size=8)
    >>> labelled = data.take_fraction(datasets.load("synthetic_tem/au_np", "train"), 0.1, seed=0)
    >>> seg = data.supervised_pairs(labelled, task="segmentation", patch_size=128, batch_size=8)
"""

from temzoo.data.fractions import fraction_indices, take_fraction
from temzoo.data.pairs import (
    from_keras_dict,
    mean_intensity_units,
    poisson_noisy,
    pretext_pairs,
    supervised_pairs,
    to_keras_dict,
)
from temzoo.data.targets import TASKS, Task, target_key

__all__ = [
    "TASKS",
    "Task",
    "fraction_indices",
    "from_keras_dict",
    "mean_intensity_units",
    "poisson_noisy",
    "pretext_pairs",
    "supervised_pairs",
    "take_fraction",
    "target_key",
    "to_keras_dict",
]
