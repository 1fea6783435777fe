"""tf.data pipelines of (input, target) pairs for pretraining and fine-tuning.

Both pipelines: optional shuffle (seeded) -> repeat -> per-example map
(normalise, crop to ``patch_size``, dihedral augmentation; every random choice
from a stateless seed ``(seed, example counter)``, so the same seed gives the
same batches) -> batch of the GLOBAL batch size -> ``prefetch(AUTOTUNE)``, without tf.data's
autotuning thread (:func:`temzoo.datasets.without_autotune_thread`).

``batch_size`` is the global batch: under a ``tf.distribute`` strategy, pass
the dataset to ``strategy.experimental_distribute_dataset`` and each of the N
replicas gets ``batch_size / N`` examples per step.

Normalisation uses the statistics of the network INPUT (the noisy image) for
input and target alike, computed on the whole image before cropping, which is
what prediction can do too (it only has the input, and tiled prediction
normalises the whole micrograph). A model trained this way predicts the
normalised clean image; ``normalizer.after(prediction, stats_of_input)`` maps it
back to intensities.
"""

import warnings

import numpy as np
import tensorflow as tf

import temzoo.data.targets as targets_table
from temzoo.data.augment import dihedral, random_crop
from temzoo.data.normalize import tf_stats
from temzoo.datasets import without_autotune_thread
from temzoo.errors import BadInputError
from temzoo.zoo.normalization import Normalizer

KERAS_IMAGES = "images"
KERAS_TARGETS = "segmentation_masks"
AUTOTUNE = tf.data.AUTOTUNE


def to_keras_dict(inputs, targets):
    """``{"images": inputs, "segmentation_masks": targets}``: the dict Keras augmentation layers transform.

    Geometric layers (``RandomFlip``, ``RandomRotation``, ...) move
    ``segmentation_masks`` exactly like ``images``; we use the key for every
    pixel-wise target, restoration targets included.
    """
    return {KERAS_IMAGES: inputs, KERAS_TARGETS: targets}


def from_keras_dict(example):
    """``(inputs, targets)`` from a Keras augmentation dict (for ``model.fit``)."""
    return example[KERAS_IMAGES], example[KERAS_TARGETS]


def _image_dataset(images, image_key):
    """A dataset of HxWxC float32 images from a dataset of dicts/tensors or numpy arrays."""
    if isinstance(images, tf.data.Dataset):
        ds = images
    else:
        array = np.asarray(images) if not isinstance(images, np.ndarray) else images
        if array.ndim == 3:
            array = array[..., None]
        if array.ndim != 4:
            raise BadInputError(f"images must be N x H x W (x C), got shape {array.shape}.")
        ds = tf.data.Dataset.from_tensor_slices(array)
    spec = ds.element_spec
    if isinstance(spec, dict):
        key = image_key if image_key in spec else KERAS_IMAGES if KERAS_IMAGES in spec else None
        if key is None:
            raise BadInputError(f"dataset elements have no {image_key!r} feature (features: {', '.join(sorted(spec))}).")
        ds = ds.map(lambda ex: ex[key], num_parallel_calls=AUTOTUNE)
        spec = ds.element_spec
    if spec.shape.rank == 2:
        ds = ds.map(lambda x: x[..., None])
    elif spec.shape.rank != 3:
        raise BadInputError(f"images must be H x W or H x W x C, got elements of shape {spec.shape}.")
    return ds.map(lambda x: tf.cast(x, tf.float32))


def _check_patch(spec_shape, patch_size):
    height, width = spec_shape[0], spec_shape[1]
    if patch_size is None or patch_size < 1:
        raise BadInputError(f"patch_size must be a positive integer, got {patch_size!r}.")
    for side in (height, width):
        if side is not None and side < patch_size:
            raise BadInputError(
                f"images are {height}x{width} pixels, smaller than patch_size={patch_size}; use a smaller patch."
            )


def _schedule(ds, seed, repeat, shuffle_buffer):
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.enumerate()


def _element_seeds(seed, index, num):
    return tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), index]), num=num)


# Keras warns on every fit(dataset) whose shuffle= is left at its default True; these
# pipelines shuffle themselves (seeded, shuffle_buffer), so the warning says nothing.
_KERAS_SHUFFLE_WARNING = r"`shuffle=True` was passed, but will be ignored since the data `x` was provided as a tf\.data\.Dataset"


