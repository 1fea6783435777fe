"""Re-create a shipped pretrained model from its recipe, measure it, and register it.

    python recipes/ship.py unet_pretrained [hrnet_pretrained ...] [--runs runs/] [--data-dir DIR]
    python recipes/ship.py unet_pretrained --dataset cem500k   # the same recipe on CEM500K
    python recipes/ship.py NAME --real-data bench.json --cards-only   # add real-data numbers to shipped cards

For each recipe (``recipes/NAME.json``):

1. ``temzoo.pretraining.pretrain(**recipe["pretrain"])`` into ``RUNS/NAME`` (resumable: re-run
   the same command after an interruption);
2. the denoising report (``temzoo.analysis.denoising_baselines``) on held-out images of the
   dataset's ``test`` split at the recipe's low dose: PSNR of the noisy input, of a
   Gaussian filter tuned on ``validation`` images, and of the generator;
3. ``--ship`` copies the generator into ``temzoo/weights/NAME.keras`` with its card
   (the pretraining card plus recipe, report and an honest note on the data),
   records a reference input/output for ``temzoo-cli models verify``, and updates
   ``temzoo/weights/registry.json``.

A recipe with a ``train_on_boxes`` section (``nanoparticles``) is a segmentation model
fine-tuned instead: :func:`temzoo.analysis.box_training.train_on_boxes` on the YOLO box images
of ``--boxes`` plus the synthetic set, saved to ``RUNS/NAME/model.keras`` (an existing
one is reused: re-run after an interruption), its card quoting the leave-images-out
result of ``benchmarks/particles_real.py`` (``benchmarks/results/particles_real.json``)
for the same recipe; ``--ship`` registers it as above.

    python recipes/ship.py nanoparticles --boxes ../shared/real_micrographs/nanoparticle_boxes --ship

A recipe's ``evaluation.dataset`` (default: the pretraining dataset) is where the
synthetic numbers are measured, so that weights trained on another distribution
(``synthetic_tem/realistic``) are compared with the others on the same images;
``--eval-data-dir`` says where it lives. A recipe's ``training_data_note`` replaces
the default note on the card (``{command}`` = the CEM500K command).
``--real-data JSON`` (written by ``benchmarks/real_denoising.py --json``) adds the
model's real-micrograph numbers to its card as ``real_data``; with ``--cards-only``
nothing is trained or re-exported, only the shipped cards get those numbers.
"""

import argparse
import json
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

DATA_NOTE = (
    "Pretrained on synthetic_tem/unlabeled, temzoo's offline TEM simulator (HRTEM of metal "
    "nanoparticles through a CTF, and STEM lattices), because CEM500K cannot be downloaded on the "
    "machines these weights were made on. To pretrain the same recipe on CEM500K, prepare it "
    "(temzoo-cli data build cem500k --manual-dir DIR) and run: {command}"
)


def cli_command(pretrain_args, dataset=None):
    args = dict(pretrain_args)
    if dataset:
        args["dataset"] = dataset
    parts = ["temzoo-cli pretrain"]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, dict):
            parts.append(f"{flag} {shlex.quote(json.dumps(value))}")
        elif isinstance(value, list | tuple):
            parts.append(f"{flag} " + " ".join(str(v) for v in value))
        else:
            parts.append(f"{flag} {value}")
    parts.append("--out runs/" + args["model"] + "_" + args["method"])
    return " ".join(parts)


def held_out_images(dataset, data_dir, split, count, size):
    import numpy as np

    from temzoo import datasets

    images = []
    for example in datasets.load(dataset, split, data_dir=data_dir).take(count):
        image = np.asarray(example["image"])[..., 0]
        images.append(image[:size, :size])
    return images


