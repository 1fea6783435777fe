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
* labels: ``classes=2`` (default) particle masks; ``classes=3`` background / particle boundary / particle
  core (:func:`temzoo.data.boxes.boxes_to_classes`; synthetic masks through
  :func:`classes_from_mask`), whose cores :func:`temzoo.analysis.particles.instances`
  uses as watershed markers to separate touching particles (masks:
  :func:`temzoo.data.boxes.boxes_to_mask`); inscribed ellipses by default; whole images normalised by the model's normaliser (as
  :func:`temzoo.predict` does at prediction), then random ``patch_size`` crops
  with flips and 90-degree rotations (:mod:`temzoo.analysis.box_crops`: optionally centred near
  particles, ``foreground_crops``, and varied in contrast, offset, blur and noise,
  ``intensity``); large images are only ever seen as crops; ``weight_map=True`` weights the
  cross-entropy per pixel (:func:`temzoo.data.boxes.boxes_to_weights`: small particles as much as median
  ones, the background between touching particles more); the targets are built by
  :mod:`temzoo.analysis.box_targets`;
* polarity: ``polarity="bright"`` (the default) inverts the bright-field images (particles
  darker than the rest, from the boxes) and synthetic images, so the model only
  learns bright particles; ``temzoo.particles`` then inverts an image whose
  particles look dark (:mod:`temzoo.analysis.polarity`, decided from the image);
  or a crop's intensities are reversed with probability ``invert``
  (default 0), so one model may learn particles brighter than their support
  (HAADF) and darker (bright-field TEM);
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

from temzoo.analysis.box_crops import crop_sampler
from temzoo.analysis.box_targets import (  # noqa: F401  (re-exported: callers import them from here)
    POLARITIES,
    box_training_images,
    classes_from_mask,
    median_box_size,
    scale_for,
    synthetic_crops,
    synthetic_examples,
    training_factors,
)

log = logging.getLogger(__name__)


DEFAULTS = {
    "steps": 600,
    "batch_size": 8,
    "patch_size": 128,
    "learning_rate": 1e-3,
    "synthetic": "synthetic_tem/au_np",
    # 0: the labelled synthetic crops cost F1 on unseen real images (0.645 with 25 % of each batch, 0.691 without:
    # docs/benchmarks.md, sixth pass); a synthetic set still serves synthetic_fraction=1 (no real labels)
    "synthetic_fraction": 0.0,
    "synthetic_images": 200,
    "mask_kind": "ellipse",
    "target_particle_px": 16.0,
    "scale_jitter": 1.4142,
    "classes": 2,  # 3 (background / boundary / core) and invert 0.5 did not score better (issue 18, h18b)
    "invert": 0.0,
    "polarity": "bright",  # fold 2 at 400 steps: F1 0.520 vs 0.473 with None (docs/benchmarks.md, issue 18)
    # crops centred near particles / intensity variation (temzoo.analysis.box_crops): both folds at 1000 steps,
    # F1 0.589 (0.5 + intensity) and 0.594 (intensity) vs 0.645 without (docs/benchmarks.md, sixth pass)
    "foreground_crops": 0.0,
    "intensity": False,
    "seed": 0,
    # pixel weights (temzoo.data.boxes.boxes_to_weights): small particles count as much as median ones, and the
    # background between touching particles weighs more
    "weight_map": False,
    # focal cross-entropy (keras.losses.categorical_focal_crossentropy) instead of plain cross-entropy, beside Dice
    "focal": False,
    # "mixed_bfloat16" / "auto": train in bfloat16 where the CPU or GPU computes it natively (the model is
    # saved in float32 either way; temzoo.inference.precision)
    "precision": "float32",
    # background taken out before the model sees an image: Gaussian sigma in target particle sizes (0: none)
    "flatten": 0.0,
}


