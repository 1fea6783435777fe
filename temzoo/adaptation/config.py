"""Names and defaults of self-supervised adaptation: one frozen config (no TensorFlow import).

The library (:func:`temzoo.adapt`), the CLI (``temzoo-cli adapt``, whose options are
generated from the fields below), the run manifest (``DIR/run.json``) and the model card
all derive from :class:`AdaptConfig`, so a default and its help text are written once, here.
"""

import dataclasses

from temzoo import settings
from temzoo.names import ADAPT_METHODS as METHODS
from temzoo.names import BATCH_NORM_MODES, CLI_PRECISIONS, HEAD_MODES

# Default budget (docs/adapt.md, benchmarks/adapt.py): 250 steps of hrnet_pretrained on a
# 512 px micrograph took 181-207 CPU-seconds (process user+sys, loading and tracing included,
# taken under load on the shared 2-core machine); on 2 idle cores that is at least ~90-105 s
# of wall time, plus imports and export: about 2 minutes. A step's cost does not depend on
# the image's size.
DEFAULT_STEPS = 250


_field = settings.setting


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """Every setting of an adaptation run (fields below; ``temzoo-cli adapt --help`` shows the same)."""

    method: str = _field(
        "auto", "binomial: split each pixel's counts into two independent halves, one the input and one the "
        "target (Noise2Noise from one exposure; needs counts); blind_spot: Noise2Void masking with N2V2's "
        "median replacement; auto: binomial where every frame holds counts, else blind_spot.", "choice",
        choices=METHODS)
    steps: int = _field(DEFAULT_STEPS, "Optimisation steps, the budget (the default takes about 2 minutes "
                          "on 2 idle CPU cores; the cost of a step does not depend on the image's size).", "int", low=1)
    batch_size: int = _field(8, "Patches per step.", "int", low=1)
    patch_size: int = _field(96, "Training patch side in pixels (rounded down to a multiple of the model's "
                               "stride; smaller images give smaller patches).", "int", low=8)
    learning_rate: float = _field(2e-4, "Adam's initial rate, decayed to 0 over the steps (cosine).", "float",
                                   low=0, low_open=True)
    mask_fraction: float = _field(0.02, "blind_spot: share of each patch's pixels that are masked and scored.",
                                   "float", low=0, low_open=True, high=0.25)
    neighbourhood: int = _field(5, "blind_spot: side (odd) of the square window whose median, the centre "
                                  "pixel excluded (N2V2), replaces a masked pixel.", "int", low=3)
    split_fraction: float = _field(0.8, "binomial: probability that a count goes to the input half.", "float",
                                    low=0, low_open=True, high=1, high_open=True)
    gain: float | None = _field(None, "binomial: data units per detected count, for files of scaled counts "
                                  "(counts = (value - offset) / gain); unset: the pixels must be whole numbers.",
                                  "float", low=0, low_open=True)
    offset: float = _field(0.0, "binomial: data value of zero counts (dark level).", "float")
    head: str = _field("auto", "auto/keep: keep the model's trained denoising output layer (auto: when it has "
                         "one); new: attach a new, randomly initialised one.", "choice",
                       choices=HEAD_MODES)
    batch_norm: str = _field(
        "auto", "auto: BatchNormalization frozen (inference mode) on trained weights, trained on random ones; "
        "train: trained (momentum as in fine-tuning) and re-estimated (precise BN) before export; frozen: never "
        "trained.", "choice", choices=BATCH_NORM_MODES)
    seed: int = _field(0, "Seeds the patches, masks and splits (each step's from (seed, step)).", "int")
    checkpoint_every: int = _field(50, "Steps between checkpoints (0: only at the end); an interrupted run "
                                     "resumes when re-run with the same settings.", "int", low=0)
    keep_checkpoints: int = _field(2, "How many checkpoints to keep.", "int", low=1)
    recalibration_batches: int = _field(20, "Precise-BN batches before export when BatchNormalization trained "
                                          "(random initial weights); 0 to skip.", "int", low=0)
    precision: str = _field(
        "float32", "auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or GPU computes bfloat16 natively, else "
        "float32 (temzoo.inference.precision.resolve_precision). The model is written in float32 either way.",
        "choice", choices=CLI_PRECISIONS)

    def __post_init__(self):
        settings.check(self)
        if self.neighbourhood % 2 == 0:
            raise ValueError(f"neighbourhood must be odd (a window centred on the pixel), got {self.neighbourhood}.")

    def as_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A copy with ``changes``; an unknown name fails naming the close ones."""
        return settings.replace(self, "adaptation", **changes)


AdaptConfig.__doc__ += "\n" + settings.field_docs(AdaptConfig, "adapt")


def cli_fields():
    """The fields that are ``temzoo-cli adapt`` options, in order."""
    return settings.cli_fields(AdaptConfig)


DEFAULTS = AdaptConfig()
