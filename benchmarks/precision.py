"""Training throughput and pretext quality in float32 and in bfloat16, per shipped architecture (issue 19).

What ``--precision auto`` buys on this machine, measured side by side in one run:

* **throughput** (images/s, training): the pretext trainer as ``temzoo-cli pretrain --method
  autoencoder --precision P`` builds it (:func:`temzoo.pretraining.build_trainer`: generator built
  under the dtype policy, L1 loss, BatchNormalization through the fused kernel), for ``float32`` and
  ``mixed_bfloat16``. Every configuration is built, traced and warmed up once; then their timed
  runs are interleaved in ``--rounds`` rounds; the table gives the medians and the median of the
  per-round ratios, so a busy machine affects both alike.
* **quality** (PSNR in dB of the restored against the clean image, on held-out pretext pairs:
  simulated micrographs, Poisson noise at doses 5-500):

  - ``inference``: each shipped pretrained generator run as it is (float32) and as its bfloat16
    copy (:func:`temzoo.inference.precision.precision_copy`, what ``predict --precision`` runs);
  - ``training``: the same initial weights trained ``--quality-steps`` steps on the same batches in
    each precision, then scored in float32. A second float32 run from the same start gives the
    run-to-run spread that the difference has to be read against.

Goal (issue 19): ``--precision auto`` >= 1.3x float32 training throughput for every shipped
architecture, PSNR within 0.05 dB. ``auto`` picks bfloat16 only where the CPU has AVX512-BF16 or AMX
(or the GPU compute capability 8.0+); elsewhere it is float32 and the ratio is 1 by definition, so
the table says what ``auto`` resolved to.

    python benchmarks/precision.py                         # shipped architectures, 128 px, batch 8
    python benchmarks/precision.py --models unet_b3_p222 --rounds 2 --steps 5 --quality-steps 20 --no-docs
"""

import argparse
import statistics
import time

from _report import add_docs_option, machine, markdown_table, write_json, write_section

GOAL_SPEEDUP = 1.3  # issue 19: --precision auto >= 1.3x float32 training throughput
GOAL_PSNR_DB = 0.05  # ... with the pretext PSNR within 0.05 dB
PRECISIONS = ("float32", "mixed_bfloat16")


def shipped():
    """{architecture: a shipped pretrained model of it} for the built-in pretrained restoration models."""
    from temzoo.zoo.pretrained import pretrained_entries

    found = {}
    for name, entry in sorted(pretrained_entries().items()):
        card = _card(name)
        if entry.get("builtin") and card.get("pretext") and card.get("architecture"):
            found.setdefault(card["architecture"], name)
    return found


def _card(name):
    import temzoo

    return temzoo.card(name) or {}


def pretext_data(size, batch, images=16, seed=0, repeat=True):
    """(noisy, clean) batches at ``size`` px from ``images`` simulated micrographs (temzoo.simulate)."""
    import numpy as np

    from temzoo.data import pretext_pairs
    from temzoo.simulate import simulate_realistic

    rng = np.random.default_rng(seed)
    clean = np.stack([simulate_realistic(rng, 2 * size)["clean"] for _ in range(images)]).astype("float32")
    return pretext_pairs(clean, patch_size=size, batch_size=batch, seed=seed, repeat=repeat,
                         shuffle_buffer=0 if not repeat else 64)


def in_memory(batches):
    """The ``(noisy, clean)`` batches held in memory and repeated (no input pipeline in the timings)."""
    import numpy as np
    import tensorflow as tf

    pairs = list(batches)
    noisy, clean = (np.concatenate([np.asarray(p[i]) for p in pairs]) for i in (0, 1))
    return tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(len(pairs[0][0]), drop_remainder=True).repeat()


def trainer(architecture, precision, seed=0):
    """The autoencoder pretext trainer of ``architecture`` under ``precision`` (weights from ``seed``)."""
    import keras
    import tensorflow as tf

    import temzoo
    from temzoo.pretraining.trainer import build_trainer

    keras.utils.set_random_seed(seed)
    return build_trainer(tf.distribute.get_strategy(), "autoencoder", lambda: temzoo.build(architecture),
                         precision=precision)


def timed_fit(model, data, steps):
    """Images/s of ``steps`` training steps (after the caller's warm-up)."""
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * int(data.element_spec[0].shape[0] or 0) / (time.perf_counter() - start)


def throughput(architectures, size, batch, steps, rounds):
    """{architecture: {precision: [images/s per round]}}, runs interleaved across configurations."""
    import keras

    data = in_memory(pretext_data(size, batch).take(8))
    built = {}
    for architecture in architectures:
        for precision in PRECISIONS:
            keras.backend.clear_session(free_memory=False)
            model = trainer(architecture, precision)
            model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
            built[architecture, precision] = model
    rates = {a: {p: [] for p in PRECISIONS} for a in architectures}
    for r in range(rounds):
        for (architecture, precision), model in built.items():
            rates[architecture][precision].append(timed_fit(model, data, steps))
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{a} {p} {v[-1]:.1f}" for a, ps in rates.items() for p, v in ps.items()), flush=True)
    return rates


def mean_psnr(generator, pairs):
    """Mean PSNR (dB) of ``generator`` (called in inference mode) over the ``(noisy, clean)`` batches."""
    import numpy as np

    from temzoo.pretraining.metrics import psnr

    values = [np.asarray(psnr(generator(noisy, training=False), clean)) for noisy, clean in pairs]
    return float(np.concatenate(values).mean())


