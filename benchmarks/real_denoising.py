"""Denoising on real micrographs: shipped models against noisy input, Gaussian filters and BM3D.

Protocol (issue 14): each real micrograph, cropped to its central ``--crop`` pixels
(at most 512), is a *reference*: background offset removed (its 0.1st percentile
subtracted, negatives clipped) and scaled to mean 1. Poisson noise at ``dose``
counts per pixel at the mean (doses 1, 2, 5, 20; seed ``(seed, image, dose)``)
gives the noisy input; each restorer's output is scored against the reference by
PSNR (peak = the reference's range) and SSIM (scikit-image, same data range).

Restorers:

* ``noisy``: the input itself;
* ``gauss_oracle``: Gaussian filter with the sigma best for THIS image (an upper bound);
* ``gauss_loo``: Gaussian with the sigma best on the OTHER images at that dose (leave-one-out);
* ``bm3d``: Anscombe transform, ``bm3d.bm3d(sigma_psd=1)``, exact unbiased inverse
  (Makitalo & Foi 2011, closed-form approximation);
* every shipped denoiser (``temzoo.list_models()`` whose card has a ``denoising`` report),
  plus ``--model PATH.keras`` files.

Per reference, its own noise level is estimated from its finest wavelet
coefficients (``skimage.restoration.estimate_sigma``, mean-1 units): a perfect
restorer that returned the noiseless truth would score at most
``psnr_cap = 20 log10(range / sigma_ref)`` against such a reference; the table says so.

Texture: ``texture_db`` is the power of the restored image above the reference's
signal band (frequencies where the reference's radial power spectrum has fallen to
within 4x its outermost-band floor), relative to the reference's power there, in dB.
The reference's power in that band is its own noise, so a restorer that removes
noise and invents nothing stays well below 0 dB; values near or above 0 dB at low
dose mean texture that is not in the reference (painted or passed-through noise).

Files without a clean reference (raw low-dose frames) are skipped: by default
those named in ``NO_REFERENCE`` (see the development set's README), or ``--exclude``.

    python benchmarks/real_denoising.py                    # ../shared/real_micrographs, all shipped models
    python benchmarks/real_denoising.py --crop 256 --doses 2 5 --json out.json
    python benchmarks/real_denoising.py --model runs/x/x.keras --panels docs/img

Runtime is dominated by BM3D (seconds per 512 px image and dose on one core).
"""

import argparse
import csv
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from temzoo.analysis.denoising_baselines import (  # noqa: E402
    DEFAULT_SIGMAS,
    add_poisson_noise,
    gaussian_filter,
    psnr,
)

DEFAULT_FOLDER = os.path.join(os.path.dirname(HERE), "..", "shared", "real_micrographs")
DOSES = (1.0, 2.0, 5.0, 20.0)
NO_REFERENCE = ("katsuno__train_0001_lowdose.tif", "katsuno__train_0002_lowdose.tif",
                "rsciio__multi_signal_HAADF.tif")
MAX_CROP = 512
BASELINES = ("noisy", "gauss_oracle", "gauss_loo", "bm3d")


# ----------------------------------------------------------------------------- references
def reference_from(image, offset_percentile=0.1):
    """A reference in mean-intensity units: offset (low percentile) removed, clipped at 0, mean 1."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"a reference must be a 2-D image, got shape {image.shape}.")
    image = np.clip(image - np.percentile(image, offset_percentile), 0, None)
    mean = image.mean()
    if not mean > 0:
        raise ValueError("the reference is constant after removing its offset; nothing to measure.")
    return image / mean


def central_crop(image, size, multiple=32):
    """The central ``size`` x ``size`` crop (sides rounded down to ``multiple``; smaller images: their largest)."""
    side = min(size, image.shape[0], image.shape[1])
    side -= side % multiple
    if side < multiple:
        raise ValueError(f"image of shape {image.shape} is smaller than {multiple} px.")
    r0 = (image.shape[0] - side) // 2
    c0 = (image.shape[1] - side) // 2
    return image[r0 : r0 + side, c0 : c0 + side]


def read_manifest(folder):
    """``{file: row}`` from ``folder/manifest.csv`` (empty when there is none)."""
    path = os.path.join(folder, "manifest.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def list_references(folder, exclude=NO_REFERENCE, only=None):
    """Sorted ``(file name, modality)`` of the 2-D images in ``folder`` that serve as references
    (all but ``exclude``; only those in ``only`` when given)."""
    if not os.path.isdir(folder):
        raise SystemExit(f"{folder}: no such folder of micrographs (give --folder).")
    manifest = read_manifest(folder)
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".tif", ".tiff", ".png")))
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise SystemExit(f"{folder}: no file(s) {', '.join(missing)}.")
        names = [n for n in names if n in set(only)]
    chosen = [(n, manifest.get(n, {}).get("modality", "unknown")) for n in names if n not in set(exclude)]
    if not chosen:
        raise SystemExit(f"{folder}: no reference images (.tif/.png) left after excluding {', '.join(exclude)}.")
    return chosen


# ----------------------------------------------------------------------------- metrics
def ssim(estimate, reference):
    """SSIM (scikit-image, Gaussian-free 7x7 window) with the reference's range as data range."""
    from skimage.metrics import structural_similarity

    reference = np.asarray(reference, dtype=np.float64)
    return float(structural_similarity(np.asarray(estimate, dtype=np.float64), reference,
                                       data_range=float(reference.max() - reference.min())))