def measured_particle_px(model, examples, target):
    """The median particle diameter (px) the trained ``model`` finds in its box images at their target scale.

    Weak labels and the threshold make predicted particles somewhat smaller (or larger) than
    their boxes; ``scale="auto"`` compares the particles it finds with this size rather than with
    ``target`` (``None`` without examples or target).
    """
    from temzoo.analysis.particles import DEFAULTS as POST
    from temzoo.analysis.scale import foreground_at_scale, median_diameter, scaled_post

    if not target or not examples:
        return None
    ratios = []
    for e in examples:
        factor = scale_for(e["boxes"], target)
        foreground, _ = foreground_at_scale(model, e["image"], scale=factor)
        size = median_diameter(foreground, POST["threshold"], scaled_post(factor)["min_area"])
        if size:
            ratios.append(size / median_box_size(e["boxes"]))
    return round(float(target * np.median(ratios)), 2) if ratios else None


def _measured_where_possible(model, examples, reads):
    """``{"measured_particle_px": ...}`` (:func:`measured_particle_px`), or ``{}`` on a Keras backend other than
    TensorFlow: :func:`temzoo.predict` runs on TensorFlow, so it is measured there later
    (``benchmarks/particles_real.py`` and ``recipes/ship.py`` do when the card lacks it).

    ``reads``: what prediction reads from the card's ``training`` (target size, polarity, flattening), attached
    first so the model measures its particles as :func:`temzoo.particles` will see them."""
    import keras

    from temzoo.zoo.pretrained import attach_card
    from temzoo.zoo.pretrained import card as card_of

    attach_card(model, {**(card_of(model) or {}), "training": reads})
    target = reads["target_particle_px"]

    if keras.backend.backend() == "tensorflow":
        return {"measured_particle_px": measured_particle_px(model, examples, target)}
    log.info("Keras backend %s: measured_particle_px is left for a TensorFlow run", keras.backend.backend())
    return {}


def _train_steps(model, samplers, fractions, rng, steps, batch_size, log_every, started):
    """``steps`` batches, each crop drawn from a sampler chosen with probabilities ``fractions``; the losses.

    BatchNormalization trains through TensorFlow's fused kernel (:mod:`temzoo.training.fused_batch_norm`:
    same statistics and updates; the step is traced inside it on the first batch), as ``temzoo-cli finetune``
    does. A model trained on a weighted loss is compiled with the task's own loss afterwards."""
    from temzoo.tasks.losses import WeightedCrossEntropyDice
    from temzoo.training.fused_batch_norm import fused_batch_norm

    with fused_batch_norm([model]):
        losses = _steps(model, samplers, fractions, rng, steps, batch_size, log_every, started)
    if isinstance(model.loss, WeightedCrossEntropyDice):
        _with_task_loss(model)
    return losses


def _steps(model, samplers, fractions, rng, steps, batch_size, log_every, started):
    losses = []
    for step in range(steps):
        which = rng.choice(len(samplers), size=batch_size, p=fractions)
        pairs = [samplers[w]() for w in which]
        x = np.stack([p[0] for p in pairs])[..., None].astype(np.float32)
        y = np.stack([p[1] for p in pairs])
        # label maps, or (label, pixel weight) pairs for the weighted loss
        y = y.astype(np.float32) if y.ndim == 4 else y[..., None].astype(np.int32)
        losses.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
        if log_every and (step + 1) % log_every == 0:
            log.info("step %d/%d: loss %.4f (%.0f s)", step + 1, steps, np.mean(losses[-log_every:]), time.time() - started)
    return losses


def _compiled_model(backbone, classes, learning_rate, steps, precision, seed, weight_map=False, focal=False):
    """The segmentation model of ``backbone`` under ``precision``, compiled with Adam on a cosine decay over ``steps``
    (``weight_map``: with the task's loss weighted per pixel, :class:`temzoo.tasks.losses.WeightedCrossEntropyDice`;
    ``focal``: focal instead of plain cross-entropy)."""
    import keras

    from temzoo.tasks import segmentation
    from temzoo.tasks.losses import WeightedCrossEntropyDice

    keras.utils.set_random_seed(seed)
    model = _with_precision(segmentation(backbone, num_classes=int(classes), learning_rate=learning_rate,
                                         focal=bool(focal)), precision)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(int(steps), 1))
    loss = model.loss
    if weight_map:
        loss = WeightedCrossEntropyDice(dice_weight=model.loss.dice_weight, focal=model.loss.focal)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    return model


