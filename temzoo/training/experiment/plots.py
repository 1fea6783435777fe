"""The experiment's PNGs: metric vs labelled fraction, learning curves, metric vs receptive field."""

import os

from temzoo.training.experiment.format import fmt_fraction
from temzoo.training.experiment.settings import CONVERGENCE_METRIC, INITS, OK, TABLE_METRICS


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


INIT_STYLE = {"pix2pix": "-", "autoencoder": "--", "random": ":"}


def write_plots(rows, img_dir, prefix="pretraining_effect"):
    """Metric vs labelled fraction per init, learning curves, metric vs receptive field; returns the PNG paths."""
    from matplotlib.ticker import MaxNLocator

    from temzoo.inference.plots import save_figure

    paths = {}
    pre = [r for r in rows if r["study"] == "pretraining" and r["status"] == OK]
    for task in sorted({r["task"] for r in pre}):
        metric = TABLE_METRICS[task][0]
        models = [m for m in dict.fromkeys(r["model"] for r in pre if r["task"] == task)]
        fig = _figure(3.6 * len(models), 3.2)
        for i, model in enumerate(models):
            ax = fig.add_subplot(1, len(models), i + 1)
            for init in INITS:
                points = sorted((r["fraction"], r["test"][metric]) for r in pre
                                if r["task"] == task and r["model"] == model and r["init"] == init)
                if not points:
                    continue
                ax.errorbar([p[0] * 100 for p in points], [p[1]["mean"] for p in points],
                            yerr=[p[1]["std"] or 0.0 for p in points], linestyle=INIT_STYLE[init], marker="o",
                            capsize=3, label=init)
            ax.set_xscale("log")
            ax.set_xlabel("labelled fraction (%)")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(model, fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle(f"{task}: test {metric} vs labelled fraction (mean ± std over seeds)", fontsize=10)
        paths[f"fraction_{task}"] = save_figure(fig, os.path.join(img_dir, f"{prefix}_fraction_{task}.png"))

        fractions = sorted({r["fraction"] for r in pre if r["task"] == task})
        fig = _figure(4.2 * len(fractions), 3.4)
        colours = {m: f"C{j}" for j, m in enumerate(models)}
        for i, fraction in enumerate(fractions):
            ax = fig.add_subplot(1, len(fractions), i + 1)
            for row in pre:
                if row["task"] != task or row["fraction"] != fraction:
                    continue
                curve = row["curve_mean"]
                ax.plot(range(1, len(curve) + 1), curve, color=colours[row["model"]],
                        linestyle=INIT_STYLE[row["init"]], marker=".", label=f"{row['model']} {row['init']}")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(f"validation {CONVERGENCE_METRIC[task]}")
            ax.set_title(f"{fmt_fraction(fraction)} labels", fontsize=9)
            ax.legend(fontsize=6)
        fig.suptitle(f"{task}: learning curves (mean over seeds)", fontsize=10)
        paths[f"curves_{task}"] = save_figure(fig, os.path.join(img_dir, f"{prefix}_curves_{task}.png"))

    rf = [r for r in rows if r["study"] == "receptive_field" and r["status"] == OK]
    if rf:
        fig = _figure(5.5, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        for dataset in sorted({r["dataset"] for r in rf}):
            points = sorted((r["receptive_field"], r["test"]["iou"], r["model"]) for r in rf if r["dataset"] == dataset)
            ax.errorbar([p[0] for p in points], [p[1]["mean"] for p in points],
                        yerr=[p[1]["std"] or 0.0 for p in points], marker="o", capsize=3, label=dataset)
        ax.set_xscale("log")
        ax.set_xlabel("receptive field (px)")
        ax.set_ylabel("test IoU")
        ax.set_title("segmentation vs receptive field (U-Net pooling variants, random init)", fontsize=9)
        ax.legend(fontsize=7)
        paths["receptive_field"] = save_figure(fig, os.path.join(img_dir, f"{prefix}_receptive_field.png"))
    return paths