def inference_quality(name, pairs):
    """PSNR of shipped model ``name`` run in float32 and as its bfloat16 copy."""
    import temzoo
    from temzoo.inference.precision import precision_copy

    model = temzoo.load(name)
    return {p: mean_psnr(precision_copy(model, p), pairs) for p in PRECISIONS}


def training_quality(architecture, data, pairs, steps, seed=0):
    """PSNR after ``steps`` steps from the same start in each precision (float32 twice)."""
    from temzoo.inference.precision import float32_copy

    start = trainer(architecture, "float32", seed).generator.get_weights()
    scores = {}
    for run in ("float32", "mixed_bfloat16", "float32 again"):
        model = trainer(architecture, run.split()[0], seed)
        model.generator.set_weights(start)
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        scores[run] = mean_psnr(float32_copy(model.generator), pairs)
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--models", default=None,
                        help="comma-separated architectures (default: those of the shipped pretrained models)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality-steps", type=int, default=200, help="training steps of the quality runs (0: skip)")
    parser.add_argument("--quality-images", type=int, default=32, help="held-out pretext pairs scored")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    from temzoo.inference.precision import fast_bfloat16, resolve_precision

    ships = shipped()
    architectures = args.models.split(",") if args.models else sorted(ships)
    auto = resolve_precision("auto")
    print(f"--precision auto resolves to {auto} here (fast bfloat16: {fast_bfloat16()})", flush=True)
    rates = throughput(architectures, args.size, args.batch, args.steps, args.rounds)
    held_out = list(pretext_data(args.size, 8, images=args.quality_images, seed=1, repeat=False))
    train_data = pretext_data(args.size, args.batch).repeat()
    rows = []
    for architecture in architectures:
        f32, bf16 = rates[architecture]["float32"], rates[architecture]["mixed_bfloat16"]
        row = {"architecture": architecture, "float32 img/s": statistics.median(f32),
               "bfloat16 img/s": statistics.median(bf16),
               "ratio": statistics.median(b / f for b, f in zip(bf16, f32, strict=True)),
               "faster in": f"{sum(b > f for b, f in zip(bf16, f32, strict=True))}/{len(f32)}"}
        row["auto ratio"] = row["ratio"] if auto == "mixed_bfloat16" else 1.0
        if architecture in ships:
            q = inference_quality(ships[architecture], held_out)
            row["model"] = ships[architecture]
            row["inference PSNR float32"], row["inference dPSNR bf16"] = q["float32"], q["mixed_bfloat16"] - q["float32"]
        if args.quality_steps:
            q = training_quality(architecture, train_data, held_out, args.quality_steps)
            row["trained PSNR float32"] = q["float32"]
            row["trained dPSNR bf16"] = q["mixed_bfloat16"] - q["float32"]
            row["trained dPSNR float32 rerun"] = q["float32 again"] - q["float32"]
        row["rates"] = {"float32": f32, "mixed_bfloat16": bf16}
        print(row, flush=True)
        rows.append(row)
    report(rows, args, auto)
    return rows


def report(rows, args, auto):
    columns = ["architecture", "model", "float32 img/s", "bfloat16 img/s", "ratio", "faster in", "auto ratio",
               "inference PSNR float32", "inference dPSNR bf16", "trained PSNR float32", "trained dPSNR bf16",
               "trained dPSNR float32 rerun"]
    table = markdown_table(rows, columns)
    print(table, flush=True)
    info = machine()
    device = ", ".join(info["gpus"]) or f"CPU only ({info['cpus']} cores)"
    setting = (f"--size {args.size} --batch {args.batch} --steps {args.steps} --rounds {args.rounds} "
               f"--quality-steps {args.quality_steps}") + (f" --models {args.models}" if args.models else "")
    met = [r["architecture"] for r in rows if r["auto ratio"] >= GOAL_SPEEDUP
           and abs(r.get("trained dPSNR bf16", 0.0)) <= GOAL_PSNR_DB and abs(r.get("inference dPSNR bf16", 0.0)) <= GOAL_PSNR_DB]
    text = (
        "## Precision: float32 vs bfloat16\n\n"
        f"`python benchmarks/precision.py {setting}`, measured {info['date']} on "
        f"{device}, TensorFlow {info['tensorflow']}; "
        f"`--precision auto` resolved to `{auto}`. Training: the autoencoder pretext trainer (fused "
        "BatchNormalization), interleaved rounds, medians; `ratio` is the median per-round bfloat16 / float32. "
        "PSNR (dB) on held-out simulated pretext pairs: `inference` runs the shipped model and its bfloat16 copy; "
        f"`trained` trains {args.quality_steps} steps from the same start in each precision and scores in float32 "
        "(`float32 rerun`: the same float32 training again, the run-to-run spread). "
        f"Goal (issue 19): `auto` >= {GOAL_SPEEDUP}x with PSNR within {GOAL_PSNR_DB} dB; met for: "
        f"{', '.join(met) or 'none'}.\n\n{table}\n"
    )
    if not args.no_docs:
        write_section("precision", text, force=args.force_docs)
    if args.json:
        write_json(args.json, {"machine": info, "setting": vars(args), "auto": auto, "rows": rows})


if __name__ == "__main__":
    main()
