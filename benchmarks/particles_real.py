"""Particles on real micrographs, measured against hand-drawn boxes (leave-images-out cross-validation).

    python benchmarks/particles_real.py                        # 3 folds, 10 training images, 500 steps
    python benchmarks/particles_real.py --folds 22 --steps 1000   # leave-one-image-out (hours on 2 CPUs)
    python benchmarks/particles_real.py --model nanoparticles --label shipped   # a trained model on every image

Data: ``nanoparticle_boxes/`` (YOLO boxes of 22 HAADF-STEM and BF-TEM images of
supported Cu, Pd, Pt, PtCo, PtW, Ru particles; default
``../shared/real_micrographs/nanoparticle_boxes`` from the repository root).

The images are split into ``--folds`` groups (seeded). For each fold and variant
a model is trained with :func:`temzoo.analysis.box_training.train_on_boxes` on at most
``--train-images`` images of the other folds (same steps, batch and patch size
for every variant) and evaluated on the fold's images, never seen in training:

* ``pretrained``: ``unet_pretrained`` backbone, box images (+ synthetic_tem/au_np crops with
  ``--synthetic-fraction``);
* ``random``: the same architecture (``unet_b3_p222``) from random weights, same budget;
* ``synthetic_only``: ``unet_pretrained`` on synthetic_tem/au_np only (no real labels),
  trained once and evaluated on all images;
* ``mobilenet``, ``hrnet``: the other shipped pretrained backbones (``mobilenet_unet_pretrained``,
  ``hrnet_pretrained``) in place of ``unet_pretrained`` (``--variants mobilenet``; not in the default list).

``--precision mixed_bfloat16`` (or ``auto``) trains the fold models in bfloat16 (cache keys and labels say so).

``--classes 3`` trains the background / boundary / core target and finds
particles from the cores (``--no-core`` also scores them by the distance
watershed); ``--invert P`` reverses a training crop's intensities with
probability P; ``--polarity bright`` inverts the bright-field training images and the test
images whose particles look dark (the shipped recipe, with ``--steps 1000``);
``--polarity-report`` only checks that image-based decision against the boxes;
``--target-ceiling`` scores the training targets themselves (the boxes' label maps at the training scale, through
the same post-processing): what a model that reproduced its targets exactly would score.
``--weight-map`` trains with pixel weights (small particles and contacts weigh more), ``--learning-rate`` at
another peak rate, ``--train-seed N`` the same folds with another training seed (how much F1 moves between runs).
Scale rules (``--scale-rule``): ``auto`` (temzoo.particles' default, the confidence rule),
``auto-fit`` / ``auto-count`` (older rules), ``boxes`` (the annotated size: an oracle).

Scores (:func:`temzoo.analysis.scoring.compare_to_boxes`): particles from
:func:`temzoo.analysis.particles.instances` (threshold 0.5, ``--min-area`` in the
model's pixels, core markers or distance-watershed split) matched
one-to-one to the boxes at box IoU >= 0.5, border-touching particles excluded on
both sides; precision, recall and F1 pooled over all test particles (and F1 per
image; ``--min-confidence`` and ``--finer-confidence`` score temzoo.particles' confidence floor and its second
look half an octave finer, :func:`temzoo.analysis.particles.found_particles`); median relative error of the equivalent diameter of matched particles
(box: ``sqrt(w h)``); Wasserstein distance between predicted and annotated
diameter distributions per image, relative to the annotated median, averaged. Each row also
records why the unmatched boxes were missed (``fn_missed``, ``fn_merged``, ``fn_mislocated``) and the recall by how
far the boxed particle stands out of its surroundings (``recall_by_contrast``,
:func:`temzoo.analysis.scoring.box_contrast`) and by its size in the pixels the model saw (``recall_by_size``).

Foreground probabilities are cached (``--cache``, default ``runs/particles_real``)
so a re-run resumes and post-processing can be re-scored without training.
Writes ``benchmarks/results/particles_real.json`` and a section of ``docs/benchmarks.md``.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np
from _report import ROOT, machine, markdown_table, write_json, write_section

DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "real_micrographs", "nanoparticle_boxes")
SIZE_BINS = (8.0, 12.0, 20.0)  # edges (px the model saw) of recall_by_size's bins; models learn 16 px particles
VARIANTS = {
    "pretrained": {"backbone": "unet_pretrained"},
    "random": {"backbone": "unet_b3_p222"},
    # one / two more U-Net stages at the same width, random init (no pretrained weights of those shapes are shipped)
    "deeper": {"backbone": "unet_b4_p2222_f16"},
    "deepest": {"backbone": "unet_b5_p22222_f16"},
    "synthetic_only": {"backbone": "unet_pretrained", "synthetic_only": True},
    # the other shipped pretrained backbones (larger receptive fields, slower steps)
    "mobilenet": {"backbone": "mobilenet_unet_pretrained"},
    "hrnet": {"backbone": "hrnet_pretrained"},
}
# The peer (ArdaGen/STEM-Automated-Nanoparticle-Analysis-YOLOv8-SAM): its README publishes no scores; its paper
# (Genc et al., "A versatile machine learning workflow for high-throughput analysis of supported metal catalyst
# particles", arXiv:2410.01213) reports for the YOLOv8x detector mAP@0.5 = 0.78, mAP@0.5:0.95 = 0.41 and F1 = 0.91
# (as summarised on the paper's public pages; on the authors' own validation split of their images, with a
# detector trained on the rest, not on these 3 folds). No size-error or distribution-distance numbers found.
PEER = {"name": "ArdaGen YOLOv8x + SAM (arXiv:2410.01213)",
        "numbers": "F1 0.91, mAP@0.5 0.78, mAP@0.5:0.95 0.41 on the authors' validation split (their protocol); "
                   "diameter error and distribution distance not published"}


def load_average():
    return open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None


def folds_of(names, k, seed):
    order = np.random.default_rng(seed).permutation(len(names))
    return [sorted(names[i] for i in part) for part in np.array_split(order, k)]


def score_image(maps_at, factor, boxes, post):
    """Score the particles temzoo.particles finds at ``factor`` (:func:`temzoo.analysis.particles.found_particles`
    on ``maps_at(f)``, the maps at factor ``f``; ``post`` in the model's pixels) against ``boxes``."""
    from temzoo.analysis.particles import found_particles, particle_table
    from temzoo.analysis.scoring import compare_to_boxes

    labels, _ = found_particles(maps_at, factor, post)
    return compare_to_boxes(particle_table(labels), boxes, labels.shape, labels=labels)


def cache_factors(shape):
    """The factors cached per test image: every factor ``scale="auto"`` may use."""
    from temzoo.analysis.scale import allowed_factors

    return allowed_factors(shape)


def pick_factor(rule, maps, example, target, post, measured=None):
    """The factor a scale rule picks: ``auto`` (temzoo.particles' rule), ``auto-RULE`` (a rule of
    :func:`temzoo.analysis.scale.auto_factor`: ``fit``, ``count``, ``confidence``, comparing with the model's
    ``measured`` particle size), ``auto-target`` (``fit`` comparing with the target size), ``boxes`` (from the
    annotation: an oracle), ``best`` (the cached factor scoring the highest F1 against the boxes: the
    bound no rule can beat with this model)."""
    from temzoo.analysis.box_training import scale_for
    from temzoo.analysis.scale import AUTO_RULE, auto_factor

    if rule == "boxes":
        return scale_for(example["boxes"], target)
    if rule == "best":
        return max(sorted(maps), key=lambda f: score_image(maps.get, f, example["boxes"], post)["f1"])
    if rule.startswith("auto"):  # auto-fit, auto-count: measured size; auto-target: the target size
        size = measured if rule != "auto-target" and measured else target
        how = {"auto": AUTO_RULE, "auto-target": "fit"}.get(rule, rule[len("auto-"):])
        return auto_factor(lambda f: _channel0(maps[f]), example["image"].shape, size, threshold=post["threshold"],
                           min_area=post["min_area"], rule=how)
    return float(rule)


def _channel0(maps):
    return maps if maps.ndim == 2 else maps[..., 0]


def aggregate(per_image):
    from scipy.stats import wasserstein_distance

    tp = sum(r["tp"] for r in per_image)
    fp = sum(r["fp"] for r in per_image)
    fn = sum(r["fn"] for r in per_image)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    pred = np.concatenate([x["pred_diameters"] for x in per_image]) if per_image else np.zeros(0)
    true = np.concatenate([x["true_diameters"] for x in per_image]) if per_image else np.zeros(0)
    w1 = [wasserstein_distance(x["pred_all"], x["true_all"]) / np.median(x["true_all"])
          for x in per_image if len(x["pred_all"]) and len(x["true_all"])]
    return {
        "images": len(per_image), "true_particles": tp + fn, "predicted": tp + fp,
        "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "f1_per_image_mean": float(np.mean([x["f1"] for x in per_image])) if per_image else None,
        "median_diameter_error": float(np.median(np.abs(pred - true) / true)) if len(true) else None,
        "median_diameter_bias": float(np.median((pred - true) / true)) if len(true) else None,
        "wasserstein_rel": float(np.mean(w1)) if w1 else None,
        # why the unmatched boxes were missed (temzoo.analysis.scoring.miss_kinds), as fractions of all boxes
        **{f"fn_{kind}": sum(x["misses"][kind] for x in per_image) / max(tp + fn, 1)
           for kind in ("missed", "merged", "mislocated") if all("misses" in x for x in per_image)},
        # recall of the boxes by how far their particle stands out of its surroundings (box_contrast)
        **({"recall_by_contrast": recall_by_contrast(per_image)}
           if per_image and all("true_contrast" in x for x in per_image) else {}),
        # ... and by their size in the pixels the model saw (box size over the scale factor)
        **({"recall_by_size": recall_by_size(per_image)}
           if per_image and all("true_model_px" in x for x in per_image) else {}),
    }


def cached_foreground(cache, key, examples, train_fn, train_examples=(), target=None, train_only=False):
    """Foreground probabilities of ``examples`` at every factor of :func:`cache_factors`, from the model
    ``train_fn()`` trains; cached as ``CACHE/KEY/NAME.npz`` (uint8) with the training info.
    ``train_only``: train and save the model (``CACHE/KEY/model.keras``, ``train.json``), nothing else."""
    from temzoo.analysis.scale import maps_at_scale

    folder = os.path.join(cache, key)
    if train_only:
        if not os.path.exists(os.path.join(folder, "model.keras")):
            _train_into(folder, key, train_fn)
        return {}, json.load(open(os.path.join(folder, "train.json")))
    paths = {e["name"]: os.path.join(folder, e["name"] + ".npz") for e in examples}
    info_path = os.path.join(folder, "train.json")
    info = json.load(open(info_path)) if os.path.exists(info_path) else None
    if info is None or not all(os.path.exists(p) for p in paths.values()):
        if info is not None and os.path.exists(os.path.join(folder, "model.keras")):
            from temzoo.zoo import pretrained

            model = pretrained.load(os.path.join(folder, "model.keras"))
        else:
            model, info = _train_into(folder, key, train_fn)
        for e in examples:
            if os.path.exists(paths[e["name"]]):
                continue
            maps = {}
            for factor in cache_factors(e["image"].shape):
                maps_at_scale(model, e["image"], scale=factor, keep=maps)
            np.savez_compressed(paths[e["name"]], **{f"{f:.4f}": np.round(fg * 255).astype(np.uint8)
                                                      for f, fg in maps.items()})
            print(f"  {e['name']}: cached {len(maps)} scales", flush=True)
    if train_examples and target and "measured_particle_px" not in info:  # models trained before it was recorded
        from temzoo.analysis.box_training import measured_particle_px
        from temzoo.zoo import pretrained

        model = pretrained.load(os.path.join(folder, "model.keras"))
        info["measured_particle_px"] = measured_particle_px(model, train_examples, target)
        with open(info_path, "w") as f:
            json.dump(info, f, indent=1, default=str)
    return {n: _load_cached(p) for n, p in paths.items()}, info


def _train_into(folder, key, train_fn):
    """Train with ``train_fn()``; save ``FOLDER/model.keras`` and ``FOLDER/train.json``; the model and info."""
    from temzoo import tasks

    load_before = load_average()
    model, info = train_fn()
    info["load_before"], info["load_after_training"] = load_before, load_average()
    os.makedirs(folder, exist_ok=True)
    if not info.get("model"):  # a model trained here; a trained one (--model) keeps its own file and card
        tasks.save(model, os.path.join(folder, "model.keras"), name=key, training=info)
    with open(os.path.join(folder, "train.json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    print(f"  {key}: trained {info['seconds']:.0f} s ({info.get('cpu_seconds')} CPU-s), "
          f"load {info['load_before']} -> {info['load_after_training']}", flush=True)
    return model, info


def model_sha256(name_or_path):
    """sha256 of a model's ``.keras`` file: a path, or a registered name's weights file."""
    from temzoo.zoo.cards import sha256_file
    from temzoo.zoo.pretrained import resolve, weights_path

    path = name_or_path if os.path.exists(name_or_path) else weights_path(resolve(name_or_path))
    return sha256_file(path)


def ensembled(model_at, example, factor, ensemble):
    """Maps of ``example`` at ``factor`` averaged over ``ensemble`` flips/quarter turns (the factor is picked
    from the single predictions), cached as ``CACHE/KEY/NAME.eN.npz``; ``model_at`` = (cache, key, model or None:
    the fold model ``CACHE/KEY/model.keras``)."""
    from temzoo.analysis.scale import maps_at_scale
    from temzoo.zoo import pretrained

    cache, key, model = model_at
    # every channel (a three-class model's core too); older caches (.eN.npz) held the foreground alone
    path = os.path.join(cache, key, f"{example['name']}.e{ensemble}.maps.npz")
    cached = _load_cached(path) if os.path.exists(path) else {}
    if factor not in cached:
        loaded = pretrained.load(model or os.path.join(cache, key, "model.keras"))
        cached[factor] = maps_at_scale(loaded, example["image"], scale=factor, ensemble=ensemble)[0]
        partial = path + ".partial.npz"  # written whole, then renamed: an interrupted run leaves no broken cache
        np.savez_compressed(partial, **{f"{f:.4f}": np.round(fg * 255).astype(np.uint8) for f, fg in cached.items()})
        os.replace(partial, path)
    return cached[factor]


def _load_cached(path):
    data = np.load(path)
    return {float(k): data[k].astype(np.float32) / 255.0 for k in data.files}


def _finer(text):
    """``--finer-confidence``'s value: ``None`` for ``off``, else a probability."""
    if text == "off":
        return None
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: give 'off' or a probability between 0 and 1")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the nanoparticle_boxes folder")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=10, help="at most this many box images per training")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--weight-map", action="store_true",
                        help="train_on_boxes' weight_map: small particles weigh as much as median ones, the background "
                             "between touching particles more (temzoo.data.boxes.boxes_to_weights)")
    parser.add_argument("--focal", action="store_true",
                        help="train the fold models with focal instead of plain cross-entropy (train_on_boxes focal)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="train_on_boxes' peak learning rate (Adam, cosine decay; default train_on_boxes')")
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--target-particle-px", type=float, default=16.0,
                        help="particle size the models learn (images downsampled to it); 0: native scale")
    parser.add_argument("--scale-jitter", type=float, default=1.4142,
                        help="training sees each box image at its target scale and this factor either side")
    parser.add_argument("--scale-rule", action="append", default=None,
                        help="how the prediction scale is chosen, repeatable: auto (temzoo.particles' rule, default), "
                             "boxes (from the annotated median box size: an oracle, for diagnosis), best (the factor "
                             "scoring best per image: the bound for any rule) or a factor")
    parser.add_argument("--mask-kind", default="ellipse", choices=("ellipse", "refined"))
    from temzoo.analysis.box_training import DEFAULTS as TRAIN

    parser.add_argument("--synthetic-fraction", type=float, default=TRAIN["synthetic_fraction"],
                        help="share of each batch from the labelled synthetic set (default that of train_on_boxes)")
    parser.add_argument("--precision", default=TRAIN["precision"], choices=("float32", "mixed_bfloat16", "auto"),
                        help="training precision of the fold models (train_on_boxes); 'auto' as resolved here")
    parser.add_argument("--flatten", type=float, default=TRAIN["flatten"],
                        help="train_on_boxes' flatten: background sigma in target particle sizes taken out of every "
                             "image before the model sees it (0: off)")
    parser.add_argument("--classes", type=int, default=TRAIN["classes"], choices=(2, 3),
                        help="2: background / particle; 3: background / boundary / core (cores mark the particles)")
    parser.add_argument("--invert", type=float, default=TRAIN["invert"], help="probability of an inverted training crop")
    parser.add_argument("--polarity", default=TRAIN["polarity"] or "none", choices=("none", "bright"),
                        help="bright: bright-field training images inverted, test images whose particles look dark "
                             "inverted before prediction (temzoo.analysis.polarity)")
    parser.add_argument("--foreground-crops", type=float, default=TRAIN["foreground_crops"],
                        help="probability of a training crop centred near a particle (temzoo.analysis.box_crops)")
    parser.add_argument("--intensity", action=argparse.BooleanOptionalAction, default=TRAIN["intensity"],
                        help="random contrast, offset, blur and noise on the training crops")
    parser.add_argument("--polarity-report", action="store_true",
                        help="only compare the image-based polarity decision with the boxes on every image "
                             "(writes benchmarks/results/particles_polarity.json; no model)")
    parser.add_argument("--target-ceiling", action="store_true",
                        help="only score the training targets (--classes label maps of the boxes at the target "
                             "particle size) through the post-processing, as if a model reproduced them exactly "
                             "(writes benchmarks/results/particles_target_ceiling.json; no model)")
    parser.add_argument("--min-area", type=float, action="append", default=None,
                        help="smallest particle area in the model's pixels (repeatable; default that of temzoo.particles)")
    parser.add_argument("--no-core", action="store_true",
                        help="also score three-class models without their core markers (distance watershed)")
    parser.add_argument("--variants", default="pretrained,random,synthetic_only")
    parser.add_argument("--split-depth", type=float, action="append", default=None,
                        help="watershed split depth(s) in px to score (repeatable; default that of temzoo.particles)")
    parser.add_argument("--threshold", type=float, action="append", default=None,
                        help="foreground probability threshold(s) to score (repeatable; default that of "
                             "temzoo.particles: with --model, the model card's post-processing, else the library's)")
    parser.add_argument("--min-confidence", type=float, action="append", default=None,
                        help="drop particles whose highest core (or foreground) probability is below this "
                             "(repeatable; default that of temzoo.particles)")
    parser.add_argument("--finer-confidence", type=_finer, action="append", default=None,
                        help="'off' or the confidence a particle found half an octave finer needs to be added "
                             "(temzoo.particles' finer_scale; repeatable; default that of temzoo.particles)")
    parser.add_argument("--choose-post", action="store_true",
                        help="also score, per fold, the post-processing (of those given) that scores best on the "
                             "other folds' images: an estimate free of the choice (rows '(post chosen on other folds)')")
    parser.add_argument("--ensemble", type=int, default=1, choices=(1, 2, 4, 8),
                        help="score maps averaged over this many flips/quarter turns at the factor each rule picks "
                             "(temzoo.particles(..., ensemble=N)); predicted once and cached beside the single maps")
    parser.add_argument("--model", default=None, help="score a trained model (name or .keras) on every image instead")
    parser.add_argument("--label", default=None, help="row label for --model")
    parser.add_argument("--only-folds", default=None,
                        help="comma list of the folds to run (1-based), e.g. 1: a quicker partial result (labelled so)")
    parser.add_argument("--seed", type=int, default=0, help="the folds, the training images and (by default) training")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="train_on_boxes' seed (weights of the new head, crops) when it should differ from --seed, "
                             "the same folds: how much F1 moves from one training run to another")
    parser.add_argument("--average-seeds", default=None,
                        help="comma list of training seeds, e.g. 0,1: one fold model per seed (each cached as with "
                             "--train-seed S), their probability maps averaged: a seed ensemble")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir for synthetic_tem/au_np")
    parser.add_argument("--synthetic-simulated", action="store_true",
                        help="make the synthetic_tem/au_np images with its simulator instead of loading them through "
                             "TFDS (temzoo.simulate.hrtem.nanoparticle_set), e.g. on a GPU machine without TensorFlow")
    parser.add_argument("--train-only", action="store_true",
                        help="only train the fold models into --cache (model.keras, train.json), no prediction or "
                             "scoring: e.g. with KERAS_BACKEND=jax on a lent GPU; run again without it here to score")
    parser.add_argument("--cache", default=os.path.join(ROOT, "runs", "particles_real"))
    parser.add_argument("--json", default=None,
                        help="results file (default benchmarks/results/particles_real.json; with --target-ceiling "
                             "particles_target_ceiling.json)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--force-docs", action="store_true",
                        help="write docs/benchmarks.md under load too (scores do not depend on it; training times do)")
    opts = parser.parse_args(argv)
    opts.json = opts.json or os.path.join(ROOT, "benchmarks", "results", "particles_target_ceiling.json"
                                          if opts.target_ceiling else "particles_real.json")
    if opts.train_only and (opts.model or opts.polarity_report or opts.target_ceiling):
        parser.error("--train-only trains the fold models; it does not go with --model, --polarity-report or "
                     "--target-ceiling.")
    if opts.average_seeds is not None:
        try:
            opts.average_seeds = [int(s) for s in opts.average_seeds.split(",")]
        except ValueError:
            parser.error(f"--average-seeds takes a comma list of integers, e.g. 0,1; got {opts.average_seeds!r}.")
        if opts.model or opts.train_seed is not None or opts.ensemble > 1:
            parser.error("--average-seeds trains fold models per seed and averages their maps; it does not go with "
                         "--model, --train-seed or --ensemble.")
    return opts


