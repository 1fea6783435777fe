"""The experiment's results: aggregation over seeds, findings, and the markdown page (from the runs JSON only)."""

import math
import os

from temzoo.training.experiment.format import (
    budget_text,
    data_text,
    fmt_fraction,
    fmt_mean_std,
    fmt_value,
    init_label,
    markdown_table,
)
from temzoo.training.experiment.plots import write_plots
from temzoo.training.experiment.settings import (
    CONVERGENCE_FRACTION,
    CONVERGENCE_METRIC,
    FAILED,
    LARGE_UNET,
    NOT_AVAILABLE,
    OK,
    SMALL_UNET,
    TABLE_METRICS,
)


def mean_std(values):
    """``(mean, std, n)``: the sample std (ddof=1) over seeds; std is ``None`` for a single value."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None, None, 0
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std, n


def stats(values):
    """``{"mean", "std", "n"}`` of :func:`mean_std`."""
    mean, std, n = mean_std(values)
    return {"mean": mean, "std": std, "n": n}


def group_key(record):
    return (record["study"], record["task"], record["dataset"], record["model"], record["init"], record["fraction"])


def aggregate(records):
    """One row per (study, task, dataset, model, init, fraction): mean/std/n of every test metric and convergence.

    Rows of cells that did not run carry ``status`` (``not available`` or
    ``failed``) and their ``reason``.
    """
    groups = {}
    for record in records:
        groups.setdefault(group_key(record), []).append(record)
    rows = []
    for key, members in groups.items():
        study, task, dataset, model, init, fraction = key
        done = [r for r in members if r["status"] == OK]
        row = {"study": study, "task": task, "dataset": dataset, "model": model, "init": init, "fraction": fraction,
               "weights": members[0].get("weights"), "seeds": sorted(r["seed"] for r in done), "n": len(done)}
        if not done:
            row["status"] = members[0]["status"]
            row["reason"] = members[0].get("reason", "")
            rows.append(row)
            continue
        row["status"] = OK
        row["receptive_field"] = done[0].get("receptive_field")
        row["parameters"] = done[0].get("parameters")
        metrics = sorted({m for r in done for m in r.get("test", {})})
        row["test"] = {m: stats([r["test"].get(m) for r in done]) for m in metrics}
        row["convergence_epochs"] = stats([r["convergence"]["epochs"] for r in done])
        row["convergence_seconds"] = stats([r["convergence"]["seconds"] for r in done])
        row["train_seconds"] = stats([r.get("train_seconds") for r in done])
        curves = [r["history"].get(f"val_{CONVERGENCE_METRIC[task]}", []) for r in done]
        length = min(len(c) for c in curves)
        row["curve_metric"] = f"val_{CONVERGENCE_METRIC[task]}"
        row["curve_mean"] = [sum(c[i] for c in curves) / len(curves) for i in range(length)]
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- findings


def _compare(a, b, metric):
    """How mean a compares with mean b: 'higher', 'lower' or 'within the seed spread' (|diff| <= larger std)."""
    diff = a["mean"] - b["mean"]
    spread = max(a.get("std") or 0.0, b.get("std") or 0.0)
    single = a["n"] < 2 or b["n"] < 2
    if abs(diff) <= spread:
        verdict = "within the seed spread of"
    else:
        verdict = "higher than" if diff > 0 else "lower than"
    note = " (one seed: no spread to compare with)" if single else ""
    return verdict, f"{fmt_value(a['mean'], metric)} vs {fmt_value(b['mean'], metric)}{note}"


def findings(rows):
    """Plain statements of what the aggregated rows show for each claim of the paper (numbers from ``rows``)."""
    out = []
    pre = [r for r in rows if r["study"] == "pretraining" and r["status"] == OK]
    index = {(r["task"], r["model"], r["init"], r["fraction"]): r for r in pre}
    for task in sorted({r["task"] for r in pre}):
        metric = TABLE_METRICS[task][0]
        for (t, model, init, fraction), row in sorted(index.items()):
            if t != task or init == "random":
                continue
            base = index.get((task, model, "random", fraction))
            if not base:
                continue
            verdict, numbers = _compare(row["test"][metric], base["test"][metric], metric)
            out.append(f"{task}, {model}, {fmt_fraction(fraction)} labels: {init} init gives test {metric} "
                       f"{verdict} random init ({numbers}).")
            ce, cb = row["convergence_epochs"], base["convergence_epochs"]
            if ce["mean"] is not None and cb["mean"] is not None:
                out.append(f"{task}, {model}, {fmt_fraction(fraction)} labels: epochs to 90% of the final "
                           f"validation {CONVERGENCE_METRIC[task]}: {ce['mean']:.1f} ({init}) vs {cb['mean']:.1f} "
                           "(random).")
        for fraction in sorted({r["fraction"] for r in pre if r["task"] == task}):
            small = [index.get((task, SMALL_UNET, init, fraction)) for init in ("pix2pix", "autoencoder")]
            large = index.get((task, LARGE_UNET, "random", fraction))
            for row in filter(None, small):
                if large:
                    verdict, numbers = _compare(row["test"][metric], large["test"][metric], metric)
                    out.append(f"{task}, {fmt_fraction(fraction)} labels: small {SMALL_UNET} ({row['init']}) is "
                               f"{verdict} the larger random {LARGE_UNET} in test {metric} ({numbers}).")
            group = [r for r in pre if r["task"] == task and r["fraction"] == fraction]
            if group:
                best = max(group, key=lambda r: r["test"][metric]["mean"])
                out.append(f"{task}, {fmt_fraction(fraction)} labels: highest mean test {metric}: {best['model']} "
                           f"({init_label(best)}), {fmt_value(best['test'][metric]['mean'], metric)}.")
    rf = [r for r in rows if r["study"] == "receptive_field" and r["status"] == OK]
    for dataset in sorted({r["dataset"] for r in rf}):
        group = sorted((r for r in rf if r["dataset"] == dataset), key=lambda r: r["receptive_field"])
        best = max(group, key=lambda r: r["test"]["iou"]["mean"])
        out.append(f"receptive field, {dataset}: highest mean test IoU {fmt_value(best['test']['iou']['mean'], 'iou')}"
                   f" with {best['model']} (receptive field {best['receptive_field']} px; tried "
                   f"{', '.join(str(r['receptive_field']) for r in group)} px).")
    return out


def _status_text(row):
    return f"{row['status']}: {row.get('reason', '')}".rstrip(": ")


def _image(img_paths, page_dir, key, alt):
    if img_paths and key in img_paths:
        rel = os.path.relpath(img_paths[key], page_dir) if page_dir else img_paths[key]
        return [f"![{alt}]({rel})", ""]
    return []


def _introduction(payload):
    settings, records, machine = payload["settings"], payload["records"], payload["machine"]
    out = [f"# Results: {payload.get('title', 'pretrained vs random init')}", ""]
    out += [
        f"Produced by `{payload.get('command', '')}` ({settings['name']} settings) on {machine['date']}, "
        f"{machine['cpus']} CPU cores, GPUs: {', '.join(machine['gpus']) or 'none'}, "
        f"TensorFlow {machine['tensorflow']}; wall time {payload.get('wall_seconds', 0) / 60:.1f} min. "
        f"Runs: {sum(r['status'] == OK for r in records)} done, "
        f"{sum(r['status'] == NOT_AVAILABLE for r in records)} not available, "
        f"{sum(r['status'] == FAILED for r in records)} failed. Every number below comes from "
        f"[`{os.path.basename(payload.get('json_name', 'runs.json'))}`]({payload.get('json_name', 'runs.json')}).",
        "",
    ]
    if settings["name"] != "full":
        out += [f"This is the **{settings['name']}** preset, a reduced grid: models {', '.join(settings['models'])}; "
                f"labelled fractions {', '.join(fmt_fraction(f) for f in settings['fractions'])}; "
                f"{len(settings['seeds'])} seed(s); tasks {', '.join(settings['task_data'])}; short budgets on small "
                "builds of the synthetic datasets. It checks that the pipeline runs and shows the direction of the "
                "effects at this scale; it is not the full grid (see the end of the page).", ""]
    if payload.get("note"):
        out += [payload["note"], ""]
    out += ["Metrics: segmentation IoU and Dice of the particle class; restoration PSNR (dB, peak = the target's "
            "range) and SSIM, per image then averaged; all on the test split, whole images, tiled prediction "
            "(`temzoo.evaluate`). Mean ± sample std over seeds (n = seeds that ran). Convergence: the first epoch "
            f"whose validation {'/'.join(sorted(set(CONVERGENCE_METRIC.values())))} reaches "
            f"{CONVERGENCE_FRACTION:.0%} of the last epoch's; its wall-clock is from the start of training and "
            "includes graph tracing (epoch 1) and per-epoch validation. Read it with the final metric: a run that "
            "stays flat at a poor value 'converges' in 1 epoch. Each seed changes the labelled subset, the "
            "head (and for random init the whole network) initialisation and the augmentation; pretrained "
            "backbones are the same file for every seed.", ""]
    return out


def _find(group, model, init, fraction):
    return next((r for r in group if (r["model"], r["init"], r["fraction"]) == (model, init, fraction)), None)


def _metric_table(group, fractions, metric):
    header = ["model", "init"] + [f"test {metric}, {fmt_fraction(f)} labels" for f in fractions]
    table = []
    for model, init in dict.fromkeys((r["model"], r["init"]) for r in group):
        cells = []
        label = None
        for fraction in fractions:
            row = _find(group, model, init, fraction)
            label = label or (row and init_label(row))
            if row is None:
                cells.append("not run")
            elif row["status"] != OK:
                cells.append(_status_text(row))
            else:
                cells.append(fmt_mean_std(row["test"].get(metric), metric))
        table.append([model, label or init] + cells)
    return markdown_table(header, table)


def _convergence_table(group, fractions):
    header = ["model", "init"] + [f"epochs / s to 90%, {fmt_fraction(f)}" for f in fractions]
    table = []
    for model, init in dict.fromkeys((r["model"], r["init"]) for r in group):
        cells = []
        for fraction in fractions:
            row = _find(group, model, init, fraction)
            if row is None or row["status"] != OK:
                cells.append("—")
                continue
            ce, cs = row["convergence_epochs"], row["convergence_seconds"]
            text = "n/a" if ce["mean"] is None else f"{ce['mean']:.1f}"
            text += "" if ce.get("std") is None else f" ± {ce['std']:.1f}"
            text += " ep / " + ("n/a" if cs["mean"] is None else f"{cs['mean']:.0f} s")
            cells.append(text)
        table.append([model, init] + cells)
    return markdown_table(header, table)


def _pretraining_section(rows, settings, image):
    pre = [r for r in rows if r["study"] == "pretraining"]
    out = ["## Pretrained vs random init, by labelled fraction", ""] if pre else []
    for task in dict.fromkeys(r["task"] for r in pre):
        group = [r for r in pre if r["task"] == task]
        fractions = sorted({r["fraction"] for r in group})
        out += [f"### {task} on {group[0]['dataset']}", ""]
        for metric in TABLE_METRICS[task]:
            out += [_metric_table(group, fractions, metric), ""]
        out += [f"Convergence (validation {CONVERGENCE_METRIC[task]}):", "", _convergence_table(group, fractions), ""]
        spec = settings["task_data"][task]
        out += [f"Data: {data_text(spec)}. Budget (identical for every cell of this table): "
                f"{budget_text(settings['budget'])}. Seeds: {', '.join(str(s) for s in settings['seeds'])}.", ""]
        out += image(f"fraction_{task}", f"{task}: metric vs labelled fraction")
        out += image(f"curves_{task}", f"{task}: learning curves")
    return out


def _receptive_field_section(rows, settings, image):
    rf = [r for r in rows if r["study"] == "receptive_field"]
    if not rf:
        return []
    out = ["## Receptive field (U-Net pooling variants, random init)", ""]
    datasets_ = list(dict.fromkeys(r["dataset"] for r in rf))
    header = ["model", "receptive field (px)", "parameters"] + [f"test IoU, {d}" for d in datasets_]
    table = []
    for model in dict.fromkeys(r["model"] for r in rf):
        members = [r for r in rf if r["model"] == model]
        field = next((r.get("receptive_field") for r in members if r.get("receptive_field")), None)
        params = next((r.get("parameters") for r in members if r.get("parameters")), None)
        cells = []
        for dataset in datasets_:
            row = next((r for r in members if r["dataset"] == dataset), None)
            if row is None:
                cells.append("not run")
            elif row["status"] != OK:
                cells.append(_status_text(row))
            else:
                cells.append(fmt_mean_std(row["test"].get("iou"), "iou"))
        table.append([model, field if field is not None else "n/a", f"{params:,}" if params else "n/a"] + cells)
    out += [markdown_table(header, table), ""]
    out += ["Data: " + "; ".join(data_text(s) for s in settings["rf_data"]) + ". Budget (identical for every "
            f"cell): {budget_text(settings['rf_budget'])}; {fmt_fraction(settings['rf_fraction'])} of the "
            f"training split. Seeds: {', '.join(str(s) for s in settings['rf_seeds'])}.", ""]
    return out + image("receptive_field", "test IoU vs receptive field")


def results_page(payload, img_paths=None, page_dir=None):
    """Markdown of the experiment in ``payload`` (the runs JSON): tables, findings, plots, settings."""
    settings = payload["settings"]
    rows = aggregate(payload["records"])

    def image(key, alt):
        return _image(img_paths, page_dir, key, alt)

    out = _introduction(payload)
    out += _pretraining_section(rows, settings, image)
    out += _receptive_field_section(rows, settings, image)
    statements = findings(rows)
    if statements:
        out += ["## What the numbers say", "",
                "Generated from the table rows above: 'higher'/'lower' only when the means differ by more than the "
                "larger of the two seed stds, else 'within the seed spread'.", ""]
        out += [f"- {s}" for s in statements] + [""]
    failed = [r for r in payload["records"] if r["status"] == FAILED]
    if failed:
        out += ["## Failed runs", ""] + [f"- `{r['key']}`: {r.get('reason', '')}" for r in failed] + [""]
    if payload.get("full_grid"):
        out += ["## The full grid", "", payload["full_grid"], ""]
    return "\n".join(out).rstrip() + "\n"


def write_results(payload, page_path, img_dir):
    """PNG plots into ``img_dir`` and the markdown page at ``page_path``, from the runs payload only."""
    from temzoo.atomic import write_text

    rows = aggregate(payload["records"])
    prefix = "pretraining_effect" + ("" if payload["settings"]["name"] == "full" else f"_{payload['settings']['name']}")
    paths = write_plots(rows, img_dir, prefix=prefix)
    page = results_page(payload, paths, page_dir=os.path.dirname(os.path.abspath(page_path)))
    write_text(page_path, page)
    return page, paths
