"""Every setting of a fine-tuning run: one frozen config (no TensorFlow import).

:class:`FinetuneConfig` is the one place where a fine-tuning option is written: its
default, type, validation and help text (:mod:`temzoo.settings`).
:func:`temzoo.finetune.finetune` takes one (or its fields as keyword arguments), the run's
``metrics.json`` and card record :meth:`FinetuneConfig.manifest`, and ``temzoo-cli
finetune``'s options are generated from the fields. The defaults are README's main
command, chosen to fit in about 3 minutes on 2 CPU cores (``benchmarks/quickstart.py``
measures them).
"""

import dataclasses

from temzoo import settings
from temzoo.names import CLI_PRECISIONS, FREEZE_MODES, SCHEDULES, TASKS

_field = settings.setting


@dataclasses.dataclass(frozen=True, eq=False)
class FinetuneConfig:
    """Every setting of a fine-tuning run."""

    model: object = _field(None, "Pretrained name (e.g. hrnet_pretrained), architecture name (random weights) or "
                           ".keras file.", "any", cli="required", python="Or a Keras model.")
    dataset: object = _field("synthetic_tem/au_np", "Labelled dataset with train and validation splits (see "
                             "`temzoo-cli data list`).", "any", python="Or a tf.data of {'image', target} dicts.")
    task: str = _field("segmentation", "What the model learns.", "choice", choices=TASKS)
    train_fraction: float = _field(0.1, "Share of the training split to use (a seeded subset; smaller fractions "
                                   "nest in larger ones).", "float", low=0, low_open=True, high=1)
    epochs: int = _field(4, "Length of the run in epochs.", "int", low=1)
    steps_per_epoch: int = _field(20, "Training steps per epoch (0: one pass over the training fraction).", "int",
                                  low=0, none=True)
    batch_size: int = _field(8, "Training patches per step.", "int", low=1)
    patch_size: int = _field(128, "Training crop size in pixels; a multiple of the model's total stride.", "int",
                             low=1)
    freeze: str = _field("none", "Freeze the encoder, or everything but the new head.", "choice",
                         choices=FREEZE_MODES)
    learning_rate: float = _field(2e-3, "Adam's (peak) learning rate.", "float", low=0, low_open=True)
    schedule: str = _field("cosine", "cosine: decay the rate to 0 over the run; constant: keep it.", "choice",
                           choices=SCHEDULES)
    num_classes: int = _field(2, "Segmentation classes (background included).", "int", low=2)
    seed: int = _field(0, "Initial head weights, data subset and order.", "int")
    data_dir: str = _field(None, "Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).",
                           "path")
    dataset_config: object = _field(None, "A TFDS BuilderConfig replacing the named one (e.g. a small "
                                    "SyntheticTemConfig for a quick run).", "any", cli=False)
    validation_images: int = _field(16, "Validate on the first N validation images, whole (0: the whole split).",
                                    "int", low=0, none=True)
    validation_steps: int = _field(None, "At most this many validation batches per epoch.", "int", low=1)
    test_split: str = _field("test", "Evaluate the best model on this split at the end, whole images as "
                             "temzoo.predict sees them ('' to skip).", "str", none=True)
    overlays: int = _field(4, "Validation images to draw titled prediction overlays for.", "int", low=0)
    batch_norm_batches: int = _field(4, "Before each validation, re-estimate BatchNorm statistics from this many "
                                     "training batches (precise BN; 0: keep the moving averages).", "int", low=0)
    precision: str = _field("float32", "Train in float32 or mixed_bfloat16; auto: mixed_bfloat16 where the CPU "
                            "(AVX512-BF16/AMX) or GPU computes bfloat16 natively, else float32. The model is "
                            "exported in float32.", "choice", choices=CLI_PRECISIONS)

    def __post_init__(self):
        settings.check(self)

    def replace(self, **changes):
        """A copy with ``changes``; an unknown name fails naming the close ones."""
        return settings.replace(self, "fine-tuning", **changes)

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # Mapping access, as the dict ``temzoo.finetune.DEFAULTS`` was: DEFAULTS["epochs"], {**DEFAULTS}.
    def keys(self):
        return [f.name for f in dataclasses.fields(self)]

    def __getitem__(self, name):
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    @property
    def steps(self):
        """Steps per epoch, ``None`` for one pass over the training fraction."""
        return self.steps_per_epoch or None


def cli_fields():
    """The fields that are ``temzoo-cli finetune`` options, in order."""
    return settings.cli_fields(FinetuneConfig)


FinetuneConfig.__doc__ += "\n" + settings.field_docs(FinetuneConfig, "finetune")
DEFAULTS = FinetuneConfig()
