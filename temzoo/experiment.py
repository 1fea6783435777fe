"""The paper's experiment as a benchmark: pretrained vs random init, labelled fractions, receptive field.

    >>> from temzoo import experiment
    >>> payload = experiment.run_experiment(experiment.QUICK, json_path="runs.json", page_path="docs/results.md")

Two studies, each a grid of *cells* (one fine-tuning run each):

* **pretraining**: models x init (``pix2pix`` / ``autoencoder`` shipped weights,
  or ``random``) x labelled fraction x seed, for segmentation on
  ``synthetic_tem/au_np`` and restoration (denoising, background removal,
  super-resolution) on ``synthetic_tem/atomic``;
* **receptive_field**: U-Net pooling variants (small to large receptive field),
  random init, on ``synthetic_tem/au_np`` simulated at two pixel sizes (in the
  manner of Sytwu et al. 2022).

Every cell of a (study, task, dataset) group gets the same :class:`Budget`
(epochs x steps, batch, patch, learning rate); smaller labelled fractions are
repeated to fill the same number of steps. A cell whose init has no shipped
weights is recorded as ``not available``, never substituted.

A cell's record holds its per-epoch validation history with cumulative
wall-clock, its test-split metrics (:func:`temzoo.evaluate.evaluate`: the whole
test images, tiled prediction) and its convergence (epochs and seconds to reach
90 % of the last epoch's validation metric). :func:`aggregate` gives mean and
std over seeds; :func:`write_plots` and :func:`results_page` turn the runs JSON
(and nothing else) into PNGs and a markdown page.
"""

import dataclasses
import json
import math
import os
import time

from temzoo.errors import BadInputError

INITS = ("pix2pix", "autoencoder", "random")
STUDIES = ("pretraining", "receptive_field")
from temzoo.names import RESTORATION_TASKS as RESTORATION
# test metrics shown in the tables, and the validation metric convergence is measured on, per task
TABLE_METRICS = {"segmentation": ("iou", "dice"), **{t: ("psnr", "ssim") for t in RESTORATION}}
CONVERGENCE_METRIC = {"segmentation": "iou", **{t: "ssim" for t in RESTORATION}}
CONVERGENCE_FRACTION = 0.9
METRIC_DECIMALS = {"iou": 3, "dice": 3, "ssim": 3, "psnr": 2, "mean_iou": 3, "mae": 4, "mse": 4}
NOT_AVAILABLE = "not available"
FAILED = "failed"
OK = "ok"


# ----------------------------------------------------------------------------- settings


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


# ----------------------------------------------------------------------------- grid


@dataclasses.dataclass(frozen=True)
class Cell:
    study: str
    task: str
    data: DataSpec
    model: str  # architecture
    init: str  # pix2pix, autoencoder or random
    fraction: float
    seed: int
    budget: Budget
    weights: str | None = None  # pretrained entry name (None for random)
    available: bool = True
    reason: str = ""

    @property
    def key(self):
        return "|".join(str(v) for v in (self.study, self.task, self.data.title, self.model, self.init,
                                          f"{self.fraction:g}", self.seed))

    @property
    def group(self):
        """Cells that must share a budget."""
        return (self.study, self.task, self.data.title)


def pretraining_method(entry):
    """``pix2pix`` or ``autoencoder`` for a pretrained registry entry (from its card, else its name)."""
    from temzoo import pretrained

    try:
        card = pretrained.card(entry["name"]) or {}
    except Exception:  # a missing file is reported when the cell loads it, not here
        card = entry.get("card") or {}
    method = card.get("method")
    if isinstance(method, dict):
        method = method.get("name")
    if method in ("pix2pix", "autoencoder"):
        return method
    names = [entry["name"], *entry.get("aliases", ())]
    if any("autoencoder" in n for n in names):
        return "autoencoder"
    if any("pix2pix" in n for n in names):
        return "pix2pix"
    return None


def shipped_weights(entries=None):
    """``{(architecture, method): entry name}`` for the pretrained entries (built-in ones win)."""
    from temzoo import pretrained

    entries = pretrained.pretrained_entries() if entries is None else entries
    found = {}
    ordered = sorted(entries.values(), key=lambda e: (not e.get("builtin", False), e["name"]))
    for entry in ordered:
        method = pretraining_method(entry)
        key = (entry.get("architecture"), method)
        if method and key not in found:
            found[key] = entry["name"]
    return found


def pretraining_grid(settings, weights=None):
    """Every cell of the pretraining study; cells without shipped weights are ``available=False``."""
    weights = shipped_weights() if weights is None else weights
    cells = []
    for task, data in settings.task_data.items():
        for fraction in settings.fractions:
            for model in settings.models:
                for init in settings.inits:
                    if init not in INITS:
                        raise BadInputError(f"init {init!r} is not one of {', '.join(INITS)}.")
                    name = None if init == "random" else weights.get((model, init))
                    missing = init != "random" and name is None
                    reason = f"no shipped {init} weights for {model}" if missing else ""
                    for seed in settings.seeds:
                        cells.append(Cell("pretraining", task, data, model, init, fraction, seed, settings.budget,
                                          weights=name, available=not missing, reason=reason))
    return cells


