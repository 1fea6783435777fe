"""Running the experiment: one fine-tuning run per cell (:mod:`temzoo.training.pipeline`), the runs JSON."""

import dataclasses
import json
import logging
import math
import os
import time

from temzoo.errors import BadInputError
from temzoo.training.experiment.cost import full_grid_text
from temzoo.training.experiment.grid import experiment_grid
from temzoo.training.experiment.report import write_results
from temzoo.training.experiment.settings import (
    CONVERGENCE_FRACTION,
    CONVERGENCE_METRIC,
    FAILED,
    NOT_AVAILABLE,
    OK,
    STUDIES,
)

logger = logging.getLogger(__name__)


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


def weights_sha256(weights):
    """sha256 of the pretrained weights a cell starts from (a registry name or a ``.keras`` path); None for none."""
    if not weights:
        return None
    if os.path.exists(weights):
        from temzoo.zoo.cards import sha256_file

        return sha256_file(weights)
    from temzoo.zoo import pretrained

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


def run_cell(cell, data_dir=None, verbose=0):
    """Fine-tune one cell and evaluate it on the test split; returns its record (a JSON-able dict).

    The run is :mod:`temzoo.training.pipeline`'s (the one ``temzoo.finetune`` uses),
    with the cell's budget, a constant learning rate and no precise BatchNorm;
    a cell whose patch is not a multiple of the model's total stride is
    ``not available``.
    """
    import keras

    from temzoo.evaluate import evaluate
    from temzoo.receptive_field import receptive_field
    from temzoo.training import pipeline as pipeline
    from temzoo.training.callbacks import EpochClock

    record = cell_record(cell)
    if not cell.available:
        return record
    started = time.perf_counter()
    budget = cell.budget
    config = cell.data.config_object()
    keras.backend.clear_session()
    try:
        run = pipeline.prepare(
            cell.weights if cell.init != "random" else cell.model, cell.data.name, cell.task,
            train_fraction=cell.fraction, epochs=budget.epochs, batch_size=budget.batch_size,
            patch_size=budget.patch_size, learning_rate=budget.learning_rate, schedule="constant", num_classes=2,
            seed=cell.seed, data_dir=data_dir, dataset_config=config, steps_per_epoch=budget.steps_per_epoch,
            validation_images=budget.validation_images,
        )
    except pipeline.PatchStrideError as err:
        record.update(status=NOT_AVAILABLE, reason=f"total stride {err.stride} does not divide patch {err.patch_size}")
        return record
    record["receptive_field"] = int(receptive_field(run.resolved.model))
    record["parameters"] = int(run.resolved.model.count_params())
    record["train_examples"], record["train_split_examples"] = run.train_examples, run.train_split_examples
    clock = EpochClock()
    record["setup_seconds"] = round(time.perf_counter() - started, 2)
    logger.info("  %s: %d of %d training images, %d steps", cell.key, run.train_examples, run.train_split_examples,
                budget.steps)
    history = pipeline.fit(run, epochs=budget.epochs, learning_rate=budget.learning_rate, callbacks=[clock],
                           verbose=verbose)
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
    result = evaluate(run.task_model, cell.data.name, "test", data_dir=data_dir, dataset_config=config,
                      max_examples=budget.test_images)
    record["test_seconds"] = round(time.perf_counter() - test_started, 2)
    record["test"] = result["metrics"]
    record["test_examples"] = result["examples"]
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


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
                   resume=False, command="", note="", full_grid="", weights=None, verbose=0, keep_going=True):
    """Run every cell of ``settings``, writing ``json_path`` after each; then the plots and the page.

    Args:
        json_path: the runs JSON (rewritten atomically after every cell).
        page_path, img_dir: the markdown page and the folder of its PNGs (skipped if ``None``).
        resume: reuse the finished cells of an existing ``json_path`` with the same settings
            whose pretrained weights have the same sha256 (re-shipped weights re-run their cells).
        weights: ``{(architecture, method): pretrained name}``; default from the registry.
        keep_going: record a failing cell as ``failed`` (with its error) and go on.
        verbose: Keras' ``fit`` verbosity; progress is logged (``logging`` INFO, logger ``temzoo``).

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
    logger.info("%d cells (%d to run, %d not available); writing %s", len(cells), runnable, len(cells) - runnable,
                json_path)
    for number, cell in enumerate(cells, start=1):
        previous = done.get(cell.key)
        # reuse a finished cell unless its weights were shipped since (newly available) or changed (new hash)
        if previous and (previous["status"] == OK or not cell.available) and \
                previous.get("weights_sha256") == weights_sha256(cell.weights):
            record = previous
        else:
            if cell.available:
                logger.info("[%d/%d] %s", number, len(cells), cell.key)
            try:
                record = run_cell(cell, data_dir=data_dir, verbose=verbose)
            except Exception as exc:
                if not keep_going:
                    raise
                record = {**cell_record(cell), "status": FAILED, "reason": f"{type(exc).__name__}: {exc}"}
                logger.warning("  failed: %s", record["reason"])
        payload["records"].append(record)
        payload["wall_seconds"] = round(previous_seconds + time.perf_counter() - started, 1)
        _write_json(json_path, payload)
    if not full_grid:
        payload["full_grid"] = full_grid_text(payload)
        _write_json(json_path, payload)
    if page_path:
        write_results(payload, page_path, img_dir or os.path.join(os.path.dirname(page_path), "img"))
    return payload


def load_runs(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
