"""Tiled prediction: throughput (Mpix/s), peak RSS, and the cost of tiling.

Cases, each in its own subprocess so its peak RSS (``ru_maxrss``) is its own:

* ``large``: ``temzoo.predict`` on an N x N float32 micrograph (default 4096) with
  the default (memory-chosen) tiles, per model; Mpix/s and peak RSS;
* ``huge``: the same at 8192 x 8192 for the U-Net (goal: peak RSS < 3 GB);
* ``ratio``: on 1024 x 1024, ``temzoo.predict`` (default tiles, and forced tiles of
  ``--forced-tile`` px) against one untiled model call on the same image;
  goal: default tiling costs <= 15 % more than untiled.

Every timed call follows an untimed warm-up call of the same shape (tracing).
Models have random weights (speed and memory do not depend on them).

    python benchmarks/predict.py                       # 4096 (both models), 8192 (U-Net), 1024 ratio
    python benchmarks/predict.py --quick               # 512 / 1024 / 256: a smoke run in a minute
    python benchmarks/predict.py --size 2048 --huge 0  # skip the 8192 case
"""

import argparse
import json
import os
import subprocess
import sys
import time

from _report import ROOT, add_docs_option, machine, markdown_table, write_json, write_section

MODELS = {"unet": "unet_b3_p224", "hrnet": "hrnet_w18_small"}
RSS_GOAL_GB = 3.0
OVERHEAD_GOAL = 0.15
RESULTS_JSON = os.path.join(ROOT, "benchmarks", "results", "predict.json")


