"""Figures written by fine-tuning, prediction and the experiment: learning curves, overlays, :func:`save_figure`.

Images are composed in NumPy (no figure for overlays); learning curves use
matplotlib's non-interactive Agg canvas. Everything is written atomically.
"""

import numpy as np

from temzoo.atomic import atomic_path

# label colours (RGB) for classes 1, 2, ...; class 0 (background) is left as is
LABEL_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.float32
)


def to_uint8(image, low=1.0, high=99.8):
    """Grayscale image -> uint8, mapping the ``low``/``high`` percentiles to 0/255."""
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [low, high])
    scaled = (image - lo) / max(float(hi - lo), 1e-12)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def overlay(image, labels, alpha=0.45, truth=None):
    """RGB uint8 overlay of integer ``labels`` on a grayscale ``image``.

    With ``truth`` the result is two panels side by side: prediction | ground truth.
    """
    gray = to_uint8(image).astype(np.float32)
    panels = [labels] if truth is None else [labels, truth]
    out = []
    for lab in panels:
        rgb = np.repeat(gray[..., None], 3, axis=-1)
        lab = np.asarray(lab).astype(np.int64)
        for cls in range(1, int(lab.max(initial=0)) + 1):
            colour = LABEL_COLOURS[(cls - 1) % len(LABEL_COLOURS)]
            mask = lab == cls
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
        out.append(rgb)
    if len(out) == 2:
        gap = np.full((gray.shape[0], 4, 3), 255, np.float32)
        out = [np.concatenate([out[0], gap, out[1]], axis=1)]
    return np.clip(out[0], 0, 255).astype(np.uint8)


def side_by_side(*images):
    """Grayscale images (same height) -> one RGB uint8 panel row, each scaled on its own."""
    panels = []
    for i, image in enumerate(images):
        if i:
            panels.append(np.full((image.shape[0], 4), 255, np.uint8))
        panels.append(to_uint8(image))
    gray = np.concatenate(panels, axis=1)
    return np.repeat(gray[..., None], 3, axis=-1)


def save_figure(fig, path):
    """Lay out ``fig`` and write it to ``path`` as a PNG, atomically; returns ``path``."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def titled_panels(path, panels, titles, heading=None, panel_inches=3.2):
    """Write images side by side, each with its title, under a ``heading``, as one PNG (atomically).

    ``panels`` are uint8 RGB (H x W x 3) or grayscale (H x W) arrays of any size.
    """
    from matplotlib.figure import Figure

    if len(panels) != len(titles):
        raise ValueError(f"{len(panels)} panels but {len(titles)} titles.")
    fig = Figure(figsize=(panel_inches * len(panels), panel_inches + (0.7 if heading else 0.4)), dpi=100)
    for i, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(panel, cmap="gray" if np.ndim(panel) == 2 else None, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    if heading:
        fig.suptitle(heading, fontsize=10)
    return save_figure(fig, path)


def learning_curves(history, path, title=None):
    """Plot every ``loss``/metric and its ``val_`` twin from a Keras history dict to a PNG."""
    from matplotlib.figure import Figure

    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig = Figure(figsize=(4 * max(len(names), 1), 3.2), dpi=100)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, max(len(names), 1), i + 1)
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
