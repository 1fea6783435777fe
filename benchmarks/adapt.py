"""Self-supervised adaptation on real micrographs: PSNR against steps and time (issue 17).

    python benchmarks/adapt.py --peer-python /work/peer_venv/bin/python
    python benchmarks/adapt.py --images pystem__high_entropy_alloy.tif --doses 5 --steps 40   # a quick look
    python benchmarks/adapt.py --render-only        # re-draw docs/adapt.md and the plots from the JSON

Protocol, per reference image and dose: central crop (``--crop``) of a reference from
``--folder`` (offset = 0.1st percentile removed, clipped at 0, mean 1: "mean-intensity
units"); noisy counts ``Poisson(dose x reference)``; then, on the noisy image alone:

* ``shipped``: ``hrnet_pretrained`` as it is (no training);
* ``adapt_pretrained``: ``temzoo.adapt`` from ``hrnet_pretrained`` (``--method``, default ``auto``);
* ``adapt_random``: the same from random weights (architecture ``hrnet_w18_small_skip``);
* extra ``--compare-methods`` rows: adapt from the pretrained model with another method;
* ``peer_n2v``: Noise2Void as the ``n2v`` package implements it, its defaults, same number of
  steps (``benchmarks/_n2v_peer.py`` under ``--peer-python``; skipped with a message when absent).

PSNR (``temzoo.analysis.denoising_baselines.psnr``: the reference's range as peak) of the prediction
divided by the dose, every ``--eval-every`` steps, with the training seconds (wall and CPU)
so far, excluding the evaluations. Writes ``benchmarks/results/adapt.json``, ``docs/adapt.md``
(tables) and ``docs/img/adapt_psnr_steps.png``, ``docs/img/adapt_psnr_time.png``.
The micrographs are read from ``--folder`` only; nothing of them is stored but numbers.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _report import ROOT, machine, markdown_table, write_json

DEFAULT_FOLDER = os.path.join(ROOT, "..", "shared", "real_micrographs")
DEFAULT_IMAGES = ("pystem__high_entropy_alloy.tif", "kemstem__NSMO110_cryo_registered.tif",
                  "ncem__L2083_LAABF_1p5m.tif", "arda__Pt_carbon1.tif")
JSON_PATH = os.path.join(ROOT, "benchmarks", "results", "adapt.json")
PAGE = os.path.join(ROOT, "docs", "adapt.md")
IMG_DIR = os.path.join(ROOT, "docs", "img")
PRETRAINED = "hrnet_pretrained"
ARCHITECTURE = "hrnet_w18_small_skip"


def reference_from(image, offset_percentile=0.1):
    """Mean-intensity units: offset (low percentile) removed, clipped at 0, mean 1."""
    image = np.asarray(image, dtype=np.float64)
    image = np.clip(image - np.percentile(image, offset_percentile), 0, None)
    return image / image.mean()


def central_crop(image, size, multiple=32):
    side = min(size, *image.shape)
    side -= side % multiple
    r0, c0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[r0:r0 + side, c0:c0 + side]


def uptime():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return None


class Curve:
    """PSNR of an in-training model every ``every`` steps, with training time net of evaluations."""

    def __init__(self, noisy, reference, dose, every, steps=None):
        self.noisy, self.reference, self.dose, self.every = noisy, reference, dose, every
        self.steps = set(steps or ())
        self.rows, self.eval_wall, self.eval_cpu = [], 0.0, 0.0
        self.t0, self.c0 = time.time(), time.process_time()

    def score(self, model):
        import temzoo
        from temzoo.analysis.denoising_baselines import psnr

        return psnr(temzoo.predict(model, self.noisy) / self.dose, self.reference)

    def __call__(self, step, model):
        if (step not in self.steps) if self.steps else step % self.every:
            return
        t, c = time.time(), time.process_time()
        value = self.score(model)
        self.rows.append({"step": step, "seconds": t - self.t0 - self.eval_wall,
                          "cpu_seconds": c - self.c0 - self.eval_cpu, "psnr": value})
        self.eval_wall += time.time() - t
        self.eval_cpu += time.process_time() - c


VARIANTS = ("plain", "ensemble8", "splits8", "splits8_dihedral")


def predict_splits(model, noisy, fraction, count, seed, dihedral=False):
    """Mean prediction over ``count`` binomial splits' input halves ``n1 / p`` (the dose the network trained on),
    each in its own flip/quarter turn when ``dihedral``."""
    import temzoo
    from temzoo.adaptation.splitting import binomial_split
    from temzoo.inference.ensemble import dihedral as turn
    from temzoo.inference.ensemble import inverse_dihedral

    rng = np.random.default_rng([seed, 17])
    total = np.zeros(noisy.shape, np.float64)
    for k in range(count):
        half, _ = binomial_split(noisy, fraction, rng)
        if dihedral:
            total += inverse_dihedral(temzoo.predict(model, np.ascontiguousarray(turn(half, k % 8))), k % 8)
        else:
            total += temzoo.predict(model, half)
    return total / count


def variants(model, noisy, reference, dose, fraction=None, seed=0):
    """PSNR of the final model predicted plainly, with the 8-fold self-ensemble and (counts methods) averaged
    over 8 binomial splits (plain and each in its own flip/turn), with the seconds each took."""
    import temzoo
    from temzoo.analysis.denoising_baselines import psnr

    out = {}
    ways = {"plain": lambda: temzoo.predict(model, noisy), "ensemble8": lambda: temzoo.predict(model, noisy, ensemble=8)}
    if fraction is not None:
        ways["splits8"] = lambda: predict_splits(model, noisy, fraction, 8, seed)
        ways["splits8_dihedral"] = lambda: predict_splits(model, noisy, fraction, 8, seed, dihedral=True)
    for name, way in ways.items():
        t = time.time()
        out[name] = {"psnr": psnr(way() / dose, reference), "seconds": time.time() - t}
    return out


def run_adapt(model, noisy, reference, dose, opts, method, out):
    import temzoo

    curve = Curve(noisy, reference, dose, opts.eval_every, opts.eval_steps and [*opts.eval_steps, opts.steps])
    result = temzoo.adapt(model, noisy, out=out, overwrite=True, steps=opts.steps, method=method,
                          checkpoint_every=0, callback=curve, seed=opts.seed, **settings(opts.set))
    exported = temzoo.load(result.model_path)
    final = curve.score(exported)  # the exported model (after precise BN if any)
    if curve.rows and curve.rows[-1]["step"] == opts.steps:
        curve.rows[-1]["psnr"] = final
    extra = {}
    if opts.variants:
        fraction = result.card.get("adaptation", {}).get("settings", {}).get("split_fraction")
        extra["variants"] = variants(exported, noisy, reference, dose,
                                     fraction if result.method == "binomial" else None, opts.seed)
    return {"method": result.method, "curve": curve.rows, "psnr": final, "card_head": result.card.get("head"),
            "batch_norm": result.card.get("batch_norm"), **extra}


def _loads(payload, key):
    """``payload[key]`` as a list of load triples (one per invocation)."""
    item = payload.get(key) or []
    return list(item) if item and isinstance(item[0], list) else [item] if item else []


def _after(previous, load):
    return _loads(previous, "load_after") + [load] if previous else load


def settings(pairs):
    """``["learning_rate=1e-4", ...]`` -> ``{"learning_rate": 1e-4}`` (values parsed as JSON where they can be)."""
    out = {}
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_peer(peer_python, noisy, reference, dose, opts, folder):
    from temzoo.analysis.denoising_baselines import psnr

    noisy_path, out_path = os.path.join(folder, "noisy.npy"), os.path.join(folder, "peer.npz")
    np.save(noisy_path, noisy.astype(np.float32))
    command = [peer_python, os.path.join(ROOT, "benchmarks", "_n2v_peer.py"), "--noisy", noisy_path,
               "--steps", str(opts.steps), "--eval-every", str(opts.eval_every), "--out", out_path,
               "--seed", str(opts.seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the peer failed (exit {done.returncode}): {done.stderr[-2000:]}")
    data = np.load(out_path)
    rows = [{"step": int(s), "seconds": float(t), "cpu_seconds": float(c), "psnr": psnr(p / dose, reference)}
            for s, t, c, p in zip(data["step"], data["seconds"], data["cpu_seconds"], data["prediction"], strict=True)]
    return {"method": "n2v (package defaults)", "curve": rows, "psnr": rows[-1]["psnr"],
            "psnr_best_validation": psnr(data["final"] / dose, reference)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default=DEFAULT_FOLDER, help="folder of reference micrographs")
    parser.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES))
    parser.add_argument("--crop", type=int, default=256, help="central crop side in pixels")
    parser.add_argument("--doses", nargs="+", type=float, default=[2.0, 5.0])
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default: adapt's default budget)")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-steps", nargs="*", type=int, default=None,
                        help="evaluate temzoo's runs at these steps (and the last) instead of every --eval-every")
    parser.add_argument("--method", default="auto", help="adapt's method for adapt_pretrained/adapt_random")
    parser.add_argument("--compare-methods", nargs="*", default=[],
                        help="further methods to run from the pretrained model (e.g. blind_spot binomial)")
    parser.add_argument("--runs", nargs="*", default=["shipped", "adapt_pretrained", "adapt_random", "peer_n2v"],
                        help="which runs (none: only --compare-methods)")
    parser.add_argument("--peer-python", default=os.environ.get("TEMZOO_PEER_PYTHON"),
                        help="python of a venv with n2v (e.g. /work/peer_venv/bin/python); absent: peer skipped")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an adapt setting for every adapt run (e.g. learning_rate=1e-4); repeatable")
    parser.add_argument("--variants", action="store_true",
                        help="also score the final models' predictions with the 8-fold self-ensemble and, for "
                             "binomial, averaged over 8 splits (key 'variants' of each record)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads of temzoo's runs and of the peer (0: "
                             "TensorFlow's default). With 1, CPU-seconds measure the work, not the contention")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=JSON_PATH)
    parser.add_argument("--resume", action="store_true", help="keep finished runs of --json and do the rest")
    parser.add_argument("--no-docs", action="store_true", help="write the JSON only")
    parser.add_argument("--render-only", action="store_true", help="only re-write docs/adapt.md and plots from --json")
    parser.add_argument("--tag", default="", help="name of this table's block in docs/adapt.md and of its plots "
                        "(e.g. dev256: block adapt-results-dev256, docs/img/adapt_dev256_psnr_steps.png)")
    parser.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                        help="with --render-only: merge these result files (runs done in parallel) into --json first")
    opts = parser.parse_args(argv)

    if opts.render_only:
        if opts.merge:
            parts = [json.load(open(path, encoding="utf-8")) for path in opts.merge]
            merged = {**parts[0], "records": [r for part in parts for r in part["records"]],
                      "command": f"{len(parts)} runs of benchmarks/adapt.py in parallel (one per image, dose and "
                                 "peer; see commands)", "commands": [part["command"] for part in parts],
                      "load_before": [part.get("load_before") for part in parts],
                      "load_after": [part.get("load_after") for part in parts]}
            write_json(opts.json, merged)
        render(json.load(open(opts.json, encoding="utf-8")), opts.tag)
        return
    if opts.threads:  # before TensorFlow starts; the peer's process inherits the variables
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(opts.threads)
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(opts.threads)
        tf.config.threading.set_inter_op_parallelism_threads(opts.threads)
    from temzoo.adaptation.config import DEFAULTS
    from temzoo.analysis.denoising_baselines import psnr
    from temzoo.io import read_image

    opts.steps = opts.steps or DEFAULTS.steps
    if "peer_n2v" in opts.runs and not (opts.peer_python and os.path.exists(opts.peer_python)):
        print(f"peer Noise2Void skipped: no --peer-python given (or {opts.peer_python!r} does not exist). "
              "Install it in a venv of its own: python -m venv /work/peer_venv && "
              "/work/peer_venv/bin/pip install tensorflow-cpu==2.15.1 n2v==0.3.3", flush=True)
        opts.runs = [r for r in opts.runs if r != "peer_n2v"]
    previous = json.load(open(opts.json, encoding="utf-8")) if opts.resume and os.path.exists(opts.json) else None
    records = list(previous["records"]) if previous else []
    done = {(r["image"], r["dose"], r["run"]) for r in records}
    payload = {"command": "python benchmarks/adapt.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(), "load_before": uptime(), "settings": {**vars(opts), "adapt_defaults": DEFAULTS.as_dict()},
               "records": records}
    if previous:  # --resume: keep the earlier invocations' commands and loads
        payload["commands"] = previous.get("commands", [previous["command"]]) + [payload["command"]]
        payload["load_before"] = _loads(previous, "load_before") + [payload["load_before"]]
    import temzoo

    shipped = temzoo.load(PRETRAINED)
    runs = list(opts.runs) + [f"adapt_pretrained_{m}" for m in opts.compare_methods]
    for name in opts.images:
        path = os.path.join(opts.folder, name)
        reference = central_crop(reference_from(read_image(path)), opts.crop)
        for dose in opts.doses:
            rng = np.random.default_rng([opts.seed, int(dose * 1000), sum(map(ord, name))])
            noisy = rng.poisson(reference * dose).astype(np.float32)
            for run in runs:
                if (name, dose, run) in done:
                    continue
                started, cpu_started = time.time(), time.process_time()
                print(f"{name} dose {dose:g}: {run} ...", flush=True)
                with tempfile.TemporaryDirectory(prefix="adapt-bench-") as folder:
                    if run == "shipped":
                        result = {"psnr": psnr(temzoo.predict(shipped, noisy) / dose, reference), "curve": []}
                        if opts.variants:
                            result["variants"] = variants(shipped, noisy, reference, dose)
                    elif run == "bm3d":
                        from real_denoising import bm3d_poisson

                        result = {"psnr": psnr(bm3d_poisson(noisy / dose, dose), reference), "curve": []}  # it takes mean-intensity units
                    elif run == "adapt_pretrained":
                        result = run_adapt(PRETRAINED, noisy, reference, dose, opts, opts.method, folder)
                    elif run == "adapt_random":
                        result = run_adapt(ARCHITECTURE, noisy, reference, dose, opts, opts.method, folder)
                    elif run.startswith("adapt_pretrained_"):
                        method = run[len("adapt_pretrained_"):]
                        result = run_adapt(PRETRAINED, noisy, reference, dose, opts, method, folder)
                    elif run == "peer_n2v":
                        result = run_peer(opts.peer_python, noisy, reference, dose, opts, folder)
                    else:
                        raise SystemExit(f"unknown run {run!r}")
                record = {"image": name, "dose": dose, "run": run, "crop": int(reference.shape[0]),
                          "psnr_noisy": psnr(noisy / dose, reference), "wall_seconds": time.time() - started,
                          "process_cpu_seconds": time.process_time() - cpu_started,
                          "load": uptime(), **result}
                print(f"  PSNR {record['psnr']:.2f} dB (noisy {record['psnr_noisy']:.2f}), "
                      f"{record['wall_seconds']:.0f} s, load {record['load']}", flush=True)
                records.append(record)
                payload["load_after"] = _after(previous, uptime())
                write_json(opts.json, payload)
    payload["load_after"] = _after(previous, uptime())
    write_json(opts.json, payload)
    if not opts.no_docs:
        render(payload, opts.tag)


# ----------------------------------------------------------------------------- report
RUNS = ("shipped", "adapt_pretrained", "adapt_random", "peer_n2v", "bm3d")
ENSEMBLED = "adapt_pretrained, 8-fold ensemble"
AT_FIFTH = "adapt_pretrained at 1/5 of the steps"


def per_image(payload):
    """One row per (image, dose): PSNR of each run, the gains of ``adapt_pretrained`` and the step at
    which it first reached the peer's final PSNR."""
    by = {(r["image"], r["dose"], r["run"]): r for r in payload["records"]}
    rows = []
    for image, dose in dict.fromkeys((r["image"], r["dose"]) for r in payload["records"]):
        runs = {run: by[(image, dose, run)] for run in RUNS if (image, dose, run) in by}
        first = next(iter(runs.values()))
        row = {"image": image.split(".")[0], "dose": dose, "noisy": first["psnr_noisy"]}
        row.update({run: rec["psnr"] for run, rec in runs.items()})
        adapted, shipped, peer = runs.get("adapt_pretrained"), runs.get("shipped"), runs.get("peer_n2v")
        if adapted and "variants" in adapted:
            row[ENSEMBLED] = adapted["variants"]["ensemble8"]["psnr"]
        early = adapted and psnr_at(adapted["curve"], fifth(adapted["curve"]))
        if early is not None:
            row[AT_FIFTH] = early
        if adapted and shipped:
            row["gain vs shipped"] = adapted["psnr"] - shipped["psnr"]
        if adapted and runs.get("bm3d"):
            row["gain vs bm3d"] = adapted["psnr"] - runs["bm3d"]["psnr"]
        if adapted and peer:
            row["gain vs peer"] = adapted["psnr"] - peer["psnr"]
            step = steps_to_reach(adapted["curve"], peer["psnr"])
            row["step reaching peer's final"] = (f"{step} of {peer['curve'][-1]['step']}" if step is not None
                                                 else "not reached")
        rows.append(row)
    return sorted(rows, key=lambda r: r["dose"])  # stable: the images' order within a dose


