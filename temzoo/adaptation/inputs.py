"""The inputs of an adaptation: noisy frames from files or arrays, checked; the method they allow."""

import hashlib
import os

import numpy as np

from temzoo.errors import BadInputError

MIN_SIDE = 16


def load_frames(images):
    """``[(name, 2-D float32 frame)]`` from paths (any format ``predict`` reads; stacks give
    one frame each) and/or arrays (2-D, or 3-D stacks)."""
    from temzoo.io import check_readable, iter_frames

    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise BadInputError("no input images given: pass one or more noisy micrographs.")
    for item in images:  # check every file before reading any
        if isinstance(item, (str, os.PathLike)):
            check_readable(item)
    frames = []
    for index, item in enumerate(images):
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            stack = list(iter_frames(path))
            names = [path] if len(stack) == 1 else [f"{path} (frame {i})" for i in range(len(stack))]
        else:
            array = np.asarray(item)
            if array.ndim == 2:
                stack = [array]
            elif array.ndim == 3:
                stack = list(array)
            else:
                raise BadInputError(f"image {index}: shape {array.shape}; give 2-D images or 3-D stacks (N, H, W).")
            names = [f"image {index}" if len(stack) == 1 else f"image {index} (frame {i})" for i in range(len(stack))]
            if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
                raise BadInputError(f"image {index}: pixel type {array.dtype} is not a real number type.")
        for name, frame in zip(names, stack, strict=True):
            frame = np.asarray(frame, dtype=np.float32)
            if not np.isfinite(frame).all():
                raise BadInputError(f"{name}: has NaN or infinite pixels; replace them (e.g. numpy.nan_to_num).")
            if min(frame.shape) < MIN_SIDE:
                raise BadInputError(f"{name}: {frame.shape[0]}x{frame.shape[1]} pixels is too small to adapt on "
                                    f"(at least {MIN_SIDE}x{MIN_SIDE}).")
            if float(frame.std()) == 0.0:
                raise BadInputError(f"{name}: the image is constant (every pixel {frame.flat[0]:g}); nothing to learn.")
            frames.append((name, frame))
    return frames


def choose_method(config, frames):
    """The method to run: ``config.method``, with ``auto`` resolved (binomial when every frame holds counts)."""
    from temzoo.adaptation.splitting import holds_counts, to_counts

    if config.method == "binomial":
        for name, frame in frames:
            to_counts(frame, config.gain, config.offset, name)  # raises with the file's name
        return "binomial"
    if config.method == "auto":
        if all(holds_counts(frame, config.gain, config.offset) for _, frame in frames):
            return "binomial"
        return "blind_spot"
    return config.method


def fingerprint(frames):
    """sha256 of the frames' shapes and pixels (what a resumed run must match)."""
    digest = hashlib.sha256()
    for _, frame in frames:
        digest.update(np.asarray(frame.shape, np.int64).tobytes())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()


def patch_side(config, frames, stride):
    """The training patch side: ``config.patch_size`` cut to the smallest frame and to a multiple of
    ``stride``; refuses frames too small for the model."""
    side = min(min(frame.shape) for _, frame in frames)
    patch = min(config.patch_size, side) // stride * stride
    if patch < max(stride, MIN_SIDE):
        smallest = min(frames, key=lambda f: min(f[1].shape))[0]
        raise BadInputError(f"{smallest}: too small for this model (its sides must be at least "
                            f"{max(stride, MIN_SIDE)} pixels, the model's stride being {stride}).")
    return patch
