"""Choosing a ``tf.distribute`` strategy (the trainers are built inside its scope by
:func:`temzoo.pretraining.build_trainer`).

* one device (CPU or a single GPU): the default strategy; XLA (``jit_compile``)
  may be switched on;
* several local GPUs, or explicit ``devices`` (e.g. the two logical CPUs of the
  test suite): ``MirroredStrategy``;
* ``TF_CONFIG`` naming more than one worker: ``MultiWorkerMirroredStrategy``
  (one process per machine, all running the same command).

Batches are always given with the GLOBAL batch size: the strategy splits each
batch across the ``num_replicas_in_sync`` replicas.

Normalisation under replicas
----------------------------
temzoo's default normalisation, ``"batch"``, is a *synchronized*
BatchNormalization: under a strategy, the batch mean and variance are
all-reduced across replicas, so N devices compute exactly what one device
computes for the same global batch (tested to ~1e-5). Plain per-replica
BatchNormalization would normalise each replica's slice on its own and give
different, batch-split-dependent results. ``"group"`` (GroupNormalization)
does not look at the batch at all, so it is equally replica-independent and is
the better choice for very small per-device batches (1-2 images); it is what
``normalization="group"`` selects on the generators and the PatchGAN.

XLA is off under a strategy: Keras' ``jit_compile`` fails with Mirrored and
MultiWorkerMirrored strategies.
"""

import json
import os

_multi_worker_strategy = None
_mirrored_strategies = {}


def tf_config_workers():
    """Worker addresses (chief first) named by ``TF_CONFIG`` (empty when unset), read by
    TensorFlow's ``TFConfigClusterResolver``."""
    if not os.environ.get("TF_CONFIG"):
        return []
    import tensorflow as tf

    try:
        spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON ({exc}): {os.environ.get('TF_CONFIG')!r}") from exc
    return [address for job in ("chief", "worker") if job in spec.jobs for address in spec.job_tasks(job)]


def get_strategy(devices=None):
    """The strategy for this process.

    Args:
        devices: explicit device names for a ``MirroredStrategy`` (e.g.
            ``["/cpu:0", "/cpu:1"]``). ``None`` picks automatically: several
            ``TF_CONFIG`` workers -> MultiWorkerMirroredStrategy, several local
            GPUs -> MirroredStrategy, else the default (one-device) strategy.
    """
    import tensorflow as tf

    global _multi_worker_strategy
    if devices is None and len(tf_config_workers()) > 1:
        # It may be created only once per process, before other TensorFlow work.
        if _multi_worker_strategy is None:
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return _multi_worker_strategy
    if devices is not None:
        devices = list(devices)
        if len(devices) == 0:
            raise ValueError("devices= is an empty list; give device names such as ['/gpu:0', '/gpu:1'] or None.")
        if len(devices) == 1:
            return tf.distribute.OneDeviceStrategy(devices[0])
        return _mirrored(tuple(devices))
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return _mirrored(tuple(g.name for g in gpus))
    return tf.distribute.get_strategy()


def _mirrored(devices):
    """One MirroredStrategy per device set and process: two strategies over the same
    devices allocate clashing collective-op keys ("Shape mismatch in the collective
    instance ...") in TensorFlow 2.21, so the first one is reused."""
    import tensorflow as tf

    devices = tuple(_canonical_device(d) for d in devices)
    if devices not in _mirrored_strategies:
        _mirrored_strategies[devices] = tf.distribute.MirroredStrategy(devices=list(devices))
    return _mirrored_strategies[devices]


def _canonical_device(name):
    """``"/gpu:1"`` -> ``"/job:localhost/replica:0/task:0/device:GPU:1"``."""
    import tensorflow as tf

    spec = tf.DeviceSpec.from_string(name)
    return spec.replace(job=spec.job or "localhost", replica=spec.replica or 0, task=spec.task or 0).to_string()


def is_distributed(strategy):
    """True for strategies that replicate (Mirrored, MultiWorkerMirrored)."""
    import tensorflow as tf

    return strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MirroredStrategy | tf.distribute.MultiWorkerMirroredStrategy
    )


def is_multi_worker(strategy):
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1


def is_chief(strategy):
    """True where this process should write the run's files (always, unless multi-worker)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy):
    """``"chief"``/``"worker0"``... in multi-worker runs, ``""`` otherwise."""
    if not is_multi_worker(strategy):
        return ""
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}{resolver.task_id}"


def resolve_jit_compile(strategy, jit_compile):
    """XLA only on a single device: under a replicating strategy it is switched off."""
    if jit_compile and is_distributed(strategy):
        return False
    return bool(jit_compile)


def check_global_batch(strategy, batch_size):
    """The global batch must split evenly across replicas (equal per-replica batches keep
    the loss scaling exact)."""
    n = strategy.num_replicas_in_sync
    if batch_size < n or batch_size % n:
        raise ValueError(
            f"batch size {batch_size} cannot be split evenly across {n} replicas; "
            f"give a global batch size that is a multiple of {n}."
        )
    return batch_size // n