def receptive_field_grid(settings):
    """Every cell of the receptive-field study (segmentation, random init, ``rf_fraction``)."""
    cells = []
    for data in settings.rf_data:
        for model in settings.rf_models:
            for seed in settings.rf_seeds:
                cells.append(Cell("receptive_field", "segmentation", data, model, "random", settings.rf_fraction,
                                  seed, settings.rf_budget))
    return cells


def experiment_grid(settings, weights=None, studies=STUDIES):
    cells = []
    if "pretraining" in studies:
        cells += pretraining_grid(settings, weights)
    if "receptive_field" in studies and settings.rf_models and settings.rf_data:
        cells += receptive_field_grid(settings)
    check_budgets(cells)
    return cells


def check_budgets(cells):
    """Raise unless every cell of a (study, task, dataset) group has the same budget."""
    seen = {}
    for cell in cells:
        first = seen.setdefault(cell.group, cell.budget)
        if first != cell.budget:
            raise BadInputError(f"cells of {cell.group} have different budgets: {first} and {cell.budget}.")
    return True


# ----------------------------------------------------------------------------- convergence


def epochs_to_fraction(values, fraction=CONVERGENCE_FRACTION):
    """First epoch (1-based) whose value reaches ``fraction`` x the last value (higher is better).

    ``None`` when the last value is not positive or not finite: "90 % of a
    final IoU of 0" would be met at once and says nothing.
    """
    values = [float(v) for v in values]
    if not values or not math.isfinite(values[-1]) or values[-1] <= 0:
        return None
    threshold = fraction * values[-1]
    for epoch, value in enumerate(values, start=1):
        if math.isfinite(value) and value >= threshold:
            return epoch
    return len(values)


def seconds_to_fraction(values, cumulative_seconds, fraction=CONVERGENCE_FRACTION):
    """Wall-clock seconds (from the start of training) at the epoch :func:`epochs_to_fraction` finds."""
    epoch = epochs_to_fraction(values, fraction)
    return None if epoch is None else float(cumulative_seconds[epoch - 1])


# ----------------------------------------------------------------------------- running one cell


