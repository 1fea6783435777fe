"""How long the full grid would take, estimated from measured runs (an estimate, never a measurement)."""

import dataclasses

from temzoo.errors import BadInputError
from temzoo.training.experiment.format import budget_text, fmt_fraction
from temzoo.training.experiment.grid import all_weights, experiment_grid
from temzoo.training.experiment.settings import FULL, OK

FULL_COMMAND = "python benchmarks/pretraining_effect.py            # or: temzoo-cli experiment --preset full"


def full_grid_text(payload, full=None):
    """How to run the full grid and how long it should take, estimated from ``payload``'s runs."""
    full = full or FULL
    cells = experiment_grid(full, weights=all_weights(full))
    text = (f"The full grid ({len(cells)} runs with every pretrained model shipped: "
            f"{len(full.models)} models x inits {', '.join(full.inits)} x fractions "
            f"{', '.join(fmt_fraction(f) for f in full.fractions)} x {len(full.seeds)} seeds x "
            f"{len(full.task_data)} tasks, plus {len(full.rf_models)} U-Nets x {len(full.rf_data)} pixel sizes x "
            f"{len(full.rf_seeds)} seeds) runs with:\n\n```bash\n{FULL_COMMAND}\n```\n\n"
            f"Budgets: pretraining study {budget_text(dataclasses.asdict(full.budget))}; receptive-field study "
            f"{budget_text(dataclasses.asdict(full.rf_budget))}.")
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
             "cells (`temzoo.training.experiment.estimate_seconds`).")
    if notes:
        text += " " + "; ".join(notes) + "."
    return text


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
    for cell in experiment_grid(settings, weights=all_weights(settings)):
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
