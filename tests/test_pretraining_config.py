"""PretrainConfig: one source for every pretraining setting (library, manifest, resume rules, CLI);
the CSV log on Keras' CSVLogger; TF_CONFIG through TFConfigClusterResolver; no import cycle."""

import ast
import dataclasses
import json
import pathlib

import click
import numpy as np
import pytest

from temzoo.errors import InputSizeError
from temzoo.pretraining.config import DEFAULTS, RESUMABLE_CHANGES, PretrainConfig, cli_fields

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The keys of run.json as runs made before PretrainConfig wrote them: a key added or dropped
# would make every earlier run "a different run" (add new ones to MANIFEST_DEFAULTS).
MANIFEST_KEYS = {
    "model", "dataset", "method", "patch_size", "batch_size", "epochs", "steps_per_epoch", "validation_steps",
    "checkpoint_every", "keep_checkpoints", "precision", "seed", "dose_range", "read_noise", "normalizer",
    "augment", "shuffle_buffer", "data_dir", "validation_dataset", "discriminator", "model_overrides",
    "discriminator_overrides", "l1_lambda", "loss", "learning_rate", "beta_1", "learning_rate_schedule",
    "batch_norm_recalibration_batches", "devices", "jit_compile", "steps_per_execution", "name",
}


def test_the_resume_rules_are_the_ones_pretrain_always_had():
    assert RESUMABLE_CHANGES == {"epochs", "checkpoint_every", "keep_checkpoints", "validation_steps", "data_dir",
                                 "devices", "jit_compile", "steps_per_execution",
                                 "batch_norm_recalibration_batches"}


def test_the_manifest_is_what_earlier_runs_wrote():
    images = np.ones((2, 16, 16), "float32")
    manifest = PretrainConfig(dataset=images, method="autoencoder", model_overrides={"base_filters": 4}).manifest()
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["dataset"].startswith("array[2, 16, 16] sha256:")
    assert manifest["discriminator"] is None and manifest["l1_lambda"] is None and manifest["loss"] == "l1"
    assert manifest["name"] == "unet_b2_p22_autoencoder" and manifest["dose_range"] == [5.0, 500.0]
    assert manifest["normalizer"]["kind"] == "standardize" and manifest["model_overrides"] == {"base_filters": 4}
    assert json.loads(json.dumps(manifest)) == manifest
    pix2pix = DEFAULTS.manifest()
    assert pix2pix["loss"] is None and pix2pix["discriminator"] == "patchgan_70" and pix2pix["l1_lambda"] == 100.0


@pytest.mark.parametrize("change,error,message", [
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    ({"batch_size": 2.0}, ValueError, "batch_size must be an integer"),
    ({"checkpoint_every": -1}, ValueError, "checkpoint_every must be an integer >= 0"),
    ({"learning_rate": 0}, ValueError, "learning_rate must be a number > 0"),
    ({"beta_1": 1.0}, ValueError, "beta_1 must be a number >= 0 and < 1"),
    ({"read_noise": -0.1}, ValueError, "read_noise must be a number >= 0"),
    ({"method": "gan"}, ValueError, "choose one of: pix2pix, autoencoder"),
    ({"precision": "float8"}, ValueError, "precision='float8' is not supported"),
    ({"dose_range": (50.0, 5.0)}, ValueError, "dose_range must satisfy"),
    ({"patch_size": 8}, InputSizeError, "too small"),
    ({"model_overrides": '{"a": 1}'}, ValueError, "model_overrides must be a dict"),
])
def test_bad_settings_fail_when_the_config_is_made(change, error, message):
    with pytest.raises(error, match=message):
        PretrainConfig(**change)
    with pytest.raises(error, match=message):
        DEFAULTS.replace(**change)


def test_config_is_frozen_and_unknown_settings_name_the_close_ones():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.epochs = 3
    with pytest.raises(TypeError, match="'epoch' \\(did you mean epochs"):
        DEFAULTS.replace(epoch=3)
    config = DEFAULTS.replace(learning_rate=1, dose_range=[1, 2], jit_compile=1)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.dose_range == (1.0, 2.0) and config.jit_compile is True
    assert config.checkpoint_interval == config.steps_per_epoch == 100
    assert DEFAULTS.replace(checkpoint_every=0).checkpoint_interval == 0


