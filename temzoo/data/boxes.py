"""Particle boxes as weak segmentation labels.

Hand-drawn bounding boxes (YOLO text files: one line ``class cx cy w h`` per
particle, relative to the image size) become label maps to train a segmentation
model on:

* ``"ellipse"``: the ellipse inscribed in each box (same equivalent diameter,
  ``sqrt(w h)``, as the box measures a round particle);
* ``"refined"``: inside each box, the pixels on the particle's side of an Otsu
  threshold of the lightly smoothed image (particles brighter than the support in
  HAADF, darker in bright field: decided per image from the boxes), holes filled,
  the component at the box centre kept, cut to the ellipse grown by 20 %; where
  that is implausible (under 30 % or over 130 % of the ellipse's area) the
  ellipse is kept.

Where two particles' labels touch or overlap, the contact pixels are set to
background, so that a model learns to keep neighbours apart (what the watershed
in :mod:`temzoo.analysis.particles` then separates).

:func:`boxes_to_classes` gives the three-class target (background, particle
boundary, particle core): the core is the ellipse inscribed in the box shrunk to
``core`` (default :data:`CORE_FRACTION`) of its radii, within the particle's label;
touching particles then have separate cores, which
:func:`temzoo.analysis.particles.instances` uses as watershed markers (the usual
instance separation with a semantic network, as in the Data Science Bowl 2018
winners' boundary/interior targets).
"""

import os

import numpy as np

from temzoo.errors import BadInputError

MASK_KINDS = ("ellipse", "refined")
# pixel weights of boxes_to_weights (U-Net's weight map, per particle): a particle smaller than the median box
# weighs up to MAX_SIZE_WEIGHT per pixel, so that one down to half the median diameter counts as much as a median
# one; background pixels between touching particles weigh CONTACT_WEIGHT
MAX_SIZE_WEIGHT = 4.0
CONTACT_WEIGHT = 5.0
CORE_FRACTION = 0.6  # the core class: the inscribed ellipse shrunk to this fraction of its radii
CLASSES = ("background", "boundary", "core")  # the three-class target of boxes_to_classes


def read_yolo_boxes(path, shape):
    """Boxes of a YOLO label file as float pixel corners ``(N, 4)``: ``x0, y0, x1, y1`` (x = column).

    ``shape`` is the image's ``(height, width)``. Bad lines raise
    :class:`BadInputError` naming the file and line.
    """
    path = os.fspath(path)
    height, width = shape[:2]
    boxes = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the box file ({exc.strerror or exc}).") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [float(v) for v in parts]
        except ValueError:
            values = None
        if values is None or len(values) != 5:
            raise BadInputError(f"{path}, line {number}: expected 'class cx cy w h' (5 numbers), got {line.strip()!r}.")
        _, cx, cy, w, h = values
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
            raise BadInputError(
                f"{path}, line {number}: YOLO boxes are relative to the image size (0..1, width and height > 0), "
                f"got cx={cx}, cy={cy}, w={w}, h={h}."
            )
        boxes.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
    return np.array(boxes, np.float64).reshape(-1, 4)


def box_touches_border(boxes, shape, tolerance=1.0):
    """Boolean per box: within ``tolerance`` pixels of the image edge."""
    height, width = shape[:2]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (
        (boxes[:, 0] <= tolerance) | (boxes[:, 1] <= tolerance)
        | (boxes[:, 2] >= width - tolerance) | (boxes[:, 3] >= height - tolerance)
    )


