"""``temzoo-cli finetune`` and ``evaluate`` end to end on a tiny synthetic dataset (built locally)."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner
from temzoo_cli.main import cli

import temzoo
from temzoo import datasets

TINY = dict(name="au_np_tiny", image_size=64, num_train=8, num_validation=2, num_test=2, diameter_range_nm=(1.0, 2.5))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The au_np family at 64 px, 8/2/2 images, built once into a temporary data dir."""
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import SyntheticTemConfig

    root = tmp_path_factory.mktemp("tfds")
    datasets.build_dataset("synthetic_tem/au_np", data_dir=str(root), config=SyntheticTemConfig(**TINY), progress=False)
    return str(root)


def tiny_loader(real_load):
    """``datasets.load`` where ``synthetic_tem/au_np`` is the tiny config (same builder, features and code)."""
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import SyntheticTemConfig

    def load(name, split, data_dir=None, config=None, **kwargs):
        if name == "synthetic_tem/au_np" and config is None:
            config = SyntheticTemConfig(**TINY)
        return real_load(name, split, data_dir=data_dir, config=config, **kwargs)

    return load


@pytest.fixture(autouse=True)
def tiny_au_np(monkeypatch):
    monkeypatch.setattr(datasets, "load", tiny_loader(datasets.load))


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    """A small 'pretrained' generator: a .keras file with a card holding its normaliser."""
    from temzoo.zoo.cards import export_model, make_card

    model = temzoo.build("unet_b2_p22", base_filters=4)
    path = tmp_path_factory.mktemp("gen") / "generator.keras"
    export_model(model, path, make_card(model, name="tiny_generator", architecture="unet_b2_p22",
                                        normalization={"kind": "percentile", "low": 1.0, "high": 99.0, "eps": 1e-6}))
    return str(path)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, data_dir, generator):
    out = tmp_path_factory.mktemp("run") / "au_np"
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse fixture is not active yet
        mp.setattr(datasets, "load", tiny_loader(datasets.load))
        result = run("finetune", "--model", generator, "--dataset", "synthetic_tem/au_np", "--task", "segmentation",
                     "--train-fraction", "0.5", "--epochs", "2", "--steps-per-epoch", "1", "--validation-steps", "1",
                     "--batch-size", "2", "--patch-size", "32", "--freeze", "encoder", "--overlays", "1",
                     "--data-dir", data_dir, "--out", out)
    return out, result


def test_finetune_writes_model_card_metrics_curves_and_overlays(finetuned, generator):
    out, result = finetuned
    assert result.exit_code == 0, result.output
    assert "4 of 8 training images" in result.output
    assert "Validation metrics" in result.output and "mean_iou" in result.output
    for name in ("model.keras", "model.json", "metrics.json", "learning_curves.png", "overlays/validation_000.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_epoch"] in (1, 2) and len(metrics["history"]["loss"]) == 2
    assert set(metrics["validation"]) >= {"loss", "mean_iou_with_background", "iou", "dice"}
    assert "Test metrics on 2 test images" in result.output  # the README command ends with test metrics
    assert set(metrics["test"]) >= {"iou", "dice", "mean_iou_with_background"} and metrics["test_examples"] == 2
    best = min(metrics["history"]["val_loss"])
    assert metrics["validation"]["loss"] == pytest.approx(best)
    card = json.loads((out / "model.json").read_text())
    assert card["sha256"] == hashlib.sha256((out / "model.keras").read_bytes()).hexdigest()
    assert card["task"] == "segmentation" and card["freeze"] == "encoder"
    assert card["normalization"]["kind"] == "percentile"  # the generator's normaliser travels
    assert card["backbone"]["name"] == "tiny_generator" and card["dataset"] == "synthetic_tem/au_np"
    model = temzoo.load(out / "model.keras")  # safe_mode, sha256 verified
    probs = temzoo.predict(model, np.random.default_rng(0).random((50, 70)).astype("float32"))
    assert probs.shape == (50, 70, 2)


def test_finetune_refuses_to_overwrite_a_finished_run(finetuned, generator, data_dir):
    out, _ = finetuned
    before = (out / "model.keras").read_bytes()
    result = run("finetune", "--model", generator, "--data-dir", data_dir, "--out", out)
    assert result.exit_code != 0
    assert "model.keras" in result.output and "--overwrite" in result.output
    assert (out / "model.keras").read_bytes() == before


def test_evaluate_prints_a_table_and_writes_json(finetuned, data_dir, tmp_path):
    out, _ = finetuned
    report = tmp_path / "eval.json"
    result = run("evaluate", "--model", out / "model.keras", "--dataset", "synthetic_tem/au_np", "--split", "test",
                 "--data-dir", data_dir, "--json", report)
    assert result.exit_code == 0, result.output
    assert "mean_iou" in result.output and "pixel_accuracy" in result.output
    payload = json.loads(report.read_text())
    assert payload["examples"] == 2 and payload["task"] == "segmentation"
    assert 0.0 <= payload["metrics"]["mean_iou_with_background"] <= 1.0
    m = payload["metrics"]
    assert m["mean_iou_with_background"] == pytest.approx((m["iou_class_0"] + m["iou_class_1"]) / 2)
    assert m["iou"] == pytest.approx(m["iou_class_1"])


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def finished_copy(finetuned, tmp_path):
    import shutil

    out, _ = finetuned
    copy = tmp_path / "finished"
    shutil.copytree(out, copy)
    return copy


