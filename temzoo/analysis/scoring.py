"""Predicted particles scored against hand-drawn boxes (detection and size)."""

import numpy as np


def box_iou(a, b):
    """IoU matrix ``(len(a), len(b))`` of boxes given as ``x0, y0, x1, y1`` (end exclusive)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def compare_to_boxes(rows, boxes, shape, *, iou_threshold=0.5, border_tolerance=1.0, labels=None):
    """Match predicted particles (table rows) to reference boxes, one to one, at box IoU >= ``iou_threshold``.

    Particles touching the border are left out on both sides: predicted rows with
    ``touches_border`` and reference boxes within ``border_tolerance`` pixels of
    the edge (annotators skip particles cut by the edge). Matching maximises the
    summed IoU (Hungarian, ``scipy.optimize.linear_sum_assignment``).

    Returns a dict: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``, ``mean_iou`` (of the matches) and, per match,
    ``pred_diameters`` (equivalent diameter) and ``true_diameters`` (``sqrt(w h)``, the
    equivalent diameter of the ellipse inscribed in the box); ``pred_all``/``true_all`` are the
    diameters of every counted particle (for size-distribution distances), ``true_matched`` says which of the
    counted boxes (in the order of ``true_all``) found a particle and ``true_counted`` which of ``boxes`` were counted.

    With the instance ``labels`` the rows came from, ``misses`` says why each unmatched reference box
    was missed (:func:`miss_kinds`).
    """
    from scipy.optimize import linear_sum_assignment

    from temzoo.data.boxes import box_touches_border

    kept = [r for r in rows if not r["touches_border"]]
    pred = np.array([[r["bbox_x0"], r["bbox_y0"], r["bbox_x1"], r["bbox_y1"]] for r in kept], np.float64).reshape(-1, 4)
    pred_d = np.array([r["equivalent_diameter_px"] for r in kept], np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    counted = ~box_touches_border(boxes, shape, border_tolerance)
    boxes = boxes[counted]
    true_d = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    iou = box_iou(pred, boxes)
    pi, ti = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    good = iou[pi, ti] >= iou_threshold
    pi, ti = pi[good], ti[good]
    tp, fp, fn = len(pi), len(pred) - len(pi), len(boxes) - len(ti)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    unmatched = np.setdiff1d(np.arange(len(boxes)), ti)
    return {
        **({"misses": miss_kinds(labels, boxes, unmatched)} if labels is not None else {}),
        "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
        "mean_iou": float(iou[pi, ti].mean()) if tp else None,
        "pred_diameters": pred_d[pi], "true_diameters": true_d[ti], "pred_all": pred_d, "true_all": true_d,
        "true_matched": np.isin(np.arange(len(boxes)), ti), "true_counted": counted,
    }


def miss_kinds(labels, boxes, unmatched):
    """Why the reference ``boxes[unmatched]`` found no particle, from the instance ``labels`` at their centres.

    ``missed``: the box centre is background (nothing found there); ``merged``: the centre lies in a
    particle that also holds the centre of another reference box (touching particles not split);
    ``mislocated``: a particle of its own, whose box overlaps the reference by less than the IoU threshold
    (too large, too small or shifted). A particle that touches the border counts here although the
    scores leave it out, so a box whose centre lies in one is merged or mislocated, not missed.
    Returns the three counts.
    """
    labels = np.asarray(labels)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    rows = np.clip(((boxes[:, 1] + boxes[:, 3]) / 2).astype(int), 0, labels.shape[0] - 1)
    cols = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2).astype(int), 0, labels.shape[1] - 1)
    at = labels[rows, cols]
    shared = np.bincount(at[at > 0], minlength=int(labels.max()) + 1) > 1
    at = at[np.asarray(unmatched, int)]
    merged = (at > 0) & shared[at]
    return {"missed": int((at == 0).sum()), "merged": int(merged.sum()), "mislocated": int(((at > 0) & ~merged).sum())}


CONTRAST_BINS = (0.5, 1.0, 2.0)  # edges of box_contrast's bins in benchmarks/particles_real.py (recall by contrast)


def box_contrast(image, boxes, bright=True):
    """How far each boxed particle stands out of its surroundings, in standard deviations of the surroundings.

    The image is smoothed with a Gaussian of a sixteenth of the median box size (about one pixel at the
    scale a particle model sees it); then, per box, the mean inside the inscribed ellipse shrunk to 0.6 of
    its radii, less the median of the ring between 1.15 and 1.75 radii, over the ring's standard
    deviation. ``bright=False`` (bright field: particles darker than the support) reverses the sign, so
    a visible particle scores high either way. Near 0: a box the image barely shows at that scale.
    Returns a float array, one value per box (NaN where the box leaves too few pixels).
    """
    from scipy import ndimage

    image = np.asarray(image, np.float64) * (1.0 if bright else -1.0)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0)
    sizes = np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0, None))
    image = ndimage.gaussian_filter(image, max(float(np.median(sizes)) / 16.0, 0.5))
    out = np.full(len(boxes), np.nan)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
        r0, r1 = max(int(cy - 1.8 * ry), 0), min(int(cy + 1.8 * ry) + 2, image.shape[0])
        c0, c1 = max(int(cx - 1.8 * rx), 0), min(int(cx + 1.8 * rx) + 2, image.shape[1])
        yy, xx = np.mgrid[r0:r1, c0:c1]
        d = np.sqrt(((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2)
        inside, ring = image[r0:r1, c0:c1][d <= 0.6], image[r0:r1, c0:c1][(d >= 1.15) & (d <= 1.75)]
        if len(inside) and len(ring) >= 5:
            out[i] = (inside.mean() - np.median(ring)) / max(ring.std(), 1e-12)
    return out
