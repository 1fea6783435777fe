"""temzoo.names is the one source of the shared names and defaults; it stays TensorFlow-free."""

import subprocess
import sys

from temzoo import names


def test_names_module_imports_no_tensorflow_or_keras():
    code = ("import sys, temzoo.names, temzoo_cli.finetune_cmd, temzoo_cli.pretrain_cmd;"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_library_and_cli_use_the_names_module():
    from temzoo_cli import finetune_cmd, pretrain_cmd

    from temzoo import finetune
    from temzoo.adaptation import config as adapt_config
    from temzoo.data import targets
    from temzoo.inference import precision
    from temzoo.pretraining import run as pretrain_run
    from temzoo.tasks import builder, heads

    assert builder.TASK_NAMES is names.TASKS
    assert builder.RESTORATION_TASKS is names.RESTORATION_TASKS
    assert heads.FREEZE_MODES is names.FREEZE_MODES
    assert precision.PRECISIONS is names.PRECISIONS
    assert pretrain_run.METHODS is names.PRETRAIN_METHODS
    assert adapt_config.METHODS is names.ADAPT_METHODS
    assert finetune.DEFAULTS.task in names.TASKS and finetune.DEFAULTS.freeze in names.FREEZE_MODES
    assert set(names.TASKS) <= set(targets.TASKS)  # every task has a target feature
    assert set(names.RESTORATION_TASKS) < set(names.TASKS)
    choices = {p.name: getattr(p.type, "choices", None) for p in finetune_cmd.finetune.params}
    assert tuple(choices["task"]) == names.TASKS
    assert tuple(choices["freeze"]) == names.FREEZE_MODES
    assert tuple(choices["schedule"]) == names.SCHEDULES
    defaults = {p.name: p.default for p in finetune_cmd.finetune.params}
    for key in ("epochs", "steps_per_epoch", "batch_size", "learning_rate", "train_fraction", "precision"):
        assert defaults[key] == getattr(finetune.DEFAULTS, key), key
    methods = {p.name: getattr(p.type, "choices", None) for p in pretrain_cmd.pretrain.params}["method"]
    assert tuple(methods) == names.PRETRAIN_METHODS


def test_a_card_without_a_task_is_read_the_same_everywhere():
    assert names.task_or_default(None, restoring=True) == names.DEFAULT_RESTORATION_TASK
    assert names.task_or_default("", restoring=False) == "segmentation"
    assert names.task_or_default("super_resolution", restoring=False) == "super_resolution"
