"""Fine-tune a segmentation model on particle boxes (weak labels) plus synthetic particles.

    >>> from temzoo.data.boxes import load_box_folder
    >>> from temzoo.analysis.box_training import train_on_boxes
    >>> examples = load_box_folder("nanoparticle_boxes")          # YOLO labels + images
    >>> model, info = train_on_boxes("unet_pretrained", examples, steps=600)
    >>> temzoo.particles(model, image)

One training recipe, used by ``benchmarks/particles_real.py`` (cross-validation)
and ``recipes/ship.py nanoparticles`` (the shipped model):

* scale: each box image is resampled (:func:`temzoo.analysis.scale.rescale`) so
  that its median box size (``sqrt(w h)``) becomes ``target_particle_px``, and
  also ``scale_jitter`` times larger and smaller (three copies, crops drawn from
  any), so the model learns particles of ``target / jitter`` to
  ``target * jitter`` pixels; ``temzoo.particles(..., scale="auto")`` resamples a
  new image to that range (the target is stored in the card's ``training``, with
  ``measured_particle_px``, the size the trained model's particles come out at
  on its own box images: :func:`measured_particle_px`);
* labels: :func:`temzoo.data.boxes.boxes_to_mask` (inscribed ellipses by
  default), whole images normalised by the model's normaliser (as
  :func:`temzoo.predict` does at prediction), then random ``patch_size`` crops
  with flips and 90-degree rotations; large images are only ever seen as crops;
* each batch mixes ``synthetic_fraction`` crops of a labelled synthetic set
  (``synthetic_tem/au_np``: image and particle mask) with crops of the box images;
  ``synthetic_fraction=1`` with no examples is the synthetic-only model;
* :func:`temzoo.tasks.segmentation` on the backbone (a pretrained name or an
  architecture name for random initialisation), Adam with a cosine decay over
  ``steps``, fixed step count (so runs compare at equal budget).
"""

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

DEFAULTS = {
    "steps": 600,
    "batch_size": 8,
    "patch_size": 128,
    "learning_rate": 1e-3,
    "synthetic": "synthetic_tem/au_np",
    "synthetic_fraction": 0.25,
    "synthetic_images": 200,
    "mask_kind": "ellipse",
    "target_particle_px": 16.0,
    "scale_jitter": 1.4142,
    "seed": 0,
}


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


def _crop_sampler(images, masks, patch, rng):
    """A function giving one random augmented (image, mask) crop from the lists."""
    sizes = np.array([min(im.shape) for im in images])
    if (sizes < patch).any():
        small = int(np.argmin(sizes))
        raise ValueError(f"image {small} ({images[small].shape}) is smaller than patch_size={patch}.")

    def sample():
        i = rng.integers(len(images))
        image, mask = images[i], masks[i]
        y = rng.integers(image.shape[0] - patch + 1)
        x = rng.integers(image.shape[1] - patch + 1)
        a, b = image[y:y + patch, x:x + patch], mask[y:y + patch, x:x + patch]
        k = rng.integers(4)
        a, b = np.rot90(a, k), np.rot90(b, k)
        if rng.integers(2):
            a, b = a[:, ::-1], b[:, ::-1]
        return a, b

    return sample


def synthetic_examples(name, count, data_dir=None):
    """``count`` (image, mask) pairs of the labelled synthetic set ``name`` (train split)."""
    from temzoo import datasets

    images, masks = [], []
    for example in datasets.load(name, f"train[:{int(count)}]", data_dir=data_dir):
        images.append(np.asarray(example["image"], np.float32)[..., 0])
        masks.append((np.asarray(example["mask"])[..., 0] > 0).astype(np.uint8))
    return images, masks


def box_training_images(examples, normalizer, target, jitter, patch_size, mask_kind, scales):
    """Normalised images and label masks of the box ``examples`` at their :func:`training_factors`
    (``scales`` receives the factors per image name)."""
    from temzoo.analysis.scale import rescale
    from temzoo.data.boxes import boxes_to_mask

    images, masks = [], []
    for e in examples:
        factors = training_factors(e["boxes"], target, jitter, e["image"].shape, patch_size)
        scales[e.get("name", len(scales))] = [round(f, 3) for f in factors]
        for factor in factors:
            image = rescale(e["image"], factor)
            # boxes follow the image's actual size change
            ratio = np.array(image.shape[::-1] * 2, np.float64) / np.array(e["image"].shape[::-1] * 2)
            boxes = np.asarray(e["boxes"], np.float64) * ratio
            images.append(normalizer.before(image)[0])
            masks.append(boxes_to_mask(boxes, image.shape, kind=mask_kind, image=image))
    return images, masks


