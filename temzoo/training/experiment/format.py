"""Text of the experiment's numbers: values with their decimals, mean ± std, fractions, budgets, tables."""

from temzoo.training.experiment.settings import METRIC_DECIMALS


def fmt_value(value, metric):
    if value is None:
        return "n/a"
    return f"{value:.{METRIC_DECIMALS.get(metric, 3)}f}"


def fmt_mean_std(stats, metric):
    """``"0.812 ± 0.013 (n=3)"``; ``"0.812 (n=1)"`` for one seed."""
    if not stats or stats.get("mean") is None:
        return "n/a"
    text = fmt_value(stats["mean"], metric)
    if stats.get("std") is not None:
        text += f" ± {fmt_value(stats['std'], metric)}"
    return text + f" (n={stats['n']})"


def fmt_fraction(fraction):
    return f"{fraction * 100:g}%"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def init_label(row):
    if row["init"] == "random":
        return "random"
    return f"{row['init']} ({row['weights']})" if row.get("weights") else row["init"]


def budget_text(budget):
    test = "all test images" if budget.get("test_images") is None else f"the first {budget['test_images']} test images"
    return (f"{budget['epochs']} epochs x {budget['steps_per_epoch']} steps, batch {budget['batch_size']}, "
            f"{budget['patch_size']} px random crops with dihedral augmentation, Adam lr {budget['learning_rate']:g}; "
            f"validation on the first {budget['validation_images']} validation images after every epoch; "
            f"test metrics on {test}")


def data_text(spec):
    text = f"`{spec['name']}`"
    if spec.get("config"):
        text += " with config " + ", ".join(f"{k}={v}" for k, v in spec["config"].items())
    return text