def cache_tag(opts):
    """The part of a fold model's cache key that says how it was trained (older keys stay valid:
    settings added later appear only when not at their old value)."""
    tag = f"_s{opts.steps}_p{opts.patch_size}_t{opts.target_particle_px:g}_j{opts.scale_jitter:g}"
    if opts.batch_size != 8:
        tag += f"_b{opts.batch_size}"
    if opts.learning_rate is not None:
        tag += f"_lr{opts.learning_rate:g}"
    if opts.weight_map:
        tag += "_wm"
    if opts.focal:
        tag += "_focal"
    if training_seed(opts) != opts.seed:
        tag += f"_ts{training_seed(opts)}"
    if (opts.classes, opts.invert) != (2, 0):
        tag += f"_c{opts.classes}_i{opts.invert:g}"
    if opts.polarity != "none":
        tag += f"_pol{opts.polarity}"
    if opts.foreground_crops:
        tag += f"_fg{opts.foreground_crops:g}"
    if opts.intensity:
        tag += "_int"
    if resolved_precision(opts) != "float32":
        tag += "_bf16"
    if opts.flatten:
        tag += f"_fl{opts.flatten:g}"
    return tag


def seed_tag(opts, seed):
    """:func:`cache_tag` as ``--train-seed SEED`` gives it: each model of ``--average-seeds`` is the fold model
    that option trains, cached once for both."""
    return cache_tag(argparse.Namespace(**{**vars(opts), "train_seed": seed, "average_seeds": None}))


