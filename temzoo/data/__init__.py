"""Input pipelines: pretext pairs for pretraining, supervised pairs for fine-tuning.

    >>> from temzoo import datasets, data
    >>> ds = datasets.load("synthetic_tem/unlabeled", "train")
    >>> pairs = data.pretext_pairs(ds, patch_size=128, batch_size=8)
    >>> labelled = data.take_fraction(datasets.load("synthetic_tem/au_np", "train"), 0.1, seed=0)
    >>> seg = data.supervised_pairs(labelled, task="segmentation", patch_size=128, batch_size=8)

The names are imported lazily (as ``temzoo``'s are), so ``temzoo.data.boxes`` loads without
TensorFlow, e.g. on a GPU machine whose Keras runs on JAX.
"""

from temzoo.lazy import lazy_attributes

# public name -> "module:attribute"
_LAZY = {
    "fraction_indices": "temzoo.data.fractions:fraction_indices",
    "take_fraction": "temzoo.data.fractions:take_fraction",
    **{name: f"temzoo.data.pairs:{name}" for name in (
        "from_keras_dict", "mean_intensity_units", "poisson_noisy", "pretext_pairs", "supervised_pairs",
        "to_keras_dict")},
    **{name: f"temzoo.data.targets:{name}" for name in ("TASKS", "Task", "target_key")},
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
