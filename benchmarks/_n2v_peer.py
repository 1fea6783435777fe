"""The peer of benchmarks/adapt.py: Noise2Void as its authors' package ``n2v`` implements it.

Runs under the peer's own Python (a separate venv with ``n2v`` and the TensorFlow it
supports, e.g. ``tensorflow-cpu==2.15.1 n2v==0.3.3``); it does not import temzoo.

    PEER_PYTHON _n2v_peer.py --noisy noisy.npy --steps 200 --eval-every 25 --out peer.npz

Trains N2V with ``N2VConfig``'s defaults (U-Net depth 2, 32 filters, kernel 5, batch 16 of
64x64 patches, 1.5 % of pixels masked, 'uniform_withCP' replacement, MAE, Adam 4e-4,
reduce-on-plateau) on 64x64 patches of the noisy image (8-fold augmented, as
``N2V_DataGenerator`` makes them; 10 % held out for N2V's own validation) for ``--steps``
steps, and saves the prediction of the current weights at every ``--eval-every`` steps with
the training seconds so far, plus N2V's own final prediction (``predict`` after ``train``,
which reloads the weights with the best validation loss).
"""

import argparse
import os
import tempfile
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--noisy", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--eval-every", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()

    import tensorflow as tf
    from n2v.internals.N2V_DataGenerator import N2V_DataGenerator
    from n2v.models import N2V, N2VConfig

    np.random.seed(opts.seed)
    tf.random.set_seed(opts.seed)
    noisy = np.load(opts.noisy).astype(np.float32)
    patches = N2V_DataGenerator().generate_patches_from_list([noisy[None, ..., None]], shape=(64, 64))
    rng = np.random.default_rng(opts.seed)
    patches = patches[rng.permutation(len(patches))]
    n_val = max(1, len(patches) // 10)
    X, X_val = patches[n_val:], patches[:n_val]
    config = N2VConfig(X, train_steps_per_epoch=opts.eval_every, train_epochs=max(1, opts.steps // opts.eval_every),
                       train_tensorboard=False)
    folder = tempfile.mkdtemp(prefix="n2v-peer-")
    model = N2V(config, "peer", basedir=folder)
    mean, std = float(config.means[0]), float(config.stds[0])
    curve = {"step": [], "seconds": [], "cpu_seconds": [], "prediction": []}
    clock = {"train": 0.0, "cpu": 0.0, "t0": None, "c0": None}

    class Evaluate(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock["t0"], clock["c0"] = time.time(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            clock["train"] += time.time() - clock["t0"]
            clock["cpu"] += time.process_time() - clock["c0"]
            x = ((noisy - mean) / std)[None, ..., None]
            y = np.asarray(self.model(x, training=False))[0, ..., 0] * std + mean
            curve["step"].append((epoch + 1) * opts.eval_every)
            curve["seconds"].append(clock["train"])
            curve["cpu_seconds"].append(clock["cpu"])
            curve["prediction"].append(y.astype(np.float32))
            print(f"n2v step {(epoch + 1) * opts.eval_every}: {clock['train']:.1f} s", flush=True)
            clock["t0"], clock["c0"] = time.time(), time.process_time()

    model.prepare_for_training()
    model.callbacks.append(Evaluate())
    model.train(X, X_val)
    final = model.predict(noisy, axes="YX").astype(np.float32)
    np.savez_compressed(opts.out, step=np.array(curve["step"]), seconds=np.array(curve["seconds"]),
                        cpu_seconds=np.array(curve["cpu_seconds"]), prediction=np.stack(curve["prediction"]),
                        final=final)
    print(f"wrote {opts.out}", flush=True)
    os.environ.get("KEEP_N2V_FOLDER") or __import__("shutil").rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