def real_data_section(benchmark_json, name):
    """The card's ``real_data``: per dose, the model's mean PSNR/SSIM next to BM3D and the
    leave-one-out Gaussian on the benchmark's real micrographs, its wins and worst gap against BM3D,
    and per-modality means."""
    result = json.load(open(benchmark_json, encoding="utf-8"))
    label = name if name in result["restorers"] else f"new:{name}"
    if label not in result["restorers"]:
        raise SystemExit(f"{benchmark_json}: no results for {name!r} (restorers: {', '.join(result['restorers'])}).")
    means = {(s["group"], s["dose"], s["restorer"]): s for s in result["summary"]}
    per_dose = []
    for dose in result["doses"]:
        mine = means[("all", dose, label)]
        per_dose.append({
            "dose": dose, "images": mine["images"], "psnr_model_db": mine["psnr"], "ssim_model": mine["ssim"],
            "psnr_bm3d_db": means[("all", dose, "bm3d")]["psnr"], "ssim_bm3d": means[("all", dose, "bm3d")]["ssim"],
            "psnr_gaussian_loo_db": means[("all", dose, "gauss_loo")]["psnr"],
            "psnr_noisy_db": means[("all", dose, "noisy")]["psnr"],
            "gain_over_bm3d_db": mine["vs_bm3d"], "wins_over_bm3d": mine["wins_vs_bm3d"],
            "worst_vs_bm3d_db": mine["worst_vs_bm3d"], "texture_db": mine["texture_db"],
            "by_modality": {g: {"images": v["images"], "psnr_model_db": v["psnr"], "gain_over_bm3d_db": v["vs_bm3d"]}
                            for (g, d, r), v in means.items() if d == dose and r == label and g != "all"},
        })
    return {
        "benchmark": "benchmarks/real_denoising.py",
        "how": (f"{per_dose[0]['images']} real micrographs (the development set, ../shared/real_micrographs), "
                f"central {result['crop']} px crops, offset removed, mean 1; Poisson noise at each dose "
                f"(seed {result['seed']}); PSNR with the reference's range as peak; BM3D = Anscombe + "
                "bm3d(sigma_psd=1) + exact unbiased inverse; Gaussian sigma chosen on the other images."),
        "doses": per_dose,
    }


def add_real_data(name, benchmark_json):
    """Put ``real_data`` from ``benchmark_json`` into the shipped card of ``name`` (weights untouched)."""
    from temzoo.zoo import pretrained
    from temzoo.zoo.cards import card_path, read_card, write_card

    path = card_path(pretrained.weights_path(pretrained.resolve(name)))
    card = read_card(path)
    card["real_data"] = real_data_section(benchmark_json, name)
    write_card(path, card)
    print(f"{path}: real_data from {benchmark_json}")


def refresh_evaluation(name, recipe):
    """Put the current leave-images-out rows (:func:`cross_validation_result`) into the shipped card of the
    box recipe ``name`` (weights untouched), e.g. after the benchmark re-scored its cached folds."""
    path = update_shipped_card(name, evaluation=cross_validation_result(recipe), postprocessing=postprocessing(recipe))
    print(f"{path}: evaluation from benchmarks/results/particles_real.json, post-processing from the recipe")


def postprocessing(recipe):
    """The post-processing a box recipe's card carries (``temzoo.particles`` uses it): the recipe's own
    ``postprocessing`` over the library defaults."""
    from temzoo.analysis.particles import merged_postprocessing

    try:
        return merged_postprocessing(recipe.get("postprocessing", {}))
    except TypeError as exc:
        raise SystemExit(f"recipe {recipe.get('name')}: {exc}") from None


def update_shipped_card(name, **fields):
    """Set ``fields`` in the shipped card of ``name`` (weights untouched); returns the card's path."""
    from temzoo.zoo import pretrained
    from temzoo.zoo.cards import card_path, read_card, write_card

    path = card_path(pretrained.weights_path(pretrained.resolve(name)))
    card = read_card(path)
    card.update(fields)
    write_card(path, card)
    return path


def record_effective_receptive_field(name):
    """Measure the shipped model's effective receptive field and put it in its card (weights untouched),
    so tiled prediction uses it without measuring (temzoo.inference.tile_layout)."""
    import time

    from temzoo.receptive_field import (
        EFFECTIVE_TOLERANCE,
        effective_receptive_field,
        receptive_field,
    )
    from temzoo.zoo import pretrained

    model = pretrained.load(name)
    started = time.time()
    width = int(effective_receptive_field(model))
    path = update_shipped_card(name, effective_receptive_field=width,
                               effective_receptive_field_tolerance=EFFECTIVE_TOLERANCE)
    print(f"{path}: effective receptive field {width} px (theoretical {receptive_field(model)} px, "
          f"tolerance {EFFECTIVE_TOLERANCE:g}), measured in {time.time() - started:.1f} s")


MEMORY_REPEATS = 3


