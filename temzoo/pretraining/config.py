"""Every setting of a pretraining run: one frozen config (no TensorFlow import).

:class:`PretrainConfig` is the one place where a pretraining option is written: its
default, type, validation, help text, whether it may change when a run is resumed and
whether it is a ``temzoo-cli pretrain`` option. :func:`temzoo.pretraining.pretrain`
takes one (or its fields as keyword arguments), the run manifest (``OUT/run.json``) is
:meth:`PretrainConfig.manifest`, and the CLI's options are generated from the fields
(``cli/pretrain_cmd.py``).

Field metadata: :mod:`temzoo.settings` (the same for every run configuration).
"""

import dataclasses
import json
import os

from temzoo import settings
from temzoo.errors import InputSizeError
from temzoo.names import PRECISIONS, SCHEDULES
from temzoo.names import PRETRAIN_METHODS as METHODS

LOSSES = ("l1", "l2")
MANIFEST = "run.json"
# Arguments added since the first release, with the value older manifests imply.
MANIFEST_DEFAULTS = {"learning_rate_schedule": "constant", "batch_norm_recalibration_batches": 0}


_field = settings.setting


@dataclasses.dataclass(frozen=True, eq=False)
class PretrainConfig:
    """Every setting of a pretraining run (compare two configs by their :meth:`manifest`)."""

    model: str = _field("unet_b2_p22", "Dense architecture to pretrain (see `temzoo-cli models list`), "
                        "e.g. unet_b3_p222.", "str", cli="required")
    dataset: object = _field("synthetic_tem/unlabeled", "Unlabelled image dataset with an `image` feature "
                             "(synthetic_tem/unlabeled, cem500k).", "any",
                             python="Or in-memory images: an N x H x W (x 1) array or a tf.data of images.")
    method: str = _field("pix2pix", "pix2pix: generator + conditional PatchGAN + L1; autoencoder: L1 "
                         "(or --loss l2) only.", "choice", choices=METHODS)
    patch_size: int = _field(128, "Training patch side in pixels; a multiple of the model's total stride "
                             "and at least 11 (SSIM's window).", "int", low=1)
    batch_size: int = _field(8, "GLOBAL batch size (split across GPUs / workers).", "int", low=1)
    epochs: int = _field(10, "Length of the run in epochs.", "int", low=1, resumable=True)
    steps_per_epoch: int = _field(100, "Training steps per epoch.", "int", low=1)
    validation_steps: int = _field(4, "Validation batches evaluated after every epoch (0: none).", "int",
                                   low=0, resumable=True)
    checkpoint_every: int = _field(None, "Steps between checkpoints (default: once per epoch). Checkpoints are "
                                   "also written at every epoch end.", "int", low=0, resumable=True)
    keep_checkpoints: int = _field(3, "How many of the newest checkpoints to keep.", "int", low=1, resumable=True)
    precision: str = _field("float32", "auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or GPU (compute "
                            "capability >= 8.0) computes bfloat16 natively, else float32; mixed_float16 for older "
                            "NVIDIA GPUs (loss scaling). The exported generator is always float32.", "choice",
                            choices=PRECISIONS)
    seed: int = _field(0, "Initial weights and data order.", "int")
    dose_range: tuple = _field((5.0, 500.0), "Poisson dose range (counts per pixel at the mean intensity), "
                               "drawn log-uniformly per image.", "pair")
    read_noise: float = _field(0.0, "Gaussian read noise std in mean-intensity units.", "float", low=0)
    normalizer: object = _field(None, "A temzoo.zoo.normalization.Normalizer (default: standardize).", "any",
                                cli=False)
    augment: bool = _field(True, "Dihedral augmentation of the training patches (crops are always random).",
                           "flag", cli=False)
    shuffle_buffer: int = _field(256, "Examples in the shuffle buffer (0: keep the order).", "int", low=0, cli=False)
    data_dir: str = _field(None, "Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).",
                           "path", resumable=True)
    validation_dataset: object = _field(None, "In-memory validation images when the dataset is in memory "
                                        "(default: the same images with another seed); named datasets use "
                                        "their validation split.", "any", cli=False)
    discriminator: str = _field("patchgan_70", "PatchGAN preset for pix2pix (patchgan_16, patchgan_34, "
                                "patchgan_70, patchgan_142).", "str")
    model_overrides: dict = _field(None, 'Changes to the architecture\'s preset config, e.g. '
                                   '\'{"upsampling": "bilinear"}\'.', "json")
    discriminator_overrides: dict = _field(None, 'Changes to the PatchGAN preset\'s config, e.g. '
                                           '\'{"base_filters": 32}\'.', "json")
    l1_lambda: float = _field(100.0, "Weight of the L1 term of the pix2pix generator loss.", "float", low=0)
    loss: str = _field("l1", "Autoencoder loss.", "choice", choices=LOSSES)
    learning_rate: float = _field(2e-4, "Adam learning rate (generator and discriminator).", "float", low=0,
                                  low_open=True)
    beta_1: float = _field(0.5, "Adam beta_1 (0.5 as in pix2pix; 0.9 is Adam's usual value).", "float", low=0,
                           high=1, high_open=True)
    learning_rate_schedule: str = _field("constant", "cosine: decay both learning rates to 0 over the run "
                                         "(epochs x steps per epoch; more epochs on resume stretch the curve "
                                         "from that step, and the card says so).", "choice", choices=SCHEDULES)
    batch_norm_recalibration_batches: int = _field(
        0, "Before export, set the generator's BatchNorm moving statistics to the mean over this many training "
        "batches (precise BN); 0 keeps them as trained. Only the export changes, so a finished run can be "
        "re-exported.", "int", low=0, resumable=True)
    devices: tuple = _field(None, "Explicit devices for a MirroredStrategy, e.g. ['/gpu:0', '/gpu:1'] "
                            "(default: automatic, see temzoo.training.distribute).", "any", cli=False, resumable=True)
    jit_compile: bool = _field(False, "XLA on a single device (ignored with several devices).", "flag",
                               resumable=True)
    steps_per_execution: int = _field(1, "Training steps per compiled call (Keras' steps_per_execution).", "int",
                                      low=1, cli=False, resumable=True)
    name: str = _field(None, "Name of the exported model (default: MODEL_METHOD).", "str")
    samples: int = _field(4, "Validation patches drawn in samples/epoch-XXXX.png each epoch (0: none).", "int",
                          low=0, cli=False, manifest=False)

    def __post_init__(self):
        settings.check(self)
        if self.patch_size < 11:
            raise InputSizeError(f"patch_size={self.patch_size} is too small: SSIM needs patches of at least "
                                 "11 pixels.")
        low, high = self.dose_range
        if not 0 < low <= high:
            raise ValueError(f"dose_range must satisfy 0 < low <= high, got {list(self.dose_range)}.")
        if self.devices is not None:
            object.__setattr__(self, "devices", tuple(self.devices))

    @property
    def run_name(self):
        """Name of the exported model: ``name`` or ``<model>_<method>``."""
        return self.name or f"{self.model}_{self.method}"

    @property
    def resolved_normalizer(self):
        """``normalizer``, or the default per-image standardisation."""
        from temzoo.zoo.normalization import Normalizer

        return self.normalizer or Normalizer("standardize")

    @property
    def checkpoint_interval(self):
        """Steps between checkpoints (``checkpoint_every``, default one epoch)."""
        return self.steps_per_epoch if self.checkpoint_every is None else self.checkpoint_every

    def replace(self, **changes):
        """A copy with ``changes``; an unknown name fails naming the close ones."""
        return settings.replace(self, "pretraining", **changes)

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def manifest(self):
        """JSON-able description of the run (the settings that define it, as written to ``run.json``)."""
        pix2pix, autoencoder = self.method == "pix2pix", self.method == "autoencoder"
        manifest = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata["manifest"]}
        manifest.update(
            dataset=_describe_images(self.dataset), validation_dataset=_describe_images(self.validation_dataset),
            normalizer=self.resolved_normalizer.get_config(),
            dose_range=list(self.dose_range), devices=None if self.devices is None else list(self.devices),
            discriminator=self.discriminator if pix2pix else None, l1_lambda=self.l1_lambda if pix2pix else None,
            loss=self.loss if autoencoder else None, model_overrides=self.model_overrides or {},
            discriminator_overrides=self.discriminator_overrides or {}, name=self.run_name,
        )
        return json.loads(json.dumps(manifest, default=str))

    def write_manifest(self, out):
        """Write :meth:`manifest` to ``out/run.json`` (atomically)."""
        from temzoo.atomic import write_text

        write_text(os.path.join(out, MANIFEST), json.dumps(self.manifest(), indent=2, default=str) + "\n")


def _describe_images(images):
    """A dataset name as it is, in-memory images as their shape and content hash."""
    if images is None or isinstance(images, str):
        return images
    return in_memory_fingerprint(images)


def in_memory_fingerprint(images):
    """``array[N, H, W] sha256:...`` of in-memory images (what the manifest and the card record)."""
    import hashlib

    import numpy as np

    array = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    return f"array{list(array.shape)} sha256:{hashlib.sha256(array.tobytes()).hexdigest()[:16]}"


def cli_fields():
    """The fields that are ``temzoo-cli pretrain`` options, in order."""
    return settings.cli_fields(PretrainConfig)


# Settings that may change when a run is continued with resume=True (a longer run, other
# devices); every other setting defines the run and must stay the same.
RESUMABLE_CHANGES = settings.resumable(PretrainConfig)


PretrainConfig.__doc__ += "\n" + settings.field_docs(PretrainConfig, "pretrain")
DEFAULTS = PretrainConfig()
