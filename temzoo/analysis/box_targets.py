"""Training targets of :func:`temzoo.analysis.box_training.train_on_boxes`: box images at their training scales with
their label maps (and pixel weights), and the labelled synthetic crops.

* :func:`training_factors`: the factors each box image is resampled by (median box to the target size, and the
  scale jitter either side);
* :func:`box_training_images`: normalised (and flattened) images with 2-class masks or 3-class targets
  (:mod:`temzoo.data.boxes`), bright-field images inverted for ``polarity="bright"``; with ``weights``, each target
  carries :func:`temzoo.data.boxes.boxes_to_weights` as a second channel;
* :func:`synthetic_examples`, :func:`synthetic_crops`: the labelled synthetic set's images and targets.
"""

import numpy as np

from temzoo.analysis.polarity import inverted

POLARITIES = (None, "bright")  # train on the images as they are, or with every bright-field one inverted


def median_box_size(boxes):
    """Median ``sqrt(w h)`` of ``N x 4`` pixel-corner boxes (``None`` for no boxes)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return None
    return float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))


def scale_for(boxes, target):
    """The factor of :data:`temzoo.analysis.scale.SCALES` that brings the median box size closest to ``target`` px."""
    from temzoo.analysis.scale import factor_for_size

    return factor_for_size(median_box_size(boxes), target)


def training_factors(boxes, target, jitter, shape, min_side):
    """The resampling factors one box image is trained at: median box size to ``target``, and ``jitter`` either side.

    Factors that would leave the image smaller than ``min_side`` (the crop size) are dropped.
    """
    size = median_box_size(boxes)
    if not target or not size:
        return [1.0]
    centre = float(np.clip(size / target, 0.25, 16.0))
    factors = [centre] if not jitter or jitter <= 1 else [centre / jitter, centre, centre * jitter]
    return [f for f in factors if min(shape) / f >= min_side] or [min(shape) / min_side]




def classes_from_mask(mask, core=None):
    """Three-class target (0 background, 1 boundary, 2 core) from a binary particle mask (synthetic sets).

    Particles are :func:`temzoo.analysis.particles.instances` of the mask (distance-transform watershed);
    each one's core is where its own distance to its edge is above ``1 - core`` of its largest, i.e. a disk
    keeps the inner ``core`` of its radius (as :func:`temzoo.data.boxes.boxes_to_classes` shrinks the ellipses).
    """
    from scipy import ndimage
    from skimage import segmentation

    from temzoo.analysis.particles import instances
    from temzoo.data.boxes import CORE_FRACTION

    core = CORE_FRACTION if core is None else float(core)
    mask = np.asarray(mask) > 0
    labels = instances(mask, min_area=0)
    classes = mask.astype(np.uint8)
    if not labels.max():
        return classes
    inner = (labels > 0) & ~segmentation.find_boundaries(labels, mode="inner")
    distance = ndimage.distance_transform_edt(inner)
    largest = np.asarray(ndimage.maximum(distance, labels, np.arange(1, labels.max() + 1)))
    classes[(labels > 0) & (distance > (1.0 - core) * np.concatenate([[np.inf], largest])[labels])] = 2
    return classes


def synthetic_examples(name, count, data_dir=None, polarity=None):
    """``count`` (image, mask) pairs of a labelled synthetic set (train split); ``polarity="bright"``
    inverts those whose particles are darker (on average) than the rest.

    ``name``: a TFDS set with ``image`` and ``mask`` (``"synthetic_tem/au_np"``), or a dict with
    ``name``, ``images`` and ``masks`` already made (:func:`temzoo.simulate.hrtem.nanoparticle_set`
    makes au_np's images without TensorFlow Datasets).
    """
    if isinstance(name, dict):
        pairs = list(zip(name["images"], name["masks"], strict=True))[:int(count)]
    else:
        from temzoo import datasets

        pairs = [(example["image"][..., 0], example["mask"][..., 0])
                 for example in datasets.load(name, f"train[:{int(count)}]", data_dir=data_dir)]
    images, masks = [], []
    for image, mask in pairs:
        image = np.asarray(image, np.float32)
        mask = (np.asarray(mask) > 0).astype(np.uint8)
        if polarity == "bright" and mask.any() and not mask.all() and image[mask > 0].mean() < image[mask == 0].mean():
            image = inverted(image)
        images.append(image)
        masks.append(mask)
    return images, masks


def box_training_images(examples, normalizer, target, jitter, patch_size, mask_kind, scales, classes=2,
                        polarity=None, flipped=None, flatten_px=None, weights=False):
    """Normalised images and label maps of the box ``examples`` at their :func:`training_factors`
    (``scales`` receives the factors per image name); ``classes`` 2: particle masks
    (:func:`temzoo.data.boxes.boxes_to_mask`), 3: background / boundary / core
    (:func:`temzoo.data.boxes.boxes_to_classes`). ``polarity="bright"``: images whose boxed particles are
    darker than the rest (:func:`temzoo.data.boxes.particles_are_bright`) are inverted (their names
    appended to ``flipped``). ``flatten_px``: background sigma in model pixels (:func:`temzoo.analysis.flatten.flattened`).
    ``weights``: each target is ``H x W x 2`` float32, the label map and its pixel weights
    (:func:`temzoo.data.boxes.boxes_to_weights`)."""
    from temzoo.analysis.flatten import flattened
    from temzoo.analysis.scale import rescale
    from temzoo.data.boxes import (
        boxes_to_classes,
        boxes_to_mask,
        boxes_to_weights,
        particles_are_bright,
    )

    labels_of = {2: boxes_to_mask, 3: boxes_to_classes}[int(classes)]
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}.")

    images, masks = [], []
    for e in examples:
        factors = training_factors(e["boxes"], target, jitter, e["image"].shape, patch_size)
        scales[e.get("name", len(scales))] = [round(f, 3) for f in factors]
        source = e["image"]
        if polarity == "bright" and not particles_are_bright(source, e["boxes"]):
            source = inverted(source)
            if flipped is not None:
                flipped.append(e.get("name", len(flipped)))
        for factor in factors:
            image = rescale(source, factor)
            # boxes follow the image's actual size change
            ratio = np.array(image.shape[::-1] * 2, np.float64) / np.array(e["image"].shape[::-1] * 2)
            boxes = np.asarray(e["boxes"], np.float64) * ratio
            images.append(normalizer.before(flattened(image, flatten_px))[0])
            label_map = labels_of(boxes, image.shape, kind=mask_kind, image=image)
            if weights:
                label_map = np.stack([label_map, boxes_to_weights(boxes, image.shape, kind=mask_kind, image=image)], -1)
            masks.append(label_map)
    return images, masks


def synthetic_crops(synthetic, count, data_dir, polarity, normalizer, classes, flatten_px=None, weights=False):
    """Normalised (and flattened, as the box images) images and targets (2 or 3 classes) of ``count``
    examples of the synthetic set; ``weights``: with a second channel of ones, as the weighted box targets."""
    from temzoo.analysis.flatten import flattened

    images, masks = synthetic_examples(synthetic, count, data_dir, polarity)
    images = [normalizer.before(flattened(im, flatten_px))[0] for im in images]
    targets = [classes_from_mask(m) for m in masks] if int(classes) == 3 else masks
    if weights:
        targets = [np.stack([t, np.ones(t.shape, np.float32)], -1) for t in targets]
    return images, targets
