"""Keras callbacks of a pretraining run: step counting and checkpoints, the CSV
log (Keras' ``CSVLogger``), the loss-curve PNG, sample grids and a progress bar that
knows the run's epoch count.

The run's position is one :class:`RunState` shared by the callbacks: ``fit``
is called once per epoch (each epoch has its own seeded data pipeline, so a
resumed run only skips the batches already done in the current epoch).
"""

import csv
import logging
import os
import time

import keras
import numpy as np

from temzoo.atomic import atomic_open, atomic_path
from temzoo.pretraining.rundir import LOG_NAME, drop_previous_run_if_checkpointed  # noqa: F401  (LOG_NAME: public)

logger = logging.getLogger(__name__)


class RunState:
    """Position of a run: global step, completed epochs, images seen."""

    def __init__(self, step=0, epoch=0, batch_size=1, steps_per_epoch=1, seed=0, metrics=None):
        self.step = int(step)
        self.epoch = int(epoch)  # completed epochs
        self.batch_size = int(batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.seed = int(seed)
        self.metrics = dict(metrics or {})
        self.epoch_start_step = self.step

    @property
    def images_seen(self):
        return self.step * self.batch_size

    def as_dict(self):
        return {
            "step": self.step,
            "epoch": self.epoch,
            "images_seen": self.images_seen,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "seed": self.seed,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, d):
        return cls(
            step=d["step"], epoch=d["epoch"], batch_size=d["batch_size"], steps_per_epoch=d["steps_per_epoch"],
            seed=d.get("seed", 0), metrics=d.get("metrics"),
        )


def _floats(logs):
    return {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}


class StepCheckpoint(keras.callbacks.Callback):
    """Counts steps into ``state``; saves ``store`` every ``every`` steps and at each epoch end.

    A step-based save is skipped on the last step of an epoch: the epoch-end
    save follows right after, once validation has run.
    """

    def __init__(self, store, state, every, verbose=1):
        super().__init__()
        self.store, self.state, self.every = store, state, int(every or 0)
        self.level = logging.INFO if verbose else logging.DEBUG

    def on_epoch_begin(self, epoch, logs=None):
        self.state.epoch_start_step = self.state.step

    def on_train_batch_end(self, batch, logs=None):
        self.state.step = self.state.epoch_start_step + batch + 1
        last_of_epoch = self.state.step % self.state.steps_per_epoch == 0
        if self.every and self.state.step % self.every == 0 and not last_of_epoch:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch = epoch + 1
        self.state.metrics = _floats(logs)
        self._save()

    def _save(self):
        path = self.store.save(self.state.step, self.state.as_dict())
        if path:
            logger.log(self.level, "checkpoint at step %d: %s", self.state.step, path)


class DropPreviousRun(keras.callbacks.Callback):
    """Deletes ``out/.previous-run`` (an overwritten run) as soon as a checkpoint of the new
    run exists (placed after :class:`StepCheckpoint`)."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def on_train_batch_end(self, batch, logs=None):
        drop_previous_run_if_checkpointed(self.out)

    on_epoch_end = on_train_batch_end


class CSVHistory(keras.callbacks.CSVLogger):
    """Keras' ``CSVLogger`` with the run's position: one row per epoch of ``epoch`` (counted
    from 1), ``step``, ``images_seen``, ``seconds``, then the metrics.

    The log survives a resume: rows are appended (``append=True``), and :func:`truncate_log`
    drops rows past the checkpoint the run resumes from. A row with columns the file lacks
    (e.g. validation switched on when resuming) rewrites it, atomically, with the union header.
    ``writer=False`` (a non-chief worker) writes nothing.
    """

    def __init__(self, path, state, writer=True):
        super().__init__(path, append=True)
        self.state, self.enabled = state, writer

    def on_train_begin(self, logs=None):
        if self.enabled:
            super().on_train_begin(logs)

    def on_train_end(self, logs=None):
        if self.enabled:
            super().on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled:
            return
        row = {"step": self.state.step, "images_seen": self.state.images_seen,
               "seconds": round(time.time() - self._t0, 3), **{k: f"{v:.6g}" for k, v in _floats(logs).items()}}
        if self.keys is None:
            self.keys = self._columns(list(row))
        super().on_epoch_end(epoch + 1, {k: row.get(k, "") for k in self.keys})
        os.fsync(self.csv_file.fileno())

    def _columns(self, keys):
        """The file's columns (after ``epoch``) with ``keys`` added; rewrites the file when it lacks some."""
        rows = read_log(self.filename)
        with open(self.filename, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        columns = [k for k in header if k != "epoch"]
        missing = [k for k in keys if k not in columns]
        if header and missing:
            self.csv_file.close()
            _write_rows(self.filename, header + missing, rows)
            self.csv_file = open(self.filename, "a", newline="", encoding="utf-8")  # noqa: SIM115 (CSVLogger closes it)
        return columns + missing


def read_log(path):
    """Rows of a CSV log as dicts (empty when missing)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_row(path, row):
    """Append ``row`` (a dict) to the CSV log at ``path``; new columns rewrite the file with the union header."""
    rows = read_log(path)
    header = list(rows[0].keys()) if rows else []
    if rows and all(k in header for k in row):
        with open(path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
            f.flush()
            os.fsync(f.fileno())
        return
    header += [k for k in row if k not in header]
    _write_rows(path, header, rows + [row])


def _write_rows(path, header, rows):
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)


def truncate_log(path, max_step):
    """Drop log rows written after step ``max_step`` (a resumed run redoes them)."""
    rows = read_log(path)
    kept = [r for r in rows if int(float(r.get("step") or 0)) <= max_step]
    if len(kept) != len(rows):
        _write_rows(path, list(rows[0].keys()), kept)
    return len(rows) - len(kept)


class LossCurves(keras.callbacks.Callback):
    """Redraws ``loss_curves.png`` from the CSV log after each epoch."""

    def __init__(self, log_path, png_path, writer=True):
        super().__init__()
        self.log_path, self.png_path, self.writer = log_path, png_path, writer

    def on_epoch_end(self, epoch, logs=None):
        if self.writer:
            plot_loss_curves(read_log(self.log_path), self.png_path)


def plot_loss_curves(rows, png_path):
    """Training losses (left) and validation PSNR/SSIM (right) per epoch, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return None
    epochs = [int(float(r["epoch"])) for r in rows]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for key in ("g_loss", "g_gan", "g_l1", "d_loss", "loss", "val_l1"):
        values = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
        if any(np.isfinite(values)):
            left.plot(epochs, values, marker="o", ms=3, label=key)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_title("losses")
    left.legend(fontsize=8)
    ax2 = right.twinx()
    for ax, key, colour in ((right, "val_psnr", "tab:blue"), (ax2, "val_ssim", "tab:red")):
        values = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
        ax.plot(epochs, values, marker="o", ms=3, color=colour, label=key)
        ax.set_ylabel(key, color=colour)
    right.set_xlabel("epoch")
    right.set_title("validation")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return png_path


class SampleGrid(keras.callbacks.Callback):
    """Every epoch, writes ``samples/epoch-XXXX.png``: noisy | generated | clean for fixed validation patches."""

    def __init__(self, noisy, clean, folder, writer=True):
        super().__init__()
        self.noisy, self.clean, self.folder, self.writer = np.asarray(noisy), np.asarray(clean), folder, writer

    def on_epoch_end(self, epoch, logs=None):
        if not self.writer:
            return
        generated = np.asarray(self.model.generator(self.noisy, training=False))
        write_sample_grid(
            os.path.join(self.folder, f"epoch-{epoch + 1:04d}.png"), self.noisy, generated, self.clean,
            title=f"epoch {epoch + 1}",
        )


def write_sample_grid(path, noisy, generated, clean, title=None):
    """PNG grid, one row per patch: noisy | generated | clean (each scaled like the clean patch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(noisy)
    fig = Figure(figsize=(6, 2 * n + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(n, 3))
    for i in range(n):
        lo, hi = np.percentile(clean[i], [0.5, 99.5])
        for j, (label, image) in enumerate((("noisy", noisy[i]), ("generated", generated[i]), ("clean", clean[i]))):
            ax = axes[i, j]
            ax.imshow(np.asarray(image)[..., 0], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


class RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, with ``Epoch e/E`` counting the whole run although ``fit`` runs one epoch at a time."""

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = int(total_epochs)

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs  # what the epoch header counts to
