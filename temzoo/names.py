"""The names and defaults that the library and the CLI share: one source of truth, no TensorFlow.

Every other module (and every ``click.Choice`` in ``cli/``) imports its names from
here, so a new task, freeze mode or precision is added once. Importing this module
is cheap (standard library only), so ``temzoo-cli --help`` stays fast;
``tests/test_names.py`` checks that it stays TensorFlow-free and that the modules
using these names agree with it.
"""

#: Tasks a pretrained generator can be adapted to (:func:`temzoo.tasks.build`).
TASKS = ("segmentation", "denoising", "background_removal", "super_resolution")
#: The tasks whose output is an image (trained with L1, scored with PSNR/SSIM).
RESTORATION_TASKS = ("denoising", "background_removal", "super_resolution")
#: What a model card without a ``task`` is taken for when its output is an image.
DEFAULT_RESTORATION_TASK = "denoising"

#: ``freeze=`` of the task builders and ``finetune``.
FREEZE_MODES = ("none", "encoder", "all_but_head")
#: ``head=`` of the task builders: keep the trained output layer, or attach a new one.
HEAD_MODES = ("auto", "keep", "new")
#: ``batch_norm=`` of the task builders.
BATCH_NORM_MODES = ("auto", "frozen", "train")

#: Self-supervised pretraining methods (``temzoo.pretraining``).
PRETRAIN_METHODS = ("pix2pix", "autoencoder")
#: Self-supervised adaptation methods (``temzoo.adapt``); ``auto`` picks by the input.
ADAPT_METHODS = ("auto", "blind_spot", "binomial")

#: Dtype policies, plus ``"auto"`` (bfloat16 where this machine computes it fast).
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
#: The precisions offered on the command line (float16 needs a GPU and loss scaling).
CLI_PRECISIONS = tuple(p for p in PRECISIONS if p != "mixed_float16")

#: Learning-rate schedules of ``finetune``.
SCHEDULES = ("cosine", "constant")

#: Fine-tuning's settings and defaults: temzoo.training.config.FinetuneConfig (TF-free too).


def task_or_default(task, restoring):
    """A card's ``task``, or what a card without one is taken for (the same in predict and evaluate)."""
    if task:
        return task
    return DEFAULT_RESTORATION_TASK if restoring else "segmentation"


#: The segmentation metrics: one name, one definition, the same in training logs
#: (:func:`temzoo.zoo.metrics.segmentation_metrics`), metrics.json and ``temzoo-cli evaluate``
#: (:func:`temzoo.zoo.metrics.segmentation_scores`). Counts are pooled over all pixels of all
#: images (of an epoch or of a split) before dividing.
SEGMENTATION_METRICS = {
    "iou": "foreground IoU: TP / (TP + FP + FN) of the particle (non-background) pixels, all pixels pooled "
           "(mean over foreground classes if there are several)",
    "dice": "foreground Dice: 2 TP / (2 TP + FP + FN), the same pooled counts (= 2 iou / (1 + iou) for 2 classes)",
    "mean_iou_with_background": "IoU of every class, background included, averaged over classes",
}

#: Metric name -> one-line definition (segmentation and restoration), for tables, help and docs.
METRIC_DEFINITIONS = {
    **SEGMENTATION_METRICS,
    "pixel_accuracy": "share of pixels whose class is right",
    "loss": "the training loss (cross-entropy + soft Dice for segmentation)",
    "psnr": "peak signal-to-noise ratio in dB, the peak being each target image's own range (max - min)",
    "ssim": "structural similarity, per image, with each target image's own range",
    "mae": "mean absolute error, target's units",
    "mse": "mean squared error, target's units",
}

#: Particle analysis (:func:`temzoo.particles`, ``temzoo-cli analyze``): post-processing of a
#: segmentation's probabilities, in the pixels the model sees (``min_area``: half the 16 px particle
#: size that box training targets; annotators box no particle under ~0.45 of their image's median size).
#: ``min_confidence``: particles whose highest core (three-class models) or foreground probability is lower are
#: dropped (0: none); ``finer_scale``: particles found half an octave finer that overlap none found at the
#: chosen scale are added when their confidence reaches ``finer_confidence``.
PARTICLE_DEFAULTS = {"threshold": 0.5, "min_area": 50, "split_depth": 2.0, "scale": "auto", "ensemble": 1,
                     "min_confidence": 0.0, "finer_scale": False, "finer_confidence": 0.9}
