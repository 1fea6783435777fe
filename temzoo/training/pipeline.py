"""The one fine-tuning pipeline, shared by :func:`temzoo.finetune.finetune` and :mod:`temzoo.training.experiment`.

    >>> from temzoo.training import pipeline
    >>> run = pipeline.prepare("unet_pretrained", "synthetic_tem/au_np", "segmentation", train_fraction=0.1,
    ...                        epochs=5, batch_size=8, patch_size=128, learning_rate=2e-3, steps_per_epoch=30)
    >>> history = pipeline.fit(run, epochs=5, learning_rate=2e-3, batch_norm_batches=4)

:func:`prepare` does, in this order: check the task and the schedule; find the
dataset's target feature for the task (before any model is loaded); seed
Keras; resolve the model (pretrained name, architecture with random weights,
``.keras`` file or Keras model); load the seeded labelled fraction of the
training split and the first ``validation_images`` of the validation split (a
TFDS slice, not ``.take()``: TFDS caches small splits and a partial read of a
cache warns); build the task model with the learning-rate schedule; check the
patch size against its total stride; make the (input, target) pairs with the
model's normaliser: random, augmented ``patch_size`` crops for training, whole
validation images cropped to a multiple of the stride, in batches of
:func:`validation_batch_size`.

:func:`fit` trains: precise BatchNorm before each validation (optional), a
stop with :class:`temzoo.errors.TrainingDivergedError` on a non-finite loss,
then the caller's callbacks; it returns the history as floats.
"""

import dataclasses
import logging
import math

from temzoo.errors import BadInputError
from temzoo.names import SCHEDULES, TASKS

logger = logging.getLogger(__name__)

#: Validation batches hold at most this many whole images.
MAX_VALIDATION_BATCH = 4


class PatchStrideError(BadInputError):
    """The training patch is not a multiple of the model's total stride."""

    def __init__(self, message, stride, patch_size):
        super().__init__(message)
        self.stride, self.patch_size = stride, patch_size


@dataclasses.dataclass
class Prepared:
    """Everything :func:`prepare` made: the model, the data and their counts."""

    resolved: object  # temzoo.tasks.backbone.ResolvedModel
    task_model: object
    task: str
    target: str | None
    train: object  # the labelled fraction of the training split (tf.data)
    val: object  # the validation images used (tf.data)
    train_pairs: object
    val_pairs: object
    train_examples: int
    train_split_examples: int
    validation_examples: int
    steps_per_epoch: int


def check_names(task, schedule):
    """Raise :class:`BadInputError` unless ``task`` and ``schedule`` are known."""
    if task not in TASKS:
        raise BadInputError(f"task {task!r} is not supported; choose one of: {', '.join(TASKS)}.")
    if schedule not in SCHEDULES:
        raise BadInputError(f"schedule={schedule!r} is not supported; choose one of: {', '.join(SCHEDULES)}.")


def validation_batch_size(batch_size):
    """Whole validation images per batch: the training batch, at most :data:`MAX_VALIDATION_BATCH`."""
    return max(1, min(int(batch_size), MAX_VALIDATION_BATCH))


def learning_rate_schedule(learning_rate, schedule, total_steps):
    """The optimizer's rate: a float (``constant``) or cosine decay to 0 over ``total_steps`` (``cosine``)."""
    if schedule not in SCHEDULES:
        raise BadInputError(f"schedule={schedule!r} is not supported; choose one of: {', '.join(SCHEDULES)}.")
    if schedule == "constant":
        return learning_rate
    import keras

    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(int(total_steps), 1))


def load_split(name, split, data_dir=None, config=None):
    from temzoo import datasets

    return datasets.load(name, split, data_dir=data_dir, config=config)


def has_split(name, split, data_dir=None, config=None):
    """Whether the dataset ``name`` has ``split`` (False for a dataset given as an object)."""
    if not isinstance(name, str):
        return False
    try:
        load_split(name, split, data_dir, config)
    except BadInputError:  # "has no split ..."
        return False
    return True


def count(ds):
    """Examples in ``ds`` (its cardinality, else by iterating)."""
    n = int(ds.cardinality())
    return n if n >= 0 else sum(1 for _ in ds)


def _resolve(model, seed):
    import keras

    from temzoo.tasks.backbone import resolve_model

    keras.utils.set_random_seed(seed)
    resolved = resolve_model(model)
    if resolved.random_init:
        logger.info("%s: architecture with random weights (no pretrained weights); training from scratch.",
                    resolved.name)
    else:
        logger.info("%s: loaded (%s).", resolved.name, resolved.source)
    return resolved


def _load_data(dataset, train_fraction, seed, data_dir, dataset_config, validation_images):
    """``(train, val, n_train, n_train_all, n_val)``: the seeded labelled fraction and the validation images."""
    from temzoo.data import take_fraction

    train_all = load_split(dataset, "train", data_dir, dataset_config)
    val = load_split(dataset, "validation", data_dir, dataset_config)
    if validation_images and validation_images < count(val):
        # a TFDS slice, not .take(): TFDS caches small splits, and a partial read of a cache warns
        val = load_split(dataset, f"validation[:{int(validation_images)}]", data_dir, dataset_config)
    n_train_all = count(train_all)
    train = take_fraction(train_all, train_fraction, seed=seed, num_examples=n_train_all)
    n_train, n_val = count(train), count(val)
    logger.info("%s: %d of %d training images (%g), %d validation images.", dataset, n_train, n_train_all,
                train_fraction, n_val)
    return train, val, n_train, n_train_all, n_val


