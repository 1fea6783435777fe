"""pretrain(): export + card, run directory rules, logs and plots, bad input, the CLI."""

import json
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import temzoo
from temzoo.errors import BadInputError, InputSizeError, UnknownNameError
from temzoo.pretraining import pretrain
from temzoo.pretraining.rundir import RunExistsError
from temzoo.zoo.cards import card_path, sha256_file

TINY = dict(
    patch_size=32, batch_size=4, epochs=2, steps_per_epoch=3, validation_steps=1, shuffle_buffer=0, samples=2,
    model_overrides={"base_filters": 4, "dropout": 0.1}, discriminator="patchgan_16", discriminator_overrides={"base_filters": 4},
    verbose=0,
)


def _images(n=6, size=48, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = [1.0 + 0.5 * np.sin(xx / (2 + i) + rng.random()) * np.cos(yy / (3 + i)) for i in range(n)]
    return np.stack(images).astype("float32")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    result = pretrain("unet_b2_p22", _images(), "pix2pix", out=out, checkpoint_every=2, **TINY)
    return out, result


def test_exported_generator_loads_in_safe_mode_and_reproduces_the_trained_one(run):
    out, result = run
    assert result.model_path == str(out / "unet_b2_p22_pix2pix.keras")
    model = keras.saving.load_model(result.model_path, safe_mode=True)
    assert not isinstance(model, temzoo.pretraining.Pix2Pix)  # the generator, not the wrapper
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(model(x).numpy(), result.generator(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    loaded = temzoo.load(result.model_path)  # verifies the card's sha256 before loading
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def test_card_describes_the_run_and_hashes_the_file(run):
    out, result = run
    card = json.loads(open(card_path(result.model_path), encoding="utf-8").read())
    assert card == result.card
    assert card["sha256"] == sha256_file(result.model_path)
    assert card["architecture"] == "unet_b2_p22" and card["config"]["base_filters"] == 4
    assert card["parameters"] == result.generator.count_params()
    assert card["pretext"]["noise_model"] == "poisson"
    assert card["pretext"]["dose_range"] == [5.0, 500.0] and card["pretext"]["read_noise"] == 0.0
    assert card["normalization"] == {"kind": "standardize", "low": 1.0, "high": 99.8, "eps": 1e-6}
    assert card["data"]["dataset"] == "in-memory" and card["data"]["images_seen"] == 2 * 3 * 4
    assert card["method"]["name"] == "pix2pix" and card["method"]["discriminator"] == "patchgan_16"
    assert card["method"]["l1_lambda"] == 100.0 and card["method"]["replicas"] == 1
    assert card["method"]["optimizer"] == {"name": "Adam", "learning_rate": 2e-4, "beta_1": 0.5, "schedule": "constant"}
    assert card["steps"] == 6 and card["epochs"] == 2
    assert set(card["metrics"]) >= {"g_loss", "g_gan", "g_l1", "d_loss", "d_real_acc", "d_fake_acc",
                                    "val_l1", "val_psnr", "val_ssim"}
    assert card["metrics"] == pytest.approx(result.metrics)
    assert card["software"]["tensorflow"] and card["date"]
    assert isinstance(card["receptive_field"], int) and card["receptive_field"] > 1


def test_run_directory_holds_manifest_log_plots_and_checkpoints(run):
    out, result = run
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"] == "unet_b2_p22" and manifest["method"] == "pix2pix" and manifest["epochs"] == 2
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,images_seen,seconds")
    assert [r.split(",")[:3] for r in rows[1:]] == [["1", "3", "12"], ["2", "6", "24"]]
    for png in [out / "loss_curves.png", out / "samples" / "epoch-0001.png", out / "samples" / "epoch-0002.png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 6 and latest["epoch"] == 2 and latest["checkpoint"] == "ckpt-000000006"
    # every 2 steps + every epoch end, the last 3 kept
    assert sorted(os.listdir(out / "checkpoints")) == ["ckpt-000000003", "ckpt-000000004", "ckpt-000000006",
                                                        "latest.json"]
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


def test_rerunning_a_finished_run_trains_nothing_and_keeps_the_export(run, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(logging.getLogger("temzoo"), "propagate", True)  # temzoo.logs.configure turns it off
    out, result = run
    before = sha256_file(result.model_path)
    with caplog.at_level("DEBUG", logger="temzoo"):
        again = pretrain("unet_b2_p22", _images(), "pix2pix", out=out, checkpoint_every=2, **TINY)
    assert again.resumed_from_step == 6 and again.step == 6
    assert sha256_file(result.model_path) == before
    assert len((out / "log.csv").read_text().splitlines()) == 3
    # the library logs (no print): at DEBUG with verbose=0, at INFO with verbose=1
    messages = {r.getMessage(): r.levelname for r in caplog.records}
    assert messages[f"resuming {out} from step 6 (epoch 2/2, 24 images seen)"] == "DEBUG"
    assert messages[f"{out} is complete (6 steps); {result.model_path} is up to date."] == "DEBUG"
    caplog.clear()
    with caplog.at_level("INFO", logger="temzoo"):
        pretrain("unet_b2_p22", _images(), "pix2pix", out=out, checkpoint_every=2, **{**TINY, "verbose": 1})
    assert any(r.getMessage().startswith("resuming ") and r.levelname == "INFO" for r in caplog.records)


def test_a_different_run_is_refused_unless_resume_or_overwrite(run, tmp_path):
    out, _ = run
    with pytest.raises(RunExistsError, match="--resume"):
        pretrain("unet_b2_p22", _images(), "pix2pix", out=out, checkpoint_every=2, **{**TINY, "epochs": 3})
    with pytest.raises(RunExistsError, match="cannot be resumed"):  # the model may not change on resume
        pretrain("unet_b2_p22", _images(), "autoencoder", out=out, resume=True, **TINY)
    assert json.loads((out / "run.json").read_text())["epochs"] == 2  # nothing was touched
    # A non-empty directory that is not a run is refused too.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="not empty"):
        pretrain("unet_b2_p22", _images(), "pix2pix", out=other, **TINY)
    assert os.listdir(other) == ["notes.txt"]


def test_resume_with_more_epochs_continues_the_step_counter(run, tmp_path):
    import shutil

    out, result = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    longer = pretrain("unet_b2_p22", _images(), "pix2pix", out=copy, resume=True, checkpoint_every=2,
                      **{**TINY, "epochs": 3})
    assert longer.resumed_from_step == 6 and longer.step == 9 and longer.epochs == 3
    steps = [line.split(",")[1] for line in (copy / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["3", "6", "9"]
    assert longer.card["steps"] == 9 and longer.card["data"]["images_seen"] == 36
    # The card says where the run was lengthened (a cosine schedule would be stretched there).
    assert "changes_on_resume" not in result.card
    assert longer.card["changes_on_resume"] == [{"step": 6, "changes": {"epochs": [2, 3]}}]
    # Resumed = uninterrupted: same data position, optimizer, BN and dropout-seed states.
    straight = pretrain("unet_b2_p22", _images(), "pix2pix", out=tmp_path / "straight", checkpoint_every=2,
                        **{**TINY, "epochs": 3})
    for a, b in zip(longer.generator.get_weights(), straight.generator.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_without_a_checkpoint_starts_afresh_and_drops_the_old_change_record(run, tmp_path):
    import shutil

    out, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "checkpoints")  # e.g. stopped before its first checkpoint
    (copy / "resume_changes.json").write_text('[{"step": 6, "changes": {"epochs": [2, 3]}}]')
    again = pretrain("unet_b2_p22", _images(), "pix2pix", out=copy, resume=True,
                     **{**TINY, "epochs": 1, "validation_steps": 0})
    assert again.resumed_from_step == 0 and again.step == 3
    assert not (copy / "resume_changes.json").exists() and "changes_on_resume" not in again.card


def test_overwrite_replaces_the_run(run, tmp_path):
    import shutil

    out, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "resume_changes.json").write_text('[{"step": 6, "changes": {"epochs": [2, 3]}}]')
    fresh = pretrain("unet_b2_p22", _images(), "autoencoder", out=copy, overwrite=True,
                     **{**TINY, "epochs": 1, "validation_steps": 0})
    assert fresh.resumed_from_step == 0 and fresh.step == 3
    # the old run's record goes with it: the fresh card does not inherit its changes
    assert not (copy / "resume_changes.json").exists() and "changes_on_resume" not in fresh.card
    assert not (copy / "unet_b2_p22_pix2pix.keras").exists()
    assert (copy / "unet_b2_p22_autoencoder.keras").exists()
    assert set(fresh.metrics) == {"loss"}
    assert len((copy / "log.csv").read_text().splitlines()) == 2
    assert json.loads((copy / "run.json").read_text())["method"] == "autoencoder"
    # the previous run, kept aside until the first checkpoint, is gone; so is the lock
    assert sorted(os.listdir(copy)) == ["checkpoints", "log.csv", "loss_curves.png", "run.json",
                                        "unet_b2_p22_autoencoder.json", "unet_b2_p22_autoencoder.keras"]


def test_patch_size_the_model_cannot_take_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InputSizeError, match="multiples of its total stride 4"):
        pretrain("unet_b2_p22", _images(), "pix2pix", out=out, **{**TINY, "patch_size": 30})
    assert not out.exists()


def test_unknown_names_fail_with_the_known_ones(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UnknownNameError, match="synthetic_tem/unlabeled"):
        pretrain("unet_b2_p22", "synthetic_tem/unlabelled", "pix2pix", out=out, **TINY)
    with pytest.raises(UnknownNameError, match="unet_b2_p22"):
        pretrain("unet_b2_p2", _images(), "pix2pix", out=out, **TINY)
    with pytest.raises(ValueError, match="pix2pix"):
        pretrain("unet_b2_p22", _images(), "gan", out=out, **TINY)
    with pytest.raises(ValueError, match="not a discriminator"):
        pretrain("unet_b2_p22", _images(), "pix2pix", out=out, **{**TINY, "discriminator": "unet_b2_p22"})
    assert not out.exists()


def test_cli_bad_input_exits_non_zero_with_the_reason(run, tmp_path):
    from temzoo_cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["pretrain", "--model", "unet_b2_p22", "--dataset", "nope/unlabeled",
                                 "--out", str(tmp_path / "a")])
    assert result.exit_code != 0 and "Unknown dataset 'nope/unlabeled'" in result.output
    result = runner.invoke(cli, ["pretrain", "--model", "unet_b2_p22", "--patch-size", "30",
                                 "--out", str(tmp_path / "b")])
    assert result.exit_code != 0 and "total stride 4" in result.output
    out, _ = run  # holds an in-memory pix2pix run: a CLI run on a named dataset is a different run
    result = runner.invoke(cli, ["pretrain", "--model", "unet_b2_p22", "--out", str(out)])
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_passes_optimizer_and_override_options_through(tmp_path, monkeypatch):
    from temzoo_cli.main import cli

    import temzoo.pretraining

    seen = {}

    def fake_pretrain(model, dataset, method, **kwargs):
        seen.update(kwargs, model=model)
        raise BadInputError("stop here")

    monkeypatch.setattr(temzoo.pretraining, "pretrain", fake_pretrain)
    runner = CliRunner()
    result = runner.invoke(cli, ["pretrain", "--model", "hrnet_w18_small", "--out", str(tmp_path / "r"),
                                 "--learning-rate", "1e-3", "--beta-1", "0.9", "--learning-rate-schedule", "cosine",
                                 "--batch-norm-recalibration-batches", "7",
                                 "--model-overrides", '{"input_skip_filters": 16}',
                                 "--discriminator-overrides", '{"base_filters": 8}'])
    assert result.exit_code != 0 and "stop here" in result.output
    assert seen["learning_rate"] == 1e-3 and seen["beta_1"] == 0.9 and seen["learning_rate_schedule"] == "cosine"
    assert seen["model_overrides"] == {"input_skip_filters": 16} and seen["batch_norm_recalibration_batches"] == 7
    assert seen["discriminator_overrides"] == {"base_filters": 8}
    for bad, reason in (("{nope", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        result = runner.invoke(cli, ["pretrain", "--model", "unet_b2_p22", "--out", str(tmp_path / "b"),
                                     "--model-overrides", bad])
        assert result.exit_code == 2 and reason in result.output and "--model-overrides" in result.output
    assert not (tmp_path / "b").exists()


def test_cosine_schedule_decays_both_rates_to_zero_over_the_run():
    from temzoo.pretraining.trainer import adam_optimizer

    optimizer = adam_optimizer(1e-3, 0.5, "cosine", total_steps=100)
    for step, want in ((0, 1e-3), (50, 0.5e-3), (100, 0.0)):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(want, abs=1e-9), step
    assert float(adam_optimizer(1e-3, 0.5).learning_rate) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="cosine"):
        adam_optimizer(1e-3, 0.5, "step")


def test_a_cosine_run_trains_and_says_so_in_its_card(tmp_path):
    args = {**TINY, "epochs": 1, "validation_steps": 0, "learning_rate": 1e-3, "beta_1": 0.9}
    result = pretrain("unet_b2_p22", _images(), "autoencoder", out=tmp_path / "r", learning_rate_schedule="cosine",
                      **args)
    assert result.card["method"]["optimizer"] == {"name": "Adam", "learning_rate": 1e-3, "beta_1": 0.9,
                                                  "schedule": "cosine"}
    assert json.loads((tmp_path / "r" / "run.json").read_text())["learning_rate_schedule"] == "cosine"
    from temzoo.pretraining import PretrainConfig

    settings = {k: v for k, v in args.items() if k != "verbose"}
    constant = pretrain(out=tmp_path / "c", verbose=0,  # the same run, given as a config object
                        config=PretrainConfig(model="unet_b2_p22", dataset=_images(), method="autoencoder",
                                              **settings))
    changed = [not np.allclose(a, b) for a, b in zip(result.generator.get_weights(),
                                                      constant.generator.get_weights(), strict=True)]
    assert any(changed)  # same seed and data: only the decaying rate tells the two runs apart


def test_runs_made_before_the_schedule_and_recalibration_arguments_still_resume(tmp_path):
    from temzoo.pretraining.rundir import prepare_out

    manifest = {"model": "unet_b2_p22", "epochs": 2, "learning_rate_schedule": "constant",
                "batch_norm_recalibration_batches": 0}
    (tmp_path / "run.json").write_text(json.dumps({"model": "unet_b2_p22", "epochs": 2}))
    # continued (not None), and nothing changed: the missing arguments count with their old values
    assert prepare_out(str(tmp_path), manifest, resume=False, overwrite=False) == {}
    with pytest.raises(RunExistsError, match="learning_rate_schedule"):
        prepare_out(str(tmp_path), {**manifest, "learning_rate_schedule": "cosine"}, resume=True,
                    overwrite=False)
    # recalibration changes only the export: a finished run may be re-exported with resume
    assert prepare_out(str(tmp_path), {**manifest, "batch_norm_recalibration_batches": 8}, resume=True,
                       overwrite=False) == {"batch_norm_recalibration_batches": [0, 8]}
    with pytest.raises(RunExistsError, match="batch_norm_recalibration_batches"):
        prepare_out(str(tmp_path), {**manifest, "batch_norm_recalibration_batches": 8}, resume=False,
                    overwrite=False)


def test_cli_help_lists_the_options():
    from temzoo_cli.main import cli

    result = CliRunner().invoke(cli, ["pretrain", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "--dataset", "--method", "--patch-size", "--batch-size", "--epochs",
                   "--steps-per-epoch", "--out", "--resume", "--overwrite", "--precision", "--seed", "--data-dir"):
        assert option in result.output


def test_psnr_and_ssim_use_the_clean_images_data_range():
    import tensorflow as tf

    from temzoo.pretraining import metrics

    rng = np.random.default_rng(0)
    clean = rng.random((2, 32, 32, 1)).astype("float32")
    restored = clean + 0.05 * rng.normal(size=clean.shape).astype("float32")
    data_range = clean.max(axis=(1, 2, 3)) - clean.min(axis=(1, 2, 3))
    mse = ((restored - clean) ** 2).mean(axis=(1, 2, 3))
    expected = 10 * np.log10(data_range**2 / mse)
    np.testing.assert_allclose(metrics.psnr(tf.constant(restored), tf.constant(clean)).numpy(), expected, rtol=1e-4)
    # invariant to the normalisation's offset and scale
    a = metrics.psnr(tf.constant(3 * restored + 7), tf.constant(3 * clean + 7)).numpy()
    np.testing.assert_allclose(a, expected, rtol=1e-4)
    s1 = metrics.ssim(tf.constant(restored), tf.constant(clean)).numpy()
    s2 = metrics.ssim(tf.constant(3 * restored + 7), tf.constant(3 * clean + 7)).numpy()
    np.testing.assert_allclose(s1, s2, rtol=1e-4)
    assert np.all(s1 < 1) and np.all(metrics.ssim(tf.constant(clean), tf.constant(clean)).numpy() > 0.999)


# ----------------------------------------------------------------------------- issue 15: nothing lost
def _fingerprint(folder):
    """{relative path: sha256} of every file below ``folder``."""
    import pathlib

    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("change,error,message", [
    ({"patch_size": 30}, InputSizeError, "multiples of its total stride 4"),  # not a stride multiple
    ({"patch_size": 64}, BadInputError, "smaller than patch_size=64"),  # larger than the images
    ({"dataset": "cem500k"}, BadInputError, "not prepared"),  # a dataset that is not built
])
def test_overwrite_with_bad_arguments_keeps_the_previous_run(run, tmp_path, change, error, message):
    import shutil

    out, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = _fingerprint(copy)
    args = {**TINY, "patch_size": change.get("patch_size", TINY["patch_size"])}
    dataset = change.get("dataset", _images())
    with pytest.raises(error, match=message):
        pretrain("unet_b2_p22", dataset, "autoencoder", out=copy, overwrite=True, data_dir=str(tmp_path / "no_data"),
                 **args)
    assert _fingerprint(copy) == before
    assert sorted(os.listdir(copy)) == sorted(os.listdir(out))


def test_overwrite_failing_before_its_first_checkpoint_puts_the_previous_run_back(run, tmp_path, monkeypatch):
    import shutil

    from temzoo.pretraining.checkpoints import CheckpointStore

    out, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = _fingerprint(copy)

    def out_of_disk(self, step, state=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CheckpointStore, "save", out_of_disk)
    with pytest.raises(OSError, match="No space left"):
        pretrain("unet_b2_p22", _images(), "autoencoder", out=copy, overwrite=True, **{**TINY, "epochs": 1})
    monkeypatch.undo()
    assert _fingerprint(copy) == before and sorted(os.listdir(copy)) == sorted(os.listdir(out))


def test_overwrite_killed_before_its_first_checkpoint_is_undone_by_the_next_run(run, tmp_path):
    import shutil

    from temzoo.pretraining.rundir import PREVIOUS_RUN, set_aside_run

    out, result = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = _fingerprint(copy)
    # what kill -9 leaves: the old run set aside, the new run's first files, no checkpoint yet
    assert set_aside_run(str(copy))
    (copy / "run.json").write_text(json.dumps({"model": "unet_b2_p22", "method": "autoencoder", "name": "new"}))
    (copy / "log.csv").write_text("epoch,step\n")
    (copy / "checkpoints").mkdir()
    (copy / ".log.csv.vm-99999999.a1b2c3d4.partial.csv").write_text("epoch")  # an interrupted atomic write
    assert sorted(os.listdir(copy)) == [".log.csv.vm-99999999.a1b2c3d4.partial.csv", PREVIOUS_RUN, "checkpoints",
                                        "log.csv", "run.json"]
    again = pretrain("unet_b2_p22", _images(), "pix2pix", out=copy, checkpoint_every=2, **TINY)  # the old command
    assert again.resumed_from_step == 6 and again.step == 6  # finished: nothing trained
    assert _fingerprint(copy) == before


def test_a_second_run_into_the_same_folder_fails_naming_the_holder(tmp_path):
    import signal
    import subprocess
    import sys

    from temzoo.runlock import RunLockedError

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from temzoo.runlock import RunLock; "
         f"RunLock({str(out)!r}, 'pretraining run').acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"run is in use by another pretraining run \(process {holder.pid} on "):
            pretrain("unet_b2_p22", _images(), "pix2pix", out=out, **TINY)
        assert os.listdir(out) == [".temzoo-lock"]  # the holder's; nothing of the refused run
        from temzoo_cli.main import cli

        result = CliRunner().invoke(cli, ["pretrain", "--model", "unet_b2_p22", "--out", str(out), "--quiet"])
        assert result.exit_code == 1 and f"process {holder.pid}" in result.output
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the operating system released the killed holder's lock: the folder can be used
    from temzoo.runlock import RunLock

    with RunLock(out):
        pass


def test_an_unusable_out_folder_fails_before_anything_is_built(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="is a file, not a folder"):
        pretrain("unet_b2_p22", _images(), "pix2pix", out=tmp_path / "afile" / "run", **TINY)
    from temzoo_cli.main import cli

    result = CliRunner().invoke(cli, ["pretrain", "--model", "unet_b2_p22", "--out", str(tmp_path / "afile" / "run"),
                                      "--quiet"])
    assert result.exit_code == 1 and "is a file, not a folder" in result.output and "Traceback" not in result.output
    assert (tmp_path / "afile").read_text() == "x"
