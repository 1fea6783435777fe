"""The ``tf.data`` options every temzoo input pipeline carries: no autotuning thread.

With autotuning on, each ``tf.data`` iterator starts a background thread that
re-optimises the pipeline at doubling intervals, up to one a minute. In
TensorFlow 2.21 deleting the iterator waits for that thread's current sleep to
end: a training iterator that had lived 90-130 s took 32 s or more to delete in
4 of 17 trials, at no CPU cost (a debugger showed the main thread in the
iterator's destructor, joining the thread in ``Model::OptimizeLoop``); with
autotuning off, none of 10 waited. Keras deletes its training iterator when ``fit`` returns, so
README's quick start sat silent for up to a minute after training.

Without the thread nothing else changes for our pipelines: ``AUTOTUNE``
parallelism becomes the number of cores and ``prefetch(AUTOTUNE)`` buffers
still grow on their own (TensorFlow's per-iterator prefetch autotuner).
"""

import tensorflow as tf


def without_autotune_thread(ds):
    """``ds`` with ``tf.data``'s autotuning (and its background thread) switched off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