def training_seed(opts):
    return opts.seed if opts.train_seed is None else opts.train_seed


def resolved_precision(opts):
    from temzoo.inference.precision import resolve_precision

    return resolve_precision(opts.precision)


def train_runs(opts, examples, by_name, names, common, tag, trainings):
    """Train (or load from the cache) the models of ``opts.variants`` (or ``--model``); return their
    ``{label: [(test names, foregrounds per name and factor, measured particle size)]}`` and a note per label."""
    from temzoo.analysis.box_training import DEFAULTS as TRAIN
    from temzoo.analysis.box_training import train_on_boxes

    if opts.model:
        from temzoo.zoo import pretrained

        label = opts.label or os.path.basename(opts.model)

        def train():
            return pretrained.load(opts.model), {"model": opts.model, "seconds": 0.0}
        # the file's hash in the key: a re-shipped model under the same name must not reuse older maps
        key = "model_" + label.replace(" ", "_").replace("/", "_") + "_" + model_sha256(opts.model)[:12]
        fgs, info = cached_foreground(opts.cache, key, examples, train)
        from temzoo.analysis.scale import measured_particle_px

        runs = {label: [(names, fgs, measured_particle_px(pretrained.load(opts.model)), (opts.cache, key, opts.model))]}
        seen_note = {label: "a trained model, scored on every image (seen in training if it was trained on them)"}
    else:
        folds = folds_of(names, opts.folds, opts.seed)
        only = sorted(int(k) for k in opts.only_folds.split(",")) if opts.only_folds else range(1, opts.folds + 1)
        recipe = "" if (opts.classes, opts.invert) == (TRAIN["classes"], TRAIN["invert"]) else (
            f" [{opts.classes} classes, invert {opts.invert:g}]")
        part = "" if opts.only_folds is None else f" [fold {opts.only_folds} of {opts.folds}]"
        recipe += "" if opts.polarity == "none" else f" [polarity {opts.polarity}]"
        recipe += "" if not opts.foreground_crops else f" [foreground crops {opts.foreground_crops:g}]"
        recipe += " [intensity]" if opts.intensity else ""
        recipe += "" if opts.batch_size == 8 else f" [batch {opts.batch_size}]"
        recipe += "" if opts.learning_rate is None else f" [learning rate {opts.learning_rate:g}]"
        recipe += " [weight map]" if opts.weight_map else ""
        recipe += " [focal]" if opts.focal else ""
        recipe += "" if training_seed(opts) == opts.seed else f" [training seed {training_seed(opts)}]"
        recipe += "" if not opts.average_seeds else f" [seeds {','.join(map(str, opts.average_seeds))} averaged]"
        recipe += "" if resolved_precision(opts) == "float32" else " [bfloat16]"
        recipe += "" if not opts.flatten else f" [flatten {opts.flatten:g}]"
        recipe += "" if opts.mask_kind == "ellipse" else f" [{opts.mask_kind} masks]"
        recipe += "" if opts.synthetic_fraction == TRAIN["synthetic_fraction"] else (
            f" [synthetic {opts.synthetic_fraction:g}]")
        runs, seen_note = {}, {}
        for name in opts.variants.split(","):
            spec = VARIANTS[name]
            variant = name + recipe + ("" if spec.get("synthetic_only") else part)
            runs[variant] = []
            if spec.get("synthetic_only"):
                def train(spec=spec):
                    return train_on_boxes(spec["backbone"], [], synthetic_fraction=1.0, **common)
                key = f"{name}{tag}"
                fgs, info = cached_foreground(opts.cache, key, examples, train, train_only=opts.train_only)
                trainings[key] = info
                runs[variant].append((names, fgs, info.get("measured_particle_px"), (opts.cache, key, None)))
                seen_note[variant] = "no real image in training; scored on all images"
                continue
            for k, test in enumerate(folds):
                if k + 1 not in only:
                    continue
                pool = [n for n in names if n not in test]
                rng = np.random.default_rng(opts.seed + k)
                train_names = sorted(rng.choice(pool, size=min(opts.train_images, len(pool)), replace=False))
                print(f"{variant} fold {k + 1}/{opts.folds}: train on {len(train_names)}, test {test}", flush=True)
                per_seed = []
                for seed in opts.average_seeds or [training_seed(opts)]:
                    key = (f"{name}_f{k}of{opts.folds}_n{opts.train_images}_sf{opts.synthetic_fraction:g}_"
                           f"{opts.mask_kind}{tag if not opts.average_seeds else seed_tag(opts, seed)}")

                    def train(spec=spec, train_names=train_names, seed=seed):
                        return train_on_boxes(spec["backbone"], [by_name[n] for n in train_names],
                                              synthetic_fraction=opts.synthetic_fraction, **{**common, "seed": seed})
                    fgs, info = cached_foreground(opts.cache, key, [by_name[n] for n in test], train,
                                                  [by_name[n] for n in train_names], common["target_particle_px"],
                                                  train_only=opts.train_only)
                    trainings[key] = info
                    per_seed.append((fgs, info.get("measured_particle_px"), key))
                fgs, measured = averaged_maps(per_seed)
                runs[variant].append((test, fgs, measured, (opts.cache, per_seed[0][2], None)))
            seen_note[variant] = (f"{opts.folds}-fold leave-images-out{part}; each model trained on <= "
                                  f"{opts.train_images} images")

    return runs, seen_note


