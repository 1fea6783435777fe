"""Names and defaults of self-supervised adaptation: one frozen config (no TensorFlow import).

The library (:func:`temzoo.adapt`), the CLI (``temzoo-cli adapt``, whose options are
generated from the fields below), the run manifest (``DIR/run.json``) and the model card
all derive from :class:`AdaptConfig`, so a default and its help text are written once, here.
"""

import dataclasses

from temzoo.names import ADAPT_METHODS as METHODS
from temzoo.names import CLI_PRECISIONS, HEAD_MODES

# Default budget (docs/adapt.md, benchmarks/adapt.py): 250 steps of hrnet_pretrained on a
# 512 px micrograph took 181-207 CPU-seconds (process user+sys, loading and tracing included,
# taken under load on the shared 2-core machine); on 2 idle cores that is at least ~90-105 s
# of wall time, plus imports and export: about 2 minutes. A step's cost does not depend on
# the image's size.
DEFAULT_STEPS = 250


def _setting(default, help, *, low=None, choices=None, cli_choices=None):
    """A field of :class:`AdaptConfig` with its help text (the CLI's and the docstring's), its
    smallest value (integers) and its choices (``cli_choices``: those offered on the command line)."""
    meta = {"help": help, "low": low, "choices": choices, "cli_choices": cli_choices or choices}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """Every setting of an adaptation run (fields below; ``temzoo-cli adapt --help`` shows the same)."""

    method: str = _setting(
        "auto", "binomial: split each pixel's counts into two independent halves, one the input and one the "
        "target (Noise2Noise from one exposure; needs counts); blind_spot: Noise2Void masking with N2V2's "
        "median replacement; auto: binomial where every frame holds counts, else blind_spot.", choices=METHODS)
    steps: int = _setting(DEFAULT_STEPS, "Optimisation steps, the budget (the default takes about 2 minutes "
                          "on 2 idle CPU cores; the cost of a step does not depend on the image's size).", low=1)
    batch_size: int = _setting(8, "Patches per step.", low=1)
    patch_size: int = _setting(96, "Training patch side in pixels (rounded down to a multiple of the model's "
                               "stride; smaller images give smaller patches).", low=8)
    learning_rate: float = _setting(2e-4, "Adam's initial rate, decayed to 0 over the steps (cosine).")
    mask_fraction: float = _setting(0.02, "blind_spot: share of each patch's pixels that are masked and scored.")
    neighbourhood: int = _setting(5, "blind_spot: side (odd) of the square window whose median, the centre "
                                  "pixel excluded (N2V2), replaces a masked pixel.", low=3)
    split_fraction: float = _setting(0.8, "binomial: probability that a count goes to the input half.")
    gain: float | None = _setting(None, "binomial: data units per detected count, for files of scaled counts "
                                  "(counts = (value - offset) / gain); unset: the pixels must be whole numbers.")
    offset: float = _setting(0.0, "binomial: data value of zero counts (dark level).")
    head: str = _setting("auto", "auto/keep: keep the model's trained denoising output layer (auto: when it has "
                         "one); new: attach a new, randomly initialised one.", choices=HEAD_MODES)
    seed: int = _setting(0, "Seeds the patches, masks and splits (each step's from (seed, step)).")
    checkpoint_every: int = _setting(50, "Steps between checkpoints (0: only at the end); an interrupted run "
                                     "resumes when re-run with the same settings.", low=0)
    keep_checkpoints: int = _setting(2, "How many checkpoints to keep.", low=1)
    recalibration_batches: int = _setting(20, "Precise-BN batches before export when BatchNormalization trained "
                                          "(random initial weights); 0 to skip.", low=0)
    precision: str = _setting(
        "float32", "auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or GPU computes bfloat16 natively, else "
        "float32 (temzoo.inference.precision.resolve_precision). The model is written in float32 either way.",
        cli_choices=CLI_PRECISIONS)

    def __post_init__(self):
        from temzoo.inference.precision import check_precision

        check_precision(self.precision)
        for field in dataclasses.fields(self):
            value, low, choices = getattr(self, field.name), field.metadata["low"], field.metadata["choices"]
            if choices is not None and value not in choices:
                raise ValueError(f"{field.name}={value!r} is not supported; choose one of: {', '.join(choices)}.")
            if low is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ValueError(f"{field.name} must be an integer >= {low}, got {value!r}.")
        if self.neighbourhood % 2 == 0:
            raise ValueError(f"neighbourhood must be odd (a window centred on the pixel), got {self.neighbourhood}.")
        if not 0 < self.mask_fraction <= 0.25:
            raise ValueError(f"mask_fraction must be in (0, 0.25], got {self.mask_fraction}.")
        if not 0 < self.split_fraction < 1:
            raise ValueError(f"split_fraction must be in (0, 1), got {self.split_fraction}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if self.gain is not None and not self.gain > 0:
            raise ValueError(f"gain (data units per count) must be positive, got {self.gain}.")

    def as_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


AdaptConfig.__doc__ += "\n\n    Args:\n" + "\n".join(
    f"        {f.name}: {f.metadata['help']} Default {f.default!r}." for f in dataclasses.fields(AdaptConfig))

DEFAULTS = AdaptConfig()
