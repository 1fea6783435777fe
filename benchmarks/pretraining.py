"""Pretraining throughput: temzoo's Pix2Pix through ``fit`` versus a hand-written
``tf.function`` loop in the style of the TensorFlow pix2pix tutorial, on the same
generator, discriminator and data, in one run; plus the autoencoder.

Rows (images/s, training, after warm-up):

* ``tutorial loop``: ``@tf.function train_step`` with two GradientTapes and
  ``apply_gradients`` called from a Python ``for`` loop over the dataset,
  as in https://www.tensorflow.org/tutorials/generative/pix2pix (without its
  per-step ``tf.summary`` writes, which would only slow the baseline down);
* ``Pix2Pix.fit``: temzoo's trainer as built by default (BatchNormalization
  through TensorFlow's fused kernel, :mod:`temzoo.training.fused_batch_norm`), with
  ``fused_batch_norm=False`` (Keras' own BatchNormalization ops, what the
  tutorial loop runs), and with ``steps_per_execution``; ``--xla`` adds XLA
  rows (``jit_compile``, single device only; slower on CPUs);
* ``Autoencoder.fit``: the L1-only twin, with and without the fused kernel;
* ``Pix2Pix.fit, precision mixed_bfloat16`` (and the autoencoder's): the trainers under
  ``--precision`` (default ``auto``: bfloat16 where the hardware computes it natively, as
  ``pretrain --precision auto`` does; no such rows where it resolves to float32). They compute in
  another arithmetic than the tutorial loop, so the goal's verdict is taken over the float32 rows
  and their ratio is named apart.

Goal (issue 19): Pix2Pix through ``fit`` >= 1.2x the tutorial loop.
Every configuration is built, traced and warmed up once; then the timed runs
of all configurations are interleaved in rounds and the median is reported, so
a busy machine affects all rows alike.

    python benchmarks/pretraining.py                       # CPU setting: 64 px, batch 4, 20 steps, 3 rounds
    python benchmarks/pretraining.py --size 256 --batch 16 --steps 100   # GPU setting
    python benchmarks/pretraining.py --profile      # where a step's time goes (TensorFlow profiler)
"""

import argparse
import os
import statistics
import time

from _report import add_docs_option, machine, markdown_table, write_json, write_section

GOAL = 1.2  # issue 19: Pix2Pix.fit >= 1.2x the tutorial loop
PRECISION_ROW = "Pix2Pix.fit, precision"  # rows in another precision than the tutorial's (not in the goal's verdict)


def make_data(size, batch, count=8):
    """A cached dataset of ``count`` (noisy, clean) batches from the pretext pipeline, repeated."""
    import numpy as np

    from temzoo.data import pretext_pairs

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: 2 * size, : 2 * size]
    images = np.stack([1.0 + 0.5 * np.sin(xx / (3 + i) + rng.random()) * np.cos(yy / (4 + i)) for i in range(16)])
    ds = pretext_pairs(images.astype("float32"), patch_size=size, batch_size=batch, seed=0, shuffle_buffer=0)
    return ds.take(count).cache().repeat()


def build(model, discriminator, seed=0):
    import keras

    import temzoo

    keras.utils.set_random_seed(seed)
    g = temzoo.build(model)
    d = temzoo.build(discriminator)
    return g, d