def _ellipse(box, shape, grow=1.0):
    """Boolean mask (within the box's pixel window) of the ellipse inscribed in ``box``; returns (window, mask)."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = max((x1 - x0) / 2 * grow, 0.5), max((y1 - y0) / 2 * grow, 0.5)
    c0, c1 = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, width)
    r0, r1 = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, height)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    # pixel centres at +0.5: pixel (r, c) covers [c, c+1) x [r, r+1)
    inside = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0
    return (slice(r0, r1), slice(c0, c1)), inside


def particles_are_bright(image, boxes):
    """True if the boxed particles are brighter than the rest of the image (HAADF), False for bright field."""
    image = np.asarray(image, np.float32)
    inside = np.zeros(image.shape, bool)
    for box in boxes:
        window, ellipse = _ellipse(box, image.shape, grow=0.7)
        inside[window] |= ellipse
    if not inside.any() or inside.all():
        return True
    return float(np.median(image[inside])) >= float(np.median(image[~inside]))


def _refine(image, box, bright):
    from scipy import ndimage
    from skimage import filters, measure

    window, ellipse = _ellipse(box, image.shape)
    grown_window, grown = _ellipse(box, image.shape, grow=1.2)
    patch = image[grown_window]
    if patch.size < 9 or np.ptp(patch) == 0:
        return window, ellipse, False
    try:
        level = filters.threshold_otsu(patch)
    except ValueError:
        return window, ellipse, False
    side = patch > level if bright else patch < level
    side = ndimage.binary_fill_holes(side & grown)
    labels = measure.label(side)
    cy = (grown_window[0].stop - grown_window[0].start) // 2
    cx = (grown_window[1].stop - grown_window[1].start) // 2
    centre = labels[cy, cx] if labels[cy, cx] else (np.bincount(labels.ravel())[1:].argmax() + 1 if labels.max() else 0)
    if not centre:
        return window, ellipse, False
    refined = labels == centre
    if not 0.3 * ellipse.sum() <= refined.sum() <= 1.3 * ellipse.sum():
        return window, ellipse, False
    return grown_window, refined, True


def boxes_to_instances(boxes, shape, *, kind="ellipse", image=None):
    """Instance labels (int32, 0 = background, box ``i`` -> ``i + 1``) from boxes.

    Pixels claimed by two boxes, and pixels next to another particle's label,
    become background. ``kind="refined"`` needs ``image``.
    """
    from scipy import ndimage

    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind {kind!r} is not supported; choose one of {', '.join(MASK_KINDS)}.")
    if kind == "refined" and image is None:
        raise ValueError("kind='refined' refines the boxes by the image: pass image=.")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = shape[:2]
    labels = np.zeros((height, width), np.int32)
    count = np.zeros((height, width), np.uint8)
    if kind == "refined":
        image = ndimage.gaussian_filter(np.asarray(image, np.float32), 1.0)
        bright = particles_are_bright(image, boxes)
    for i, box in enumerate(boxes):
        if kind == "refined":
            window, inside, _ = _refine(image, box, bright)
        else:
            window, inside = _ellipse(box, shape)
        labels[window][inside] = i + 1
        count[window] += inside.astype(np.uint8)
    labels[count > 1] = 0
    # contacts: a pixel whose 3x3 neighbourhood holds another particle's id
    big = np.iinfo(np.int32).max
    highest = ndimage.maximum_filter(labels, size=3)
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, big), size=3)
    labels[(labels > 0) & ((highest != labels) | (lowest != labels))] = 0
    return labels


def boxes_to_weights(boxes, shape, *, kind="ellipse", image=None, max_size_weight=MAX_SIZE_WEIGHT,
                     contact=CONTACT_WEIGHT):
    """Per-pixel loss weights (float32, ``shape``) for the labels of :func:`boxes_to_instances`.

    Ronneberger et al.'s U-Net weight map, per particle: a cross-entropy summed over pixels lets a particle
    count by its area, so the small ones, the ones most often missed, hardly count. Here each particle's
    pixels weigh the median box area over its own box area, clipped to ``[1, max_size_weight]`` (4: a
    particle down to half the median diameter counts as much as a median one), and the background pixels
    that separate touching particles (claimed by two boxes' labels or next to another particle's, and the
    pixels around them) weigh ``contact``, so that the model learns to keep neighbours apart. Elsewhere 1.
    """
    from scipy import ndimage

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = boxes_to_instances(boxes, shape, kind=kind, image=image)
    weights = np.ones(labels.shape, np.float32)
    if not len(boxes):
        return weights
    areas = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    per_particle = np.clip(np.median(areas) / areas, 1.0, float(max_size_weight)).astype(np.float32)
    inside = labels > 0
    weights[inside] = per_particle[labels[inside] - 1]
    claimed = np.zeros(labels.shape, bool)
    for box in boxes:
        window, ellipse = _ellipse(box, shape)
        claimed[window] |= ellipse
    gaps = claimed & ~inside  # pixels of a box's ellipse that boxes_to_instances gave to the background
    weights[ndimage.binary_dilation(gaps) & ~inside] = float(contact)
    return weights


def boxes_to_mask(boxes, shape, *, kind="ellipse", image=None):
    """Binary label map (uint8, 1 = particle) for segmentation training: see :func:`boxes_to_instances`."""
    return (boxes_to_instances(boxes, shape, kind=kind, image=image) > 0).astype(np.uint8)


def boxes_to_classes(boxes, shape, *, kind="ellipse", image=None, core=CORE_FRACTION):
    """Three-class label map (uint8, :data:`CLASSES`): 0 background, 1 particle boundary, 2 particle core.

    The particles are :func:`boxes_to_instances`; each one's core is the ellipse inscribed in its
    box shrunk to ``core`` of the radii, cut to the particle's own label (so neighbours' cores never touch).
    """
    if not 0 < float(core) < 1:
        raise ValueError(f"core must be a fraction of the radii between 0 and 1, got {core}.")
    labels = boxes_to_instances(boxes, shape, kind=kind, image=image)
    classes = (labels > 0).astype(np.uint8)
    for i, box in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        window, inside = _ellipse(box, shape, grow=float(core))
        classes[window][inside & (labels[window] == i + 1)] = 2
    return classes


IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def _read_any(path):
    """A 2-D float32 image: TIFF/PNG/... through :mod:`temzoo.io`, JPEG (as published boxes often come) with Pillow."""
    if os.path.splitext(path)[1].lower() in (".jpg", ".jpeg"):
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("L"), np.float32)
        except OSError as exc:
            raise BadInputError(f"{path}: cannot read the JPEG ({exc}).") from exc
    from temzoo.io import read_image

    image = read_image(path)
    if image.ndim != 2:
        raise BadInputError(f"{path}: a stack; box labels belong to one 2-D image.")
    return image


def find_image(labels_dir, stem):
    """The image of ``labels/STEM.txt``: ``images/STEM.*`` beside ``labels/``, else ``STEM.*`` one folder up."""
    root = os.path.dirname(os.path.abspath(labels_dir))
    for folder in (os.path.join(root, "images"), os.path.dirname(root)):
        for ext in IMAGE_EXTENSIONS:
            candidate = os.path.join(folder, stem + ext)
            if os.path.isfile(candidate):
                return candidate
    raise BadInputError(
        f"{os.path.join(labels_dir, stem + '.txt')}: no image {stem}.* in {os.path.join(root, 'images')} "
        f"or {os.path.dirname(root)}."
    )


def load_box_folder(root, names=None):
    """Labelled images of a YOLO folder (``root/labels/*.txt`` with their images), sorted by name.

    Returns a list of dicts ``{"name", "path", "image" (float32 H x W), "boxes" (N x 4 pixel corners)}``;
    ``names`` selects some stems.
    """
    labels_dir = os.path.join(os.fspath(root), "labels")
    if not os.path.isdir(labels_dir):
        raise BadInputError(f"{root}: no labels/ folder (YOLO layout: labels/NAME.txt with images/NAME.jpg).")
    stems = sorted(f[:-4] for f in os.listdir(labels_dir) if f.endswith(".txt"))
    if names is not None:
        missing = sorted(set(names) - set(stems))
        if missing:
            raise BadInputError(f"{labels_dir}: no labels for {', '.join(missing)}.")
        stems = [s for s in stems if s in set(names)]
    examples = []
    for stem in stems:
        path = find_image(labels_dir, stem)
        image = _read_any(path)
        boxes = read_yolo_boxes(os.path.join(labels_dir, stem + ".txt"), image.shape)
        examples.append({"name": stem, "path": path, "image": image, "boxes": boxes})
    return examples