def record_activation_memory(name):
    """Measure the shipped model's inference memory per pixel in a fresh process and put it in its card
    (weights untouched), so tiled prediction sizes its tiles from it (temzoo.inference.tile_layout)."""
    import subprocess

    from temzoo.inference.tile_layout import ACTIVATION_PROBE_SIDE

    code = ("import temzoo; from temzoo.inference.tiling import measure_bytes_per_pixel; "
            f"print('BYTES', measure_bytes_per_pixel(temzoo.load({name!r}), {ACTIVATION_PROBE_SIDE}))")
    measured = []
    for _ in range(MEMORY_REPEATS):  # the peak varies with how TensorFlow's threads interleave the ops
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("BYTES ")]
        if proc.returncode or not lines:
            raise SystemExit(f"{name}: measuring the activation memory failed:\n{proc.stderr[-2000:]}")
        measured.append(float(lines[-1].split()[1]))
    value = round(max(measured))
    path = update_shipped_card(name, activation_bytes_per_pixel=value, activation_probe_side=ACTIVATION_PROBE_SIDE)
    print(f"{path}: {value} bytes per pixel (largest peak RSS growth of one {ACTIVATION_PROBE_SIDE} px call in "
          f"{MEMORY_REPEATS} fresh processes, CPU: {', '.join(f'{m:.0f}' for m in measured)})")


def run_recipe(name, runs, data_dir, dataset=None, ship=False, eval_data_dir=None, real_data=None):
    import numpy as np

    from temzoo.analysis.denoising_baselines import denoising_report
    from temzoo.pretraining import pretrain
    from temzoo.zoo import pretrained
    from temzoo.zoo.cards import export_model, read_card
    from temzoo.zoo.normalization import Normalizer

    recipe = json.load(open(os.path.join(HERE, f"{name}.json"), encoding="utf-8"))
    args = dict(recipe["pretrain"])
    if dataset:
        args["dataset"] = dataset
    args["dose_range"] = tuple(args["dose_range"])
    # resume=True: a recipe may lengthen a run or change its export (RESUMABLE_CHANGES) and go on.
    result = pretrain(**args, out=os.path.join(runs, name), name=name, data_dir=data_dir, resume=True, verbose=1)
    model = pretrained.load(result.model_path)
    card = read_card(result.card_path)

    ev = recipe["evaluation"]
    eval_dataset = ev.get("dataset", args["dataset"])
    eval_dir = eval_data_dir if eval_data_dir is not None else data_dir
    clean = held_out_images(eval_dataset, eval_dir, "test", ev["images"], ev["size"])
    tuning = held_out_images(eval_dataset, eval_dir, "validation", ev["tuning_images"], ev["size"])
    normalizer = Normalizer.from_config(card["normalization"])
    report = denoising_report(model, clean, tuning, dose=ev["dose"], normalizer=normalizer)
    # the same measurement at other doses: where the generator stands outside the headline dose
    other_doses = [denoising_report(model, clean, tuning, dose=d, normalizer=normalizer) for d in ev.get("other_doses", [])]
    report["how"] = (
        f"{ev['images']} images of {eval_dataset} (test split, top-left {ev['size']}x{ev['size']} crops) in "
        f"mean-intensity units; Poisson noise at dose {ev['dose']} counts/pixel at the mean intensity; "
        f"PSNR per image with the clean image's range as peak, averaged; Gaussian sigma tuned on "
        f"{ev['tuning_images']} validation images (temzoo.analysis.denoising_baselines.denoising_report)."
    )
    print(json.dumps({k: v for k, v in report.items() if k != "how"}, indent=2))
    for row in other_doses:
        print(f"dose {row['dose']:g}: model {row['psnr_model_db']:.2f} dB, Gaussian {row['psnr_gaussian_db']:.2f} dB, "
              f"noisy {row['psnr_noisy_db']:.2f} dB")
    if not ship:
        return report

    # Re-instantiate the generator from its config with the current code and copy the
    # weights, so the shipped file uses today's layers (e.g. temzoo's UpSampling2D).
    shipped_model = type(model).from_config(model.get_config())
    shipped_model.set_weights(model.get_weights())
    probe = np.random.default_rng(0).standard_normal((1, 64, 64, 1)).astype("float32")
    np.testing.assert_allclose(shipped_model(probe, training=False), model(probe, training=False), atol=1e-6)
    model = shipped_model

    target = os.path.join(pretrained.WEIGHTS_DIR, f"{name}.keras")
    card.update(
        name=name,
        aliases=recipe.get("aliases", []),
        description=recipe["description"],
        recipe=f"recipes/{name}.json",
        training_data_note=recipe.get("training_data_note", DATA_NOTE).format(
            command=cli_command(recipe["pretrain"], "cem500k")),
        denoising=report,
        denoising_other_doses=other_doses,
    )
    card["data"].pop("data_dir", None)
    if real_data:
        card["real_data"] = real_data_section(real_data, name)
    card = export_model(model, target, card)
    register_shipped(name, recipe, model, target, card)
    return report


