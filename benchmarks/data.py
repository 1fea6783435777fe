"""Data benchmarks: simulator speed, default build times, input pipeline vs. train step.

    python benchmarks/data.py            # full run (a few minutes on 2 cores)
    python benchmarks/data.py --quick    # fewer images, no full builds

Measures
  1. synthetic_tem simulator images/s at 256x256 (HRTEM au_np, STEM atomic),
     one process and one process per core (multiprocessing);
  2. wall time of building each default synthetic_tem config (TFDS, ZLIB records);
  3. pretext_pairs images/s (synthetic_tem/unlabeled from TFDS, patch 128, global
     batch 8) against the images/s of a plain L1 train step of unet_b3_p222 on
     the same batch shape. Goal: pipeline >= 5x the train step.
Prints tables, writes benchmarks/results/data.json and the "data" section of docs/benchmarks.md.
"""

import argparse
import multiprocessing
import os
import tempfile
import time

import numpy as np
from _report import ROOT, add_docs_option, machine, markdown_table, write_json, write_section

SIZE = 256


def _simulate_many(args):
    family, start, count = args
    from temzoo.simulate import simulate_lattice, simulate_nanoparticles

    simulate = simulate_nanoparticles if family == "au_np" else simulate_lattice
    for i in range(start, start + count):
        simulate(np.random.default_rng([0, i]), SIZE)
    return count


def simulator_rows(count, workers):
    rows = []
    for family in ("au_np", "atomic"):
        _simulate_many((family, 10_000, 3))  # warm caches
        t0, c0 = time.perf_counter(), time.process_time()
        _simulate_many((family, 0, count))
        single = count / (time.perf_counter() - t0)
        per_cpu_s = count / (time.process_time() - c0)
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            pool.map(_simulate_many, [(family, 20_000 + w, 2) for w in range(workers)])
            t0 = time.perf_counter()
            per = count // workers
            done = sum(pool.map(_simulate_many, [(family, w * per, per) for w in range(workers)]))
            parallel = done / (time.perf_counter() - t0)
        rows.append({"family": family, "image_size": SIZE, "images_per_s_1_process": single,
                     f"images_per_s_{workers}_processes": parallel, "images_per_cpu_s": per_cpu_s,
                     f"images_per_s_{workers}_free_cores_from_cpu_time": workers * per_cpu_s})
    return rows


def build_rows(data_dir):
    import tensorflow_datasets as tfds
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import SyntheticTem

    tfds.disable_progress_bar()
    rows = []
    for config in SyntheticTem.BUILDER_CONFIGS:
        builder = SyntheticTem(config=config.name, data_dir=data_dir)
        t0 = time.perf_counter()
        builder.download_and_prepare()
        seconds = time.perf_counter() - t0
        total = sum(s.num_examples for s in builder.info.splits.values())
        rows.append({"config": f"synthetic_tem/{config.name}", "examples": total, "build_s": seconds,
                     "examples_per_s": total / seconds,
                     "size_MB": sum(os.path.getsize(os.path.join(builder.data_dir, f))
                                    for f in os.listdir(builder.data_dir)) / 1e6})
    return rows


def pipeline_vs_train(data_dir, quick, patch=128, batch=8):
    import keras
    import tensorflow as tf
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import SyntheticTemConfig

    import temzoo
    from temzoo import data, datasets

    config = None
    if quick:
        config = SyntheticTemConfig(name="unlabeled_bench", num_train=64, num_validation=1, num_test=1)
    images = datasets.load("synthetic_tem/unlabeled", "train", data_dir=data_dir, config=config)
    pairs = data.pretext_pairs(images, patch_size=patch, batch_size=batch, seed=0)
    it = iter(pairs)
    for _ in range(10):
        next(it)
    steps = 40 if quick else 150
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    pipeline = steps * batch / (time.perf_counter() - t0)

    model = temzoo.build("unet_b3_p222")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.MeanAbsoluteError())
    x, y = next(it)
    fixed = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(fixed, steps_per_epoch=3, epochs=1, verbose=0)  # tracing
    train_steps = 10 if quick else 30
    t0 = time.perf_counter()
    model.fit(fixed, steps_per_epoch=train_steps, epochs=1, verbose=0)
    train = train_steps * batch / (time.perf_counter() - t0)
    return {"patch": patch, "global_batch": batch, "model": "unet_b3_p222", "pipeline_images_per_s": pipeline,
            "train_step_images_per_s": train, "ratio": pipeline / train}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_docs_option(parser)
    parser.add_argument("--quick", action="store_true", help="fewer images, no full default builds")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    sim = simulator_rows(20 if args.quick else 200, args.workers)
    print(markdown_table(sim, list(sim[0])), flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        builds = [] if args.quick else build_rows(data_dir)
        if builds:
            print(markdown_table(builds, list(builds[0])), flush=True)
        pipe = pipeline_vs_train(data_dir, args.quick)
    print(markdown_table([pipe], list(pipe)), flush=True)

    load = os.getloadavg()
    payload = {"machine": machine(), "load_average_1_5_15_min": load, "quick": args.quick, "simulator": sim, "builds": builds, "pipeline": pipe}
    write_json(os.path.join(ROOT, "benchmarks", "results", "data.json"), payload)
    m = payload["machine"]
    md = [
        "## Data: simulator, builds, input pipeline",
        "",
        f"`python benchmarks/data.py{' --quick' if args.quick else ''}` on {m['cpus']} CPUs "
        f"({m['platform']}, TF {m['tensorflow']}, {m['date']}; GPUs: {m['gpus'] or 'none'}); "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min): the CPUs were "
        "shared with other jobs, so these are lower bounds.",
        "",
        "Simulator, 256x256 images (goal: >= 100 images/s on 2 cores). `images_per_cpu_s` is images per "
        "CPU-second of one process (numpy's FFTs are single-threaded), which does not depend on what else runs; "
        "the last column is that times the number of worker processes, the rate on that many free cores:",
        "",
        markdown_table(sim, list(sim[0])),
        "",
    ]
    if builds:
        md += ["Default `synthetic_tem` builds (goal: each under 2 minutes on 2 cores):", "",
               markdown_table(builds, list(builds[0])), ""]
    md += ["`pretext_pairs` (synthetic_tem/unlabeled, Poisson pairs, standardised, dihedral) vs. a plain L1 "
           "train step (goal: ratio >= 5):", "", markdown_table([pipe], list(pipe))]
    write_section("data", "\n".join(md), force=args.force_docs)


if __name__ == "__main__":
    main()
