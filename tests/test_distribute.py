"""Strategies: one step on 2 replicas = one step on one device for the same global batch
(weights and reported metrics), and multi-worker training on loopback."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from temzoo.models.patchgan import PatchGANDiscriminator
from temzoo.models.unet import UNet
from temzoo.pretraining import build_trainer
from temzoo.training import distribute

GLOBAL_BATCH = 4


def _two_cpus():
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(cpus) >= 2, "conftest.pytest_configure should have created 2 logical CPU devices"
    return distribute.get_strategy(cpus[:2])


def _pairs():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(GLOBAL_BATCH, 16, 16, 1)).astype("float32")
    noisy = (clean + 0.5 * rng.normal(size=clean.shape)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(GLOBAL_BATCH)


def _build(strategy, method, normalization, depth=2, optimizer=None):
    def make_generator():
        return UNet(depth=depth, base_filters=4, normalization=normalization, groups=2, name="g")

    def make_discriminator():
        return PatchGANDiscriminator(num_layers=1, base_filters=4, normalization=normalization, groups=2, name="d")

    return build_trainer(strategy, method, make_generator, make_discriminator,
                                    g_optimizer=optimizer, d_optimizer=optimizer)


def _sgd():
    return keras.optimizers.SGD(learning_rate=0.05)


def _networks(trainer):
    return [trainer.generator] + ([trainer.discriminator] if hasattr(trainer, "discriminator") else [])


@pytest.mark.parametrize("method,normalization", [("pix2pix", "batch"), ("autoencoder", "group")])
def test_two_replicas_match_one_device(method, normalization):
    """Same initial weights, same global batch of 4: the update and the reported metrics agree.

    SGD makes the update proportional to the gradient, so a gradient summed
    over replicas without the 1/N scaling (or BN statistics that are not
    synchronized) would show up as a wrong update; Adam would hide a scale
    error. Tolerances: updates agree to 1e-4 of the largest update, weights
    (including BN moving statistics) to 1e-5 relative, reported metrics to 1e-5
    relative (float32 sums in a different order).
    """
    mirrored = _two_cpus()
    single = distribute.get_strategy()
    one = _build(single, method, normalization, depth=1, optimizer=_sgd)
    two = _build(mirrored, method, normalization, depth=1, optimizer=_sgd)
    for a, b in zip(_networks(one), _networks(two), strict=True):
        b.set_weights(a.get_weights())
    before = [w.copy() for net in _networks(one) for w in net.get_weights()]
    assert mirrored.num_replicas_in_sync == 2

    h1 = one.fit(_pairs(), epochs=1, verbose=0, shuffle=False).history
    h2 = two.fit(_pairs(), epochs=1, verbose=0, shuffle=False).history

    after1 = [w for net in _networks(one) for w in net.get_weights()]
    after2 = [w for net in _networks(two) for w in net.get_weights()]
    d1 = np.concatenate([(a - w).ravel() for a, w in zip(after1, before, strict=True)])
    d2 = np.concatenate([(a - w).ravel() for a, w in zip(after2, before, strict=True)])
    assert np.abs(d1).max() > 1e-4  # a step was taken
    assert np.abs(d1 - d2).max() <= 1e-4 * np.abs(d1).max()
    # moving statistics of synchronized BN are updated identically too
    np.testing.assert_allclose(np.concatenate([a.ravel() for a in after2]),
                               np.concatenate([a.ravel() for a in after1]), rtol=1e-5, atol=1e-6)
    # metrics are true global-batch values, not divided by the 2 replicas
    assert set(h1) == set(h2) and h1
    for key in h1:
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5, err_msg=key)
    key = "g_l1" if method == "pix2pix" else "loss"
    assert h1[key][0] > 0.3  # a real L1 of unit-variance images, not a per-replica fraction


def test_strategy_selection_and_jit_policy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    default = distribute.get_strategy()
    assert default.num_replicas_in_sync == 1 and not distribute.is_distributed(default)
    assert distribute.resolve_jit_compile(default, True) is True
    mirrored = _two_cpus()
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert distribute.get_strategy(["/cpu:0", "/cpu:1"]) is mirrored  # reused, whatever the spelling
    assert distribute.resolve_jit_compile(mirrored, True) is False
    assert distribute.is_chief(mirrored)
    assert distribute.check_global_batch(mirrored, 8) == 4
    with pytest.raises(ValueError, match="multiple of 2"):
        distribute.check_global_batch(mirrored, 3)
    with pytest.raises(ValueError, match="empty"):
        distribute.get_strategy([])


def test_tf_config_parsing(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}))
    assert distribute.tf_config_workers() == ["127.0.0.1:1", "127.0.0.1:2"]
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.tf_config_workers()


def test_jit_compile_is_refused_inside_a_strategy():
    mirrored = _two_cpus()
    with mirrored.scope():
        g = UNet(depth=1, base_filters=2)
        from temzoo.pretraining import Autoencoder

        trainer = Autoencoder(g)
        with pytest.raises(ValueError, match="jit_compile"):
            trainer.compile(jit_compile=True)


def test_mixed_bfloat16_builds_and_trains_one_step_on_cpu():
    mixed = build_trainer(
        distribute.get_strategy(), "pix2pix",
        lambda: UNet(depth=1, base_filters=4, normalization="group", groups=2),
        lambda: PatchGANDiscriminator(num_layers=1, base_filters=4, normalization="group", groups=2),
        precision="mixed_bfloat16",
    )
    assert mixed.generator.get_layer("enc0_0_conv").compute_dtype == "bfloat16"
    assert mixed.generator.get_layer("enc0_0_conv").kernel.dtype == "float32"
    assert not isinstance(mixed.g_optimizer, keras.optimizers.LossScaleOptimizer)  # bf16 needs no scaling
    history = mixed.fit(_pairs(), epochs=1, verbose=0, shuffle=False).history
    assert all(np.isfinite(v[0]) for v in history.values())
    from temzoo.inference.precision import float32_copy, model_precision

    assert model_precision(mixed.generator) == "mixed_bfloat16"
    exported = float32_copy(mixed.generator)
    assert model_precision(exported) == "float32"
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(exported(x).numpy(), mixed.generator(x).numpy(), atol=0.1)  # bf16 rounding


def test_mixed_float16_wraps_the_optimizers_in_loss_scaling():
    trainer = build_trainer(
        distribute.get_strategy(), "pix2pix",
        lambda: UNet(depth=1, base_filters=2, normalization="group", groups=2),
        lambda: PatchGANDiscriminator(num_layers=1, base_filters=2, normalization="group", groups=2),
        precision="mixed_float16",
    )
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.generator.get_layer("enc0_0_conv").compute_dtype == "float16"
    assert keras.config.dtype_policy().name == "float32"


# -- multi-worker ----------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CONFIG"] = sys.argv[1]
    import numpy as np
    from temzoo.pretraining import pretrain

    images = np.random.default_rng(0).random((8, 32, 32)).astype("float32") + 0.5
    result = pretrain(
        "unet_b2_p22", images, "pix2pix", out=sys.argv[2], patch_size=16, batch_size=4, epochs=1,
        steps_per_epoch=3, validation_steps=0, shuffle_buffer=0, samples=0,
        model_overrides={"base_filters": 4}, discriminator="patchgan_16",
        discriminator_overrides={"base_filters": 4}, verbose=0,
    )
    np.savez(sys.argv[3], *result.generator.get_weights())
    replicas = result.trainer.distribute_strategy.num_replicas_in_sync
    print("RESULT", json.dumps({"step": result.step, "replicas": replicas, "card": result.card is not None}))
    """
)


def _free_ports(n):
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_multi_worker_mirrored_two_processes_on_loopback(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    procs = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
            procs.append(subprocess.Popen(
                [sys.executable, str(script), tf_config, str(out), str(tmp_path / f"w{index}.npz")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            ))
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for index, (p, text) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"worker {index} failed:\n{text[-4000:]}"
    results = [json.loads(text.split("RESULT ", 1)[1].splitlines()[0]) for text in outputs]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["step"] for r in results] == [3, 3]
    assert [r["card"] for r in results] == [True, False]  # only the chief exports
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    assert (out / "unet_b2_p22_pix2pix.keras").exists()
    assert not [n for n in os.listdir(out / "checkpoints") if n.startswith(".partial")]