def test_a_diverging_run_stops_clearly_and_leaves_the_finished_run_untouched(finished_copy, generator, data_dir):
    before = _snapshot(finished_copy)
    result = run("finetune", "--model", generator, "--learning-rate", "1e12", "--schedule", "constant", "--epochs", "2",
                 "--steps-per-epoch", "4", "--batch-size", "2", "--patch-size", "32", "--validation-steps", "1",
                 "--train-fraction", "0.5", "--data-dir", data_dir, "--out", finished_copy, "--overwrite")
    assert result.exit_code != 0
    assert "Training diverged" in result.output and "Lower --learning-rate" in result.output, result.output
    assert "Traceback" not in result.output
    assert _snapshot(finished_copy) == before
    assert sorted(p.name for p in finished_copy.parent.iterdir()) == ["finished"]  # no staging folder left


def test_an_interrupted_overwrite_keeps_the_previous_run(finished_copy, generator, data_dir, monkeypatch):
    from temzoo import finetune as ft

    before = _snapshot(finished_copy)

    def killed(*args, **kwargs):  # the new model is saved, the run is half written
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "write_overlays", killed)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(generator, "synthetic_tem/au_np", "segmentation", out=finished_copy, overwrite=True, epochs=1,
                    steps_per_epoch=1, batch_size=2, patch_size=32, validation_steps=1, train_fraction=0.5,
                    data_dir=data_dir, progress=None)
    assert _snapshot(finished_copy) == before
    assert sorted(p.name for p in finished_copy.parent.iterdir()) == ["finished"]


def test_architecture_name_says_random_init_and_checks_the_patch_stride(tmp_path, data_dir):
    result = run("finetune", "--model", "unet_b2_p22", "--patch-size", "30", "--data-dir", data_dir,
                 "--out", tmp_path / "r")
    assert result.exit_code != 0
    assert "random weights" in result.output
    assert "patch_size=30 is not a multiple" in result.output and "stride 4" in result.output
    assert not (tmp_path / "r" / "model.keras").exists()


def test_quiet_hides_the_progress_lines_but_not_the_error(tmp_path, data_dir):
    import logging

    saved = logging.getLogger("temzoo").level
    try:
        result = run("--quiet", "finetune", "--model", "unet_b2_p22", "--patch-size", "30", "--data-dir", data_dir,
                     "--out", tmp_path / "r")
    finally:
        logging.getLogger("temzoo").setLevel(saved)
    assert result.exit_code != 0 and "patch_size=30 is not a multiple" in result.output
    assert "random weights" not in result.output  # the library's progress (logging INFO) is silenced by --quiet


def test_unknown_model_lists_close_matches(tmp_path, data_dir):
    result = run("finetune", "--model", "unet_b2_p2", "--data-dir", data_dir, "--out", tmp_path / "r")
    assert result.exit_code != 0
    assert "Unknown model 'unet_b2_p2'" in result.output and "unet_b2_p22" in result.output


def test_dataset_without_labels_for_the_task_is_refused_before_training(tmp_path, generator):
    result = run("finetune", "--model", generator, "--dataset", "synthetic_tem/unlabeled", "--task", "segmentation",
                 "--out", tmp_path / "r")
    assert result.exit_code != 0
    assert "synthetic_tem/unlabeled has no labels for segmentation" in result.output
    assert not (tmp_path / "r").exists()


def test_evaluation_scores_from_known_inputs():
    from temzoo.evaluate import restoration_scores, segmentation_scores

    # rows: truth, columns: prediction; class 1: tp 30, fp 10, fn 20
    scores = segmentation_scores([[40, 10], [20, 30]])
    assert scores["iou_class_1"] == pytest.approx(30 / 60) and scores["iou_class_0"] == pytest.approx(40 / 70)
    assert scores["mean_iou_with_background"] == pytest.approx((30 / 60 + 40 / 70) / 2)
    assert scores["dice"] == pytest.approx(60 / 90) and scores["pixel_accuracy"] == pytest.approx(0.7)
    image = np.random.default_rng(0).random((32, 32)).astype("float32")
    same = restoration_scores(image, image)
    assert same["mae"] == 0 and same["ssim"] == pytest.approx(1.0, abs=1e-5) and same["psnr"] > 50
    off = restoration_scores(image + 0.1, image)
    assert off["mae"] == pytest.approx(0.1, rel=1e-4) and off["psnr"] < same["psnr"]