def fifth(curve):
    """A fifth of a curve's last step (the budget), or None for an empty curve."""
    return curve[-1]["step"] // 5 if curve else None


def psnr_at(curve, step):
    """The PSNR a curve recorded at ``step`` (None when it has no such row)."""
    return next((row["psnr"] for row in curve if step is not None and row["step"] == step), None)


def goal_check(payload, margin=1.0):
    """Issue 17's clauses per dose, counted over the (image, dose) pairs that have the runs they need:
    ``adapt_pretrained`` >= ``margin`` dB over ``shipped``; >= ``margin`` dB over ``peer_n2v`` at the same
    steps; and ``adapt_pretrained`` reaching the peer's final PSNR within a fifth of the peer's steps."""
    by = {(r["image"], r["dose"], r["run"]): r for r in payload["records"]}
    out = []
    for dose in sorted({r["dose"] for r in payload["records"]}):
        pairs = [image for image, d, run in by if d == dose and run == "adapt_pretrained"]
        gains = [by[(i, dose, "adapt_pretrained")]["psnr"] - by[(i, dose, "shipped")]["psnr"]
                 for i in pairs if (i, dose, "shipped") in by]
        peers = [i for i in pairs if (i, dose, "peer_n2v") in by]
        over_peer = [by[(i, dose, "adapt_pretrained")]["psnr"] - by[(i, dose, "peer_n2v")]["psnr"] for i in peers]
        fast = []
        for i in peers:
            peer = by[(i, dose, "peer_n2v")]
            step = steps_to_reach(by[(i, dose, "adapt_pretrained")]["curve"], peer["psnr"])
            fast.append(step is not None and step <= peer["curve"][-1]["step"] / 5)
        out.append({
            "dose": dose, "pairs": len(gains),
            "gain vs shipped, mean (min..max)": _spread(gains),
            f"pairs >= +{margin:g} dB vs shipped": f"{sum(g >= margin for g in gains)} of {len(gains)}",
            "pairs with the peer": len(peers),
            "gain vs peer, mean (min..max)": _spread(over_peer),
            f"pairs >= +{margin:g} dB vs peer": f"{sum(g >= margin for g in over_peer)} of {len(over_peer)}",
            "pairs reaching the peer's final PSNR within 1/5 of its steps": f"{sum(fast)} of {len(fast)}",
        })
    return out