def reference_noise(reference):
    """The reference's own noise std (mean-1 units) from its finest wavelet coefficients, and the PSNR cap."""
    from skimage.restoration import estimate_sigma

    sigma = float(estimate_sigma(np.asarray(reference, dtype=np.float64)))
    peak = float(reference.max() - reference.min())
    cap = float(20 * np.log10(peak / sigma)) if sigma > 0 else float("inf")
    return sigma, cap


def radial_power(image):
    """Radially averaged power spectrum (mean removed, Hann window); index = frequency bin of 1/side cycles/px."""
    image = np.asarray(image, dtype=np.float64)
    image = image - image.mean()
    window = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(image * window))) ** 2
    rr, cc = np.indices(image.shape)
    radius = np.hypot(rr - image.shape[0] // 2, cc - image.shape[1] // 2).astype(int)
    nbins = min(image.shape) // 2
    sums = np.bincount(radius.ravel(), power.ravel(), minlength=nbins + 1)[:nbins]
    counts = np.bincount(radius.ravel(), minlength=nbins + 1)[:nbins]
    return sums / np.maximum(counts, 1)


def signal_band_edge(reference_power, factor=4.0, floor_fraction=0.1):
    """First frequency bin above which the reference's spectrum stays within ``factor`` x its floor.

    The floor is the median power in the outermost ``floor_fraction`` of bins (where a
    micrograph holds noise, not signal). At least the outermost 10 % of bins are returned as band.
    """
    power = np.asarray(reference_power, dtype=np.float64)
    n = power.size
    floor = np.median(power[int(n * (1 - floor_fraction)) :])
    above = np.nonzero(power > factor * floor)[0]
    edge = int(above.max()) + 1 if above.size else 1
    return min(edge, int(n * (1 - floor_fraction)))


def texture_db(estimate, reference, edge=None):
    """Power of ``estimate`` above the reference's signal band relative to the reference's, in dB."""
    ref_power = radial_power(reference)
    edge = signal_band_edge(ref_power) if edge is None else edge
    est_power = radial_power(estimate)
    return float(10 * np.log10(max(est_power[edge:].sum(), 1e-30) / max(ref_power[edge:].sum(), 1e-30)))


# ----------------------------------------------------------------------------- restorers
def anscombe(counts):
    return 2.0 * np.sqrt(np.asarray(counts, dtype=np.float64) + 3.0 / 8.0)


def inverse_anscombe(value):
    """Exact unbiased inverse of the Anscombe transform (closed-form approximation, Makitalo & Foi 2011)."""
    d = np.maximum(np.asarray(value, dtype=np.float64), 1e-6)
    s = np.sqrt(1.5)
    out = 0.25 * d**2 + 0.25 * s / d - 11.0 / 8.0 / d**2 + 0.625 * s / d**3 - 0.125
    return np.maximum(out, 0.0)


def bm3d_poisson(noisy, dose):
    """BM3D for Poisson data in mean-intensity units: Anscombe -> ``bm3d(sigma_psd=1)`` -> exact unbiased inverse."""
    import bm3d

    counts = np.asarray(noisy, dtype=np.float64) * dose
    return inverse_anscombe(bm3d.bm3d(anscombe(counts), sigma_psd=1.0)) / dose


def gaussian_scores(noisy, reference, sigmas=DEFAULT_SIGMAS):
    """PSNR of the Gaussian filter at each sigma: ``{sigma: (psnr, filtered)}``."""
    out = {}
    for sigma in sigmas:
        filtered = gaussian_filter(noisy, sigma)
        out[sigma] = (psnr(filtered, reference), filtered)
    return out


def leave_one_out_sigma(psnr_by_image, index):
    """The sigma with the best mean PSNR over every image but ``index`` (``psnr_by_image``: list of {sigma: dB})."""
    others = [scores for i, scores in enumerate(psnr_by_image) if i != index] or psnr_by_image
    sigmas = list(others[0])
    means = [np.mean([scores[s] for scores in others]) for s in sigmas]
    return sigmas[int(np.argmax(means))]


def shipped_denoisers():
    """Names of the shipped models whose cards carry a denoising report."""
    from temzoo.zoo import pretrained

    names = []
    for name in pretrained.pretrained_entries():
        if (pretrained.card(name) or {}).get("denoising"):
            names.append(name)
    return sorted(names)


# ----------------------------------------------------------------------------- run
def summarise(rows, restorers, doses):
    """Mean PSNR/SSIM per (dose, restorer) over all images and per modality, and BM3D wins."""
    summary = []
    groups = [("all", rows)] + [(m, [r for r in rows if r["modality"] == m])
                                 for m in sorted({r["modality"] for r in rows})]
    for group, members in groups:
        for dose in doses:
            at = [r for r in members if r["dose"] == dose]
            if not at:
                continue
            for name in restorers:
                values = [r for r in at if name in r["psnr"]]
                if not values:
                    continue
                gap = [r["psnr"][name] - r["psnr"]["bm3d"] for r in values if "bm3d" in r["psnr"]]
                summary.append({
                    "group": group, "dose": dose, "restorer": name, "images": len(values),
                    "psnr": float(np.mean([r["psnr"][name] for r in values])),
                    "ssim": float(np.mean([r["ssim"][name] for r in values])),
                    "texture_db": float(np.mean([r["texture_db"][name] for r in values])),
                    "vs_bm3d": float(np.mean(gap)) if gap else None,
                    "wins_vs_bm3d": int(sum(g > 0 for g in gap)) if gap else None,
                    "worst_vs_bm3d": float(min(gap)) if gap else None,
                })
    return summary


def dataset_images(name, count, data_dir=None, split="test", feature="image"):
    """``(name, modality, image)`` triples from a TFDS dataset (the same protocol on synthetic images)."""
    from temzoo import datasets

    out = []
    for index, example in enumerate(datasets.load(name, split, data_dir=data_dir).take(count)):
        family = example.get("family")
        modality = family.numpy().decode() if family is not None else name
        out.append((f"{name}:{split}:{index}", modality, np.asarray(example[feature])[..., 0]))
    return out


def evaluate(folder, models, doses=DOSES, crop=MAX_CROP, seed=0, exclude=NO_REFERENCE, panels=None,
             panel_dose=2.0, log=print, baselines=True, only=None):
    """Run the protocol on ``folder`` (a path, or ``(name, modality, image)`` triples); returns ``{"rows": per image and dose, "summary": means, "references": noise levels}``.

    ``baselines=False`` scores only ``noisy`` and the models (to :func:`merge` with an earlier run).
    """
    from temzoo.analysis.denoising_baselines import denoise_with_model
    from temzoo.io import read_image
    from temzoo.zoo import pretrained

    if crop > MAX_CROP:
        raise SystemExit(f"--crop {crop}: the protocol uses crops of at most {MAX_CROP} px.")
    references = []
    if isinstance(folder, str):
        images = []
        for name, modality in list_references(folder, exclude, only):
            image = read_image(os.path.join(folder, name))
            if image.ndim != 2:
                log(f"skip {name}: not a single 2-D image (shape {image.shape})")
                continue
            images.append((name, modality, image))
    else:
        images = list(folder)  # (name, modality, 2-D image) triples, e.g. from dataset_images()
    for name, modality, image in images:
        reference = reference_from(central_crop(image, crop))
        sigma, cap = reference_noise(reference)
        references.append({"file": name, "modality": modality, "reference": reference,
                           "noise_sigma": sigma, "psnr_cap": cap, "side": reference.shape[0]})
    loaded = {}
    for model in models:
        label = os.path.splitext(os.path.basename(model))[0] if str(model).endswith(".keras") else model
        if str(model).endswith(".keras"):
            label = "new:" + label
        loaded[label] = pretrained.load(model)
    restorers = (list(BASELINES) if baselines else ["noisy"]) + list(loaded)

    rows = []
    gauss_psnr = {dose: [] for dose in doses}
    gauss_images = {dose: [] for dose in doses}
    start = time.perf_counter()
    for index, ref in enumerate(references):
        reference = ref["reference"]
        edge = signal_band_edge(radial_power(reference))
        for dose in doses:
            rng = np.random.default_rng([seed, index, int(round(dose * 1000))])
            noisy = add_poisson_noise(reference, dose, rng)
            outputs = {"noisy": noisy}
            row = {"file": ref["file"], "modality": ref["modality"], "dose": dose, "index": index,
                   "psnr": {}, "ssim": {}, "texture_db": {}, "_outputs": outputs, "_edge": edge}
            if baselines:
                scores = gaussian_scores(noisy, reference)
                gauss_psnr[dose].append({s: v[0] for s, v in scores.items()})
                gauss_images[dose].append({s: v[1] for s, v in scores.items()})
                row["oracle_sigma"] = max(scores, key=lambda s: scores[s][0])
                outputs["gauss_oracle"] = scores[row["oracle_sigma"]][1]
            if baselines or (panels and dose == panel_dose):
                outputs["bm3d"] = bm3d_poisson(noisy, dose)
            for label, model in loaded.items():
                outputs[label] = denoise_with_model(model, noisy)
            rows.append(row)
            log(f"[{time.perf_counter() - start:6.0f} s] {ref['file']} dose {dose:g}: "
                + ", ".join(f"{k} {psnr(v, reference):.2f} dB" for k, v in outputs.items() if k != "noisy"))
    for row in rows:  # leave-one-out Gaussian needs every image's Gaussian scores first
        dose, index = row["dose"], row["index"]
        if baselines:
            sigma = leave_one_out_sigma(gauss_psnr[dose], index)
            row["loo_sigma"] = sigma
            row["_outputs"]["gauss_loo"] = gauss_images[dose][index][sigma]
        reference = references[index]["reference"]
        for label, output in row["_outputs"].items():
            row["psnr"][label] = psnr(output, reference)
            row["ssim"][label] = ssim(output, reference)
            row["texture_db"][label] = texture_db(output, reference, row["_edge"])
        if panels and dose == panel_dose:
            write_panel(panels, references[index], row["_outputs"], [k for k in loaded], dose)
    for row in rows:
        del row["_outputs"], row["_edge"]
    refs = [{k: v for k, v in r.items() if k != "reference"} for r in references]
    return {"rows": rows, "summary": summarise(rows, restorers, doses), "references": refs,
            "restorers": restorers, "doses": list(doses), "crop": crop, "seed": seed}


def merge(first, second):
    """``first`` with the restorers of ``second`` added (same images, doses, crop and seed required)."""
    for key in ("crop", "seed", "doses"):
        if first[key] != second[key]:
            raise SystemExit(f"cannot merge runs with different {key}: {first[key]} vs {second[key]}.")
    by_key = {(r["file"], r["dose"]): r for r in second["rows"]}
    if set(by_key) != {(r["file"], r["dose"]) for r in first["rows"]}:
        raise SystemExit("cannot merge runs over different images or doses.")
    added = [name for name in second["restorers"] if name not in first["restorers"]]
    rows = []
    for row in first["rows"]:
        other = by_key[(row["file"], row["dose"])]
        if abs(other["psnr"]["noisy"] - row["psnr"]["noisy"]) > 1e-9:
            raise SystemExit(f"{row['file']} dose {row['dose']}: the noisy inputs differ; not the same protocol.")
        merged = dict(row)
        for metric in ("psnr", "ssim", "texture_db"):
            merged[metric] = {**row[metric], **{name: other[metric][name] for name in added}}
        rows.append(merged)
    restorers = first["restorers"] + added
    return {**first, "rows": rows, "restorers": restorers, "summary": summarise(rows, restorers, first["doses"])}


def write_panel(folder, ref, outputs, models, dose):
    """reference | noisy | BM3D | each model, one display range (the reference's 0.5-99.5 percentiles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temzoo.atomic import atomic_path

    reference = ref["reference"]
    names = ["reference", "noisy", "bm3d"] + list(models)
    images = [reference] + [outputs[n] for n in names[1:]]
    low, high = np.percentile(reference, [0.5, 99.5])
    side = min(192, reference.shape[0])
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.5))
    for ax, name, image in zip(np.atleast_1d(axes), names, images, strict=True):
        ax.imshow(image[:side, :side], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        title = name if name == "reference" else f"{name}\n{psnr(image, reference):.1f} dB"
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{ref['file']} ({ref['modality']}), dose {dose:g}, top-left {side} px", fontsize=8)
    fig.tight_layout()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"real_{os.path.splitext(ref['file'])[0]}_dose{dose:g}.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def tables(result):
    """Markdown: per-modality means per dose, then the per-image PSNR table."""
    from _report import markdown_table

    out = []
    summary = result["summary"]
    cols = ["group", "dose", "restorer", "images", "psnr", "ssim", "texture_db", "vs_bm3d", "wins_vs_bm3d",
            "worst_vs_bm3d"]
    out.append(markdown_table(summary, cols))
    per_image = []
    for row in result["rows"]:
        entry = {"file": row["file"], "modality": row["modality"], "dose": row["dose"]}
        entry.update({name: row["psnr"][name] for name in result["restorers"]})
        per_image.append(entry)
    out.append(markdown_table(per_image, ["file", "modality", "dose"] + result["restorers"]))
    refs = [{"file": r["file"], "modality": r["modality"], "noise_sigma": r["noise_sigma"],
             "psnr_cap": r["psnr_cap"]} for r in result["references"]]
    out.append(markdown_table(refs, ["file", "modality", "noise_sigma", "psnr_cap"]))
    return "\n\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", default=DEFAULT_FOLDER, help="folder of reference micrographs")
    parser.add_argument("--dataset", default=None,
                        help="instead of --folder: test images of a TFDS dataset (e.g. synthetic_tem/realistic)")
    parser.add_argument("--images", type=int, default=16, help="with --dataset: how many test images")
    parser.add_argument("--data-dir", default=None, help="with --dataset: TFDS data dir")
    parser.add_argument("--doses", type=float, nargs="+", default=list(DOSES))
    parser.add_argument("--crop", type=int, default=MAX_CROP, help="central crop side, px (<= 512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=None, help="registry names (default: every shipped denoiser)")
    parser.add_argument("--model", action="append", default=[], help="extra .keras file(s) to evaluate")
    parser.add_argument("--exclude", nargs="*", default=list(NO_REFERENCE), help="files that are not references")
    parser.add_argument("--panels", default=None, help="write reference|noisy|BM3D|models panels here")
    parser.add_argument("--panel-dose", type=float, default=2.0)
    parser.add_argument("--only", nargs="*", default=None, help="evaluate only these files of --folder")
    parser.add_argument("--json", default=None, help="write all rows and means to this JSON file")
    parser.add_argument("--merge", default=None,
                        help="JSON of an earlier run (same crop, doses, seed): reuse its baselines and "
                             "restorers, score only the given models, and write the union")
    args = parser.parse_args(argv)

    import subprocess

    from _report import machine, write_json

    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    models = (shipped_denoisers() if args.models is None else args.models) + args.model
    start = time.perf_counter()
    source = (dataset_images(args.dataset, args.images, args.data_dir) if args.dataset
              else os.path.abspath(args.folder))
    result = evaluate(source, models, tuple(args.doses), args.crop, args.seed,
                      tuple(args.exclude), args.panels, args.panel_dose, baselines=args.merge is None, only=args.only)
    if args.merge:
        import json

        result = {**merge(json.load(open(args.merge, encoding="utf-8")), result), "merged_from": args.merge}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["uptime_before"] = load_before
    result["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    result["machine"] = machine()
    print(tables(result))
    print(f"\n{result['seconds']} s; load before: {load_before}; after: {result['uptime_after']}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