def averaged_maps(per_seed):
    """The maps of one fold's models (``[(maps per name and factor, measured particle size, key)]``) averaged
    per image and factor, and their mean measured particle size: a seed ensemble (one model: unchanged)."""
    if len(per_seed) == 1:
        return per_seed[0][:2]
    maps = {name: {f: np.mean([fgs[name][f] for fgs, *_ in per_seed], axis=0) for f in per_seed[0][0][name]}
            for name in per_seed[0][0]}
    sizes = [m for _, m, _ in per_seed if m]
    return maps, (float(np.mean(sizes)) if sizes else None)


def score_runs(runs, rules, posts, defaults, by_name, target, seen_note, rows, per_image_all, ensemble=1, scored=None):
    """Score every run under every scale rule and post-processing into ``rows`` and ``per_image_all``;
    the labels written (they name each post-processing setting that differs from ``defaults`` or varies).
    ``scored`` (a dict) receives ``{(variant, rule, ensemble): {post key: (label, per-image scores)}}``."""
    from temzoo.analysis.box_training import median_box_size, scale_for
    written, contrasts = [], {}  # box contrasts per image name, computed once per call
    for variant, parts, rule, (key, post) in [(v, p, r, d) for v, p in runs.items() for r in rules
                                              for d in posts.items()]:
        per_image = []
        for test, fgs, measured, model_at in parts:
            for n in test:
                factor = pick_factor(rule, fgs[n], by_name[n], target, post, measured)
                if factor not in fgs[n] and rule == "boxes":  # beyond what auto may resample to: the nearest it may
                    factor = min(fgs[n], key=lambda f, want=factor: abs(np.log(f / want)))
                if factor not in fgs[n]:
                    raise SystemExit(f"{n}: factor {factor} not cached (cached: {sorted(fgs[n])})")
                if ensemble == 1:
                    maps_at = fgs[n].get
                else:
                    def maps_at(f, n=n, model_at=model_at):
                        return ensembled(model_at, by_name[n], f, ensemble)
                s = score_image(maps_at, factor, by_name[n]["boxes"], post)
                if n not in contrasts:
                    contrasts[n] = box_contrasts(by_name[n])
                s["true_contrast"] = contrasts[n][s["true_counted"]]
                s["true_model_px"] = s["true_all"] / factor
                s.update(image=n, scale=factor, scale_from_boxes=scale_for(by_name[n]["boxes"], target),
                         box_median_px=median_box_size(by_name[n]["boxes"]),
                         pred_median_px=float(np.median(s["pred_all"])) if len(s["pred_all"]) else None)
                per_image.append(s)
        label = run_label(variant, rule, ensemble) + post_label(key, posts, defaults)
        row = {"variant": label, **aggregate(per_image), "evaluation": seen_note[variant]}
        rows[label] = row
        written.append(label)
        if scored is not None:
            scored.setdefault((variant, rule, ensemble), {})[key] = (label, per_image)
        per_image_all[label] = per_image_json(per_image)
        print(f"{label}: F1 {row['f1']:.3f} (P {row['precision']:.3f}, R {row['recall']:.3f}), "
              f"median diameter error {row['median_diameter_error']:.3f}, W1/median {row['wasserstein_rel']:.3f}",
              flush=True)
    return written