def _spread(values):
    return f"{np.mean(values):+.2f} ({min(values):+.2f}..{max(values):+.2f})" if values else ""


def means(rows):
    """Per dose: the mean of each column over the images that have it, with their number (only images with
    ``adapt_pretrained`` where some have it, so that the columns compare the same images)."""
    out = []
    for dose in sorted({r["dose"] for r in rows}):
        chosen = [r for r in rows if r["dose"] == dose]
        if any("adapt_pretrained" in r for r in chosen):
            chosen = [r for r in chosen if "adapt_pretrained" in r]
        row = {"image": "mean", "dose": dose}
        for key in ("noisy", *RUNS, ENSEMBLED, AT_FIFTH, "gain vs shipped", "gain vs peer", "gain vs bm3d"):
            values = [r[key] for r in chosen if key in r]
            if values:
                row[key] = f"{np.mean(values):.2f} ({len(values)})"
        out.append(row)
    return out


def load_range(payload):
    """'a-b' over the 1-minute load averages recorded before and after (one run or merged runs)."""
    values = []

    def collect(item):  # a load triple, or lists of them (resumed and merged runs nest)
        if item and isinstance(item[0], list | type(None)):
            for entry in item:
                collect(entry)
        elif item:
            values.append(float(item[0]))

    for key in ("load_before", "load_after"):
        collect(payload.get(key) or [])
    return f"{min(values):.1f}-{max(values):.1f}" if values else "not recorded"


