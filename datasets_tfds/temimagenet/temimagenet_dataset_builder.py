"""temimagenet: simulated atomic-resolution (S)TEM images and their targets (Lin et al. 2021).

Each config pairs the noisy input ``image/NNNNN.png`` with the same-named file of one target
folder of the TEM-ImageNet repository. The split is 80/10/10 by a SHA-1 hash of the id, so
it does not change when ids are added or removed.
"""

import dataclasses
import hashlib
import io
import logging

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

logger = logging.getLogger(__name__)

REPO_URL = "https://github.com/xinhuolin/TEM-ImageNet-v1.3"
INPUT_FOLDER = "image"
IMAGE_SIZE = 256
# Percent of ids per split, by hash bucket: [0, 80) train, [80, 90) validation, [90, 100) test.
SPLIT_PERCENT = (("train", 80), ("validation", 10), ("test", 10))


@dataclasses.dataclass
class TemImageNetConfig(tfds.core.BuilderConfig):
    target_folder: str = ""
    # None: the target keeps the size it has on disk (the 2x up-interpolated folders).
    target_size: int | None = IMAGE_SIZE


BUILDER_CONFIGS = [
    TemImageNetConfig(
        name="denoise",
        target_folder="noNoise",
        description="Target: the same image without noise (noNoise/).",
    ),
    TemImageNetConfig(
        name="background_removal",
        target_folder="noBackgroundnoNoise",
        description="Target: without noise and background (noBackgroundnoNoise/).",
    ),
    TemImageNetConfig(
        name="super_resolution",
        target_folder="noNoiseNoBackgroundSuperresolution",
        description="Target: noise- and background-free, super-resolved "
        "(noNoiseNoBackgroundSuperresolution/).",
    ),
    TemImageNetConfig(
        name="upsample_2x",
        target_folder="noNoiseUpinterpolation2x",
        target_size=None,
        description="Target: noise-free, 2x up-interpolated (noNoiseUpinterpolation2x/).",
    ),
    TemImageNetConfig(
        name="upsample_2x_no_background",
        target_folder="noNoiseNoBackgroundUpinterpolation2x",
        target_size=None,
        description="Target: noise- and background-free, 2x up-interpolated "
        "(noNoiseNoBackgroundUpinterpolation2x/).",
    ),
    TemImageNetConfig(
        name="circular_mask",
        target_folder="circularMask",
        description="Target: a disc per atom column (circularMask/), uint8 as stored.",
    ),
    TemImageNetConfig(
        name="gaussian_mask",
        target_folder="gaussianMask",
        description="Target: a Gaussian per atom column (gaussianMask/), uint8 as stored.",
    ),
]


def split_of(image_id):
    """``train``/``validation``/``test`` from the SHA-1 of the id (stable across runs and machines)."""
    bucket = int(hashlib.sha1(image_id.encode("utf-8")).hexdigest(), 16) % 100
    upper = 0
    for name, percent in SPLIT_PERCENT:
        upper += percent
        if bucket < upper:
            return name
    raise AssertionError("SPLIT_PERCENT must sum to 100")


def _find_root(manual_dir):
    """The folder holding ``image/``: the manual dir itself or one of its direct sub-folders."""
    if (manual_dir / INPUT_FOLDER).is_dir():
        return manual_dir
    candidates = sorted(
        p for p in manual_dir.iterdir() if p.is_dir() and (p / INPUT_FOLDER).is_dir()
    )
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise ValueError(
            f"temimagenet: several folders in {manual_dir} hold an {INPUT_FOLDER}/ folder: "
            f"{', '.join(p.name for p in candidates)}. Give the one to use as --manual-dir."
        )
    raise FileNotFoundError(
        f"temimagenet: no {INPUT_FOLDER}/ folder in the manual directory {manual_dir} nor in its "
        f"sub-folders. Clone {REPO_URL} (or download its zip) and give the folder that "
        f"contains {INPUT_FOLDER}/ as --manual-dir."
    )


def _ids(folder):
    return {p.stem: p for p in folder.glob("*.png")}


def _read_gray(path, expected_size):
    """8-bit grayscale array (H, W, 1) of a PNG; a wrong size or an unreadable file raises."""
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as img:
            array = np.asarray(img.convert("L"), dtype=np.uint8)
    except Exception as err:  # PIL raises several types for broken files
        raise ValueError(f"{path}: cannot read it as a PNG image ({err})") from err
    if expected_size is not None and array.shape != (expected_size, expected_size):
        raise ValueError(
            f"{path}: image is {array.shape[1]}x{array.shape[0]}, expected "
            f"{expected_size}x{expected_size}"
        )
    return array[..., None]


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for TEM-ImageNet v1.3 (AtomSegNet training data)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "denoise"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Clone {REPO_URL} (or download and unzip its zip) and give the folder that contains
    `image/` (or its parent): `temzoo-cli data build temimagenet/<config> --manual-dir DIR`.
    Expected layout, files NNNNN.png, 8-bit grayscale, 256x256 (the up-interpolated
    folders may be larger):

      image/  noNoise/  noBackgroundnoNoise/  noNoiseNoBackgroundSuperresolution/
      noNoiseUpinterpolation2x/  noNoiseNoBackgroundUpinterpolation2x/
      circularMask/  gaussianMask/
    """

    def _info(self) -> tfds.core.DatasetInfo:
        size = IMAGE_SIZE
        target_size = self.builder_config.target_size
        target_shape = (target_size, target_size, 1) if target_size else (None, None, 1)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 1), dtype=np.uint8),
                    "target": tfds.features.Image(shape=target_shape, dtype=np.uint8),
                    "id": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "target"),
            homepage=REPO_URL,
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        root = _find_root(dl_manager.manual_dir)
        target_dir = root / config.target_folder
        if not target_dir.is_dir():
            raise FileNotFoundError(
                f"temimagenet/{config.name}: target folder {target_dir} does not exist. "
                f"Expected {config.target_folder}/ beside {INPUT_FOLDER}/ in {root}."
            )
        inputs = _ids(root / INPUT_FOLDER)
        targets = _ids(target_dir)
        if not inputs:
            raise FileNotFoundError(f"temimagenet: no .png files in {root / INPUT_FOLDER}")
        missing = sorted(set(inputs) - set(targets))
        for image_id in missing:
            logger.warning(
                "temimagenet/%s: %s%s.png has no %s/%s.png; dropped",
                config.name,
                INPUT_FOLDER + "/",
                image_id,
                config.target_folder,
                image_id,
            )
        if missing:
            logger.warning(
                "temimagenet/%s: dropped %d of %d ids without a target in %s/",
                config.name,
                len(missing),
                len(inputs),
                config.target_folder,
            )
        pairs = {name: [] for name, _ in SPLIT_PERCENT}
        for image_id in sorted(set(inputs) & set(targets)):
            pairs[split_of(image_id)].append((image_id, inputs[image_id], targets[image_id]))
        return {name: self._generate_examples(items) for name, items in pairs.items()}

    def _generate_examples(self, items):
        target_size = self.builder_config.target_size
        for image_id, image_path, target_path in items:
            yield (
                image_id,
                {
                    "image": _read_gray(image_path, IMAGE_SIZE),
                    "target": _read_gray(target_path, target_size),
                    "id": image_id,
                },
            )
