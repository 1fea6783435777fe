"""README's main command, measured: test IoU, the border of the predictions, time and CPU time.

    python benchmarks/quickstart.py                       # the README command's defaults
    python benchmarks/quickstart.py --steps-per-epoch 10  # any finetune() keyword as --name value
    python benchmarks/quickstart.py --json benchmarks/results/quickstart.json

Runs ``temzoo.finetune.finetune("hrnet_pretrained", "synthetic_tem/au_np", ...)``
with :data:`temzoo.finetune.DEFAULTS` (what ``temzoo-cli finetune --model
hrnet_pretrained --dataset synthetic_tem/au_np --task segmentation`` does), then
predicts every test image whole (``temzoo.predict``) and compares the share of
foreground in the outer ``--ring`` pixels with the truth (issue 15: a
false-positive frame along the border). Prints the wall time, the process's CPU
time (user + sys; on a shared machine wall time says little: with 2 idle cores
the wall time is about CPU time / 2 or more) and the load average before and after.
The dataset must be prepared (``temzoo-cli data build synthetic_tem/au_np``);
its generation is not timed.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def border_rows(model, dataset, split, ring, data_dir=None):
    """Foreground share in the outer ``ring`` pixels (prediction and truth) and in the interior."""
    from temzoo import datasets, predict

    pred_ring, true_ring, pred_in, true_in = [], [], [], []
    for example in datasets.load(dataset, split, data_dir=data_dir):
        image = np.asarray(example["image"])[..., 0]
        truth = np.asarray(example["mask"])[..., 0] > 0
        labels = predict(model, image).argmax(-1) > 0
        edge = np.zeros(image.shape, bool)
        edge[:ring], edge[-ring:], edge[:, :ring], edge[:, -ring:] = True, True, True, True
        pred_ring.append(labels[edge].mean())
        true_ring.append(truth[edge].mean())
        pred_in.append(labels[~edge].mean())
        true_in.append(truth[~edge].mean())
    return {
        "ring_px": ring,
        "ring_foreground_predicted": float(np.mean(pred_ring)),
        "ring_foreground_truth": float(np.mean(true_ring)),
        "ring_foreground_predicted_max": float(np.max(pred_ring)),
        "interior_foreground_predicted": float(np.mean(pred_in)),
        "interior_foreground_truth": float(np.mean(true_in)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="hrnet_pretrained")
    parser.add_argument("--dataset", default="synthetic_tem/au_np")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--ring", type=int, default=2, help="border width in pixels")
    parser.add_argument("--json", default=None, help="write the results here")
    args, extra = parser.parse_known_args(argv)
    overrides = {}
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        overrides[key.lstrip("-").replace("-", "_")] = _value(value)

    from temzoo.logs import configure

    configure("normal")
    load_before = os.getloadavg()
    started, cpu_started = time.time(), _cpu_seconds()
    from temzoo.finetune import DEFAULTS, finetune

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "quickstart")
        result = finetune(args.model, args.dataset, "segmentation", out=out, overwrite=True, data_dir=args.data_dir,
                          progress="lines", **overrides)
        wall, cpu = time.time() - started, _cpu_seconds() - cpu_started
        load_after = os.getloadavg()
        from temzoo import load

        border = border_rows(load(result["paths"]["model"]), args.dataset, "test", args.ring, args.data_dir)
    settings = {k: v for k, v in DEFAULTS.replace(**overrides).as_dict().items() if k not in ('model', 'dataset_config')}
    row = {
        "model": args.model,
        "dataset": args.dataset,
        "settings": settings,
        "test": result["test"],
        "validation": result["validation"],
        "best_epoch": result["best_epoch"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "border": border,
        "python": sys.version.split()[0],
    }
    print()
    print(f"test iou {result['test']['iou']:.4f}  dice {result['test']['dice']:.4f}  "
          f"(validation iou {result['validation']['iou']:.4f}, best epoch {result['best_epoch']})")
    print(f"outer {args.ring} px foreground: predicted {border['ring_foreground_predicted']:.3f} "
          f"(max {border['ring_foreground_predicted_max']:.3f}), truth {border['ring_foreground_truth']:.3f}; "
          f"interior predicted {border['interior_foreground_predicted']:.3f}, "
          f"truth {border['interior_foreground_truth']:.3f}")
    print(f"finetune(): {wall:.0f} s wall, {cpu:.0f} s CPU (user+sys); load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    if args.json:
        from temzoo.atomic import write_text

        write_text(args.json, json.dumps(row, indent=2) + "\n")
    return row


if __name__ == "__main__":
    main()