# ----------------------------------------------------------------------------- child process
def child(case, model_name, size, forced_tile):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import resource

    import numpy as np

    import temzoo
    from temzoo import tiling

    model = temzoo.build(model_name)
    rng = np.random.default_rng(0)
    image = rng.random((size, size), dtype=np.float32)
    out = {"case": case, "model": model_name, "size": size}
    if case in ("large", "huge"):
        # warm-up traces the tile shape the real call will use
        tile, batch = tiling.choose_tile_size(model, tiling.model_stride(model), _overlap(model, tiling))
        out.update(tile=tile, batch=batch)
        temzoo.predict(model, image[: min(size, tile + 64), : min(size, tile + 64)])
        start = time.perf_counter()
        result = temzoo.predict(model, image)
        seconds = time.perf_counter() - start
        assert result.shape == image.shape
        out.update(seconds=round(seconds, 2), mpix_s=round(size * size / seconds / 1e6, 4))
    else:  # ratio
        stride = tiling.model_stride(model)
        batch = image[None, ..., None]
        forward = tiling._forward(model)
        forward(batch)
        start = time.perf_counter()
        forward(batch)
        untiled = time.perf_counter() - start
        temzoo.predict(model, image)
        start = time.perf_counter()
        temzoo.predict(model, image)
        default = time.perf_counter() - start
        out.update(untiled_s=round(untiled, 3), tiled_default_s=round(default, 3),
                   overhead_default=round(default / untiled - 1, 3))
        tile = max(forced_tile, 2 * _overlap(model, tiling))
        tile = -(-tile // stride) * stride
        if tile < size:
            temzoo.predict(model, image, tile_size=tile)
            start = time.perf_counter()
            temzoo.predict(model, image, tile_size=tile)
            forced = time.perf_counter() - start
            out.update(forced_tile=tile, tiled_forced_s=round(forced, 3), overhead_forced=round(forced / untiled - 1, 3))
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    print("RESULT " + json.dumps(out), flush=True)


def _overlap(model, tiling):
    from temzoo.receptive_field import receptive_field

    margin, ramp = tiling.tile_geometry(receptive_field(model), tiling.model_stride(model))
    return 2 * margin + ramp


# ----------------------------------------------------------------------------- parent
def run_case(case, model_name, size, forced_tile):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case, model_name, str(size), str(forced_tile)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{case} {model_name} {size}: failed\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    row = json.loads(lines[-1][len("RESULT "):])
    row["process_s"] = round(time.perf_counter() - start, 1)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=4096, help="side of the 'large' case")
    parser.add_argument("--hrnet-size", type=int, default=None,
                        help="side of the HRNet 'large' case (default: --size; HRNet is ~5x slower on CPU)")
    parser.add_argument("--huge", type=int, default=8192, help="side of the U-Net memory case (0: skip)")
    parser.add_argument("--ratio-size", type=int, default=1024)
    parser.add_argument("--forced-tile", type=int, default=512, help="tile side of the forced-tiling ratio case")
    parser.add_argument("--models", default="unet,hrnet", help="comma-separated keys of " + ", ".join(MODELS))
    parser.add_argument("--quick", action="store_true", help="sizes 512 / 1024 / 256 for a smoke run")
    parser.add_argument("--json", default=RESULTS_JSON)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.child:
        case, model_name, size, forced = args.child
        return child(case, model_name, int(size), int(forced))
    if args.quick:
        args.size, args.huge, args.ratio_size, args.forced_tile = 512, 1024, 256, 128
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    rows = []
    for key in keys:
        rows.append(run_case("ratio", MODELS[key], args.ratio_size, args.forced_tile))
        print(rows[-1], flush=True)
        size = args.hrnet_size if key == "hrnet" and args.hrnet_size else args.size
        rows.append(run_case("large", MODELS[key], size, args.forced_tile))
        print(rows[-1], flush=True)
    if args.huge and "unet" in keys:
        rows.append(run_case("huge", MODELS["unet"], args.huge, args.forced_tile))
        print(rows[-1], flush=True)

    throughput = [r for r in rows if r["case"] in ("large", "huge")]
    ratio = [r for r in rows if r["case"] == "ratio"]
    for r in throughput:
        r["rss_goal"] = ("yes" if r["peak_rss_gb"] < RSS_GOAL_GB else "NO") if r["size"] >= 8192 else ""
    for r in ratio:
        r["overhead_goal"] = "yes" if r["overhead_default"] <= OVERHEAD_GOAL else "NO"
    table1 = markdown_table(throughput, ["model", "size", "tile", "batch", "seconds", "mpix_s", "peak_rss_gb", "rss_goal"])
    table2 = markdown_table(ratio, ["model", "size", "untiled_s", "tiled_default_s", "overhead_default",
                                    "forced_tile", "tiled_forced_s", "overhead_forced", "overhead_goal"])
    print(table1)
    print()
    print(table2)
    info = machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    payload = {"machine": info, "load_average_1min_at_end": load, "args": vars(args), "rows": rows}
    write_json(args.json, payload)
    if not args.no_docs:
        command = "python benchmarks/predict.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
        write_section(
            "predict",
            "## Tiled prediction\n\n"
            f"`{command.strip()}` on {info['platform']}, {info['cpus']} CPUs, "
            f"GPUs: {', '.join(info['gpus']) or 'none'}, TensorFlow {info['tensorflow']}, {info['date']}"
            + (f", 1-min load average {load:.1f} at the end (the machine was shared)" if load else "")
            + ". Random-weight models, float32 random images, default (memory-chosen) tiles, each case "
            "in its own process (peak RSS = `ru_maxrss` of that process, TensorFlow runtime included); "
            "timings exclude a warm-up call that traces the tile shape."
            + (f" HRNet ran at {args.hrnet_size} x {args.hrnet_size} (it is ~4x slower than the U-Net on CPU) "
               "to keep the run on a shared machine short." if args.hrnet_size and "hrnet" in keys else "")
            + "\n\n"
            + table1 + "\n\n"
            "Tiling overhead on the ratio image: `temzoo.predict` (normalise, pad, tile, blend, crop) "
            "against one untiled model call; the default tile is at least twice the overlap (receptive "
            "field + ramp), so images up to that size run as one tile; the forced case splits the image. "
            f"Goal: default overhead <= {OVERHEAD_GOAL:.0%}, peak RSS < {RSS_GOAL_GB:g} GB at 8192 x 8192.\n\n"
            + table2 + "\n",
            force=args.force_docs,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