def _with_task_loss(model):
    """``model`` compiled again with the task's own loss (label-map targets) after training on a weighted one,
    so the saved model fine-tunes on plain label maps."""
    from temzoo.tasks.losses import CrossEntropyDice

    weighted = model.loss
    model.compile(optimizer=model.optimizer, loss=CrossEntropyDice(dice_weight=weighted.dice_weight,
                                                                    focal=weighted.focal))
    return model


def _samplers(boxes, synthetic_crops, synthetic_fraction, crops):
    """Crop samplers of the box images and of the synthetic set (each ``(images, targets)`` or falsy) and the
    probabilities of drawing from each."""
    samplers, fractions = [], []
    if boxes:
        samplers.append(crop_sampler(*boxes, **crops))
        fractions.append(1.0 - (synthetic_fraction if synthetic_crops else 0.0))
    if synthetic_crops:
        samplers.append(crop_sampler(*synthetic_crops, **crops))
        fractions.append(synthetic_fraction if boxes else 1.0)
    return samplers, np.array(fractions) / np.sum(fractions)


def _with_precision(model, precision):
    """``model``, or its copy computing under ``precision`` (same weights, card and loss)."""
    from temzoo.inference.precision import training_copy

    copy = training_copy(model, precision, "train_on_boxes")
    copy.loss = model.loss
    return copy


def _check_settings(examples, synthetic, synthetic_fraction, classes, polarity):
    """Refuse settings :func:`train_on_boxes` cannot train with, saying why."""
    if not examples and not (synthetic and synthetic_fraction >= 1):
        raise ValueError("no labelled examples: give box examples or synthetic_fraction=1 with a synthetic set.")
    if int(classes) not in (2, 3):
        raise ValueError(f"classes must be 2 (background / particle) or 3 (background / boundary / core), got {classes}.")
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}.")
    if examples and synthetic and synthetic_fraction >= 1:
        raise ValueError("synthetic_fraction=1 would never use the box examples; pass examples=[] for synthetic-only.")