def steps_to_reach(curve, target):
    for row in curve:
        if row["psnr"] >= target:
            return row["step"]
    return None


def _two_decimals(rows):
    return [{k: f"{v:.2f}" if isinstance(v, float) and k != "dose" else v for k, v in row.items()} for row in rows]


def render(payload, tag=""):
    """Write the tables into docs/adapt.md (the block ``adapt-results`` or ``adapt-results-TAG``) and the plots
    (``docs/img/adapt_psnr_*.png`` or ``docs/img/adapt_TAG_psnr_*.png``)."""
    import re

    from temzoo.atomic import write_text

    rows = per_image(payload)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    records = payload["records"]
    steps = sorted({r["curve"][-1]["step"] for r in records if r["curve"]})
    lines = [
        "### Measured: PSNR after adaptation on one noisy real micrograph",
        "",
        f"Commands: {'; '.join(f'`{c}`' for c in payload.get('commands', [payload['command']]))}. "
        f"{payload['machine'].get('cpus')} CPUs, load average (1 min) {load_range(payload)} (a shared machine: "
        f"timings are under load). Central crops of {sorted({r['crop'] for r in records})} px, "
        f"{steps} steps per trained run. PSNR in dB; means over the images that have the run (their number "
        "in brackets).",
        "",
        markdown_table(_two_decimals(rows) + means(rows), columns),
        "",
    ]
    check = goal_check(payload)
    if any(row["pairs"] for row in check):
        lines += ["Issue 17's clauses, per dose, over the pairs that have the runs each needs (gains in dB):", "",
                  markdown_table(check, list(check[0])), ""]
    block_name = "adapt-results" + (f"-{tag}" if tag else "")
    begin, end = f"<!-- begin {block_name} (benchmarks/adapt.py) -->", f"<!-- end {block_name} -->"
    block = begin + "\n" + "\n".join(lines).strip() + "\n" + end
    text = open(PAGE, encoding="utf-8").read() if os.path.exists(PAGE) else "# Adapting to your micrographs\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    write_text(PAGE, text)
    plot(payload, tag)


