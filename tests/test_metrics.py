"""One metrics module: training, evaluation, pretraining and the baselines score the same arrays alike."""

import keras
import numpy as np
import pytest

from temzoo.names import SEGMENTATION_METRICS
from temzoo.zoo import metrics


def _pair(seed=0, shape=(3, 24, 20, 1)):
    rng = np.random.default_rng(seed)
    clean = rng.gamma(2.0, 1.0, size=shape).astype("float32")
    clean[1] *= 7.0  # images of very different ranges in one batch
    return clean, clean + rng.normal(0, 0.3, size=shape).astype("float32")


def test_psnr_and_ssim_use_each_images_own_range():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    clean, noisy = _pair()
    batch_psnr = np.asarray(metrics.psnr(clean, noisy))
    batch_ssim = np.asarray(metrics.ssim(clean, noisy))
    for i in range(len(clean)):
        c, n = clean[i, ..., 0].astype(np.float64), noisy[i, ..., 0].astype(np.float64)
        expected = skimage_metrics.peak_signal_noise_ratio(c, n, data_range=np.ptp(c))
        assert batch_psnr[i] == pytest.approx(expected, abs=1e-3)
        # alone or in a batch with other images: the same score (the old SSIM took the batch's largest range)
        assert batch_ssim[i] == pytest.approx(float(np.asarray(metrics.ssim(clean[i:i + 1], noisy[i:i + 1]))[0]),
                                              abs=1e-6)
        assert metrics.image_psnr(c, n) == pytest.approx(batch_psnr[i], abs=1e-4)
    # shifting and scaling both images (another normalisation) changes nothing
    np.testing.assert_allclose(np.asarray(metrics.psnr(3 * clean + 7, 3 * noisy + 7)), batch_psnr, atol=1e-3)
    np.testing.assert_allclose(np.asarray(metrics.ssim(3 * clean + 7, 3 * noisy + 7)), batch_ssim, atol=1e-4)


def test_training_evaluation_pretraining_and_baselines_agree_on_restorations():
    from temzoo.analysis import denoising_baselines
    from temzoo.evaluate import restoration_scores
    from temzoo.pretraining import metrics as pretraining_metrics

    clean, noisy = _pair(1)
    trained = {m.__name__: np.asarray(m(clean, noisy)) for m in metrics.restoration_metrics()}
    pretrained = {"psnr": pretraining_metrics.psnr(noisy, clean).numpy(),
                  "ssim": pretraining_metrics.ssim(noisy, clean).numpy()}
    for i in range(len(clean)):
        evaluated = restoration_scores(noisy[i, ..., 0], clean[i, ..., 0])
        for name in ("psnr", "ssim"):
            assert evaluated[name] == pytest.approx(float(trained[name][i]), abs=1e-5), name
            assert pretrained[name][i] == pytest.approx(float(trained[name][i]), abs=1e-3), name
        assert denoising_baselines.psnr(noisy[i, ..., 0], clean[i, ..., 0]) == pytest.approx(evaluated["psnr"], abs=1e-5)


def test_training_and_evaluation_agree_on_segmentations():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 3, size=(4, 16, 16, 1)).astype("int32")
    probs = np.asarray(keras.ops.softmax(rng.normal(size=(4, 16, 16, 3)).astype("float32")))
    trained = {}
    for metric in metrics.segmentation_metrics(3):
        metric.update_state(truth, probs)
        trained[metric.name] = float(metric.result())
    assert list(trained) == list(SEGMENTATION_METRICS)
    evaluated = metrics.segmentation_scores(metrics.confusion_matrix(truth, probs.argmax(-1), 3))
    for name in SEGMENTATION_METRICS:
        assert trained[name] == pytest.approx(evaluated[name], abs=1e-5), name
    confusion = metrics.confusion_matrix(truth, probs.argmax(-1), 3)
    assert confusion.sum() == truth.size and confusion[1, 2] == np.sum((truth[..., 0] == 1) & (probs.argmax(-1) == 2))


def test_soft_dice_loss_is_keras_dice_averaged_over_classes():
    from temzoo.tasks.losses import soft_dice_loss

    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, size=(2, 8, 8, 1)).astype("int32")
    probs = np.asarray(keras.ops.softmax(rng.normal(size=(2, 8, 8, 2)).astype("float32")))
    one_hot = np.eye(2)[truth[..., 0]]
    inter = (one_hot * probs).sum((1, 2))
    expected = 1 - (2 * inter / (one_hot.sum((1, 2)) + probs.sum((1, 2)))).mean(-1)
    np.testing.assert_allclose(np.asarray(soft_dice_loss(truth, probs)), expected, rtol=1e-5)
