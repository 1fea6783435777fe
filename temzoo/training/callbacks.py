"""The Keras callbacks of a fine-tuning run (:mod:`temzoo.training.pipeline`).

* :class:`BestModelExporter`: export the model, with its card, of the epoch with the best validation loss;
* :class:`StopOnNonFiniteLoss`: stop with :class:`temzoo.errors.TrainingDivergedError` on a NaN loss;
* :class:`StepProgress`: a progress line (``logging`` INFO) every few seconds and per epoch;
* :class:`PreciseBatchNorm`: BatchNormalization statistics of the current weights before each validation;
* :class:`EpochClock`: cumulative wall-clock seconds at every epoch end.
"""

import itertools
import logging
import math
import time

import keras

from temzoo.errors import BadInputError, TrainingDivergedError

logger = logging.getLogger(__name__)


class BestModelExporter(keras.callbacks.Callback):
    """Export the model (atomically, with its card) as it was when ``monitor`` reached its minimum.

    The best epoch's weights (BatchNormalization statistics included) are kept in memory and
    written once, when training ends; the model is left holding them, as Keras'
    ``EarlyStopping(restore_best_weights=True)`` leaves it. Writing a model at every
    improvement cost HRNet a second each, for a file no one sees before the run is complete
    (:func:`temzoo.training.run_folder.write_run` builds a run in a staging folder).
    """

    def __init__(self, path, monitor, card_fields):
        super().__init__()
        self.path, self.monitor, self.card_fields = path, monitor, card_fields
        self.best = math.inf
        self.best_epoch = None
        self.best_logs = {}
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        value = logs.get(self.monitor)
        if value is None:
            raise BadInputError(f"cannot select the best model: no {self.monitor!r} in the logs ({sorted(logs)}).")
        if value < self.best:
            self.best, self.best_epoch, self.best_logs = float(value), epoch + 1, logs
            self.best_weights = self.model.get_weights()
            logger.info("epoch %d: %s improved to %.4f; keeping this model", epoch + 1, self.monitor, value)

    def on_train_end(self, logs=None):
        from temzoo.tasks import save

        if self.best_weights is None:
            return  # no epoch finished with a finite validation loss: nothing to export
        self.model.set_weights(self.best_weights)
        metrics = {k[4:]: float(v) for k, v in self.best_logs.items() if k.startswith("val_")}
        save(self.model, self.path, **self.card_fields, epoch=self.best_epoch, metrics={"validation": metrics})
        logger.info("exported the model of epoch %d (%s %.4f)", self.best_epoch, self.monitor, self.best)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise :class:`TrainingDivergedError` on the first NaN or infinite (validation) loss."""

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _check(self, key, logs, where):
        value = (logs or {}).get(key)
        if value is not None and not math.isfinite(float(value)):
            self.model.stop_training = True
            raise TrainingDivergedError(
                f"Training diverged: the {'validation ' if key.startswith('val_') else ''}loss became {value} "
                f"{where}. Nothing was saved. Lower --learning-rate (it was {self.learning_rate:g}; "
                "try 10x smaller) or check the data for NaN pixels."
            )

    def on_train_batch_end(self, batch, logs=None):
        self._check("loss", logs, f"at step {batch + 1} of epoch {self.epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check("val_loss", logs, f"after epoch {epoch + 1}")


class StepProgress(keras.callbacks.Callback):
    """A line per ``interval`` seconds (and per epoch): step, loss, seconds per step, time left."""

    def __init__(self, epochs, steps, interval=10.0):
        super().__init__()
        self.epochs, self.steps, self.interval = epochs, steps, interval
        self.done = 0
        self.started = self.last = self.first = None
        self.epoch = 0

    def on_train_begin(self, logs=None):
        self.started = self.last = time.time()
        logger.info("training: %d epoch(s) of %d steps; the first step also builds the training graph (slower)",
                    self.epochs, self.steps)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        now = time.time()
        if self.done == 1:
            self.first = now  # the first step includes building the graph: not a measure of speed
        if now - self.last >= self.interval or batch + 1 == self.steps or self.done == 1:
            self.last = now
            loss = (logs or {}).get("loss")
            line = f"epoch {self.epoch + 1}/{self.epochs}  step {batch + 1}/{self.steps}  loss {float(loss):.4f}"
            if self.done > 1:
                rate = (now - self.first) / (self.done - 1)
                left = rate * (self.epochs * self.steps - self.done)
                line += f"  {rate:.1f} s/step, about {left:.0f} s of training left"
            else:
                line += f"  (first step, with graph building: {now - self.started:.0f} s)"
            logger.info(line)

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: v for k, v in (logs or {}).items() if k.startswith("val_")}
        if shown:
            logger.info("epoch %d/%d validation: %s", epoch + 1, self.epochs,
                        ", ".join(f"{k[4:]} {float(v):.4f}" for k, v in shown.items()))


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before every validation, set BatchNormalization's moving statistics from ``count`` training batches.

    Fine-tuning moves the weights faster than the moving averages follow
    (momentum 0.9: after 15 steps a fifth of the pretrained statistics
    remain), and inference-mode predictions then differ from what was
    trained, most at the image border, where zero padding makes the
    features least typical: a false-positive frame (issue 15). Precise BN
    (:func:`temzoo.training.batch_norm.recalibrate_batch_norm`) removes the lag; the
    validated and exported model uses statistics of its own weights.
    """

    def __init__(self, inputs, count):
        super().__init__()
        self.inputs, self.count = inputs, int(count)
        self.batches_used = 0
        self._iterator = None
        self._forward = None

    def on_test_begin(self, logs=None):
        from temzoo.training.batch_norm import recalibrate_batch_norm, training_forward

        if self._iterator is None:
            self._iterator = iter(self.inputs)
            self._forward = training_forward(self.model)  # traced once, reused at every validation
        batches = itertools.islice(self._iterator, self.count)
        self.batches_used = recalibrate_batch_norm(self.model, batches, self._forward)


class EpochClock(keras.callbacks.Callback):
    """Cumulative wall-clock seconds since the start of ``fit`` at every epoch end (``seconds``)."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self.start, 3))
