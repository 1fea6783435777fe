"""Throughput of every registered architecture, and how close it gets to the machine's matmul rate.

For each architecture: parameters, FLOPs per input pixel (counted from the
graph: 2 x multiply-adds of every convolution and dense layer; normalisation,
activations, pooling and resizing are not counted), forward and training
images/s at ``--size`` x ``--size``, batch ``--batch``, with XLA
(``jit_compile``) on and off, and the achieved FLOP/s as a fraction of a
float32 matmul's FLOP/s measured in the same run (training counts 3x the
forward FLOPs). Goal (issue 2): training reaches >= 35 % of the matmul rate
for the mid-size models.

    python benchmarks/models.py --models unet_b3_p224,hrnet_w18_small --size 128 --steps 3
    python benchmarks/models.py --json out/models.json          # all models, 256 px, batch 8
"""

import argparse
import os
import time

from _report import add_docs_option, machine, markdown_table, write_json, write_section


def flops_per_pixel(model, size):
    """Forward FLOPs per input pixel at ``size`` x ``size`` (2 x multiply-adds of conv/dense layers)."""
    from temzoo.models.graph import flatten_calls
    from temzoo.receptive_field import propagate_sizes

    calls, inputs, _ = flatten_calls(model)
    heights = propagate_sizes(calls, inputs, 0, size)
    widths = propagate_sizes(calls, inputs, 1, size)
    total = 0
    for call in calls:
        kind = type(call.layer).__name__ if call.layer is not None else None
        if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense"):
            continue
        cin = call.shapes_in[0][-1]
        cout = call.shapes_out[0][-1]
        out_px = heights[call.outputs[0]] * widths[call.outputs[0]] if len(call.shapes_out[0]) == 4 else 1
        in_px = heights[call.inputs[0]] * widths[call.inputs[0]] if len(call.shapes_in[0]) == 4 else 1
        layer = call.layer
        if kind == "Dense":
            total += 2 * cin * cout * out_px
            continue
        kh, kw = layer.kernel_size
        if kind == "Conv2D":
            total += 2 * kh * kw * cin // layer.groups * cout * out_px
        elif kind == "DepthwiseConv2D":
            total += 2 * kh * kw * cin * layer.depth_multiplier * out_px
        elif kind == "SeparableConv2D":
            mid = cin * layer.depth_multiplier
            total += 2 * kh * kw * mid * out_px + 2 * mid * cout * out_px
        else:  # transposed: every input pixel scatters a kh x kw x cout patch
            total += 2 * kh * kw * cin * cout * in_px
    return total / (size * size)


