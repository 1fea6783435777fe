"""Checkpoints: an interrupted write never replaces the previous good one, and a killed
pretraining run resumes from its last checkpoint when the same command is re-run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from temzoo.errors import BadInputError
from temzoo.models.unet import UNet
from temzoo.pretraining.checkpoints import CheckpointStore


def _model_and_optimizer(depth=1):
    keras.utils.set_random_seed(0)
    model = UNet(depth=depth, base_filters=2, normalization="none")
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _shift(model, value):
    model.set_weights([w + value for w in model.get_weights()])


def test_an_interrupted_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    model, optimizer = _model_and_optimizer()
    store = CheckpointStore(tmp_path, {"generator": model, "g_optimizer": optimizer})
    store.save(1, {"epoch": 0})
    good = [w.copy() for w in model.get_weights()]

    _shift(model, 1.0)
    original = store._write

    def write_weights_then_die(folder, state):
        store.checkpoint.write(os.path.join(folder, "ckpt"))  # weights are on disk, state.json is not
        raise KeyboardInterrupt("killed while writing")

    store._write = write_weights_then_die
    with pytest.raises(KeyboardInterrupt):
        store.save(2, {"epoch": 0})
    store._write = original

    assert store.latest() == str(tmp_path / "ckpt-000000001")
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 1
    assert not (tmp_path / "ckpt-000000002").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".partial")]
    state = store.restore()
    assert state["step"] == 1
    for a, b in zip(model.get_weights(), good, strict=True):
        np.testing.assert_array_equal(a, b)


def test_leftovers_of_a_killed_write_are_ignored_and_cleaned(tmp_path):
    model, optimizer = _model_and_optimizer()
    store = CheckpointStore(tmp_path, {"generator": model})
    store.save(3)
    # what a kill -9 in the middle of the next write leaves behind
    partial = tmp_path / ".partial-ckpt-000000004-abc"
    partial.mkdir()
    (partial / "ckpt.index").write_bytes(b"\x00garbage")
    incomplete = tmp_path / "ckpt-000000009"  # no state.json: never committed
    incomplete.mkdir()
    assert store.latest() == str(tmp_path / "ckpt-000000003")
    (tmp_path / "latest.json").unlink()  # even without the pointer, the newest COMPLETE one is used
    assert store.latest() == str(tmp_path / "ckpt-000000003")
    CheckpointStore(tmp_path, {"generator": model})  # a new run removes partial folders
    assert not partial.exists()


def test_old_checkpoints_are_pruned_after_the_new_one_is_committed(tmp_path):
    model, _ = _model_and_optimizer()
    store = CheckpointStore(tmp_path, {"generator": model}, keep=2)
    for step in (1, 2, 3, 4):
        store.save(step)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000000003", "ckpt-000000004", "latest.json"]


def test_a_checkpoint_of_another_architecture_is_refused_with_the_folder_named(tmp_path):
    model, optimizer = _model_and_optimizer(depth=1)
    CheckpointStore(tmp_path, {"generator": model, "g_optimizer": optimizer}).save(1)
    other, other_optimizer = _model_and_optimizer(depth=2)
    store = CheckpointStore(tmp_path, {"generator": other, "g_optimizer": other_optimizer})
    with pytest.raises(BadInputError, match="ckpt-000000001"):
        store.restore()


KILL_IN_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from temzoo.models.unet import UNet
    from temzoo.pretraining.checkpoints import CheckpointStore

    model = UNet(depth=1, base_filters=2, normalization="none")
    store = CheckpointStore(sys.argv[1], {"generator": model})
    store.save(1)
    model.set_weights([w + 1.0 for w in model.get_weights()])

    def write_then_get_killed(folder, state):
        store.checkpoint.write(os.path.join(folder, "ckpt"))
        os.kill(os.getpid(), signal.SIGKILL)

    store._write = write_then_get_killed
    store.save(2)
    """
)


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_checkpoint_write(tmp_path):
    script = tmp_path / "kill_in_write.py"
    script.write_text(KILL_IN_WRITE)
    folder = tmp_path / "ckpts"
    proc = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [n for n in os.listdir(folder) if n.startswith(".partial")]  # the interrupted write is there...
    model = UNet(depth=1, base_filters=2, normalization="none")
    store = CheckpointStore(folder, {"generator": model})  # ...and ignored, then removed
    assert store.restore()["step"] == 1
    assert sorted(os.listdir(folder)) == ["ckpt-000000001", "latest.json"]


RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from temzoo.logs import configure
    from temzoo.pretraining import pretrain

    configure("normal")  # temzoo's log messages (resuming, checkpoints) on stderr, as the CLI shows them

    images = 1.0 + np.random.default_rng(0).random((6, 48, 48)).astype("float32")
    result = pretrain(
        "unet_b2_p22", images, "pix2pix", out=sys.argv[1], patch_size=32, batch_size=4, epochs=2,
        steps_per_epoch=6, checkpoint_every=1, validation_steps=1, shuffle_buffer=0, samples=1,
        model_overrides={"base_filters": 4}, discriminator="patchgan_16",
        discriminator_overrides={"base_filters": 4}, verbose=1,
    )
    print("RESULT", result.step, result.resumed_from_step, flush=True)
    """
)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    latest = out / "checkpoints" / "latest.json"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 240
        while not latest.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert latest.exists(), "no checkpoint appeared in time"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    killed_at = json.loads(latest.read_text())["step"]
    assert 1 <= killed_at < 12
    assert not (out / "unet_b2_p22_pix2pix.keras").exists()

    # The same command again: resumes from the last checkpoint and completes.
    second = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    resumed_line = next(line for line in second.stderr.splitlines() if line.startswith("resuming "))
    step, resumed_from = map(int, second.stdout.split("RESULT ", 1)[1].split()[:2])
    assert step == 12 and resumed_from == killed_at and f"from step {resumed_from}" in resumed_line
    rows = (out / "log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [["1", "6"], ["2", "12"]]  # no epoch logged twice
    assert json.loads(latest.read_text())["step"] == 12
    assert (out / "unet_b2_p22_pix2pix.keras").exists()