def measured_particle_px(model, examples, target):
    """The median particle diameter (px) the trained ``model`` finds in its box images at their target scale.

    Weak labels and the threshold make predicted particles somewhat smaller (or larger) than
    their boxes; ``scale="auto"`` compares the particles it finds with this size rather than with
    ``target`` (``None`` without examples or target).
    """
    from temzoo.analysis.scale import foreground_at_scale, median_diameter

    if not target or not examples:
        return None
    ratios = []
    for e in examples:
        factor = scale_for(e["boxes"], target)
        foreground, _ = foreground_at_scale(model, e["image"], scale=factor)
        size = median_diameter(foreground, 0.5, 5)
        if size:
            ratios.append(size / median_box_size(e["boxes"]))
    return round(float(target * np.median(ratios)), 2) if ratios else None


def train_on_boxes(backbone, examples, *, steps=DEFAULTS["steps"], batch_size=DEFAULTS["batch_size"],
                   patch_size=DEFAULTS["patch_size"], learning_rate=DEFAULTS["learning_rate"],
                   synthetic=DEFAULTS["synthetic"], synthetic_fraction=DEFAULTS["synthetic_fraction"],
                   synthetic_images=DEFAULTS["synthetic_images"], mask_kind=DEFAULTS["mask_kind"],
                   target_particle_px=DEFAULTS["target_particle_px"], scale_jitter=DEFAULTS["scale_jitter"],
                   seed=DEFAULTS["seed"], data_dir=None,
                   log_every=50):
    """Train a 2-class segmentation model on box-labelled ``examples`` (see the module docstring).

    Args:
        backbone: pretrained name (``"unet_pretrained"``), architecture name (random init) or model.
        examples: dicts with ``image`` (2-D) and ``boxes`` (``N x 4`` pixel corners), e.g. from
            :func:`temzoo.data.boxes.load_box_folder`; may be empty with ``synthetic_fraction=1``.
        synthetic: a labelled TFDS set with ``image`` and ``mask`` (``None``: boxes only).

    Returns ``(model, info)``: the compiled Keras model (card draft attached, save it with
    :func:`temzoo.tasks.save`) and a dict of the settings, timing and last losses.
    """
    import keras

    from temzoo.tasks import normalizer_of, segmentation
    from temzoo.zoo.pretrained import card as card_of

    if not examples and not (synthetic and synthetic_fraction >= 1):
        raise ValueError("no labelled examples: give box examples or synthetic_fraction=1 with a synthetic set.")
    if examples and synthetic and synthetic_fraction >= 1:
        raise ValueError("synthetic_fraction=1 would never use the box examples; pass examples=[] for synthetic-only.")
    started, cpu_started = time.time(), time.process_time()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = segmentation(backbone, num_classes=2, learning_rate=learning_rate)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(int(steps), 1))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=model.loss)
    normalizer = normalizer_of(card_of(model))

    samplers, fractions = [], []
    scales = {}
    if examples:
        images, masks = box_training_images(examples, normalizer, target_particle_px, scale_jitter, patch_size,
                                            mask_kind, scales)
        samplers.append(_crop_sampler(images, masks, patch_size, rng))
        fractions.append(1.0 - (synthetic_fraction if synthetic else 0.0))
    if synthetic and synthetic_fraction > 0:
        s_images, s_masks = synthetic_examples(synthetic, synthetic_images, data_dir)
        s_images = [normalizer.before(im)[0] for im in s_images]
        samplers.append(_crop_sampler(s_images, s_masks, patch_size, rng))
        fractions.append(synthetic_fraction if examples else 1.0)
    fractions = np.array(fractions) / np.sum(fractions)

    losses = []
    for step in range(int(steps)):
        which = rng.choice(len(samplers), size=batch_size, p=fractions)
        pairs = [samplers[w]() for w in which]
        x = np.stack([p[0] for p in pairs])[..., None].astype(np.float32)
        y = np.stack([p[1] for p in pairs])[..., None].astype(np.int32)
        losses.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
        if log_every and (step + 1) % log_every == 0:
            log.info("step %d/%d: loss %.4f (%.0f s)", step + 1, steps, np.mean(losses[-log_every:]), time.time() - started)
    measured = measured_particle_px(model, examples, target_particle_px)
    info = {
        "backbone": backbone if isinstance(backbone, str) else getattr(backbone, "name", "model"),
        "box_images": [e.get("name") for e in examples],
        "boxes": int(sum(len(e["boxes"]) for e in examples)),
        "steps": int(steps), "batch_size": batch_size, "patch_size": patch_size,
        "learning_rate": learning_rate, "schedule": "cosine", "synthetic": synthetic if synthetic_fraction else None,
        "synthetic_fraction": synthetic_fraction if synthetic else 0.0, "synthetic_images": synthetic_images,
        "mask_kind": mask_kind, "seed": seed, "target_particle_px": target_particle_px,
        "scale_jitter": scale_jitter, "scales": scales, "measured_particle_px": measured,
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "seconds": round(time.time() - started, 1), "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    from temzoo.zoo.pretrained import attach_card

    attach_card(model, {**(card_of(model) or {}), "training": info})  # temzoo.particles reads the target size
    return model, info
