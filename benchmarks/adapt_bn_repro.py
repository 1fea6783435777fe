"""Reproduce issue 17's inference-mode instability of fine-tuning a pretrained HRNet, small scale.

    python benchmarks/adapt_bn_repro.py --batch-norm train    # how task models fine-tuned before the fix
    python benchmarks/adapt_bn_repro.py --batch-norm frozen   # the fix (the default on trained weights)

Supervised fine-tuning of ``hrnet_pretrained`` for denoising (new head, as the issue had it)
on one synthetic 256 px HRTEM image (``temzoo.simulate``) at dose 5: 128 px patches,
batch 8, Adam 1e-3, ``--steps`` steps per epoch. After each epoch it prints PSNR in
inference mode and in training mode, on a held-out synthetic image and on the training
image. Table and reading: docs/adapt.md ("Stable fine-tuning").
"""

import argparse
import time

import keras
import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-norm", choices=("train", "frozen"), required=True)
    parser.add_argument("--head", choices=("new", "auto"), default="new")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dose", type=float, default=5.0)
    opts = parser.parse_args(argv)

    import temzoo.tasks as tasks
    from temzoo.analysis.denoising_baselines import add_poisson_noise, mean_intensity_units, psnr
    from temzoo.simulate import simulate_nanoparticles
    from temzoo.zoo.normalization import Normalizer

    rng = np.random.default_rng(0)
    clean_a = mean_intensity_units(simulate_nanoparticles(rng, 256)["clean"])
    clean_b = mean_intensity_units(simulate_nanoparticles(rng, 256)["clean"])
    noisy_a, noisy_b = add_poisson_noise(clean_a, opts.dose, rng), add_poisson_noise(clean_b, opts.dose, rng)
    norm = Normalizer("standardize")
    keras.utils.set_random_seed(0)
    model = tasks.denoising("hrnet_pretrained", head=opts.head, batch_norm=opts.batch_norm)

    def evaluate(noisy, clean):
        x, stats = norm.before(noisy)
        return {mode: round(psnr(norm.after(np.asarray(model(x[None, ..., None], training=training))[0, ..., 0], stats),
                                 clean), 2)
                for mode, training in (("infer", False), ("train", True))}

    def batch(n=8, p=128):
        x, stats = norm.before(noisy_a)
        y = (clean_a - stats[0]) / stats[1]
        corners = rng.integers(0, 256 - p, (n, 2))
        return (np.stack([x[i:i + p, j:j + p] for i, j in corners])[..., None].astype("float32"),
                np.stack([y[i:i + p, j:j + p] for i, j in corners])[..., None].astype("float32"))

    print(f"batch_norm={opts.batch_norm} epoch 0: held-out {evaluate(noisy_b, clean_b)} training image "
          f"{evaluate(noisy_a, clean_a)}", flush=True)
    for epoch in range(opts.epochs):
        started = time.time()
        for _ in range(opts.steps):
            model.train_on_batch(*batch())
        print(f"batch_norm={opts.batch_norm} epoch {epoch + 1} ({(time.time() - started) / opts.steps:.2f} s/step): "
              f"held-out {evaluate(noisy_b, clean_b)} training image {evaluate(noisy_a, clean_a)}", flush=True)


if __name__ == "__main__":
    main()