def train_on_boxes(backbone, examples, *, steps=DEFAULTS["steps"], batch_size=DEFAULTS["batch_size"],
                   patch_size=DEFAULTS["patch_size"], learning_rate=DEFAULTS["learning_rate"],
                   synthetic=DEFAULTS["synthetic"], synthetic_fraction=DEFAULTS["synthetic_fraction"],
                   synthetic_images=DEFAULTS["synthetic_images"], mask_kind=DEFAULTS["mask_kind"],
                   target_particle_px=DEFAULTS["target_particle_px"], scale_jitter=DEFAULTS["scale_jitter"],
                   classes=DEFAULTS["classes"], invert=DEFAULTS["invert"], polarity=DEFAULTS["polarity"],
                   foreground_crops=DEFAULTS["foreground_crops"], intensity=DEFAULTS["intensity"],
                   precision=DEFAULTS["precision"], flatten=DEFAULTS["flatten"],
                   weight_map=DEFAULTS["weight_map"], focal=DEFAULTS["focal"], seed=DEFAULTS["seed"],
                   data_dir=None, log_every=50):
    """Train a particle segmentation model on box-labelled ``examples`` (see the module docstring).

    Args:
        backbone: pretrained name (``"unet_pretrained"``), architecture name (random init) or model.
        examples: dicts with ``image`` (2-D) and ``boxes`` (``N x 4`` pixel corners), e.g. from
            :func:`temzoo.data.boxes.load_box_folder`; may be empty with ``synthetic_fraction=1``.
        synthetic: a labelled TFDS set with ``image`` and ``mask`` (``None``: boxes only), or its
            images at hand (:func:`synthetic_examples`).
        classes: 2 (background / particle) or 3 (background / boundary / core: the core marks each
            particle for :func:`temzoo.analysis.particles.instances`).
        invert: probability of a crop's intensities being reversed (bright field and HAADF in one model).
        polarity: ``"bright"`` (default): bright-field images (and synthetic ones)
            are inverted so the model only learns particles brighter than their support; the card says
            so, and :func:`temzoo.particles` then inverts the images whose particles look dark
            (:mod:`temzoo.analysis.polarity`); ``None``: the images as they are.
        foreground_crops, intensity: crops' places and intensities (:func:`temzoo.analysis.box_crops.crop_sampler`).
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"auto"`` (bfloat16 where the hardware computes it
            natively, :func:`temzoo.inference.precision.resolve_precision`); the returned model computes under
            it and :func:`temzoo.tasks.save` writes it in float32.
        flatten: subtract each image's Gaussian-smoothed background (sigma ``flatten`` x ``target_particle_px``
            model pixels) first; the card records it and :func:`temzoo.particles` does the same. 0: off.
        weight_map: weight the cross-entropy per pixel (:func:`temzoo.data.boxes.boxes_to_weights`: small
            particles as much as median ones, the background between touching ones more); the returned model
            is compiled with the task's own loss again.
        focal: focal instead of plain cross-entropy (``keras.losses.categorical_focal_crossentropy``), beside Dice.

    Returns ``(model, info)``: the compiled Keras model (card draft attached, save it with
    :func:`temzoo.tasks.save`) and a dict of the settings, timing and last losses.
    """
    from temzoo.data.boxes import CLASSES
    from temzoo.inference.precision import resolve_precision
    from temzoo.tasks import normalizer_of
    from temzoo.zoo.pretrained import attach_card
    from temzoo.zoo.pretrained import card as card_of

    _check_settings(examples, synthetic, synthetic_fraction, classes, polarity)
    started, cpu_started = time.time(), time.process_time()
    model = _compiled_model(backbone, classes, learning_rate, steps, precision, seed, weight_map, focal)
    rng = np.random.default_rng(seed)
    normalizer = normalizer_of(card_of(model))
    scales, flipped = {}, []
    flatten_px = float(flatten) * float(target_particle_px or 0) or None
    crops = {"patch": patch_size, "rng": rng, "invert": invert, "foreground": foreground_crops, "intensity": intensity}
    boxes = examples and box_training_images(examples, normalizer, target_particle_px, scale_jitter, patch_size,
                                             mask_kind, scales, classes, polarity, flipped, flatten_px, weight_map)
    synthetic_set = synthetic and synthetic_fraction > 0 and synthetic_crops(
        synthetic, synthetic_images, data_dir, polarity, normalizer, classes, flatten_px, weight_map)
    samplers, fractions = _samplers(boxes, synthetic_set, synthetic_fraction, crops)
    losses = _train_steps(model, samplers, fractions, rng, int(steps), batch_size, log_every, started)
    base_card = card_of(model) or {}
    measured = _measured_where_possible(model, examples, {"target_particle_px": target_particle_px,
                                                          "polarity": polarity, "flatten_px": flatten_px})
    info = {
        "backbone": backbone if isinstance(backbone, str) else getattr(backbone, "name", "model"),
        "box_images": [e.get("name") for e in examples], "boxes": int(sum(len(e["boxes"]) for e in examples)),
        "steps": int(steps), "batch_size": batch_size, "patch_size": patch_size,
        "learning_rate": learning_rate, "schedule": "cosine",
        "synthetic": (synthetic.get("name") if isinstance(synthetic, dict) else synthetic) if synthetic_fraction else None,
        "synthetic_fraction": synthetic_fraction if synthetic else 0.0, "synthetic_images": synthetic_images,
        "mask_kind": mask_kind, "seed": seed, "target_particle_px": target_particle_px,
        "scale_jitter": scale_jitter, "scales": scales, "invert": invert, "polarity": polarity,
        "foreground_crops": foreground_crops, "intensity": intensity, "inverted_images": flipped,
        "precision": resolve_precision(precision), "flatten_px": flatten_px, "weight_map": bool(weight_map),
        "focal": bool(focal),
        "classes": ["background", "particle"] if int(classes) == 2 else list(CLASSES), **measured,
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "seconds": round(time.time() - started, 1), "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    attach_card(model, {**base_card, "training": info})  # temzoo.particles reads the target size
    return model, info