def tutorial_loop(model, discriminator, data, steps, warmup):
    """The TensorFlow pix2pix tutorial's training loop (same losses, lambda 100), warmed up;
    returns a function that times ``steps`` steps and returns images/s."""
    import tensorflow as tf

    generator, disc = build(model, discriminator)
    g_opt = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
    loss_object = tf.keras.losses.BinaryCrossentropy(from_logits=True)

    def generator_loss(disc_generated_output, gen_output, target):
        gan_loss = loss_object(tf.ones_like(disc_generated_output), disc_generated_output)
        l1_loss = tf.reduce_mean(tf.abs(target - gen_output))
        return gan_loss + 100 * l1_loss, gan_loss, l1_loss

    def discriminator_loss(disc_real_output, disc_generated_output):
        real_loss = loss_object(tf.ones_like(disc_real_output), disc_real_output)
        generated_loss = loss_object(tf.zeros_like(disc_generated_output), disc_generated_output)
        return real_loss + generated_loss

    @tf.function
    def train_step(input_image, target):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            gen_output = generator(input_image, training=True)
            disc_real_output = disc([input_image, target], training=True)
            disc_generated_output = disc([input_image, gen_output], training=True)
            gen_total_loss, gen_gan_loss, gen_l1_loss = generator_loss(disc_generated_output, gen_output, target)
            disc_loss = discriminator_loss(disc_real_output, disc_generated_output)
        generator_gradients = gen_tape.gradient(gen_total_loss, generator.trainable_variables)
        discriminator_gradients = disc_tape.gradient(disc_loss, disc.trainable_variables)
        g_opt.apply_gradients(zip(generator_gradients, generator.trainable_variables, strict=True))
        d_opt.apply_gradients(zip(discriminator_gradients, disc.trainable_variables, strict=True))
        return gen_total_loss

    for noisy, clean in data.take(warmup):
        train_step(noisy, clean).numpy()
    batch = next(iter(data))[0].shape[0]

    def measure():
        start = time.perf_counter()
        for noisy, clean in data.take(steps):
            loss = train_step(noisy, clean)
        float(loss)  # wait for the last step
        return steps * batch / (time.perf_counter() - start)

    return measure


def fit_rate(method, model, discriminator, data, steps, warmup, jit_compile, steps_per_execution=1,
             fused_batch_norm=True, precision="float32"):
    """temzoo's trainer, traced and warmed up by a first ``fit``; returns a function that times
    ``steps`` steps of a further ``fit`` call (the traced function is reused) and returns images/s."""
    from temzoo.pretraining import build_trainer
    from temzoo.training import distribute

    g_d = {}

    def make_generator():
        g_d["g"], g_d["d"] = build(model, discriminator)
        return g_d["g"]

    trainer = build_trainer(
        distribute.get_strategy(), method, make_generator, lambda: g_d["d"],
        jit_compile=jit_compile, steps_per_execution=steps_per_execution, fused_batch_norm=fused_batch_norm,
        precision=precision,
    )
    warm = max(warmup, steps_per_execution)
    trainer.fit(data, epochs=1, steps_per_epoch=warm - warm % steps_per_execution, verbose=0, shuffle=False)
    batch = next(iter(data))[0].shape[0]

    def measure():
        start = time.perf_counter()
        trainer.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return steps * batch / (time.perf_counter() - start)

    return measure


def op_group(op):
    """The kind of a TensorFlow op (oneDNN prefixes removed), for :func:`op_time_by_group`."""
    if "BackpropInput" in op:
        return "convolution backward (input)"
    if "BackpropFilter" in op:
        return "convolution backward (filter)"
    if "Conv2D" in op or "Pool" in op:
        return "convolution forward (and pooling)"
    if "FusedBatchNorm" in op:
        return "fused batch norm (forward + gradient)"
    if "Assign" in op or "ResourceApply" in op:
        return "optimizer updates"
    return "element-wise and reductions (Keras BatchNormalization, activations, losses)"


def op_time_by_group(logdir, steps):
    """Milliseconds per step of TensorFlow op time from a profiler trace, by kind of op.

    Summed over threads (inter-op parallel ops overlap), so the shares, not the sum,
    compare with wall time. Input-pipeline and function-call events are left out.
    """
    import collections
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    by_op = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name:
                    continue
                op = name.rsplit(":", 1)[-1].removeprefix("_MklNative").removeprefix("_Mkl")
                if not op[:1].isupper() or any(s in op for s in ("Dataset", "Iterator", "Process", "Run", "Make",
                                                                 "Prefetch", "Take", "Root", "DoCompute", "MapAnd")):
                    continue
                by_op[op] += event.duration_ps / 1e9 / steps
    groups = collections.Counter()
    for op, ms in by_op.items():
        groups[op_group(op)] += ms
    return groups, by_op


