"""Tiled prediction: the cost of tiling against an untiled call, throughput, peak RSS.

For each model and image side N (default 1024, 4096, 8192), in a subprocess of its own
so that its peak RSS (``temzoo.inference.tiling.peak_rss_bytes``: ``VmHWM`` on Linux, TensorFlow
runtime included) is its own:

* ``untiled``: one model call on a square image the side of the tiles ``temzoo.predict``
  cuts (at most N x N): the model's own throughput (Mpix/s) at the call shape prediction uses;
* ``predict``: ``temzoo.predict`` on an N x N float32 micrograph with the default
  tiles and overlap (normalise, pad, tile, blend, crop): Mpix/s, tiles, overlap;
* ``overhead`` = untiled Mpix/s / predict Mpix/s - 1, the median over rounds of untiled
  calls and one ``predict`` side by side (3 rounds; 1 at 8192 px). Each round makes as many untiled
  calls as ``predict`` has tiles (at most 16), so both arms run about as long: single calls vary by
  10-40 % on a shared VM, and one short call against a long ``predict`` measured that spread more than
  tiling. Goal: <= 15 % for the U-Nets, <= 30 % for HRNet; peak RSS < 3 GB at 8192 x 8192 for every
  shipped model;
* ``overhead_cpu``: the same ratio per CPU-second of the process (the extra work tiling
  does), steadier than wall time where single calls vary from one call to the next.

Every timed call follows an untimed call of the same shape (tracing; the shipped
cards record the effective receptive field and the memory per pixel, so nothing is
measured on first use). The shipped
models are used with their weights: the effective receptive field, hence the
overlap, depends on them.

    python benchmarks/predict.py                          # every shipped model at 1024, 4096, 8192
    python benchmarks/predict.py --quick                  # 256 and 512 px: a smoke run
    python benchmarks/predict.py --models unet_pretrained --sizes 4096
    python benchmarks/predict.py --compare-buffers --models nanoparticles --sizes 4096

``--compare-buffers`` measures what :mod:`temzoo.inference.buffers` (the output and tile batch in
4 KiB pages) gains over ``np.zeros`` (NumPy's huge-page advice): in one process, ``predict`` with
each, alternating which goes first, ``--pause`` seconds after each call (freed memory goes back to a
VM's host after a second or two); the paired ratio of their times per round, median.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from _report import ROOT, add_docs_option, machine, markdown_table, write_json, write_section

MODELS = ("unet_pretrained", "unet_pretrained_autoencoder", "nanoparticles", "mobilenet_unet_pretrained", "hrnet_pretrained")
SIZES = (1024, 4096, 8192)
RSS_GOAL_GB = 3.0
RSS_GOAL_SIZE = 8192
OVERHEAD_GOALS = {"hrnet": 0.30}  # by name fragment; everything else 15 %
DEFAULT_OVERHEAD_GOAL = 0.15
# rounds of (untiled call, predict) side by side; single calls vary by 10-30 % on this machine,
# so the overhead is the median of the rounds' ratios; one round at 8192 px (HRNet: 3.5 min)
ROUNDS = 3
LARGE_SIZE = 8192
UNTILED_CALLS_MAX = 16  # untiled calls per round: as many as predict's tiles, at most this
BUFFER_ROUNDS = 6


def rounds(size):
    return 1 if size >= LARGE_SIZE else ROUNDS
RESULTS_JSON = os.path.join(ROOT, "benchmarks", "results", "predict.json")


def overhead_goal(model_name):
    return next((goal for key, goal in OVERHEAD_GOALS.items() if key in model_name), DEFAULT_OVERHEAD_GOAL)


# ----------------------------------------------------------------------------- child process
def child(model_name, size):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    import temzoo
    from temzoo.inference import tiling

    model = temzoo.load(model_name)
    stride = tiling.model_stride(model)
    rng = np.random.default_rng(0)
    image = rng.random((size, size), dtype=np.float32)
    margin, ramp, tile, batch = tiling.image_layout(model, size, size)
    tile_h, rows = tiling.axis_layout(-(-size // stride) * stride, tile, 2 * margin + ramp, stride)
    side = min(size, tile_h)  # the tile predict cuts: the same call shape, so the same per-pixel rate
    forward = tiling._forward(model)
    probe = rng.standard_normal((1, side, side, 1), dtype=np.float32)
    forward(probe)
    # trace predict's tile shape untimed (a whole untimed predict would double the time at 8192 px)
    forward(np.zeros((min(batch, len(rows) ** 2), tile_h, tile_h, 1), np.float32))
    untimed, timed, ratios, cpu_ratios = [], [], [], []
    calls = min(len(rows) ** 2, UNTILED_CALLS_MAX)
    for _ in range(rounds(size)):  # side by side: untiled calls, then one predict, per round
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            forward(probe)
        untimed.append(calls * side * side / (time.perf_counter() - start) / 1e6)
        untiled_cpu = calls * side * side / (time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        result = temzoo.predict(model, image)
        timed.append(size * size / (time.perf_counter() - start) / 1e6)
        ratios.append(untimed[-1] / timed[-1])
        cpu_ratios.append(untiled_cpu / (size * size / (time.process_time() - cpu)))
    assert result.shape[:2] == image.shape
    untiled, mpix = float(np.median(untimed)), float(np.median(timed))
    out = {
        "model": model_name, "size": size, "max_tile": tile, "tile": tile_h, "tiles": len(rows) ** 2,
        "batch": batch, "overlap": 2 * margin + ramp, "untiled_side": side, "untiled_calls": calls,
        "untiled_mpix_s": round(untiled, 3), "predict_s": round(size * size / mpix / 1e6, 2),
        "predict_mpix_s": round(mpix, 3), "rounds": len(ratios),
        "overhead": round(float(np.median(ratios)) - 1, 3),
        "overhead_rounds": [round(r - 1, 3) for r in ratios],
        # the same per CPU-second of this process: the extra work, steadier than wall time on a machine whose
        # single calls vary by 10-40 % with the same CPU time (docs/benchmarks.md, precision section)
        "overhead_cpu": round(float(np.median(cpu_ratios)) - 1, 3),
        "overhead_cpu_rounds": [round(r - 1, 3) for r in cpu_ratios],
        "peak_rss_gb": round(tiling.peak_rss_bytes() / 2**30, 3),
    }
    print("RESULT " + json.dumps(out), flush=True)


def buffers_child(model_name, size, rounds_, pause):
    """``predict`` with :mod:`temzoo.inference.buffers` against ``np.zeros``, alternating, in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    import temzoo
    from temzoo.inference import buffers

    model = temzoo.load(model_name)
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    arms = {"buffers": buffers.zeros, "np.zeros": lambda shape, dtype=np.float32: np.zeros(shape, dtype)}
    temzoo.predict(model, image)  # traced, layout chosen
    times, cpu = {k: [] for k in arms}, {k: [] for k in arms}
    try:
        for r in range(rounds_):
            for label in sorted(arms, reverse=bool(r % 2)):  # which goes first alternates
                buffers.zeros = arms[label]
                start, cpu_start = time.perf_counter(), time.process_time()
                temzoo.predict(model, image)
                times[label].append(time.perf_counter() - start)
                cpu[label].append(time.process_time() - cpu_start)
                time.sleep(pause)
    finally:
        buffers.zeros = arms["buffers"]
    paired = [z / b for z, b in zip(times["np.zeros"], times["buffers"], strict=True)]
    out = {
        "model": model_name, "size": size, "rounds": rounds_, "pause_s": pause,
        "buffers_s": round(float(np.median(times["buffers"])), 3),
        "np_zeros_s": round(float(np.median(times["np.zeros"])), 3),
        "speedup": round(float(np.median(paired)), 3),
        "rounds_faster": f"{sum(p > 1 for p in paired)}/{len(paired)}",
        "speedup_cpu": round(float(np.median(cpu["np.zeros"]) / np.median(cpu["buffers"])), 3),
        "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- parent
def run_case(model_name, size, compare_buffers=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", model_name, str(size)]
    if compare_buffers is not None:
        cmd += ["--compare-buffers", "--rounds", str(compare_buffers[0]), "--pause", str(compare_buffers[1])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{model_name} {size}: failed\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    row = json.loads(lines[-1][len("RESULT "):])
    row["process_s"] = round(time.perf_counter() - start, 1)
    if compare_buffers is not None:
        return row
    goal = overhead_goal(model_name)
    row["overhead_goal"] = f"<= {goal:.0%}: " + ("yes" if row["overhead"] <= goal else "NO")
    if size >= RSS_GOAL_SIZE:
        row["rss_goal"] = f"< {RSS_GOAL_GB:g} GB: " + ("yes" if row["peak_rss_gb"] < RSS_GOAL_GB else "NO")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated image sides")
    parser.add_argument("--quick", action="store_true", help="sides 256 and 512 only: a smoke run")
    parser.add_argument("--json", default=RESULTS_JSON)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--compare-buffers", action="store_true",
                        help="predict with temzoo.inference.buffers against np.zeros (see above); no docs")
    parser.add_argument("--rounds", type=int, default=BUFFER_ROUNDS, help="--compare-buffers: rounds")
    parser.add_argument("--pause", type=float, default=2.0, help="--compare-buffers: seconds after each call")
    args = parser.parse_args(argv)
    if args.child:
        model_name, size = args.child
        if args.compare_buffers:
            return buffers_child(model_name, int(size), args.rounds, args.pause)
        return child(model_name, int(size))
    sizes = (256, 512) if args.quick else tuple(int(s) for s in args.sizes.split(","))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    compare = (args.rounds, args.pause) if args.compare_buffers else None
    rows = []
    for model_name in models:
        for size in sizes:
            rows.append(run_case(model_name, size, compare))
            print(rows[-1], flush=True)
    if compare:
        columns = ["model", "size", "rounds", "pause_s", "buffers_s", "np_zeros_s", "speedup", "rounds_faster",
                   "speedup_cpu"]
        print(markdown_table(rows, columns))
        path = args.json if args.json != RESULTS_JSON else RESULTS_JSON.replace(".json", "_buffers.json")
        write_json(path, {"machine": machine(), "args": vars(args), "rows": rows})
        return 0
    columns = ["model", "size", "tiles", "tile", "overlap", "untiled_mpix_s", "predict_mpix_s", "rounds", "overhead",
               "overhead_cpu", "overhead_goal", "peak_rss_gb", "rss_goal"]
    table = markdown_table(rows, columns)
    print(table)
    info = machine()
    write_json(args.json, {"machine": info, "args": vars(args), "rows": rows})
    if not args.no_docs:
        command = "python benchmarks/predict.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_section(
            "predict",
            "## Tiled prediction\n\n"
            f"`{command.strip()}` on {info['platform']}, {info['cpus']} CPUs, "
            f"GPUs: {', '.join(info['gpus']) or 'none'}, TensorFlow {info['tensorflow']}, {info['date']}. "
            "Shipped models with their weights, float32 random images, default tiles and overlap "
            "(each axis split evenly; margins from the effective receptive field where the theoretical "
            "one exceeds 256 px), each case in its own process (peak RSS = `VmHWM` in GiB, TensorFlow "
            "included); timings follow an untimed call of the same shape. `untiled_mpix_s`: model calls "
            "on an image the side of predict's tiles (the same call shape), as many per round as predict has tiles "
            f"(at most {UNTILED_CALLS_MAX}); {ROUNDS} rounds of those untiled calls and one "
            f"`temzoo.predict` side by side (1 at {LARGE_SIZE} px), rates are medians; `overhead`: how much "
            "slower `temzoo.predict` is per pixel, the median of the rounds' ratios (`overhead_rounds` in the "
            "JSON); `overhead_cpu`: the same per CPU-second of the process, the extra work (steadier than wall "
            f"time on a machine whose single calls vary). Goals: overhead <= {DEFAULT_OVERHEAD_GOAL:.0%} (U-Nets), "
            f"<= {OVERHEAD_GOALS['hrnet']:.0%} (HRNet); peak RSS < {RSS_GOAL_GB:g} GB at "
            f"{RSS_GOAL_SIZE} x {RSS_GOAL_SIZE}.\n\n" + table + "\n",
            force=args.force_docs,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
