"""A fine-tuning run replaces --out only when complete (temzoo.finetune's staging folder), and stops on NaN."""

import math
import os
import subprocess
import sys

import pytest

from temzoo import finetune as ft
from temzoo.errors import BadInputError
from temzoo.training import run_folder


def _write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def _read(folder):
    return {name: open(os.path.join(folder, name)).read() for name in sorted(os.listdir(folder))}


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_publish_replaces_a_finished_run_whole(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(run_folder, "_exchange", lambda a, b: False)
    out = tmp_path / "run"
    _write(out, {"model.keras": "old", "metrics.json": "old", "learning_curves.png": "old"})
    staging = ft.make_staging_dir(out)
    _write(staging, {"model.keras": "new", "metrics.json": "new"})
    ft.publish(staging, out)
    assert _read(out) == {"metrics.json": "new", "model.keras": "new"}  # no old file left beside the new ones
    assert os.listdir(tmp_path) == ["run"]


def test_a_killed_run_leaves_the_previous_run_and_its_leftovers_are_removed(tmp_path):
    out = tmp_path / "run"
    _write(out, {"model.keras": "old"})
    dead = _dead_pid()
    stale = tmp_path / f".run.partial-{dead}-abc"  # what kill -9 during training leaves
    _write(stale, {"model.keras": "half"})
    live = tmp_path / f".run.partial-{os.getpid()}-xyz"  # a run in progress is left alone
    _write(live, {})
    assert ft.clean_stale_staging(out) == [str(stale)]
    assert _read(out) == {"model.keras": "old"} and live.exists() and not stale.exists()


def test_killed_between_the_two_renames_the_previous_run_comes_back(tmp_path):
    out = tmp_path / "run"
    moved = tmp_path / f".run.old-{_dead_pid()}-abc"
    _write(moved, {"model.keras": "old"})
    ft.clean_stale_staging(out)
    assert _read(out) == {"model.keras": "old"} and not moved.exists()


def test_a_folder_of_other_files_is_never_replaced(tmp_path):
    out = tmp_path / "mine"
    _write(out, {"notes.txt": "keep me", "model.keras": "x"})
    with pytest.raises(BadInputError, match="notes.txt.*not replaced even with --overwrite"):
        ft.check_output_dir(str(out), overwrite=True)
    finished = tmp_path / "finished"
    _write(finished, {"model.keras": "x", "metrics.json": "{}"})
    with pytest.raises(BadInputError, match="model.keras: the output exists.*--overwrite"):
        ft.check_output_dir(str(finished), overwrite=False)
    ft.check_output_dir(str(finished), overwrite=True)


def test_non_finite_loss_stops_training_with_a_clear_error():
    from temzoo.training.callbacks import StopOnNonFiniteLoss

    callback = StopOnNonFiniteLoss(learning_rate=1e12)
    callback.set_model(type("M", (), {"stop_training": False})())
    callback.on_epoch_begin(1)
    callback.on_train_batch_end(3, {"loss": 0.5})
    with pytest.raises(ft.TrainingDivergedError, match=r"loss became nan at step 5 of epoch 2.*1e\+12"):
        callback.on_train_batch_end(4, {"loss": math.nan})
    with pytest.raises(ft.TrainingDivergedError, match="validation loss became inf after epoch 2"):
        callback.on_epoch_end(1, {"loss": 0.5, "val_loss": math.inf})


def test_precise_batch_norm_before_validation_uses_the_current_weights_statistics():
    import keras
    import numpy as np

    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    outputs = keras.layers.BatchNormalization(momentum=0.9, name="bn")(features)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, (4, 8, 8, 1)).astype("float32") for _ in range(5)]
    from temzoo.training.callbacks import PreciseBatchNorm

    callback = PreciseBatchNorm(batches, count=3)
    callback.set_model(model)
    callback.on_test_begin()
    conv = keras.Model(inputs, features)
    expected = np.mean([np.asarray(conv(b)).mean(axis=(0, 1, 2)) for b in batches[:3]], axis=0)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), expected, rtol=1e-4, atol=1e-5)
    assert callback.batches_used == 3 and bn.momentum == 0.9
    callback.on_test_begin()  # the next validation takes the next batches
    expected = np.mean([np.asarray(conv(b)).mean(axis=(0, 1, 2)) for b in batches[3:5]], axis=0)
    assert callback.batches_used == 2
    np.testing.assert_allclose(np.asarray(bn.moving_mean), expected, rtol=1e-4, atol=1e-5)


def test_the_exported_model_is_the_best_epochs_and_is_written_once(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from temzoo import tasks
    from temzoo.training.callbacks import BestModelExporter

    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="conv")(inputs))
    written = []
    monkeypatch.setattr(tasks, "save", lambda m, path, **fields: written.append((m.get_weights(), path, fields)))
    exporter = BestModelExporter(str(tmp_path / "model.keras"), "val_loss", {"seed": 3})
    exporter.set_model(model)
    kernels = {}
    for epoch, loss in enumerate([1.0, 0.5, 0.8]):  # epoch 2 (index 1) is the best
        model.get_layer("conv").kernel.assign(np.full((1, 1, 1, 1), float(epoch + 1), "float32"))
        kernels[epoch] = model.get_weights()
        exporter.on_epoch_end(epoch, {"loss": 0.1, "val_loss": loss, "val_iou": 1 - loss})
    assert written == []  # nothing written while training
    exporter.on_train_end()
    assert len(written) == 1
    weights, path, fields = written[0]
    for got, want in zip(weights, kernels[1], strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(model.get_weights(), kernels[1], strict=True):  # the model is left at its best
        np.testing.assert_array_equal(got, want)
    assert path.endswith("model.keras") and fields["epoch"] == 2 and fields["seed"] == 3
    assert fields["metrics"] == {"validation": {"loss": 0.5, "iou": 0.5}}
    assert exporter.best_epoch == 2


def test_no_export_without_a_finished_epoch(tmp_path, monkeypatch):
    import keras

    from temzoo import tasks
    from temzoo.training.callbacks import BestModelExporter

    monkeypatch.setattr(tasks, "save", lambda *a, **k: pytest.fail("nothing should be written"))
    exporter = BestModelExporter(str(tmp_path / "model.keras"), "val_loss", {})
    exporter.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    exporter.on_epoch_end(0, {"val_loss": float("nan")})
    exporter.on_train_end()
