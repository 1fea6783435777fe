"""Write a fake extracted CEM500K tree in the real format (beside this script).

224x224 uint8 single-channel TIFFs (zlib-compressed, flat stripes, < 1 KB each) in
nested folders under ``cem500k/``; one truncated file that cannot be read; one text file
that is not a TIFF. Relative paths and their SHA-1 split (see ``split_of``):

  empiar_10094/empiar_10094_00001.tiff                   train
  empiar_10094/empiar_10094_00047.tiff                   validation
  empiar_10094/stack_b/empiar_10094_00002.tif            train
  openorganelle_hela/openorganelle_hela_00000.tiff       train
  openorganelle_hela/crop/deep/openorganelle_hela_00001.TIF  train
  openorganelle_hela/openorganelle_hela_00002.tiff       train, corrupt -> skipped
"""

import hashlib
import pathlib

import numpy as np
import tifffile

HERE = pathlib.Path(__file__).resolve().parent / "cem500k"
GOOD = {
    "empiar_10094/empiar_10094_00001.tiff": "train",
    "empiar_10094/empiar_10094_00047.tiff": "validation",
    "empiar_10094/stack_b/empiar_10094_00002.tif": "train",
    "openorganelle_hela/openorganelle_hela_00000.tiff": "train",
    "openorganelle_hela/crop/deep/openorganelle_hela_00001.TIF": "train",
}
CORRUPT = "openorganelle_hela/openorganelle_hela_00002.tiff"


def _split(relative):  # same rule as the builder's split_of
    bucket = int(hashlib.sha1(relative.encode()).hexdigest(), 16) % 10_000
    return "validation" if bucket < 100 else "train"


def main():
    for n, (relative, split) in enumerate(sorted(GOOD.items())):
        assert _split(relative) == split, relative
        image = np.zeros((224, 224), np.uint8)
        image[:, :: 7 + n] = 40 * (n + 1)
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, image, compression="zlib")
    good = (HERE / sorted(GOOD)[0]).read_bytes()
    (HERE / CORRUPT).write_bytes(good[: len(good) // 3])  # truncated: header without data
    (HERE / "README.txt").write_text("not an image; the builder ignores it\n")


if __name__ == "__main__":
    main()
