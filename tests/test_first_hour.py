"""What a new user meets in the first hour (issue 15): a quiet terminal, progress, labelled overlays, named metrics."""

import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from temzoo_cli.main import cli

TF_START_UP_NOISE = ("oneDNN", "absl::InitializeLog", "cuInit", "cpu_feature_guard", "cudart_stub")


def test_tensorflow_start_up_banner_is_kept_off_the_terminal():
    code = (
        "from temzoo.logs import configure\n"
        "configure('normal')\n"
        "import tensorflow as tf\n"
        "print(int(tf.constant(2) + 1))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3"
    noise = [line for line in out.stderr.splitlines() if any(n in line for n in TF_START_UP_NOISE)]
    assert not noise, noise


def test_quiet_and_verbose_levels():
    from temzoo import logs

    absl = logging.getLogger("absl")
    temzoo_logger = logging.getLogger("temzoo")
    saved = absl.level, temzoo_logger.level
    try:
        logs.configure("quiet")
        assert not absl.isEnabledFor(logging.WARNING)  # TFDS' FeatureConnector.dtype / Variant folder warnings
        assert not temzoo_logger.isEnabledFor(logging.INFO) and temzoo_logger.isEnabledFor(logging.WARNING)
        logs.configure("normal")
        assert temzoo_logger.isEnabledFor(logging.INFO)
        with pytest.raises(ValueError, match="loud"):
            logs.configure("loud")
    finally:
        absl.setLevel(saved[0])
        temzoo_logger.setLevel(saved[1])
    result = CliRunner().invoke(cli, ["--quiet", "--verbose", "models", "list"])
    assert result.exit_code != 0 and "exclude each other" in result.output
    result = CliRunner().invoke(cli, ["--quiet", "models", "list"])
    assert result.exit_code == 0 and "hrnet_pretrained" in result.output


def test_numpy2_array_copy_warning_is_filtered_inside_tests():
    # conftest.py's filter must survive pytest's per-test "always show DeprecationWarning"
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("__array__ implementation doesn't accept a copy keyword, so passing copy=False failed.",
                      DeprecationWarning, stacklevel=1)
    assert not seen


def _tiny_segmentation_model():
    import temzoo
    from temzoo import tasks

    return tasks.segmentation(temzoo.build("unet_b2_p22", base_filters=4), num_classes=2)


def _tiny_labelled(n=4, side=32, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = rng.random((n, side, side, 1)).astype("float32")
    masks = (images > 0.6).astype("uint8")
    return tf.data.Dataset.from_tensor_slices({"image": images, "mask": masks})


def test_fit_on_a_temzoo_pipeline_does_not_warn_about_shuffle():
    from temzoo import data

    model = _tiny_segmentation_model()
    pairs = data.supervised_pairs(_tiny_labelled(), target_key="mask", task="segmentation", patch_size=32,
                                  batch_size=2)
    with warnings.catch_warnings(record=True) as seen:
        model.fit(pairs, steps_per_epoch=1, epochs=1, verbose=0)
    assert not [w for w in seen if "shuffle" in str(w.message)], [str(w.message) for w in seen]


def test_loading_an_unbuilt_generated_dataset_says_so(tmp_path):
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import SyntheticTemConfig

    from temzoo import datasets

    config = SyntheticTemConfig(name="au_np_tiny", image_size=32, num_train=2, num_validation=1, num_test=1)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("temzoo.datasets")
    saved = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        ds = datasets.load("synthetic_tem/au_np", "train", data_dir=str(tmp_path), config=config)
    finally:
        log.removeHandler(handler)
        log.setLevel(saved)
    assert sum(1 for _ in ds) == 2
    text = " ".join(r.getMessage() for r in records)
    assert "not prepared" in text and "generating it now" in text and "nothing is downloaded" in text
    assert "4 images" in text


def test_overlays_are_titled_with_the_image_name_and_its_metrics(tmp_path, monkeypatch):
    from temzoo.finetune import write_overlays
    from temzoo.inference import plots

    calls = []
    real = plots.titled_panels
    monkeypatch.setattr(plots, "titled_panels", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    model = _tiny_segmentation_model()
    paths = write_overlays(model, _tiny_labelled(n=2), "segmentation", "mask", str(tmp_path), 2)
    assert len(paths) == 2 and len(calls) == 2
    (_, panels, titles, heading), _ = calls[0]
    assert titles == ["prediction", "ground truth"] and len(panels) == 2
    assert heading.startswith("validation image 0: foreground IoU ") and ", Dice " in heading
    from PIL import Image

    with Image.open(paths[0]) as png:
        assert png.size[0] > 2 * 32 and png.size[1] > 32  # a figure: panels plus titles


def test_one_definition_per_metric_name_in_training_and_evaluation():
    import keras

    from temzoo.evaluate import format_metrics, segmentation_scores
    from temzoo.tasks.losses import SEGMENTATION_METRICS, segmentation_metrics

    rng = np.random.default_rng(1)
    truth = (rng.random((3, 16, 16, 1)) > 0.7).astype("int32")
    logits = rng.random((3, 16, 16, 2)).astype("float32")
    probs = np.asarray(keras.ops.softmax(logits))
    trained = {}
    for metric in segmentation_metrics(2):
        metric.update_state(truth, probs)
        trained[metric.name] = float(metric.result())
    assert list(trained) == list(SEGMENTATION_METRICS)
    labels = probs.argmax(-1)
    confusion = np.bincount(truth.ravel() * 2 + labels.ravel(), minlength=4).reshape(2, 2)
    evaluated = segmentation_scores(confusion)
    for name in SEGMENTATION_METRICS:
        assert trained[name] == pytest.approx(evaluated[name], abs=1e-6), name
    iou = evaluated["iou"]
    assert evaluated["dice"] == pytest.approx(2 * iou / (1 + iou))  # Dice and IoU can no longer contradict
    table = format_metrics(evaluated)
    assert "foreground IoU" in table and "background included" in table
    assert format_metrics({}) == "(no metrics)"