def _finish(ds, batch_size, repeat, as_keras_dict):
    warnings.filterwarnings("ignore", message=_KERAS_SHUFFLE_WARNING, category=UserWarning)
    if batch_size is None or batch_size < 1:
        raise BadInputError(f"batch_size (the global batch) must be a positive integer, got {batch_size!r}.")
    ds = ds.batch(batch_size, drop_remainder=repeat)
    if as_keras_dict:
        ds = ds.map(to_keras_dict)
    return without_autotune_thread(ds.prefetch(AUTOTUNE))


def poisson_noisy(clean, dose, seed, read_noise=0.0):
    """``Poisson(clean * dose) / dose`` (+ Gaussian read noise), seeded; ``clean`` >= 0."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    counts = tf.random.stateless_poisson(tf.shape(clean), seeds[0], lam=clean * dose, dtype=tf.float32)
    noisy = counts / dose
    if read_noise:
        noisy += read_noise * tf.random.stateless_normal(tf.shape(clean), seeds[1])
    return noisy


def mean_intensity_units(image, eps=1e-6):
    """Make ``image`` non-negative with mean 1 ("mean-intensity units").

    Non-negative images (intensities, counts, uint8 micrographs) are only
    divided by their mean; images with negative values are first shifted up
    by their minimum. The result is non-negative with mean 1: "1" is the mean
    intensity, so ``dose`` counts per pixel fall on an average pixel.
    """
    image = image - tf.minimum(tf.reduce_min(image), 0.0)
    return image / (tf.reduce_mean(image) + eps)


def pretext_pairs(
    images,
    *,
    patch_size,
    batch_size,
    dose_range=(5.0, 500.0),
    read_noise=0.0,
    normalizer=None,
    seed=0,
    augment=True,
    repeat=True,
    shuffle_buffer=256,
    image_key="image",
    as_keras_dict=False,
):
    """Batched ``(noisy, clean)`` pairs for self-supervised pretraining (restore the clean image).

    Each clean image is brought to mean-intensity units
    (:func:`mean_intensity_units`: non-negative, mean 1), a dose ``d`` (counts per
    pixel at the mean intensity) is drawn log-uniformly from ``dose_range`` per
    image, and ``noisy = Poisson(clean * d) / d`` plus optional Gaussian read
    noise of std ``read_noise`` (mean-intensity units). Both are normalised
    with ``normalizer`` (default per-image standardisation) using the NOISY
    image's statistics, so inference can do the same; then both get the same
    random ``patch_size`` crop and dihedral transform.

    Args:
        images: ``tf.data.Dataset`` of dicts (``image_key`` or ``"images"``) or of
            HxW(xC) tensors, or an N x H x W (x C) array.
        batch_size: the GLOBAL batch size (split across replicas by a strategy).
        seed: same seed, same batches.
        augment: dihedral augmentation (crops are always random).
        repeat: repeat forever (training); ``False`` gives one pass, last
            batch kept.
        shuffle_buffer: examples in the shuffle buffer; 0 = keep the order.
        as_keras_dict: yield ``{"images": noisy, "segmentation_masks": clean}``.
    """
    normalizer = normalizer or Normalizer("standardize")
    low, high = (float(v) for v in dose_range)
    if not 0 < low <= high:
        raise BadInputError(f"dose_range must satisfy 0 < low <= high, got {dose_range}.")
    ds = _image_dataset(images, image_key)
    _check_patch(ds.element_spec.shape, patch_size)
    ds = _schedule(ds, seed, repeat, shuffle_buffer)

    def make_pair(index, image):
        seeds = _element_seeds(seed, index, 4)
        clean = mean_intensity_units(image)
        log_dose = tf.random.stateless_uniform([], seeds[0], minval=np.log(low), maxval=np.log(high))
        noisy = poisson_noisy(clean, tf.exp(log_dose), seeds[1], read_noise)
        offset, scale = tf_stats(normalizer, noisy)
        stack = tf.concat([(noisy - offset) / scale, (clean - offset) / scale], axis=-1)
        stack = random_crop(stack, patch_size, seeds[2])
        if augment:
            stack = dihedral(stack, seeds[3])
        channels = tf.shape(image)[-1]
        return stack[..., :channels], stack[..., channels:]

    return _finish(ds.map(make_pair, num_parallel_calls=AUTOTUNE), batch_size, repeat, as_keras_dict)


def supervised_pairs(
    ds,
    *,
    input_key="image",
    target_key=None,
    task=None,
    patch_size,
    batch_size,
    normalizer=None,
    num_classes=None,
    seed=0,
    augment=True,
    repeat=True,
    shuffle_buffer=256,
    as_keras_dict=False,
):
    """Batched ``(input, target)`` pairs for fine-tuning on labelled examples.

    The input is normalised with its own statistics. The target depends on the
    task's kind (:data:`temzoo.data.targets.TASKS`): ``labels`` stay integer
    class ids (int32, HxWx1; ``binarize`` tasks map non-zero to 1);
    ``intensity`` targets (clean, background-free, super-resolved images) are
    normalised with the INPUT's statistics; ``heatmap`` targets are kept as
    0..1 floats (uint8 ones are divided by 255). Input and target get the same
    crop and dihedral transform.

    Args:
        ds: ``tf.data.Dataset`` of feature dicts (e.g. :func:`temzoo.datasets.load`),
            or of Keras dicts ``{"images", "segmentation_masks"}``.
        target_key: feature name of the target; default from ``task`` via
            :func:`temzoo.data.target_key` on the element's features.
        task: a key of ``TASKS``; sets how the target is treated. Without it an
            integer target is ``labels`` and a float one ``intensity``.
        num_classes: for labels, every id must be < ``num_classes`` (checked).
        batch_size: the GLOBAL batch size.
    """
    normalizer = normalizer or Normalizer("standardize")
    input_key, target_key, kind, binarize = _supervised_keys(ds.element_spec, input_key, target_key, task)
    _check_patch(ds.element_spec[input_key].shape, patch_size)
    target_dtype = ds.element_spec[target_key].dtype
    ds = _schedule(ds, seed, repeat, shuffle_buffer)

    def make_pair(index, example):
        seeds = _element_seeds(seed, index, 2)
        image = tf.cast(example[input_key], tf.float32)
        if image.shape.rank == 2:
            image = image[..., None]
        target = example[target_key]
        if target.shape.rank == 2:
            target = target[..., None]
        offset, scale = tf_stats(normalizer, image)
        image = (image - offset) / scale
        target = _target_values(target, kind, binarize, offset, scale, target_dtype, num_classes, target_key)
        channels = tf.shape(image)[-1]
        stack = random_crop(tf.concat([image, target], axis=-1), patch_size, seeds[0])
        if augment:
            stack = dihedral(stack, seeds[1])
        out = stack[..., channels:]
        if kind == "labels":
            out = tf.cast(tf.round(out), tf.int32)
        return stack[..., :channels], out

    return _finish(ds.map(make_pair, num_parallel_calls=AUTOTUNE), batch_size, repeat, as_keras_dict)


def _supervised_keys(spec, input_key, target_key, task):
    """``(input_key, target_key, kind, binarize)`` for :func:`supervised_pairs`, checked against ``spec``."""
    if not isinstance(spec, dict):
        raise BadInputError("supervised_pairs needs a dataset of feature dicts (e.g. temzoo.datasets.load(...)).")
    if input_key not in spec and KERAS_IMAGES in spec:
        input_key = KERAS_IMAGES
        target_key = target_key or KERAS_TARGETS
    if input_key not in spec:
        raise BadInputError(f"dataset elements have no {input_key!r} feature (features: {', '.join(sorted(spec))}).")
    entry = targets_table.task(task) if task else None
    if target_key is None:
        if task is None:
            raise BadInputError("supervised_pairs needs target_key= or task=.")
        target_key = targets_table.target_key("passed to supervised_pairs", task, features=spec)
    if target_key not in spec:
        raise BadInputError(f"dataset elements have no {target_key!r} feature (features: {', '.join(sorted(spec))}).")
    kind = entry.kind if entry else ("labels" if spec[target_key].dtype.is_integer else "intensity")
    in_shape, out_shape = spec[input_key].shape, spec[target_key].shape
    if in_shape.rank is not None and out_shape.rank is not None and in_shape[:-1] != out_shape[:-1]:
        if None not in in_shape[:-1] and None not in out_shape[:-1]:
            raise BadInputError(
                f"target {target_key!r} is {out_shape[:-1]} pixels but input {input_key!r} is {in_shape[:-1]}; "
                "supervised_pairs needs targets of the input's size."
            )
    return input_key, target_key, kind, bool(entry and entry.binarize)


def _target_values(target, kind, binarize, offset, scale, target_dtype, num_classes, target_key):
    """The float32 target of one example: class ids, intensities normalised like the input, or 0..1 heatmaps."""
    if kind == "labels":
        labels = tf.cast(target, tf.int32)
        if binarize:
            labels = tf.cast(labels > 0, tf.int32)
        if num_classes is not None:
            tf.debugging.assert_less(labels, num_classes, message=f"{target_key}: class id >= num_classes={num_classes}")
        return tf.cast(labels, tf.float32)
    if kind == "intensity":
        return (tf.cast(target, tf.float32) - offset) / scale
    return tf.cast(target, tf.float32) / (255.0 if target_dtype == tf.uint8 else 1.0)