def _check_stride(task_model, name, patch_size, val, dataset):
    """The total stride; the validation crop (the validation images' shorter side, down to a multiple of it)."""
    from temzoo.inference.tiling import model_stride

    stride = model_stride(task_model)
    if patch_size % stride:
        raise PatchStrideError(
            f"patch_size={patch_size} is not a multiple of {name}'s total stride {stride}; "
            f"use e.g. {max(stride, patch_size // stride * stride)} or {-(-patch_size // stride) * stride}.",
            stride, patch_size,
        )
    image_shape = val.element_spec["image"].shape
    sides = [s for s in image_shape[:2] if s is not None]
    val_patch = (min(sides) // stride * stride) if sides else patch_size
    if val_patch < stride:
        raise BadInputError(f"{dataset}: validation images {image_shape[:2]} are smaller than the stride {stride}.")
    return stride, val_patch


def prepare(model, dataset, task, *, train_fraction, epochs, batch_size, patch_size, learning_rate,
            schedule="constant", freeze="none", num_classes=2, seed=0, data_dir=None, dataset_config=None,
            steps_per_epoch=None, validation_images=None, validation_steps=None, precision="float32"):
    """Resolve the model, load the data, build the task model and its training and validation pairs.

    Arguments as :func:`temzoo.finetune.finetune`'s; ``steps_per_epoch=None``
    is one pass over the labelled fraction. Raises :class:`PatchStrideError`
    when ``patch_size`` is not a multiple of the model's total stride.
    ``precision`` (:data:`temzoo.names.PRECISIONS`): the task model trains under
    that dtype policy (``"auto"``: bfloat16 where this machine computes it fast);
    :func:`temzoo.tasks.save` exports it in float32.
    """
    from temzoo import data as pipelines
    from temzoo import tasks

    check_names(task, schedule)
    # the dataset must have labels for the task: fail before loading any model
    target = pipelines.target_key(dataset, task) if isinstance(dataset, str) else None
    resolved = _resolve(model, seed)
    train, val, n_train, n_train_all, n_val = _load_data(dataset, train_fraction, seed, data_dir, dataset_config,
                                                         validation_images)
    if steps_per_epoch is None:
        steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    rate = learning_rate_schedule(learning_rate, schedule, epochs * steps_per_epoch)
    builder_kwargs = {"freeze": freeze, "learning_rate": rate}
    if task == "segmentation":
        builder_kwargs["num_classes"] = num_classes
    task_model = _with_precision(tasks.build(task, resolved, **builder_kwargs), precision)
    from temzoo.zoo.pretrained import card as card_of

    normalizer = tasks.normalizer_of(card_of(task_model))
    _, val_patch = _check_stride(task_model, resolved.name, patch_size, val, dataset)
    common = dict(target_key=target, task=task, normalizer=normalizer, seed=seed)
    if task == "segmentation":
        common["num_classes"] = num_classes
    train_pairs = pipelines.supervised_pairs(train, patch_size=patch_size, batch_size=batch_size, augment=True,
                                             repeat=True, **common)
    val_pairs = pipelines.supervised_pairs(val, patch_size=val_patch, batch_size=validation_batch_size(batch_size),
                                           augment=False, repeat=False, shuffle_buffer=0, **common)
    if validation_steps is not None:
        val_pairs = val_pairs.take(validation_steps)
    return Prepared(resolved, task_model, task, target, train, val, train_pairs, val_pairs, n_train, n_train_all,
                    n_val, steps_per_epoch)


def _with_precision(task_model, precision):
    """``task_model``, or a copy computing under ``precision``, compiled alike, with the same card."""
    from temzoo.inference.precision import model_precision, training_copy

    copy = training_copy(task_model, precision, "fine-tuning")  # with the task model's card
    if copy is task_model:
        return task_model
    copy.compile_from_config(task_model.get_compile_config())
    logger.info("training in %s (exported in float32)", model_precision(copy))
    return copy


def _inputs_only(inputs, targets):
    return inputs


def fit(prepared, *, epochs, learning_rate, callbacks=(), batch_norm_batches=0, verbose=0):
    """Train ``prepared.task_model``; returns the Keras history as ``{name: [float per epoch]}``.

    ``batch_norm_batches``: before each validation, re-estimate BatchNormalization's
    moving statistics from this many training batches (precise BN, see
    :class:`temzoo.training.callbacks.PreciseBatchNorm`; 0: keep the moving averages).
    A NaN or infinite loss stops training with :class:`TrainingDivergedError`
    (its message names ``learning_rate``). BatchNormalization layers that train do so
    through TensorFlow's fused kernel (:mod:`temzoo.training.fused_batch_norm`: the
    same statistics; HRNet's training step traces in 15-20 s instead of 23-24 s).
    """
    from temzoo.training.callbacks import PreciseBatchNorm, StopOnNonFiniteLoss
    from temzoo.training.fused_batch_norm import fused_batch_norm

    first = [StopOnNonFiniteLoss(learning_rate)]
    model = prepared.task_model
    # Optimizer slots created before the first step: otherwise tf.function creates them while
    # tracing and traces the training step twice (measured on unet_pretrained: first step 53 s
    # -> 30 s; HRNet's first step is most of README's quick start).
    model.optimizer.build(model.trainable_variables)
    if batch_norm_batches:
        first.insert(0, PreciseBatchNorm(prepared.train_pairs.map(_inputs_only), batch_norm_batches))
    with fused_batch_norm([model]):  # the steps are traced inside fit
        history = model.fit(
            prepared.train_pairs, epochs=epochs, steps_per_epoch=prepared.steps_per_epoch,
            validation_data=prepared.val_pairs, callbacks=first + list(callbacks), verbose=verbose, shuffle=False,
        )
    return {k: [float(v) for v in values] for k, values in history.history.items()}