class EpochClock:
    """Keras callback: cumulative wall-clock seconds since the start of ``fit`` at every epoch end."""

    def __init__(self):
        import keras

        class _Clock(keras.callbacks.Callback):
            def on_train_begin(inner, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(inner, epoch, logs=None):
                self.seconds.append(round(time.perf_counter() - self.start, 3))

        self.seconds = []
        self.start = None
        self.callback = _Clock()


def _count(ds):
    n = int(ds.cardinality())
    return n if n >= 0 else sum(1 for _ in ds)


def weights_sha256(weights):
    """sha256 of the pretrained weights a cell starts from (a registry name or a ``.keras`` path); None for none."""
    if not weights:
        return None
    if os.path.exists(weights):
        from temzoo.cards import sha256_file

        return sha256_file(weights)
    from temzoo import pretrained

    return pretrained.resolve(weights).get("sha256")


def cell_record(cell):
    """The record of ``cell`` before it runs (what identifies it, the weights' file hash included)."""
    return {
        "key": cell.key,
        "study": cell.study,
        "task": cell.task,
        "dataset": cell.data.title,
        "dataset_name": cell.data.name,
        "model": cell.model,
        "init": cell.init,
        "weights": cell.weights,
        "weights_sha256": weights_sha256(cell.weights),
        "fraction": cell.fraction,
        "seed": cell.seed,
        "budget": dataclasses.asdict(cell.budget),
        "status": OK if cell.available else NOT_AVAILABLE,
        "reason": cell.reason,
    }


def run_cell(cell, data_dir=None, echo=print, verbose=0):
    """Fine-tune one cell and evaluate it on the test split; returns its record (a JSON-able dict)."""
    import keras

    from temzoo import data as pipelines
    from temzoo import datasets, tasks
    from temzoo.evaluate import evaluate
    from temzoo.pretrained import card as card_of
    from temzoo.receptive_field import receptive_field
    from temzoo.tasks.backbone import resolve_model
    from temzoo.tiling import model_stride

    record = cell_record(cell)
    if not cell.available:
        return record
    started = time.perf_counter()
    budget = cell.budget
    keras.backend.clear_session()
    keras.utils.set_random_seed(cell.seed)
    resolved = resolve_model(cell.weights if cell.init != "random" else cell.model)
    record["receptive_field"] = int(receptive_field(resolved.model))
    record["parameters"] = int(resolved.model.count_params())
    kwargs = {"learning_rate": budget.learning_rate}
    if cell.task == "segmentation":
        kwargs["num_classes"] = 2
    task_model = tasks.build(cell.task, resolved, **kwargs)
    stride = model_stride(task_model)
    if budget.patch_size % stride:
        record.update(status=NOT_AVAILABLE, reason=f"total stride {stride} does not divide patch {budget.patch_size}")
        return record
    normalizer = tasks.normalizer_of(card_of(task_model))
    config = cell.data.config_object()
    target = pipelines.target_key(cell.data.name, cell.task)
    train_all = datasets.load(cell.data.name, "train", data_dir=data_dir, config=config)
    n_all = _count(train_all)
    train = pipelines.take_fraction(train_all, cell.fraction, seed=cell.seed, num_examples=n_all)
    val = datasets.load(cell.data.name, "validation", data_dir=data_dir, config=config).take(budget.validation_images)
    record["train_examples"], record["train_split_examples"] = _count(train), n_all
    common = dict(target_key=target, task=cell.task, normalizer=normalizer, seed=cell.seed)
    if cell.task == "segmentation":
        common["num_classes"] = 2
    train_pairs = pipelines.supervised_pairs(train, patch_size=budget.patch_size, batch_size=budget.batch_size,
                                             augment=True, repeat=True, **common)
    sides = [s for s in val.element_spec["image"].shape[:2] if s is not None]
    val_patch = min(sides) // stride * stride if sides else budget.patch_size
    val_pairs = pipelines.supervised_pairs(val, patch_size=val_patch, batch_size=min(4, budget.batch_size),
                                           augment=False, repeat=False, shuffle_buffer=0, **common)
    clock = EpochClock()
    record["setup_seconds"] = round(time.perf_counter() - started, 2)
    echo(f"  {cell.key}: {record['train_examples']} of {n_all} training images, {budget.steps} steps")
    history = task_model.fit(train_pairs, epochs=budget.epochs, steps_per_epoch=budget.steps_per_epoch,
                             validation_data=val_pairs, callbacks=[clock.callback], verbose=verbose, shuffle=False)
    history = {k: [float(v) for v in values] for k, values in history.history.items()}
    history["seconds"] = clock.seconds
    record["history"] = history
    record["train_seconds"] = clock.seconds[-1] if clock.seconds else None
    metric = CONVERGENCE_METRIC[cell.task]
    values = history.get(f"val_{metric}", [])
    record["convergence"] = {
        "metric": f"val_{metric}",
        "fraction": CONVERGENCE_FRACTION,
        "final": values[-1] if values else None,
        "epochs": epochs_to_fraction(values),
        "seconds": seconds_to_fraction(values, clock.seconds),
    }
    test_started = time.perf_counter()
    result = evaluate(task_model, cell.data.name, "test", data_dir=data_dir, dataset_config=config,
                      max_examples=budget.test_images)
    record["test_seconds"] = round(time.perf_counter() - test_started, 2)
    record["test"] = result["metrics"]
    record["test_examples"] = result["examples"]
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


# ----------------------------------------------------------------------------- aggregation


def mean_std(values):
    """``(mean, std, n)``: the sample std (ddof=1) over seeds; std is ``None`` for a single value."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None, None, 0
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std, n


def stats(values):
    """``{"mean", "std", "n"}`` of :func:`mean_std`."""
    mean, std, n = mean_std(values)
    return {"mean": mean, "std": std, "n": n}


def group_key(record):
    return (record["study"], record["task"], record["dataset"], record["model"], record["init"], record["fraction"])


def aggregate(records):
    """One row per (study, task, dataset, model, init, fraction): mean/std/n of every test metric and convergence.

    Rows of cells that did not run carry ``status`` (``not available`` or
    ``failed``) and their ``reason``.
    """
    groups = {}
    for record in records:
        groups.setdefault(group_key(record), []).append(record)
    rows = []
    for key, members in groups.items():
        study, task, dataset, model, init, fraction = key
        done = [r for r in members if r["status"] == OK]
        row = {"study": study, "task": task, "dataset": dataset, "model": model, "init": init, "fraction": fraction,
               "weights": members[0].get("weights"), "seeds": sorted(r["seed"] for r in done), "n": len(done)}
        if not done:
            row["status"] = members[0]["status"]
            row["reason"] = members[0].get("reason", "")
            rows.append(row)
            continue
        row["status"] = OK
        row["receptive_field"] = done[0].get("receptive_field")
        row["parameters"] = done[0].get("parameters")
        metrics = sorted({m for r in done for m in r.get("test", {})})
        row["test"] = {m: stats([r["test"].get(m) for r in done]) for m in metrics}
        row["convergence_epochs"] = stats([r["convergence"]["epochs"] for r in done])
        row["convergence_seconds"] = stats([r["convergence"]["seconds"] for r in done])
        row["train_seconds"] = stats([r.get("train_seconds") for r in done])
        curves = [r["history"].get(f"val_{CONVERGENCE_METRIC[task]}", []) for r in done]
        length = min(len(c) for c in curves)
        row["curve_metric"] = f"val_{CONVERGENCE_METRIC[task]}"
        row["curve_mean"] = [sum(c[i] for c in curves) / len(curves) for i in range(length)]
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- formatting


def fmt_value(value, metric):
    if value is None:
        return "n/a"
    return f"{value:.{METRIC_DECIMALS.get(metric, 3)}f}"


def fmt_mean_std(stats, metric):
    """``"0.812 ± 0.013 (n=3)"``; ``"0.812 (n=1)"`` for one seed."""
    if not stats or stats.get("mean") is None:
        return "n/a"
    text = fmt_value(stats["mean"], metric)
    if stats.get("std") is not None:
        text += f" ± {fmt_value(stats['std'], metric)}"
    return text + f" (n={stats['n']})"


def fmt_fraction(fraction):
    return f"{fraction * 100:g}%"


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _init_label(row):
    if row["init"] == "random":
        return "random"
    return f"{row['init']} ({row['weights']})" if row.get("weights") else row["init"]


# ----------------------------------------------------------------------------- findings


def _compare(a, b, metric):
    """How mean a compares with mean b: 'higher', 'lower' or 'within the seed spread' (|diff| <= larger std)."""
    diff = a["mean"] - b["mean"]
    spread = max(a.get("std") or 0.0, b.get("std") or 0.0)
    single = a["n"] < 2 or b["n"] < 2
    if abs(diff) <= spread:
        verdict = "within the seed spread of"
    else:
        verdict = "higher than" if diff > 0 else "lower than"
    note = " (one seed: no spread to compare with)" if single else ""
    return verdict, f"{fmt_value(a['mean'], metric)} vs {fmt_value(b['mean'], metric)}{note}"


def findings(rows):
    """Plain statements of what the aggregated rows show for each claim of the paper (numbers from ``rows``)."""
    out = []
    pre = [r for r in rows if r["study"] == "pretraining" and r["status"] == OK]
    index = {(r["task"], r["model"], r["init"], r["fraction"]): r for r in pre}
    for task in sorted({r["task"] for r in pre}):
        metric = TABLE_METRICS[task][0]
        for (t, model, init, fraction), row in sorted(index.items()):
            if t != task or init == "random":
                continue
            base = index.get((task, model, "random", fraction))
            if not base:
                continue
            verdict, numbers = _compare(row["test"][metric], base["test"][metric], metric)
            out.append(f"{task}, {model}, {fmt_fraction(fraction)} labels: {init} init gives test {metric} "
                       f"{verdict} random init ({numbers}).")
            ce, cb = row["convergence_epochs"], base["convergence_epochs"]
            if ce["mean"] is not None and cb["mean"] is not None:
                out.append(f"{task}, {model}, {fmt_fraction(fraction)} labels: epochs to 90% of the final "
                           f"validation {CONVERGENCE_METRIC[task]}: {ce['mean']:.1f} ({init}) vs {cb['mean']:.1f} "
                           "(random).")
        for fraction in sorted({r["fraction"] for r in pre if r["task"] == task}):
            small = [index.get((task, SMALL_UNET, init, fraction)) for init in ("pix2pix", "autoencoder")]
            large = index.get((task, LARGE_UNET, "random", fraction))
            for row in filter(None, small):
                if large:
                    verdict, numbers = _compare(row["test"][metric], large["test"][metric], metric)
                    out.append(f"{task}, {fmt_fraction(fraction)} labels: small {SMALL_UNET} ({row['init']}) is "
                               f"{verdict} the larger random {LARGE_UNET} in test {metric} ({numbers}).")
            group = [r for r in pre if r["task"] == task and r["fraction"] == fraction]
            if group:
                best = max(group, key=lambda r: r["test"][metric]["mean"])
                out.append(f"{task}, {fmt_fraction(fraction)} labels: highest mean test {metric}: {best['model']} "
                           f"({_init_label(best)}), {fmt_value(best['test'][metric]['mean'], metric)}.")
    rf = [r for r in rows if r["study"] == "receptive_field" and r["status"] == OK]
    for dataset in sorted({r["dataset"] for r in rf}):
        group = sorted((r for r in rf if r["dataset"] == dataset), key=lambda r: r["receptive_field"])
        best = max(group, key=lambda r: r["test"]["iou"]["mean"])
        out.append(f"receptive field, {dataset}: highest mean test IoU {fmt_value(best['test']['iou']['mean'], 'iou')}"
                   f" with {best['model']} (receptive field {best['receptive_field']} px; tried "
                   f"{', '.join(str(r['receptive_field']) for r in group)} px).")
    return out


# ----------------------------------------------------------------------------- plots


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig, path):
    from temzoo.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


INIT_STYLE = {"pix2pix": "-", "autoencoder": "--", "random": ":"}


def write_plots(rows, img_dir, prefix="pretraining_effect"):
    """Metric vs labelled fraction per init, learning curves, metric vs receptive field; returns the PNG paths."""
    from matplotlib.ticker import MaxNLocator

    paths = {}
    pre = [r for r in rows if r["study"] == "pretraining" and r["status"] == OK]
    for task in sorted({r["task"] for r in pre}):
        metric = TABLE_METRICS[task][0]
        models = [m for m in dict.fromkeys(r["model"] for r in pre if r["task"] == task)]
        fig = _figure(3.6 * len(models), 3.2)
        for i, model in enumerate(models):
            ax = fig.add_subplot(1, len(models), i + 1)
            for init in INITS:
                points = sorted((r["fraction"], r["test"][metric]) for r in pre
                                if r["task"] == task and r["model"] == model and r["init"] == init)
                if not points:
                    continue
                ax.errorbar([p[0] * 100 for p in points], [p[1]["mean"] for p in points],
                            yerr=[p[1]["std"] or 0.0 for p in points], linestyle=INIT_STYLE[init], marker="o",
                            capsize=3, label=init)
            ax.set_xscale("log")
            ax.set_xlabel("labelled fraction (%)")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(model, fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle(f"{task}: test {metric} vs labelled fraction (mean ± std over seeds)", fontsize=10)
        paths[f"fraction_{task}"] = _save(fig, os.path.join(img_dir, f"{prefix}_fraction_{task}.png"))

        fractions = sorted({r["fraction"] for r in pre if r["task"] == task})
        fig = _figure(4.2 * len(fractions), 3.4)
        colours = {m: f"C{j}" for j, m in enumerate(models)}
        for i, fraction in enumerate(fractions):
            ax = fig.add_subplot(1, len(fractions), i + 1)
            for row in pre:
                if row["task"] != task or row["fraction"] != fraction:
                    continue
                curve = row["curve_mean"]
                ax.plot(range(1, len(curve) + 1), curve, color=colours[row["model"]],
                        linestyle=INIT_STYLE[row["init"]], marker=".", label=f"{row['model']} {row['init']}")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(f"validation {CONVERGENCE_METRIC[task]}")
            ax.set_title(f"{fmt_fraction(fraction)} labels", fontsize=9)
            ax.legend(fontsize=6)
        fig.suptitle(f"{task}: learning curves (mean over seeds)", fontsize=10)
        paths[f"curves_{task}"] = _save(fig, os.path.join(img_dir, f"{prefix}_curves_{task}.png"))

    rf = [r for r in rows if r["study"] == "receptive_field" and r["status"] == OK]
    if rf:
        fig = _figure(5.5, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        for dataset in sorted({r["dataset"] for r in rf}):
            points = sorted((r["receptive_field"], r["test"]["iou"], r["model"]) for r in rf if r["dataset"] == dataset)
            ax.errorbar([p[0] for p in points], [p[1]["mean"] for p in points],
                        yerr=[p[1]["std"] or 0.0 for p in points], marker="o", capsize=3, label=dataset)
        ax.set_xscale("log")
        ax.set_xlabel("receptive field (px)")
        ax.set_ylabel("test IoU")
        ax.set_title("segmentation vs receptive field (U-Net pooling variants, random init)", fontsize=9)
        ax.legend(fontsize=7)
        paths["receptive_field"] = _save(fig, os.path.join(img_dir, f"{prefix}_receptive_field.png"))
    return paths


# ----------------------------------------------------------------------------- results page


def _budget_text(budget):
    test = "all test images" if budget.get("test_images") is None else f"the first {budget['test_images']} test images"
    return (f"{budget['epochs']} epochs x {budget['steps_per_epoch']} steps, batch {budget['batch_size']}, "
            f"{budget['patch_size']} px random crops with dihedral augmentation, Adam lr {budget['learning_rate']:g}; "
            f"validation on the first {budget['validation_images']} validation images after every epoch; "
            f"test metrics on {test}")


def _data_text(spec):
    text = f"`{spec['name']}`"
    if spec.get("config"):
        text += " with config " + ", ".join(f"{k}={v}" for k, v in spec["config"].items())
    return text


def results_page(payload, img_paths=None, page_dir=None):
    """Markdown of the experiment in ``payload`` (the runs JSON): tables, findings, plots, settings."""
    settings = payload["settings"]
    rows = aggregate(payload["records"])
    records = payload["records"]
    out = [f"# Results: {payload.get('title', 'pretrained vs random init')}", ""]
    out += [
        f"Produced by `{payload.get('command', '')}` ({settings['name']} settings) on {payload['machine']['date']}, "
        f"{payload['machine']['cpus']} CPU cores, GPUs: {', '.join(payload['machine']['gpus']) or 'none'}, "
        f"TensorFlow {payload['machine']['tensorflow']}; wall time {payload.get('wall_seconds', 0) / 60:.1f} min. "
        f"Runs: {sum(r['status'] == OK for r in records)} done, "
        f"{sum(r['status'] == NOT_AVAILABLE for r in records)} not available, "
        f"{sum(r['status'] == FAILED for r in records)} failed. Every number below comes from "
        f"[`{os.path.basename(payload.get('json_name', 'runs.json'))}`]({payload.get('json_name', 'runs.json')}).",
        "",
    ]
    if settings["name"] != "full":
        out += [f"This is the **{settings['name']}** preset, a reduced grid: models {', '.join(settings['models'])}; "
                f"labelled fractions {', '.join(fmt_fraction(f) for f in settings['fractions'])}; "
                f"{len(settings['seeds'])} seed(s); tasks {', '.join(settings['task_data'])}; short budgets on small "
                "builds of the synthetic datasets. It checks that the pipeline runs and shows the direction of the "
                "effects at this scale; it is not the full grid (see the end of the page).", ""]
    if payload.get("note"):
        out += [payload["note"], ""]
    out += ["Metrics: segmentation IoU and Dice of the particle class; restoration PSNR (dB, peak = the target's "
            "range) and SSIM, per image then averaged; all on the test split, whole images, tiled prediction "
            "(`temzoo.evaluate`). Mean ± sample std over seeds (n = seeds that ran). Convergence: the first epoch "
            f"whose validation {'/'.join(sorted(set(CONVERGENCE_METRIC.values())))} reaches "
            f"{CONVERGENCE_FRACTION:.0%} of the last epoch's; its wall-clock is from the start of training and "
            "includes graph tracing (epoch 1) and per-epoch validation. Read it with the final metric: a run that "
            "stays flat at a poor value 'converges' in 1 epoch. Each seed changes the labelled subset, the "
            "head (and for random init the whole network) initialisation and the augmentation; pretrained "
            "backbones are the same file for every seed.", ""]

    def img(key, alt):
        if img_paths and key in img_paths:
            rel = os.path.relpath(img_paths[key], page_dir) if page_dir else img_paths[key]
            out.extend([f"![{alt}]({rel})", ""])

    pre = [r for r in rows if r["study"] == "pretraining"]
    if pre:
        out += ["## Pretrained vs random init, by labelled fraction", ""]
    for task in dict.fromkeys(r["task"] for r in pre):
        group = [r for r in pre if r["task"] == task]
        fractions = sorted({r["fraction"] for r in group})
        out += [f"### {task} on {group[0]['dataset']}", ""]
        for metric in TABLE_METRICS[task]:
            header = ["model", "init"] + [f"test {metric}, {fmt_fraction(f)} labels" for f in fractions]
            table = []
            for model, init in dict.fromkeys((r["model"], r["init"]) for r in group):
                cells = []
                label = None
                for fraction in fractions:
                    row = next((r for r in group if (r["model"], r["init"], r["fraction"]) == (model, init, fraction)),
                               None)
                    label = label or (row and _init_label(row))
                    if row is None:
                        cells.append("not run")
                    elif row["status"] != OK:
                        cells.append(f"{row['status']}: {row.get('reason', '')}".rstrip(": "))
                    else:
                        cells.append(fmt_mean_std(row["test"].get(metric), metric))
                table.append([model, label or init] + cells)
            out += [_markdown_table(header, table), ""]
        header = ["model", "init"] + [f"epochs / s to 90%, {fmt_fraction(f)}" for f in fractions]
        table = []
        for model, init in dict.fromkeys((r["model"], r["init"]) for r in group):
            cells = []
            for fraction in fractions:
                row = next((r for r in group if (r["model"], r["init"], r["fraction"]) == (model, init, fraction)),
                           None)
                if row is None or row["status"] != OK:
                    cells.append("—")
                    continue
                ce, cs = row["convergence_epochs"], row["convergence_seconds"]
                text = "n/a" if ce["mean"] is None else f"{ce['mean']:.1f}"
                text += "" if ce.get("std") is None else f" ± {ce['std']:.1f}"
                text += " ep / " + ("n/a" if cs["mean"] is None else f"{cs['mean']:.0f} s")
                cells.append(text)
            table.append([model, init] + cells)
        out += [f"Convergence (validation {CONVERGENCE_METRIC[task]}):", "", _markdown_table(header, table), ""]
        spec = settings["task_data"][task]
        out += [f"Data: {_data_text(spec)}. Budget (identical for every cell of this table): "
                f"{_budget_text(settings['budget'])}. Seeds: {', '.join(str(s) for s in settings['seeds'])}.", ""]
        img(f"fraction_{task}", f"{task}: metric vs labelled fraction")
        img(f"curves_{task}", f"{task}: learning curves")

    rf = [r for r in rows if r["study"] == "receptive_field"]
    if rf:
        out += ["## Receptive field (U-Net pooling variants, random init)", ""]
        datasets_ = list(dict.fromkeys(r["dataset"] for r in rf))
        header = ["model", "receptive field (px)", "parameters"] + [f"test IoU, {d}" for d in datasets_]
        table = []
        for model in dict.fromkeys(r["model"] for r in rf):
            members = [r for r in rf if r["model"] == model]
            field = next((r.get("receptive_field") for r in members if r.get("receptive_field")), None)
            params = next((r.get("parameters") for r in members if r.get("parameters")), None)
            cells = []
            for dataset in datasets_:
                row = next((r for r in members if r["dataset"] == dataset), None)
                if row is None:
                    cells.append("not run")
                elif row["status"] != OK:
                    cells.append(f"{row['status']}: {row.get('reason', '')}".rstrip(": "))
                else:
                    cells.append(fmt_mean_std(row["test"].get("iou"), "iou"))
            table.append([model, field if field is not None else "n/a", f"{params:,}" if params else "n/a"] + cells)
        out += [_markdown_table(header, table), ""]
        out += ["Data: " + "; ".join(_data_text(s) for s in settings["rf_data"]) + ". Budget (identical for every "
                f"cell): {_budget_text(settings['rf_budget'])}; {fmt_fraction(settings['rf_fraction'])} of the "
                f"training split. Seeds: {', '.join(str(s) for s in settings['rf_seeds'])}.", ""]
        img("receptive_field", "test IoU vs receptive field")

    statements = findings(rows)
    if statements:
        out += ["## What the numbers say", "",
                "Generated from the table rows above: 'higher'/'lower' only when the means differ by more than the "
                "larger of the two seed stds, else 'within the seed spread'.", ""]
        out += [f"- {s}" for s in statements] + [""]
    failed = [r for r in records if r["status"] == FAILED]
    if failed:
        out += ["## Failed runs", ""] + [f"- `{r['key']}`: {r.get('reason', '')}" for r in failed] + [""]
    if payload.get("full_grid"):
        out += ["## The full grid", "", payload["full_grid"], ""]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- the whole experiment


def machine():
    import platform

    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _write_json(path, payload):
    from temzoo.atomic import write_text

    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def _load_previous(path, settings_json):
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    if previous.get("settings") != settings_json:
        raise BadInputError(f"{path}: holds runs of other settings; choose another --json or drop --resume.")
    return {r["key"]: r for r in previous.get("records", []) if r["status"] in (OK, NOT_AVAILABLE)}


def run_experiment(settings, *, json_path, page_path=None, img_dir=None, data_dir=None, studies=STUDIES,
                   resume=False, command="", note="", full_grid="", weights=None, echo=print, verbose=0,
                   keep_going=True):
    """Run every cell of ``settings``, writing ``json_path`` after each; then the plots and the page.

    Args:
        json_path: the runs JSON (rewritten atomically after every cell).
        page_path, img_dir: the markdown page and the folder of its PNGs (skipped if ``None``).
        resume: reuse the finished cells of an existing ``json_path`` with the same settings
            whose pretrained weights have the same sha256 (re-shipped weights re-run their cells).
        weights: ``{(architecture, method): pretrained name}``; default from the registry.
        keep_going: record a failing cell as ``failed`` (with its error) and go on.

    Returns the payload written to ``json_path``.
    """
    cells = experiment_grid(settings, weights, studies)
    settings_json = settings.to_json()
    done = _load_previous(json_path, settings_json) if resume else {}
    started = time.perf_counter()
    previous_seconds = 0.0
    if done and os.path.exists(json_path):
        with open(json_path, encoding="utf-8") as f:
            previous_seconds = float(json.load(f).get("wall_seconds", 0.0))
    payload = {"title": "pretrained vs random init, labelled fractions, receptive field", "command": command,
               "note": note, "full_grid": full_grid, "settings": settings_json, "machine": machine(),
               "json_name": os.path.relpath(json_path, os.path.dirname(os.path.abspath(page_path))) if page_path
               else os.path.basename(json_path), "records": []}
    runnable = sum(c.available for c in cells)
    echo(f"{len(cells)} cells ({runnable} to run, {len(cells) - runnable} not available); writing {json_path}")
    for number, cell in enumerate(cells, start=1):
        previous = done.get(cell.key)
        # reuse a finished cell unless its weights were shipped since (newly available) or changed (new hash)
        if previous and (previous["status"] == OK or not cell.available) and \
                previous.get("weights_sha256") == weights_sha256(cell.weights):
            record = previous
        else:
            if cell.available:
                echo(f"[{number}/{len(cells)}] {cell.key}")
            try:
                record = run_cell(cell, data_dir=data_dir, echo=echo, verbose=verbose)
            except Exception as exc:
                if not keep_going:
                    raise
                record = {**cell_record(cell), "status": FAILED, "reason": f"{type(exc).__name__}: {exc}"}
                echo(f"  failed: {record['reason']}")
        payload["records"].append(record)
        payload["wall_seconds"] = round(previous_seconds + time.perf_counter() - started, 1)
        _write_json(json_path, payload)
    if not full_grid:
        payload["full_grid"] = full_grid_text(payload)
        _write_json(json_path, payload)
    if page_path:
        write_results(payload, page_path, img_dir or os.path.join(os.path.dirname(page_path), "img"))
    return payload


FULL_COMMAND = "python benchmarks/pretraining_effect.py            # or: temzoo-cli experiment --preset full"


def full_grid_text(payload, full=None):
    """How to run the full grid and how long it should take, estimated from ``payload``'s runs."""
    full = full or FULL
    cells = experiment_grid(full, weights=_all_weights(full))
    text = (f"The full grid ({len(cells)} runs with every pretrained model shipped: "
            f"{len(full.models)} models x inits {', '.join(full.inits)} x fractions "
            f"{', '.join(fmt_fraction(f) for f in full.fractions)} x {len(full.seeds)} seeds x "
            f"{len(full.task_data)} tasks, plus {len(full.rf_models)} U-Nets x {len(full.rf_data)} pixel sizes x "
            f"{len(full.rf_seeds)} seeds) runs with:\n\n```bash\n{FULL_COMMAND}\n```\n\n"
            f"Budgets: pretraining study {_budget_text(dataclasses.asdict(full.budget))}; receptive-field study "
            f"{_budget_text(dataclasses.asdict(full.rf_budget))}.")
    if payload["settings"]["name"] == "full":
        return text + f" This page is that run: {payload.get('wall_seconds', 0) / 3600:.1f} h measured."
    try:
        seconds, notes = estimate_seconds(full, payload["records"])
    except BadInputError:
        return text
    machine = payload["machine"]
    text += (f"\n\nEstimated run time on the machine of this page ({machine['cpus']} CPU cores, GPUs: "
             f"{', '.join(machine['gpus']) or 'none'}): about {seconds / 3600:.0f} h. This is an ESTIMATE, not a "
             "measurement: per model, the measured setup, epoch-1 overhead (tracing), seconds per training step "
             "(scaled by patch area x batch) and seconds per test image of the runs above, summed over the full grid's "
             "cells (`temzoo.experiment.estimate_seconds`).")
    if notes:
        text += " " + "; ".join(notes) + "."
    return text


def write_results(payload, page_path, img_dir):
    """PNG plots into ``img_dir`` and the markdown page at ``page_path``, from the runs payload only."""
    from temzoo.atomic import write_text

    rows = aggregate(payload["records"])
    prefix = "pretraining_effect" + ("" if payload["settings"]["name"] == "full" else f"_{payload['settings']['name']}")
    paths = write_plots(rows, img_dir, prefix=prefix)
    page = results_page(payload, paths, page_dir=os.path.dirname(os.path.abspath(page_path)))
    write_text(page_path, page)
    return page, paths


def load_runs(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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


# ----------------------------------------------------------------------------- run-time estimate


def _median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def measured_costs(records):
    """Per model, from finished runs: seconds per step after epoch 1, epoch-1 overhead (tracing), setup, test/image."""
    costs = {}
    for model in dict.fromkeys(r["model"] for r in records if r["status"] == OK):
        runs = [r for r in records if r["status"] == OK and r["model"] == model and len(r["history"]["seconds"]) > 1]
        if not runs:
            continue
        step = [(r["history"]["seconds"][-1] - r["history"]["seconds"][0])
                / (r["budget"]["steps_per_epoch"] * (len(r["history"]["seconds"]) - 1)) for r in runs]
        first = [r["history"]["seconds"][0] - s * r["budget"]["steps_per_epoch"] for r, s in zip(runs, step, strict=True)]
        costs[model] = {
            "step_seconds": _median(step),
            "pixels_per_step": _median([r["budget"]["patch_size"] ** 2 * r["budget"]["batch_size"] for r in runs]),
            "first_epoch_overhead_seconds": _median(first),
            "setup_seconds": _median([r["setup_seconds"] for r in runs]),
            "test_seconds_per_image": _median([r["test_seconds"] / max(r["test_examples"], 1) for r in runs]),
            "runs": len(runs),
        }
    return costs


def estimate_seconds(settings, records, test_images=None):
    """Estimated wall time of ``settings``' grid on the machine that produced ``records``.

    Per cell: setup + epoch-1 overhead (both as measured) + steps x the measured
    seconds per step scaled by pixels per step (patch^2 x batch) + test
    images x measured seconds per test image. Models without measurements
    take the slowest measured model's costs. ``test_images``: the test split
    size for budgets that evaluate the whole split. Returns
    ``(seconds, notes)``; an estimate, not a measurement.
    """
    costs = measured_costs(records)
    if not costs:
        raise BadInputError("no finished runs to estimate from.")
    slowest = max(costs, key=lambda m: costs[m]["step_seconds"] / costs[m]["pixels_per_step"])
    notes = []
    total = 0.0
    for cell in experiment_grid(settings, weights=_all_weights(settings)):
        cost = costs.get(cell.model)
        if cost is None:
            cost = costs[slowest]
            note = f"{cell.model}: not measured; assumed as costly as {slowest}"
            if note not in notes:
                notes.append(note)
        budget = cell.budget
        scale = budget.patch_size ** 2 * budget.batch_size / cost["pixels_per_step"]
        images = budget.test_images or (cell.data.config or {}).get("num_test") or test_images or 50
        total += (cost["setup_seconds"] + cost["first_epoch_overhead_seconds"]
                  + budget.steps * cost["step_seconds"] * scale + images * cost["test_seconds_per_image"])
    return total, notes


def _all_weights(settings):
    """A weights map that makes every pretrained cell available (for estimates of grids with all weights shipped)."""
    return {(m, i): f"{m}_{i}" for m in settings.models for i in settings.inits if i != "random"}