def profile(args, data):
    """Trace ``args.steps`` steps of each configuration with the TensorFlow profiler; print op time by kind."""
    import tempfile

    import tensorflow as tf

    spe = args.steps_per_execution
    common = (args.model, args.discriminator, data, args.steps, args.warmup)
    configs = {
        "tutorial loop": lambda: tutorial_loop(*common),
        "Pix2Pix.fit, fused_batch_norm=False": lambda: fit_rate("pix2pix", *common, False, fused_batch_norm=False),
        "Pix2Pix.fit": lambda: fit_rate("pix2pix", *common, False),
        f"Pix2Pix.fit, steps_per_execution={spe}": lambda: fit_rate("pix2pix", *common, False, spe),
        "Autoencoder.fit, fused_batch_norm=False": lambda: fit_rate(
            "autoencoder", *common, False, fused_batch_norm=False),
        "Autoencoder.fit": lambda: fit_rate("autoencoder", *common, False),
    }
    rows = []
    for name, prepare in configs.items():
        measure = prepare()
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            start = time.perf_counter()
            measure()
            wall = (time.perf_counter() - start) * 1000 / args.steps
            tf.profiler.experimental.stop()
            groups, _ = op_time_by_group(logdir, args.steps)
        total = sum(groups.values())
        row = {"configuration": name, "wall ms/step (profiled)": round(wall, 1), "op ms/step": round(total, 1)}
        row.update({group: f"{ms:.1f} ({100 * ms / total:.0f} %)" for group, ms in groups.most_common()})
        rows.append(row)
        print(row, flush=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = markdown_table(rows, columns)
    print(table)
    if not args.no_docs:
        info = machine()
        write_section("pretraining_profile", (
            "## Where a pretraining step's time goes (`benchmarks/pretraining.py --profile`)\n\n"
            f"`python benchmarks/pretraining.py --profile --steps {args.steps}`: {args.model} generator, "
            f"{args.discriminator} discriminator, {args.size}x{args.size}, batch {args.batch}; {info['cpus']} CPUs, "
            f"TensorFlow {info['tensorflow']}, {info['date']}. TensorFlow op time per step from the profiler, "
            "summed over threads (so above the wall time), by kind of op, with its share.\n\n"
            f"{table}\n"), force=args.force_docs)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--model", default="unet_b3_p222")
    parser.add_argument("--discriminator", default="patchgan_34")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is reported")
    parser.add_argument("--steps-per-execution", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"),
                        help="also time the trainers in this precision (auto: mixed_bfloat16 where the CPU or GPU "
                             "computes it natively, temzoo.inference.precision; float32: no extra rows). Those rows "
                             "compute in another arithmetic than the tutorial loop, so the goal's verdict leaves "
                             "them out and the summary names their ratio apart")
    parser.add_argument("--xla", action="store_true", help="add rows with jit_compile=True (XLA)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's default). With 1, the "
                             "images per CPU-second column measures the work of a step, whatever else runs")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: trace --steps steps of each configuration with the TensorFlow "
                             "profiler and print the op time per step by kind of op")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "pretraining.json"))
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--note", default="", help="a sentence added to the docs section (e.g. how busy the machine was)")
    parser.add_argument("--from-json", default=None,
                        help="re-report a previous results file (table, JSON, docs) without measuring")
    args = parser.parse_args(argv)
    if args.from_json:
        import json

        with open(args.from_json, encoding="utf-8") as f:
            payload = json.load(f)
        report(payload, args)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    data = make_data(args.size, args.batch)
    if args.profile:
        profile(args, data)
        return
    spe = args.steps_per_execution
    common = (args.model, args.discriminator, data, args.steps, args.warmup)
    configs = [
        ("tutorial loop (tf.function)", "pix2pix", lambda: tutorial_loop(*common)),
        ("Pix2Pix.fit", "pix2pix", lambda: fit_rate("pix2pix", *common, False)),
        ("Pix2Pix.fit, fused_batch_norm=False", "pix2pix", lambda: fit_rate(
            "pix2pix", *common, False, fused_batch_norm=False)),
        (f"Pix2Pix.fit, steps_per_execution={spe}", "pix2pix", lambda: fit_rate("pix2pix", *common, False, spe)),
        ("Autoencoder.fit", "autoencoder", lambda: fit_rate("autoencoder", *common, False)),
        ("Autoencoder.fit, fused_batch_norm=False", "autoencoder", lambda: fit_rate(
            "autoencoder", *common, False, fused_batch_norm=False)),
    ]
    if args.precision != "float32":
        from temzoo.inference.precision import resolve_precision

        precision = resolve_precision(args.precision)
        if precision != "float32":  # rows in another arithmetic than the tutorial's: reported apart from the goal
            configs += [
                (f"{PRECISION_ROW} {precision}", "pix2pix", lambda: fit_rate(
                    "pix2pix", *common, False, precision=precision)),
                (f"Autoencoder.fit, precision {precision}", "autoencoder", lambda: fit_rate(
                    "autoencoder", *common, False, precision=precision)),
            ]
    if args.xla:
        configs += [
            ("Pix2Pix.fit + XLA", "pix2pix", lambda: fit_rate("pix2pix", *common, True)),
            ("Autoencoder.fit + XLA", "autoencoder", lambda: fit_rate("autoencoder", *common, True)),
        ]
    rates = {name: [] for name, _, _ in configs}
    cpu_rates = {name: [] for name, _, _ in configs}
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    measures = {}
    for name, _, prepare in configs:  # build, trace and warm up every configuration once
        start = time.perf_counter()
        measures[name] = prepare()
        print(f"prepared {name} in {time.perf_counter() - start:.1f} s", flush=True)
    for round_index in range(args.rounds):
        # Alternate the order, so a load that rises or falls during a round favours no row.
        for name, _, _ in (configs if round_index % 2 == 0 else configs[::-1]):
            cpu = time.process_time()
            rates[name].append(measures[name]())
            cpu_rates[name].append(args.steps * args.batch / (time.process_time() - cpu))
            print(f"round {round_index + 1}/{args.rounds}  {name:48s} {rates[name][-1]:8.1f} img/s "
                  f"{cpu_rates[name][-1]:8.1f} img/CPU-s", flush=True)
    payload = {
        "machine": machine(), "setting": vars(args), "rates": rates, "cpu_rates": cpu_rates,
        "methods": {name: method for name, method, _ in configs},
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    report(payload, args)


def summarize(payload):
    """Rows (median, min, max, ratio to the tutorial loop) and a verdict on the 1.2x goal.

    The goal counts as met only if the best configuration's median is >= 1.2x the
    tutorial's AND its slowest round beats the tutorial's fastest round; otherwise
    the difference is within the run-to-run spread and is reported as such.
    """
    rates = payload["rates"]
    methods = payload.get("methods") or {r["configuration"]: r["method"] for r in payload["rows"]}
    names = list(rates)
    tutorial = names[0]
    baseline = statistics.median(rates[tutorial])
    rows = []
    for name in names:
        median = statistics.median(rates[name])
        paired = [a / b for a, b in zip(rates[name], rates[tutorial], strict=True)]
        pix2pix = methods[name] == "pix2pix"
        rows.append({
            "configuration": name, "method": methods[name], "images_per_s": round(median, 2),
            "min": round(min(rates[name]), 2), "max": round(max(rates[name]), 2),
            "vs_tutorial": round(median / baseline, 3) if pix2pix else None,
            # Each round's ratio to the tutorial's run of the same round: measured close in
            # time, so less affected by a load that changes between rounds.
            "paired_ratio_median": round(statistics.median(paired), 3) if pix2pix else None,
            "rounds_faster": f"{sum(r > 1 for r in paired)}/{len(paired)}" if pix2pix else None,
        })
        if payload.get("cpu_rates"):
            # Images per CPU-second of this process: the work per image, less sensitive to other jobs
            # (with --threads 1 nothing spins idle).
            cpu = payload["cpu_rates"]
            rows[-1]["img_per_cpu_s"] = round(statistics.median(cpu[name]), 2)
            rows[-1]["cpu_vs_tutorial"] = (round(statistics.median(cpu[name]) / statistics.median(cpu[tutorial]), 3)
                                           if pix2pix else None)
    same_arithmetic = [r for r in rows if r["method"] == "pix2pix" and r["configuration"] != tutorial
                       and not r["configuration"].startswith(PRECISION_ROW)]
    best = max(same_arithmetic, key=lambda r: r["images_per_s"])
    tutorial_max = max(rates[tutorial])
    if best["vs_tutorial"] >= GOAL and best["min"] > tutorial_max:
        verdict = "met"
    elif best["vs_tutorial"] >= GOAL:
        verdict = (f"not established: the median ratio is {best['vs_tutorial']:.2f}, but the slowest round of "
                   f"{best['configuration']} ({best['min']:.2f} img/s) is below the tutorial's fastest "
                   f"({tutorial_max:.2f} img/s), so the difference is within the run-to-run spread")
    else:
        verdict = "NOT met"
    summary = (f"Best Pix2Pix configuration: {best['configuration']}, median {best['vs_tutorial']:.2f}x the "
               f"tutorial loop (median of per-round ratios {best['paired_ratio_median']:.2f}x, faster in "
               f"{best['rounds_faster']} rounds). Goal >= {GOAL}x: {verdict}.")
    if payload.get("cpu_rates"):
        best_cpu = max(same_arithmetic, key=lambda r: r["cpu_vs_tutorial"])
        summary += (f" Per CPU-second (the work per image): best {best_cpu['configuration']}, "
                    f"{best_cpu['cpu_vs_tutorial']:.2f}x the tutorial loop; goal >= {GOAL}x "
                    f"{'met' if best_cpu['cpu_vs_tutorial'] >= GOAL else 'NOT met'} by this measure.")
    for r in rows:
        if r["configuration"].startswith(PRECISION_ROW):
            summary += (f" In another arithmetic ({r['configuration']}, what `pretrain --precision auto` runs on this "
                        f"machine): {r['vs_tutorial']:.2f}x the float32 tutorial loop (paired "
                        f"{r['paired_ratio_median']:.2f}x, faster in {r['rounds_faster']} rounds"
                        + (f"; {r['cpu_vs_tutorial']:.2f}x per CPU-second" if r.get("cpu_vs_tutorial") else "")
                        + "), not counted for the goal, which compares equal arithmetic.")
    return rows, summary, verdict == "met"


def report(payload, args):
    rows, summary, met = summarize(payload)
    payload["rows"], payload["goal_met"] = rows, met
    table = markdown_table(rows, ["configuration", "method", "images_per_s", "min", "max", "vs_tutorial",
                                  "paired_ratio_median", "rounds_faster"]
                           + (["img_per_cpu_s", "cpu_vs_tutorial"] if payload.get("cpu_rates") else []))
    print()
    print(table)
    print(summary)
    write_json(args.json, payload)
    if args.no_docs:
        return
    info, setting = payload["machine"], payload["setting"]
    gpus = ", ".join(info["gpus"]) or "none"
    load = payload.get("load_average")
    load_text = (f" Load average (1 min) before/after: {load['before'][0]:.1f}/{load['after'][0]:.1f} on "
                 f"{info['cpus']} CPUs." if load else "")
    note = f" {args.note}" if args.note else ""
    threads = setting.get("threads")
    command = "python benchmarks/pretraining.py" + "".join(
        f" --{key.replace('_', '-')} {setting[key]}" for key in ("size", "batch", "steps", "rounds", "threads", "precision")
        if setting.get(key))
    note = (f" `{command}`." + (f" TensorFlow ran {threads} intra-/inter-op thread(s), so `img_per_cpu_s` "
                                "(images per CPU-second of the process) measures the work per image whatever "
                                "else runs; `cpu_vs_tutorial` is its ratio." if threads else "") + note)
    text = (
        "## Pretraining throughput (`benchmarks/pretraining.py`)\n\n"
        f"Pix2Pix ({setting['model']} generator, {setting['discriminator']} discriminator) and the autoencoder "
        f"twin, training images/s at {setting['size']}x{setting['size']}, batch {setting['batch']}, median "
        f"(min, max) of {setting['rounds']} interleaved rounds of {setting['steps']} timed steps after tracing "
        f"and warm-up. Machine: {info['cpus']} CPUs, GPUs: {gpus}, TensorFlow {info['tensorflow']}, "
        f"{info['date']}.{load_text}{note} The baseline is the TensorFlow pix2pix tutorial's `@tf.function` "
        "step called from a Python loop (same models, losses and data).\n\n"
        f"{table}\n\n{summary}\n"
    )
    write_section("pretraining", text, force=args.force_docs)


if __name__ == "__main__":
    main()