def box_contrasts(example):
    """:func:`temzoo.analysis.scoring.box_contrast` of an example's boxes (bright-field images reversed, as
    the boxes say)."""
    from temzoo.analysis.scoring import box_contrast
    from temzoo.data.boxes import particles_are_bright

    bright = particles_are_bright(example["image"], example["boxes"])
    return box_contrast(example["image"], example["boxes"], bright=bright)


def recall_by_contrast(per_image):
    """``{bin: {"boxes": share of the counted boxes, "recall": ...}}`` over the bins of
    :data:`temzoo.analysis.scoring.CONTRAST_BINS` (how visible each annotated particle is)."""
    from temzoo.analysis.scoring import CONTRAST_BINS

    return recall_in_bins(per_image, "true_contrast", CONTRAST_BINS)


def recall_by_size(per_image):
    """As :func:`recall_by_contrast`, by the box's size (``sqrt(w h)``) in the pixels the model saw (the image's
    pixels over the scale factor), in the bins of :data:`SIZE_BINS`: whether small particles are the ones missed."""
    return recall_in_bins(per_image, "true_model_px", SIZE_BINS)


def recall_in_bins(per_image, key, bins):
    """Share of the counted boxes and their recall per bin of ``per_image[i][key]`` (bin edges ``bins``)."""
    values = np.concatenate([x[key] for x in per_image])
    matched = np.concatenate([x["true_matched"] for x in per_image])
    edges = (-np.inf, *bins, np.inf)
    out = {}
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (values >= low) & (values < high)
        name = f"< {high:g}" if np.isinf(low) else (f">= {low:g}" if np.isinf(high) else f"{low:g}-{high:g}")
        out[name] = {"boxes": round(float(inside.mean()), 4) if len(values) else None,
                     "recall": round(float(matched[inside].mean()), 4) if inside.any() else None}
    return out


