"""Write the fake TEM-ImageNet tree in the real layout (beside this script).

Ids and the split their SHA-1 bucket puts them in (see ``split_of`` in the builder):
00002, 00003, 00004, 00005 -> train; 00008 -> validation; 00011, 00022 -> test.
``noNoise/00004.png`` is left out, so the ``denoise`` config drops that id (3/1/2) while
every other config keeps all of them (4/1/2). Inputs and targets are 256x256 8-bit
grayscale PNGs; the two up-interpolated folders hold 512x512 PNGs. Flat-valued squares
on a lattice keep each PNG well under 1 KB.
"""

import pathlib

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
IDS = ["00002", "00003", "00004", "00005", "00008", "00011", "00022"]
FOLDERS = {
    "image": 256,
    "noNoise": 256,
    "noBackgroundnoNoise": 256,
    "noNoiseNoBackgroundSuperresolution": 256,
    "noNoiseUpinterpolation2x": 512,
    "noNoiseNoBackgroundUpinterpolation2x": 512,
    "circularMask": 256,
    "gaussianMask": 256,
}
MISSING = {("noNoise", "00004")}


def lattice(size, seed, level):
    rng = np.random.default_rng(seed)
    step = size // 8
    offset = int(rng.integers(0, step // 2))
    array = np.full((size, size), 20 + seed % 10, np.uint8)
    for r in range(offset, size - 4, step):
        for c in range(offset, size - 4, step):
            array[r : r + step // 3, c : c + step // 3] = level
    return array


def main():
    for f_index, (folder, size) in enumerate(FOLDERS.items()):
        (HERE / folder).mkdir(exist_ok=True)
        for image_id in IDS:
            if (folder, image_id) in MISSING:
                continue
            array = lattice(size, int(image_id), level=120 + 15 * f_index)
            Image.fromarray(array).save(HERE / folder / f"{image_id}.png", optimize=True)


if __name__ == "__main__":
    main()