def plot(payload, tag=""):
    """One panel per (image, dose) with a trained run: each run's PSNR against steps / CPU-seconds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from temzoo.atomic import atomic_path

    by = {(r["image"], r["dose"], r["run"]): r for r in payload["records"]}
    panels = list(dict.fromkeys((r["image"], r["dose"]) for r in payload["records"] if r["curve"]))
    if not panels:
        return
    colours = {"adapt_pretrained": "tab:blue", "adapt_random": "tab:orange", "peer_n2v": "tab:green"}
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    prefix = f"adapt_{tag}_" if tag else "adapt_"
    for key, label, name in (("step", "steps", prefix + "psnr_steps.png"),
                             ("cpu_seconds", "training CPU-seconds (under load)", prefix + "psnr_time.png")):
        fig = Figure(figsize=(4 * cols, 3.3 * rows), dpi=90)
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax, (image, dose) in zip(axes, panels, strict=False):
            if (image, dose, "shipped") in by:
                ax.axhline(by[(image, dose, "shipped")]["psnr"], color="black", ls="--", label="shipped as is")
            if (image, dose, "bm3d") in by:
                ax.axhline(by[(image, dose, "bm3d")]["psnr"], color="grey", ls=":", label="BM3D")
            for run, colour in colours.items():
                record = by.get((image, dose, run))
                if record and record["curve"]:
                    ax.plot([row[key] for row in record["curve"]], [row["psnr"] for row in record["curve"]],
                            marker="o", ms=3, color=colour, label=run)
            ax.set_title(f"{image.split('__')[-1].split('.')[0][:22]}, dose {dose:g}", fontsize=9)
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel("PSNR (dB)", fontsize=8)
            ax.legend(fontsize=7)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        fig.tight_layout()
        with atomic_path(os.path.join(IMG_DIR, name)) as tmp:
            fig.savefig(tmp, format="png")


if __name__ == "__main__":
    main()