def register_shipped(name, recipe, model, target, card, extra=None):
    """Record the reference output of the file at ``target``, add it to registry.json, check it reloads."""
    import numpy as np

    from temzoo.atomic import write_text
    from temzoo.zoo import pretrained

    digest = card["sha256"]
    pretrained.record_reference(model, target, size=64)

    registry = json.load(open(pretrained.REGISTRY_FILE, encoding="utf-8")) if os.path.exists(pretrained.REGISTRY_FILE) else []
    registry = [e for e in registry if e["name"] != name]
    registry.append(
        {
            "name": name,
            "aliases": recipe.get("aliases", []),
            "architecture": recipe["architecture"],
            "file": f"{name}.keras",
            "sha256": digest,
            "description": recipe["description"],
            "parameters": card["parameters"],
            "receptive_field": card["receptive_field"],
            **(extra or {}),
        }
    )
    registry.sort(key=lambda e: e["name"])
    write_text(pretrained.REGISTRY_FILE, json.dumps(registry, indent=2) + "\n")
    print(f"shipped {target} ({os.path.getsize(target) / 1e6:.1f} MB, sha256 {digest[:12]}...)")
    np.testing.assert_allclose(  # the shipped file reproduces the in-memory generator
        np.asarray(pretrained.load(name)(np.load(pretrained.reference_path(target))["input"])),
        np.load(pretrained.reference_path(target))["output"], atol=1e-5,
    )


def run_box_recipe(name, recipe, runs, boxes, data_dir, ship=False, synthetic_simulated=False):
    """Train (or reuse) the segmentation model of a ``train_on_boxes`` recipe; with ``ship``, register it.

    ``synthetic_simulated``: the recipe's ``synthetic_tem/au_np`` images are made by its simulator
    (:func:`temzoo.simulate.hrtem.nanoparticle_set`) instead of TFDS, e.g. on a GPU machine without TensorFlow."""
    from temzoo import tasks
    from temzoo.analysis.box_training import train_on_boxes
    from temzoo.data.boxes import load_box_folder
    from temzoo.zoo import pretrained

    run_dir = os.path.join(runs, name)
    run_model = os.path.join(run_dir, "model.keras")
    settings = dict(recipe["train_on_boxes"])
    if synthetic_simulated:
        from temzoo.simulate.hrtem import nanoparticle_set

        if settings.get("synthetic") != "synthetic_tem/au_np":
            raise SystemExit(f"--synthetic-simulated makes synthetic_tem/au_np; recipe {name} uses {settings.get('synthetic')!r}.")
        settings["synthetic"] = nanoparticle_set(settings.get("synthetic_images", 200))
    examples = load_box_folder(boxes)
    if os.path.exists(run_model):
        print(f"{run_model} exists: reusing it (delete it to train again)")
        model = pretrained.load(run_model)
        info = pretrained.card(model)["training"]
        if "measured_particle_px" not in info:  # trained where temzoo.predict cannot run (a GPU machine with JAX)
            from temzoo.analysis.box_training import measured_particle_px
            from temzoo.zoo.pretrained import attach_card

            info["measured_particle_px"] = measured_particle_px(model, examples, info["target_particle_px"])
            attach_card(model, {**pretrained.card(model), "training": info})
    else:
        model, info = train_on_boxes(settings.pop("backbone"), examples, data_dir=data_dir, **settings)
        tasks.save(model, run_model, name=name, training=info)
        model = pretrained.load(run_model)
    print(json.dumps({k: v for k, v in info.items() if k != "box_images"}, indent=1))
    evaluation = cross_validation_result(recipe)
    if not ship:
        return evaluation

    shipped_model = type(model).from_config(model.get_config())
    shipped_model.set_weights(model.get_weights())
    target = os.path.join(pretrained.WEIGHTS_DIR, f"{name}.keras")
    card = dict(pretrained.card(model))
    for key in ("sha256", "file", "software", "date", "config", "name", "architecture"):
        card.pop(key, None)
    card.update(
        aliases=recipe.get("aliases", []),
        description=recipe["description"],
        recipe=f"recipes/{name}.json",
        training_data_note=recipe["training_data_note"],
        evaluation=evaluation,
        postprocessing=postprocessing(recipe),
    )
    from temzoo.zoo.cards import export_model, make_card

    card = export_model(shipped_model, target, make_card(shipped_model, name=name, architecture=recipe["architecture"], **card))
    register_shipped(name, recipe, shipped_model, target, card, extra={"task": card.get("task", "segmentation")})
    return evaluation


