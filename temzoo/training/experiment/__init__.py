"""The paper's experiment as a benchmark: pretrained vs random init, labelled fractions, receptive field.

    >>> from temzoo.training import experiment
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

The package, one job a module: :mod:`~temzoo.training.experiment.settings` (budgets,
datasets, presets), :mod:`~temzoo.training.experiment.grid` (the cells),
:mod:`~temzoo.training.experiment.run` (run a cell with the fine-tuning pipeline of
:mod:`temzoo.training.pipeline`, the runs JSON), :mod:`~temzoo.training.experiment.report`
(aggregation, findings, the page), :mod:`~temzoo.training.experiment.format` (numbers as text), :mod:`~temzoo.training.experiment.plots` (the PNGs) and
:mod:`~temzoo.training.experiment.cost` (the run-time estimate of the full grid). The
names below are what ``temzoo-cli experiment`` and
``benchmarks/pretraining_effect.py`` use.
"""

from temzoo.training.experiment.cost import (
    FULL_COMMAND,
    estimate_seconds,
    full_grid_text,
    measured_costs,
)
from temzoo.training.experiment.format import fmt_fraction, fmt_mean_std, fmt_value
from temzoo.training.experiment.grid import (
    Cell,
    all_weights,
    check_budgets,
    experiment_grid,
    pretraining_grid,
    pretraining_method,
    receptive_field_grid,
    shipped_weights,
)
from temzoo.training.experiment.plots import write_plots
from temzoo.training.experiment.report import (
    aggregate,
    findings,
    mean_std,
    results_page,
    stats,
    write_results,
)
from temzoo.training.experiment.run import (
    cell_record,
    epochs_to_fraction,
    load_runs,
    machine,
    run_cell,
    run_experiment,
    seconds_to_fraction,
    weights_sha256,
)
from temzoo.training.experiment.settings import (
    CONVERGENCE_FRACTION,
    CONVERGENCE_METRIC,
    FAILED,
    FULL,
    INITS,
    LARGE_UNET,
    METRIC_DECIMALS,
    NOT_AVAILABLE,
    OK,
    PRESETS,
    PRETRAINING_MODELS,
    QUICK,
    RESTORATION,
    RF_MODELS,
    RF_PIXEL_SIZES,
    SMALL_UNET,
    STUDIES,
    TABLE_METRICS,
    Budget,
    DataSpec,
    Settings,
    customize,
    default_task_data,
    parse_task_data,
    quick_data_spec,
    rf_data_spec,
)

__all__ = [
    "CONVERGENCE_FRACTION", "CONVERGENCE_METRIC", "FAILED", "FULL", "FULL_COMMAND", "INITS", "LARGE_UNET",
    "METRIC_DECIMALS", "NOT_AVAILABLE", "OK", "PRESETS", "PRETRAINING_MODELS", "QUICK", "RESTORATION", "RF_MODELS",
    "RF_PIXEL_SIZES", "SMALL_UNET", "STUDIES", "TABLE_METRICS", "Budget", "Cell", "DataSpec", "Settings",
    "aggregate", "all_weights", "cell_record", "check_budgets", "customize", "default_task_data",
    "epochs_to_fraction", "estimate_seconds", "experiment_grid", "findings", "fmt_fraction", "fmt_mean_std",
    "fmt_value", "full_grid_text", "load_runs", "machine", "mean_std", "measured_costs", "parse_task_data",
    "pretraining_grid", "pretraining_method", "quick_data_spec", "receptive_field_grid", "results_page",
    "rf_data_spec", "run_cell", "run_experiment", "seconds_to_fraction", "shipped_weights", "stats",
    "weights_sha256", "write_plots", "write_results",
]
