"""The experiment's settings: budgets, datasets, the two presets, and command-line customisation."""

import dataclasses

from temzoo.errors import BadInputError
from temzoo.names import RESTORATION_TASKS as RESTORATION

INITS = ("pix2pix", "autoencoder", "random")
STUDIES = ("pretraining", "receptive_field")
# test metrics shown in the tables, and the validation metric convergence is measured on, per task
TABLE_METRICS = {"segmentation": ("iou", "dice"), **{t: ("psnr", "ssim") for t in RESTORATION}}
CONVERGENCE_METRIC = {"segmentation": "iou", **{t: "ssim" for t in RESTORATION}}
CONVERGENCE_FRACTION = 0.9
METRIC_DECIMALS = {"iou": 3, "dice": 3, "ssim": 3, "psnr": 2, "mean_iou": 3, "mae": 4, "mse": 4}
NOT_AVAILABLE = "not available"
FAILED = "failed"
OK = "ok"


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every cell of a group gets: ``epochs`` x ``steps_per_epoch`` steps of ``batch_size`` crops."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    patch_size: int
    learning_rate: float = 1e-3
    validation_images: int = 16  # first images of the validation split, evaluated after every epoch
    test_images: int | None = None  # None: the whole test split

    @property
    def steps(self):
        return self.epochs * self.steps_per_epoch


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A dataset name, optionally with the keyword arguments of a replacement builder config.

    ``config`` (e.g. ``{"name": "au_np_px025", "pixel_size_range": (0.25, 0.25)}``)
    builds a config object of the builder's own config class, so the same
    builder and code make a variant stored under its own name.
    """

    name: str
    config: dict | None = None
    label: str = ""

    @property
    def title(self):
        return self.label or (f"{self.name} ({self.config['name']})" if self.config else self.name)

    def config_object(self):
        if not self.config:
            return None
        from temzoo import datasets

        cls, _ = datasets.resolve(self.name)
        if not cls.BUILDER_CONFIGS:
            raise BadInputError(f"{self.name}: the builder has no configs, so config= cannot be given.")
        config = dict(self.config)
        for key, value in config.items():
            if isinstance(value, list):
                config[key] = tuple(value)
        return type(cls.BUILDER_CONFIGS[0])(**config)

    def to_json(self):
        return {"name": self.name, "config": self.config, "label": self.title}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The whole experiment: both studies' grids, data and budgets."""

    models: tuple
    inits: tuple
    fractions: tuple
    seeds: tuple
    task_data: dict  # task -> DataSpec
    budget: Budget
    rf_models: tuple = ()
    rf_data: tuple = ()  # DataSpecs: one per pixel size
    rf_seeds: tuple = ()
    rf_fraction: float = 1.0
    rf_budget: Budget | None = None
    name: str = "custom"

    def to_json(self):
        return {
            "name": self.name,
            "models": list(self.models),
            "inits": list(self.inits),
            "fractions": list(self.fractions),
            "seeds": list(self.seeds),
            "task_data": {task: spec.to_json() for task, spec in self.task_data.items()},
            "budget": dataclasses.asdict(self.budget),
            "rf_models": list(self.rf_models),
            "rf_data": [spec.to_json() for spec in self.rf_data],
            "rf_seeds": list(self.rf_seeds),
            "rf_fraction": self.rf_fraction,
            "rf_budget": dataclasses.asdict(self.rf_budget) if self.rf_budget else None,
        }


SMALL_UNET, LARGE_UNET = "unet_b3_p222", "unet_b4_p2222"
PRETRAINING_MODELS = (SMALL_UNET, LARGE_UNET, "hrnet_w18_small_skip", "mobilenetv2_unet")
RF_MODELS = ("unet_b2_p22", "unet_b3_p222", "unet_b3_p224", "unet_b3_p244", "unet_b4_p2222", "unet_b4_p4242",
             "unet_b4_p4444")
# Two pixel sizes of the au_np simulator: particles of the same physical size cover ~2.4x more pixels at 0.25 Å/px.
RF_PIXEL_SIZES = (0.25, 0.6)