def cross_validation_result(recipe):
    """The benchmark rows measured for this recipe (``benchmarks/results/particles_real.json``), if any."""
    path = os.path.join(ROOT, "benchmarks", "results", "particles_real.json")
    if not os.path.exists(path):
        return {"note": "not measured: run benchmarks/particles_real.py"}
    results = json.load(open(path, encoding="utf-8"))
    wanted = recipe.get("evaluation", {}).get("rows", [])
    # the file gathers rows of several benchmark calls (fold models, the shipped model): each row carries
    # the command that made it, so the file's last command and settings are not the card's
    return {
        "how": recipe.get("evaluation", {}).get("how"),
        "rows": {k: v for k, v in results.get("rows", {}).items() if k in wanted},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="recipe names (files recipes/NAME.json)")
    parser.add_argument("--runs", default=os.path.join(ROOT, "runs"), help="where the pretraining runs go")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir")
    parser.add_argument("--dataset", default=None, help="pretrain on another dataset, e.g. cem500k")
    parser.add_argument("--ship", action="store_true", help="copy into temzoo/weights and register")
    parser.add_argument("--boxes", default=os.path.join(os.path.dirname(ROOT), "shared", "real_micrographs", "nanoparticle_boxes"),
                        help="YOLO box folder for train_on_boxes recipes")
    parser.add_argument("--eval-data-dir", default=None, help="TFDS data dir of the evaluation dataset")
    parser.add_argument("--real-data", default=None, help="benchmarks/real_denoising.py JSON: real-data numbers")
    parser.add_argument("--cards-only", action="store_true", help="only add --real-data to the shipped cards")
    parser.add_argument("--evaluation-only", action="store_true",
                        help="box recipes: only refresh the shipped card's leave-images-out evaluation (weights untouched)")
    parser.add_argument("--synthetic-simulated", action="store_true",
                        help="box recipes: make synthetic_tem/au_np with its simulator, not TFDS (a machine without TensorFlow)")
    parser.add_argument("--effective-receptive-field", action="store_true",
                        help="only measure the shipped models' effective receptive field into their cards")
    parser.add_argument("--activation-memory", action="store_true",
                        help="only measure the shipped models' inference memory per pixel into their cards")
    opts = parser.parse_args(argv)
    if opts.cards_only and not opts.real_data:
        parser.error("--cards-only needs --real-data JSON")
    from temzoo.logs import configure

    configure("normal")  # temzoo's messages (pretraining: resuming, checkpoints, export) on stderr
    for name in opts.names:
        recipe = json.load(open(os.path.join(HERE, f"{name}.json"), encoding="utf-8"))
        if opts.effective_receptive_field:
            record_effective_receptive_field(name)
        elif opts.activation_memory:
            record_activation_memory(name)
        elif opts.cards_only:
            add_real_data(name, opts.real_data)
        elif opts.evaluation_only:
            if "train_on_boxes" not in recipe:
                raise SystemExit(f"--evaluation-only refreshes box recipes; {name} has no train_on_boxes section.")
            refresh_evaluation(name, recipe)
        elif "train_on_boxes" in recipe:
            run_box_recipe(name, recipe, opts.runs, opts.boxes, opts.data_dir, opts.ship, opts.synthetic_simulated)
        else:
            run_recipe(name, opts.runs, opts.data_dir, opts.dataset, opts.ship, opts.eval_data_dir, opts.real_data)


if __name__ == "__main__":
    main()