def matmul_flops(n, repeats=10):
    """FLOP/s of a float32 n x n matmul (XLA), best of ``repeats``."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    fn = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True)
    fn(a, b).numpy()
    best = float("inf")
    clock = time.process_time if CPU_CLOCK else time.perf_counter
    for _ in range(repeats):
        start = clock()
        fn(a, b).numpy()
        best = min(best, clock() - start)
    return 2 * n**3 / best


# --threads: time by the process's CPU seconds instead of the wall clock (one thread: the work,
# whatever else runs on the machine).
CPU_CLOCK = False


def _batch(model, batch, size):
    import numpy as np

    rng = np.random.default_rng(0)
    xs = [rng.random((batch, size, size, t.shape[-1]), dtype=np.float32) for t in model.inputs]
    return xs if len(xs) > 1 else xs[0]


def throughput(model, batch, size, steps, xla, fused_bn=False):
    """(forward images/s, train images/s); ``fused_bn``: the training step is traced with
    BatchNormalization through TensorFlow's fused kernel (:mod:`temzoo.training.fused_batch_norm`)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from temzoo.training.fused_batch_norm import fused_batch_norm

    x = _batch(model, batch, size)
    forward = tf.function(lambda x: model(x, training=False), jit_compile=xla)
    y = forward(x)
    keras.ops.convert_to_numpy(y)
    clock = time.process_time if CPU_CLOCK else time.perf_counter
    start = clock()
    for _ in range(steps):
        out = forward(x)
    keras.ops.convert_to_numpy(out)
    fwd = batch * steps / (clock() - start)

    target = np.zeros(y.shape, np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse", jit_compile=xla)
    with fused_batch_norm([model], enabled=fused_bn):
        model.train_on_batch(x, target)  # traces (and compiles with XLA)
    clock = time.process_time if CPU_CLOCK else time.perf_counter
    start = clock()
    for _ in range(steps):
        loss = model.train_on_batch(x, target)
    float(np.asarray(loss))
    train = batch * steps / (clock() - start)
    return fwd, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--models", default=None, help="comma-separated architecture names (default: all)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps after one warm-up step")
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra-/inter-op threads; when set, rates are per CPU-second of this "
                             "process (matmul too), which a loaded machine does not distort")
    parser.add_argument("--fused-bn", action="store_true",
                        help="add a training column with BatchNormalization through the fused kernel (no XLA)")
    parser.add_argument("--matmul", type=int, default=None, help="matmul size (default 2048 on CPU, 8192 on GPU)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    global CPU_CLOCK
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        CPU_CLOCK = True

    from temzoo.models import registry

    names = args.models.split(",") if args.models else registry.list_architectures()
    for name in names:
        registry.architecture(name)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    n = args.matmul or (8192 if gpu else 2048)
    peak = matmul_flops(n)
    print(f"float32 {n}x{n} matmul: {peak / 1e9:.1f} GFLOP/s")
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    rows = []
    for name in names:
        keras.backend.clear_session()
        model = registry.build(name)
        fpp = flops_per_pixel(model, args.size)
        gflop_img = fpp * args.size**2 / 1e9
        row = {"model": name, "params_M": model.count_params() / 1e6, "GFLOP/img": gflop_img,
               "FLOP/px": round(fpp)}
        for xla in modes:
            tag = "xla" if xla else "noxla"
            try:
                fwd, train = throughput(model, args.batch, args.size, args.steps, xla)
            except Exception as error:  # report, keep going (e.g. XLA unsupported op)
                row[f"fwd img/s {tag}"] = row[f"train img/s {tag}"] = f"error: {type(error).__name__}"
                continue
            row[f"fwd img/s {tag}"] = fwd
            row[f"train img/s {tag}"] = train
            row[f"fwd % matmul {tag}"] = 100 * fwd * gflop_img * 1e9 / peak
            row[f"train % matmul {tag}"] = 100 * 3 * train * gflop_img * 1e9 / peak
        if args.fused_bn:
            fwd, train = throughput(model, args.batch, args.size, args.steps, False, fused_bn=True)
            row["train img/s fusedbn"] = train
            row["train % matmul fusedbn"] = 100 * 3 * train * gflop_img * 1e9 / peak
        print(row, flush=True)
        rows.append(row)
        del model
        _report(rows, modes, args, n, peak)  # after every model, so a cut-short run keeps its rows
    return rows


def _report(rows, modes, args, n, peak):
    columns = ["model", "params_M", "GFLOP/img"]
    for xla in modes:
        tag = "xla" if xla else "noxla"
        columns += [f"fwd img/s {tag}", f"train img/s {tag}", f"fwd % matmul {tag}", f"train % matmul {tag}"]
    if args.fused_bn:
        columns += ["train img/s fusedbn", "train % matmul fusedbn"]
    table = markdown_table(rows, columns)
    print(table, flush=True)
    info = machine()
    device = ", ".join(info["gpus"]) or f"CPU only ({info['cpus']} cores)"
    load = f", 1-min load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    setting = f"--size {args.size} --batch {args.batch} --steps {args.steps} --xla {args.xla}" + (
        f" --threads {args.threads} (rates per CPU-second)" if args.threads else "")
    text = (
        "## Model throughput\n\n"
        f"`python benchmarks/models.py {setting}" + (" --fused-bn" if args.fused_bn else "")
        + (f" --models {args.models}" if args.models else "")
        + f"`, measured {info['date']} on {device}, TensorFlow {info['tensorflow']}{load}. "
        f"Reference: float32 {n}x{n} matmul (XLA) at {peak / 1e9:.1f} GFLOP/s. GFLOP/img counts "
        "2 x multiply-adds of convolutions and dense layers at this size; training is counted as 3x "
        "forward. Goal (issue 2): training >= 35 % of the matmul rate for mid-size models."
        + (" `fusedbn`: the training step traced with BatchNormalization through TensorFlow's fused kernel "
           "(`temzoo.training.fused_batch_norm`, what the pretraining trainers do; same updates)." if args.fused_bn else "")
        + ("" if info["gpus"] else " On a shared CPU both rates are lower bounds and noisy; the goal is for GPUs.")
        + f"\n\n{table}\n"
    )
    if not args.no_docs:
        write_section("models", text, force=args.force_docs)
    if args.json:
        write_json(args.json, {"machine": info, "setting": vars(args), "matmul_flops": peak, "rows": rows})


if __name__ == "__main__":
    main()