def rf_data_spec(pixel_size, num_train=200, num_validation=20, num_test=40, image_size=256, tag=""):
    """``synthetic_tem/au_np`` at one fixed pixel size (Å/px), 2-5 nm particles (stored as ``au_np_pxNNN<tag>``)."""
    tag = f"px{round(pixel_size * 100):03d}{tag}"
    return DataSpec(
        "synthetic_tem/au_np",
        {"name": f"au_np_{tag}", "image_size": image_size, "num_train": num_train, "num_validation": num_validation,
         "num_test": num_test, "pixel_size_range": [pixel_size, pixel_size], "diameter_range_nm": [2.0, 5.0]},
        label=f"au_np at {pixel_size:g} Å/px",
    )


def default_task_data():
    return {
        "segmentation": DataSpec("synthetic_tem/au_np"),
        **{task: DataSpec("synthetic_tem/atomic") for task in RESTORATION},
    }


FULL = Settings(
    name="full",
    models=PRETRAINING_MODELS,
    inits=INITS,
    fractions=(0.02, 0.1, 1.0),
    seeds=(0, 1, 2),
    task_data=default_task_data(),
    budget=Budget(epochs=20, steps_per_epoch=50, batch_size=8, patch_size=128, validation_images=16),
    rf_models=RF_MODELS,
    rf_data=tuple(rf_data_spec(p) for p in RF_PIXEL_SIZES),
    rf_seeds=(0, 1, 2),
    rf_budget=Budget(epochs=20, steps_per_epoch=50, batch_size=8, patch_size=128, validation_images=16),
)

def quick_data_spec(family, num_train=100, num_validation=8, num_test=12, image_size=128):
    """A small build of ``synthetic_tem/<family>`` (default parameters otherwise) for the quick preset."""
    return DataSpec(f"synthetic_tem/{family}",
                    {"name": f"{family}_quick", "image_size": image_size, "num_train": num_train,
                     "num_validation": num_validation, "num_test": num_test})


# The quick preset: two U-Nets (the small one has shipped weights, the larger one is the paper's "larger
# random" comparison), 2 seeds, 2 % and 100 % labels, small builds and 64-px patches; HRNet and the MobileNet
# U-Net are only in the full grid (tracing a model costs ~10-30 s per run on 2 cores, which the quick budget
# cannot pay for every cell).
QUICK = Settings(
    name="quick",
    models=(SMALL_UNET, LARGE_UNET),
    inits=INITS,
    fractions=(0.02, 1.0),
    seeds=(0, 1),
    task_data={"segmentation": quick_data_spec("au_np"), "denoising": quick_data_spec("atomic")},
    budget=Budget(epochs=4, steps_per_epoch=8, batch_size=4, patch_size=64, validation_images=4, test_images=12),
    rf_models=("unet_b2_p22", "unet_b3_p244"),
    rf_data=tuple(rf_data_spec(p, num_train=40, num_validation=4, num_test=12, tag="_quick") for p in RF_PIXEL_SIZES),
    rf_seeds=(0,),
    rf_budget=Budget(epochs=4, steps_per_epoch=8, batch_size=4, patch_size=64, validation_images=4, test_images=12),
)

PRESETS = {"quick": QUICK, "full": FULL}


def parse_task_data(pairs, base=None):
    """``["segmentation=au_np", ...]`` -> ``{task: DataSpec}`` over ``base`` (the preset's)."""
    from temzoo.tasks import TASK_NAMES

    out = dict(base or {})
    for pair in pairs or ():
        task, sep, name = pair.partition("=")
        if not sep or not name:
            raise BadInputError(f"--dataset {pair!r}: write TASK=DATASET, e.g. segmentation=au_np.")
        if task not in TASK_NAMES:
            raise BadInputError(f"--dataset {pair!r}: unknown task {task!r}; choose one of {', '.join(TASK_NAMES)}.")
        out[task] = DataSpec(name)
    return out


def customize(settings, *, tasks=None, models=None, seeds=None, fractions=None, task_data=None):
    """``settings`` with fewer tasks / other models / ``seeds`` seeds / other fractions / other datasets."""
    changes = {}
    data = dict(task_data or settings.task_data)
    if tasks:
        unknown = [t for t in tasks if t not in data]
        if unknown:
            raise BadInputError(f"tasks {', '.join(unknown)}: no dataset for them; known: {', '.join(data)}.")
        data = {t: data[t] for t in tasks}
    changes["task_data"] = data
    if models:
        changes["models"] = tuple(models)
    if seeds:
        changes["seeds"] = tuple(range(int(seeds)))
        changes["rf_seeds"] = tuple(range(int(seeds)))
    if fractions:
        changes["fractions"] = tuple(float(f) for f in fractions)
    return dataclasses.replace(settings, **changes)
