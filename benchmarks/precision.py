"""Training throughput and pretext quality in float32 and in bfloat16, per shipped architecture (issue 19).

What ``--precision auto`` buys on this machine, measured side by side in one run:

* **throughput** (images/s, training): the pretext trainer as ``temzoo-cli pretrain --method
  autoencoder --precision P`` builds it (:func:`temzoo.pretraining.build_trainer`: generator built
  under the dtype policy, L1 loss, BatchNormalization through the fused kernel), for ``float32`` and
  ``mixed_bfloat16``. Per architecture, both are built, traced and warmed up once; then their timed
  runs alternate in ``--rounds`` rounds. The table gives the best round of each (``ratio``: best over
  best, as ``timeit`` does), the median of the per-round ratios, and the ratio of images per
  CPU-second of the process. On a machine where a round's wall time sometimes stretches with the
  same CPU time (seen here: 20 U-Net steps took 1.7 s or 2.5 s, 3.2 CPU-s both), the best and the
  CPU-second ratios are the stable ones.
* **quality** (PSNR in dB of the restored against the clean image, on held-out pretext pairs:
  simulated micrographs, Poisson noise at doses 5-500):

  - ``inference``: each shipped pretrained generator run as it is (float32) and as its bfloat16
    copy (:func:`temzoo.inference.precision.precision_copy`, what ``predict --precision`` runs);
  - ``training``: the shipped model's weights (random ones for an architecture shipped without)
    trained ``--quality-steps`` more pretext steps on the same batches in each precision, then
    scored in float32. A second float32 run from the same start gives the run-to-run spread that
    the difference has to be read against (from random weights, 100 steps spread 1.5 dB).

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
    import temzoo
    from temzoo.zoo.pretrained import pretrained_entries

    found = {}
    for name, entry in sorted(pretrained_entries().items()):
        card = temzoo.card(name) or {}
        if entry.get("builtin") and card.get("pretext") and card.get("architecture"):
            found.setdefault(card["architecture"], name)
    return found


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
    """(images per wall second, images per CPU-second of this process) of ``steps`` training steps."""
    images = steps * int(data.element_spec[0].shape[0] or 0)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def throughput(architecture, size, batch, steps, rounds):
    """{precision: [(images/s, images per CPU-second) per round]} for ``architecture``; the two precisions' runs
    interleaved.

    One architecture at a time: with every model of the run in memory, the CPU's primitive caches
    thrash and single rounds vary 2.5x."""
    import keras

    data = in_memory(pretext_data(size, batch).take(8))
    keras.backend.clear_session()
    built = {}
    for precision in PRECISIONS:
        built[precision] = trainer(architecture, precision)
        built[precision].fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    rates = {p: [] for p in PRECISIONS}
    for r in range(rounds):
        for precision, model in built.items():
            rates[precision].append(timed_fit(model, data, steps))
        print(f"{architecture} round {r + 1}/{rounds}: " + ", ".join(
            f"{p} {v[-1][0]:.1f} img/s ({v[-1][1]:.1f} per CPU-s)" for p, v in rates.items()), flush=True)
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


def training_quality(architecture, name, data, pairs, steps, seed=0):
    """PSNR after ``steps`` pretext steps from the same start in each precision (float32 twice).

    The start is the shipped model ``name`` (what ``finetune``/``adapt --precision`` continue from), or
    random weights of ``architecture`` when ``name`` is None."""
    import temzoo
    from temzoo.inference.precision import float32_copy

    start = (temzoo.load(name) if name else trainer(architecture, "float32", seed).generator).get_weights()
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
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=5)
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
    held_out = list(pretext_data(args.size, 8, images=args.quality_images, seed=1, repeat=False))
    train_data = pretext_data(args.size, args.batch).repeat()
    rows = []
    for architecture in architectures:
        rates = throughput(architecture, args.size, args.batch, args.steps, args.rounds)
        f32, bf16 = ([r[0] for r in rates[p]] for p in PRECISIONS)
        f32_cpu, bf16_cpu = ([r[1] for r in rates[p]] for p in PRECISIONS)
        row = {"architecture": architecture, "float32 img/s": max(f32), "bfloat16 img/s": max(bf16),
               "ratio": max(bf16) / max(f32),
               "median ratio": statistics.median(b / f for b, f in zip(bf16, f32, strict=True)),
               "faster in": f"{sum(b > f for b, f in zip(bf16, f32, strict=True))}/{len(f32)}",
               "ratio per CPU-s": statistics.median(bf16_cpu) / statistics.median(f32_cpu)}
        row["auto ratio"] = row["ratio"] if auto == "mixed_bfloat16" else 1.0
        if architecture in ships:
            q = inference_quality(ships[architecture], held_out)
            row["model"] = ships[architecture]
            row["inference PSNR float32"], row["inference dPSNR bf16"] = q["float32"], q["mixed_bfloat16"] - q["float32"]
        if args.quality_steps:
            q = training_quality(architecture, ships.get(architecture), train_data, held_out, args.quality_steps)
            row["trained PSNR float32"] = q["float32"]
            row["trained dPSNR bf16"] = q["mixed_bfloat16"] - q["float32"]
            row["trained dPSNR float32 rerun"] = q["float32 again"] - q["float32"]
        row["rates"] = {p: {"img/s": [r[0] for r in rates[p]], "img per CPU-s": [r[1] for r in rates[p]]}
                        for p in PRECISIONS}
        print(row, flush=True)
        rows.append(row)
    report(rows, args, auto)
    return rows


def equal_quality(row):
    """bfloat16 inference within ``GOAL_PSNR_DB`` of float32, and bfloat16 training within that or within the
    float32 run-to-run spread, whichever is larger (short trainings differ by more than 0.05 dB run to run)."""
    trained = abs(row.get("trained dPSNR bf16", 0.0))
    spread = max(GOAL_PSNR_DB, abs(row.get("trained dPSNR float32 rerun", 0.0)))
    return abs(row.get("inference dPSNR bf16", 0.0)) <= GOAL_PSNR_DB and trained <= spread


def cpu_description(path="/proc/cpuinfo"):
    """The CPU's model name and which native bfloat16 instruction sets it has (Linux), e.g.
    ``"AMD EPYC (avx512_bf16; no amx_bf16)"``."""
    from temzoo.inference.precision import BFLOAT16_CPU_FLAGS

    name, flags = "unknown CPU", set()
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        return name
    has = [f for f in BFLOAT16_CPU_FLAGS if f in flags]
    lacks = [f for f in BFLOAT16_CPU_FLAGS if f not in flags]
    return f"{name} ({'; '.join(filter(None, [', '.join(has), ', '.join('no ' + f for f in lacks)]))})"


def report(rows, args, auto):
    columns = ["architecture", "model", "float32 img/s", "bfloat16 img/s", "ratio", "median ratio", "faster in",
               "ratio per CPU-s", "auto ratio",
               "inference PSNR float32", "inference dPSNR bf16", "trained PSNR float32", "trained dPSNR bf16",
               "trained dPSNR float32 rerun"]
    table = markdown_table(rows, columns)
    print(table, flush=True)
    info = machine()
    device = ", ".join(info["gpus"]) or f"CPU only ({info['cpus']} cores of {cpu_description()})"
    setting = (f"--size {args.size} --batch {args.batch} --steps {args.steps} --rounds {args.rounds} "
               f"--quality-steps {args.quality_steps}") + (f" --models {args.models}" if args.models else "")
    met = [r["architecture"] for r in rows if r["auto ratio"] >= GOAL_SPEEDUP and equal_quality(r)]
    text = (
        "## Precision: float32 vs bfloat16\n\n"
        f"`python benchmarks/precision.py {setting}`, measured {info['date']} on "
        f"{device}, TensorFlow {info['tensorflow']}; "
        f"`--precision auto` resolved to `{auto}`. Training: the autoencoder pretext trainer (fused "
        "BatchNormalization), alternating rounds; img/s are the best round, `ratio` best over best, `median ratio` "
        "the median per-round ratio, `ratio per CPU-s` that of images per CPU-second (wall times here sometimes "
        "stretch with the same CPU time). "
        "PSNR (dB) on held-out simulated pretext pairs: `inference` runs the shipped model and its bfloat16 copy; "
        f"`trained` trains the shipped weights {args.quality_steps} more steps in each precision and scores in float32 "
        "(`float32 rerun`: the same float32 training again, the run-to-run spread). "
        f"Goal (issue 19): `auto` >= {GOAL_SPEEDUP}x (`auto ratio`, best over best) with PSNR within {GOAL_PSNR_DB} dB "
        "(inference; training: within that or the float32 rerun's spread, whichever is larger); met for: "
        f"{', '.join(met) or 'none'}.\n\n{table}\n"
    )
    if not args.no_docs:
        write_section("precision", text, force=args.force_docs)
    if args.json:
        write_json(args.json, {"machine": {**info, "cpu": cpu_description()}, "setting": vars(args), "auto": auto,
                               "rows": rows})


if __name__ == "__main__":
    main()