def run_label(variant, rule, ensemble):
    """A row label before its post-processing part: the variant, a scale rule other than ``auto``, flips."""
    return variant + ("" if rule == "auto" else f" (scale={rule})") + ("" if ensemble == 1 else f" (ensemble {ensemble})")


def per_image_json(per_image):
    """Per-image scores without their diameter arrays (for the JSON)."""
    return [{k: (v if not isinstance(v, np.ndarray) else None) for k, v in s.items()
             if k not in ("pred_diameters", "true_diameters", "pred_all", "true_all", "true_matched", "true_counted",
                          "true_contrast", "true_model_px")} for s in per_image]


def post_label(key, posts, defaults):
    """A row label's post-processing part: each setting (threshold, split depth, minimum area, cores) that
    differs from ``defaults`` or varies between the scored ``posts`` (keys ``(threshold, split, area, core,
    min confidence, finer confidence or None)``)."""
    names = (("threshold", defaults["threshold"]), ("split", defaults["split_depth"]),
             ("min area", defaults["min_area"]), ("core", True), ("min confidence", defaults["min_confidence"]),
             ("finer", defaults["finer_confidence"] if defaults["finer_scale"] else None))
    return "".join(f" ({name} {'off' if key[i] is None else key[i]})" for i, (name, default) in enumerate(names)
                   if len({k[i] for k in posts}) > 1 or key[i] != default)