def test_pretrain_takes_a_config_or_its_fields(monkeypatch):
    from temzoo.pretraining import run

    seen = []
    monkeypatch.setattr(run._Run, "__init__", lambda self, config, out, verbose: seen.append(config))
    monkeypatch.setattr(run._Run, "run", lambda self, resume, overwrite: None)
    base = PretrainConfig(epochs=3, method="autoencoder")
    run.pretrain(out="x", config=base)
    run.pretrain("unet_b3_p222", out="x", config=base, epochs=5)
    run.pretrain(out="x", epochs=3, method="autoencoder")
    assert seen[0] is base
    assert (seen[1].model, seen[1].epochs, seen[1].method) == ("unet_b3_p222", 5, "autoencoder")
    assert seen[2].manifest() == base.manifest()
    with pytest.raises(TypeError, match="PretrainConfig"):
        run.pretrain(out="x", config={"epochs": 3})


def test_cli_options_are_generated_from_the_config():
    from temzoo_cli.pretrain_cmd import pretrain

    params = {p.name: p for p in pretrain.params}
    fields = {f.name: f for f in cli_fields()}
    assert set(params) == set(fields) | {"out", "resume", "overwrite", "quiet"}
    for name, field in fields.items():
        param = params[name]
        assert param.opts == [f"--{name.replace('_', '-')}"], name
        assert field.metadata["help"] in param.help, name
        if name != "model":
            assert param.default == field.default, name
        if "choices" in field.metadata:
            assert tuple(param.type.choices) == field.metadata["choices"], name
        if field.metadata["kind"] == "int" and "low" in field.metadata:
            assert param.type.min == field.metadata["low"], name
    assert params["model"].required and params["jit_compile"].is_flag
    assert isinstance(params["learning_rate"].type, click.FloatRange) and params["learning_rate"].type.min_open
    assert "May change with --resume." in params["epochs"].help
    assert "May change with --resume." not in params["patch_size"].help
    # fields that are Python-only (arrays, objects) are no options
    assert {"normalizer", "validation_dataset", "devices"}.isdisjoint(params)


def test_the_csv_log_appends_on_resume_and_widens_its_header(tmp_path):
    from temzoo.pretraining.callbacks import CSVHistory, RunState, read_log, truncate_log

    path = str(tmp_path / "log.csv")
    state = RunState(batch_size=2, steps_per_epoch=3)

    def epoch(log, index, logs):
        log.on_train_begin()
        log.on_epoch_begin(index)
        state.step = 3 * (index + 1)
        log.on_epoch_end(index, logs)
        log.on_train_end()

    log = CSVHistory(path, state)
    epoch(log, 0, {"loss": 0.5})
    epoch(log, 1, {"loss": 0.25})
    assert [r["epoch"] for r in read_log(path)] == ["1", "2"]
    # resumed from the checkpoint of step 3, now with validation: row 2 is redone, the header widened
    assert truncate_log(path, 3) == 1
    resumed = CSVHistory(path, state)
    epoch(resumed, 1, {"loss": 0.3, "val_psnr": 21.123456789})
    text = pathlib.Path(path).read_text().splitlines()
    assert text[0] == "epoch,step,images_seen,seconds,loss,val_psnr"
    assert [line.split(",")[:3] + line.split(",")[4:] for line in text[1:]] == [
        ["1", "3", "6", "0.5", ""], ["2", "6", "12", "0.3", "21.1235"]]
    # and without validation again: the column stays, empty
    epoch(resumed, 2, {"loss": 0.2})
    assert read_log(path)[-1]["val_psnr"] == "" and read_log(path)[-1]["epoch"] == "3"
    silent = tmp_path / "worker.csv"
    epoch(CSVHistory(str(silent), state, writer=False), 0, {"loss": 1.0})  # a non-chief worker
    assert not silent.exists()


def test_tf_config_is_read_by_tensorflow_with_the_chief_first(monkeypatch):
    from temzoo.training import distribute

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["w:1", "w:2"], "chief": ["c:0"],
                                                            "evaluator": ["e:0"]},
                                                "task": {"type": "chief", "index": 0}}))
    assert distribute.tf_config_workers() == ["c:0", "w:1", "w:2"]
    monkeypatch.setenv("TF_CONFIG", "")
    assert distribute.tf_config_workers() == []


def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_strategy_module_does_not_import_the_pretraining_package():
    assert not [m for m in _imports(ROOT / "temzoo" / "training" / "distribute.py") if m.startswith("temzoo.pretraining")]


def test_the_config_and_the_run_directory_rules_need_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, temzoo.pretraining.config, temzoo.pretraining.rundir; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
