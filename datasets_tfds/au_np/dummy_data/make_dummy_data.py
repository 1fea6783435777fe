"""Write the fake au_np files in the real layout (run from anywhere; writes beside this script).

Sytwu sets (4 configs, same content, real file names): ``images`` (6, 512, 1024) uint16
counts and ``labels`` (6, 512, 1024) uint8 0/1, so 12 tiles of 512x512:

  image 0: left tile 3600 particle px, right tile 0 px        -> right dropped
  image 1: left tile exactly 400 px (dropped), right 401 px (kept)
  images 2-5: both tiles 3600 px
  => 10 kept tiles -> sequential split 7 / 1 / 2 (train / validation / test).

Every image also has X-ray hits (60000 counts), one of them on the border.

Groschner set: ``images`` (10, 512, 512, 1) float32 and ``maps`` (10, 512, 512, 2) uint8
one-hot (background, particle); image 3 has no particle. No tile filtering for this
config, so 10 tiles -> 7 / 1 / 2.

Smooth content + gzip keeps every file a few KB.
"""

import pathlib

import h5py
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SYTWU_STEMS = ["Au_20nm_87kx_16e", "Au_2p2nm_330kx_423e", "Au_5nm_330kx_423e", "Au_10nm_330kx_425e"]


def _write(path, key, array):
    with h5py.File(path, "w") as h5:
        chunks = (1,) + array.shape[1:]
        h5.create_dataset(
            key,
            data=array,
            chunks=chunks,
            compression="gzip",
            compression_opts=9,
            track_times=False,
        )


def _square(mask, row, col, side, extra=0):
    mask[row : row + side, col : col + side] = 1
    if extra:
        mask[row + side, col : col + extra] = 1


def sytwu_arrays():
    n, height, width = 6, 512, 1024
    labels = np.zeros((n, height, width), np.uint8)
    for i in range(n):
        _square(labels[i], 100, 100, 60)  # left tile: 3600 px
        if i >= 2:
            _square(labels[i], 200, 600, 60)  # right tile: 3600 px
    labels[1] = 0
    _square(labels[1], 50, 50, 20)  # left tile: exactly 400 px -> dropped
    _square(labels[1], 50, 600, 20, extra=1)  # right tile: 401 px -> kept
    # Coarse steps (not a fine ramp) so gzip shrinks the file to a few KB.
    ramp = (
        np.floor(np.linspace(0, 4, width))[None, :] + np.floor(np.linspace(0, 2, height))[:, None]
    )
    images = np.empty((n, height, width), np.uint16)
    for i in range(n):
        image = 100 + i + ramp + 50 * labels[i]
        image[10 + i, 700] = 60000  # interior X-ray hit
        image[0, 3 + i] = 60000  # border X-ray hit
        images[i] = np.round(image).astype(np.uint16)
    return images, labels


def groschner_arrays():
    n, size = 10, 512
    particle = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        if i != 3:
            _square(particle[i], 50 + 10 * i, 80, 40)
    maps = np.stack([1 - particle, particle], axis=-1).astype(np.uint8)
    ramp = 0.2 + 0.1 * np.floor(np.linspace(0, 2, size))[None, :] + np.zeros((size, 1))
    images = np.stack([ramp + 0.3 * particle[i] for i in range(n)])[..., None].astype(np.float32)
    return images, maps


def main():
    images, labels = sytwu_arrays()
    for stem in SYTWU_STEMS:
        _write(HERE / f"{stem}_Images.h5", "images", images)
        _write(HERE / f"{stem}_Labels.h5", "labels", labels)
    images, maps = groschner_arrays()
    _write(HERE / "Au_Bal_MedFilt_cutimages_20190726.h5", "images", images)
    _write(HERE / "Au_Bal_unFilt_cutimages_20190423_maps.h5", "maps", maps)


if __name__ == "__main__":
    main()