def choose_post_rows(runs, scored, rows, per_image_all, seen_note):
    """Rows whose post-processing was chosen without the images it is scored on: for each fold, the
    post-processing scoring the highest pooled F1 on the other folds' images is applied to this fold's.
    Adds them to ``rows``; returns their labels."""
    written = []
    for (variant, rule, ensemble), by_post in scored.items():
        if len(by_post) < 2 or len(runs[variant]) < 2:
            continue
        per_image, chosen = [], []
        for test, *_ in runs[variant]:
            elsewhere = {key: aggregate([s for s in scores if s["image"] not in test])["f1"]
                         for key, (_, scores) in by_post.items()}
            best = max(sorted(elsewhere, key=str), key=elsewhere.get)  # str: 'finer off' is None
            chosen.append(by_post[best][0])
            per_image += [s for s in by_post[best][1] if s["image"] in test]
        label = run_label(variant, rule, ensemble) + " (post chosen on other folds)"
        rows[label] = {"variant": label, **aggregate(per_image), "evaluation": seen_note[variant],
                       "post_chosen_per_fold": chosen}
        per_image_all[label] = per_image_json(per_image)
        written.append(label)
        print(f"{label}: F1 {rows[label]['f1']:.3f} (P {rows[label]['precision']:.3f}, R {rows[label]['recall']:.3f}); "
              f"chosen per fold: {chosen}", flush=True)
    return written


def polarity_report(examples, uptime_before):
    """Per image: the contrast skewness (temzoo.analysis.polarity) and whether it agrees with the boxes."""
    from temzoo.analysis.polarity import contrast_skewness
    from temzoo.data.boxes import particles_are_bright

    rows = []
    for e in examples:
        skew = contrast_skewness(e["image"])
        bright = particles_are_bright(e["image"], e["boxes"])
        rows.append({"image": e["name"], "particles_bright_from_boxes": bright, "contrast_skewness": round(skew, 3),
                     "looks_dark": skew < 0, "agrees": (skew < 0) != bright})
    agree = sum(r["agrees"] for r in rows)
    print(markdown_table(rows, list(rows[0])))
    print(f"polarity from the image agrees with the boxes on {agree} of {len(rows)} images")
    write_json(os.path.join(ROOT, "benchmarks", "results", "particles_polarity.json"), {
        "command": "python benchmarks/particles_real.py --polarity-report", "agree": agree, "images": len(rows),
        "rows": rows, "machine": machine(), "uptime_before": uptime_before})


def target_maps(example, target_px, classes, mask_kind="ellipse"):
    """``(maps, factor)``: the training target of ``example`` (its label map at the central factor it is trained at,
    :func:`temzoo.analysis.box_targets.box_training_images` without scale jitter) as the probability maps a model
    would predict (foreground, then the core for 3 classes; upsampled to the image's size, as
    :func:`temzoo.analysis.scale.maps_at_scale` returns them)."""
    from temzoo.analysis.box_targets import box_training_images, training_factors
    from temzoo.analysis.scale import upscale_to
    from temzoo.zoo.normalization import Normalizer

    shape = example["image"].shape[:2]
    (factor,) = training_factors(example["boxes"], target_px, None, shape, 1)
    _, (labels,) = box_training_images([example], Normalizer("none"), target_px, None, 1, mask_kind, {}, classes)
    channels = [labels > 0, labels == 2] if int(classes) == 3 else [labels > 0]
    return upscale_to(np.stack(channels, -1).astype(np.float32), shape), factor


def target_ceiling(examples, post, classes, target_px, mask_kind="ellipse"):
    """Per image, the scores of its training target (:func:`target_maps`) through the post-processing ``post``."""
    from temzoo.analysis.particles import maps_instances, particle_table
    from temzoo.analysis.scoring import compare_to_boxes

    scores = []
    for e in examples:
        maps, factor = target_maps(e, target_px, classes, mask_kind)
        labels = maps_instances(maps, factor, post)
        score = compare_to_boxes(particle_table(labels), e["boxes"], labels.shape, labels=labels)
        scores.append({"image": e["name"], "factor": factor, **score})
    return scores


def target_ceiling_report(examples, posts, defaults, opts, target_px, uptime_before):
    """Print and write the pooled scores of the targets themselves under each post-processing (labels name
    the settings that differ from ``defaults``)."""
    rows = []
    for key, post in posts.items():
        per_image = target_ceiling(examples, post, opts.classes, target_px, opts.mask_kind)
        row = aggregate(per_image)
        rows.append({"targets": f"{opts.classes} classes, {opts.mask_kind}" + post_label(key, posts, defaults),
                     **{k: round(row[k], 4) for k in ("precision", "recall", "f1", "fn_missed", "fn_merged",
                                                      "fn_mislocated")}})
    print(markdown_table(rows, list(rows[0])))
    command = "python benchmarks/particles_real.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_json(opts.json, {
        "command": command, "target_particle_px": target_px, "rows": rows, "machine": machine(),
        "uptime_before": uptime_before})
    return rows


