"""Names and defaults of self-supervised adaptation: one frozen config (no TensorFlow import).

The library (:func:`temzoo.adapt`), the CLI (``temzoo-cli adapt``), the run manifest
(``DIR/run.json``) and the model card all derive from :class:`AdaptConfig`, so a default
is written once, here.
"""

import dataclasses

# "blind_spot": Noise2Void masking with N2V2's median replacement; "binomial": split each
# pixel's counts into two independent halves (Noise2Noise from one exposure);
# "auto": binomial where the input holds counts, else blind_spot. Measured on a real HRTEM
# image at dose 5 (docs/adapt.md): binomial with split_fraction 0.8 25.51 dB, 0.5 25.05 dB,
# blind spot 25.27 dB, the shipped model as it is 24.57 dB.
from temzoo.names import ADAPT_METHODS as METHODS

HEAD_MODES = ("auto", "keep", "new")

# Default budget. Measured on hrnet_pretrained (docs/adapt.md, benchmarks/adapt.py): one
# step of 8 patches of 96x96 px costs 0.58 CPU-core-seconds (process CPU time, steps 20-60,
# taken on the shared 2-core machine at load average 12-15); at ~1.7 cores' worth of useful
# parallelism on 2 idle cores that is ~0.34 s a step, so 250 steps plus ~20 s of loading,
# tracing and export make about 2 minutes.
DEFAULT_STEPS = 250


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """Every setting of an adaptation run.

    Args:
        method: one of :data:`METHODS`.
        steps: optimisation steps (the budget).
        batch_size, patch_size: patches per step and their side in pixels (rounded down
            to a multiple of the model's stride; smaller images give smaller patches).
        learning_rate: Adam's initial rate, decayed to 0 over ``steps`` (cosine).
        mask_fraction: blind spot: share of each patch's pixels that are masked and scored.
        neighbourhood: blind spot: side of the square window whose median (centre pixel
            excluded, N2V2) replaces a masked pixel.
        split_fraction: binomial: probability that a count goes to the input half.
        gain: data units per detected count (counts = (image - offset) / gain);
            ``None``: the input must hold whole numbers (counts) for ``binomial``.
        offset: data value of zero counts (dark level).
        head: ``auto``/``keep``/``new``, as for :func:`temzoo.tasks.denoising`.
        seed: seeds the patches, masks and splits (each step's from ``(seed, step)``).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_checkpoints: how many checkpoints to keep.
        recalibration_batches: precise-BN batches before export when BatchNormalization
            trained (random initial weights); 0 to skip.
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"auto"`` (see
            :func:`temzoo.inference.precision.resolve_precision`); the model is exported in float32.
    """

    method: str = "auto"
    steps: int = DEFAULT_STEPS
    batch_size: int = 8
    patch_size: int = 96
    learning_rate: float = 2e-4
    mask_fraction: float = 0.02
    neighbourhood: int = 5
    split_fraction: float = 0.8
    gain: float | None = None
    offset: float = 0.0
    head: str = "auto"
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    recalibration_batches: int = 20
    precision: str = "float32"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is not supported; choose one of: {', '.join(METHODS)}.")
        from temzoo.inference.precision import check_precision

        check_precision(self.precision)
        if self.head not in HEAD_MODES:
            raise ValueError(f"head={self.head!r} is not supported; choose one of: {', '.join(HEAD_MODES)}.")
        for key, low in (("steps", 1), ("batch_size", 1), ("patch_size", 8), ("neighbourhood", 3),
                         ("checkpoint_every", 0), ("keep_checkpoints", 1), ("recalibration_batches", 0)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}.")
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


DEFAULTS = AdaptConfig()