def main(argv=None):
    opts = parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)

    from temzoo.data.boxes import load_box_folder

    started = time.time()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    examples = load_box_folder(opts.data)
    by_name = {e["name"]: e for e in examples}
    names = sorted(by_name)
    if opts.polarity_report:
        return polarity_report(examples, uptime_before)
    from temzoo.analysis.box_training import DEFAULTS as TRAIN
    from temzoo.analysis.particles import DEFAULTS as POST

    if opts.model:  # scored as temzoo.particles uses it: its card's post-processing unless given
        from temzoo.analysis.particles import postprocessing
        from temzoo.zoo import pretrained

        POST = postprocessing(pretrained.load(opts.model))  # noqa: N806
    thresholds = opts.threshold or [POST["threshold"]]
    depths = opts.split_depth or [POST["split_depth"]]
    areas = opts.min_area or [POST["min_area"]]
    confidences = opts.min_confidence or [POST["min_confidence"]]
    finer = opts.finer_confidence or [POST["finer_confidence"] if POST["finer_scale"] else None]
    posts = {(t, d, a, c, m, f): {"threshold": t, "split_depth": d, "min_area": a, "core": c, "min_confidence": m,
                                  "finer_scale": f is not None, "finer_confidence": POST["finer_confidence"]
                                  if f is None else f}
             for t in thresholds for d in depths for a in areas for c in ((True, False) if opts.no_core else (True,))
             for m in confidences for f in finer}
    if opts.target_ceiling:
        return target_ceiling_report(examples, posts, POST, opts, opts.target_particle_px or TRAIN["target_particle_px"],
                                     uptime_before)
    rules = opts.scale_rule or ["auto"]
    common = dict(steps=opts.steps, batch_size=opts.batch_size, patch_size=opts.patch_size, seed=training_seed(opts),
                  mask_kind=opts.mask_kind, data_dir=opts.data_dir, target_particle_px=opts.target_particle_px or None,
                  scale_jitter=opts.scale_jitter, classes=opts.classes, invert=opts.invert,
                  polarity=None if opts.polarity == "none" else opts.polarity,
                  foreground_crops=opts.foreground_crops, intensity=opts.intensity, precision=opts.precision,
                  flatten=opts.flatten, weight_map=opts.weight_map, focal=opts.focal,
                  **({} if opts.learning_rate is None else {"learning_rate": opts.learning_rate}))
    tag = cache_tag(opts)
    if opts.synthetic_simulated:
        from temzoo.simulate.hrtem import nanoparticle_set

        common["synthetic"] = nanoparticle_set(TRAIN["synthetic_images"])
    # previous rows of other variants/labels are kept, so variants can run in separate calls
    results = json.load(open(opts.json)) if os.path.exists(opts.json) else {}
    rows, per_image_all, trainings = results.get("rows", {}), results.get("per_image", {}), results.get("trainings", {})

    runs, seen_note = train_runs(opts, examples, by_name, names, common, tag, trainings)
    if opts.train_only:
        print(f"trained into {opts.cache}: {', '.join(sorted(trainings))}; run again without --train-only to score")
        return
    command = "python benchmarks/particles_real.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    scored = {}
    labels = score_runs(runs, rules, posts, POST, by_name, common["target_particle_px"], seen_note, rows,
                        per_image_all, opts.ensemble, scored)
    if opts.choose_post:
        labels += choose_post_rows(runs, scored, rows, per_image_all, seen_note)
    for label in labels:
        rows[label]["command"] = command  # rows of several calls share the file: each says how it was made

    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    columns = ["variant", "images", "true_particles", "predicted", "precision", "recall", "f1", "f1_per_image_mean",
               "median_diameter_error", "median_diameter_bias", "wasserstein_rel", "fn_missed", "fn_merged", "fn_mislocated"]
    payload = {
        "command": command,
        "settings": {**vars(opts), "steps": opts.steps},
        "peer": PEER,
        "rows": rows, "per_image": per_image_all, "trainings": trainings,
        "machine": machine(), "uptime_before": uptime_before, "uptime_after": uptime_after,
        "seconds": round(time.time() - started, 1),
    }
    write_json(opts.json, payload)
    # docs show this call's rows; the JSON gathers the rows of every call (fold models, the shipped model, ...)
    table = markdown_table([rows[label] for label in labels], columns)
    print(table)
    if not opts.no_docs:
        write_section("particles_real", (
            "## Particles on real micrographs (`benchmarks/particles_real.py`)\n\n"
            "Detection of hand-drawn particle boxes (22 real HAADF-STEM/BF-TEM images, 3,351 boxes) at box IoU >= 0.5, "
            "border-touching particles excluded on both sides; diameter error = median |d_pred - d_box| / d_box of matched "
            "particles (d_box = sqrt(w h)); wasserstein_rel = W1 distance of the diameter distributions per image / "
            "annotated median, averaged. Leave-images-out: no test image is used to train the model scored on it "
            "(except rows marked otherwise). Rows `(scale=boxes)` predict at the factor the annotated median box size "
            "asks for (an oracle: what a known particle size, `--particle-size`, gives); `auto-target`/`auto-count` are "
            "other automatic rules; rows `[previous recipe ...]` were measured with the code before scale jitter. "
            f"Peer ({PEER['name']}): {PEER['numbers']}.\n\n"
            + f"`{command}`\n\n" + table
            + f"\n\nLoad: before `{uptime_before}`, after `{uptime_after}` (2 shared CPU cores; timings under load).\n"
        ), force=opts.force_docs)


if __name__ == "__main__":
    main()
