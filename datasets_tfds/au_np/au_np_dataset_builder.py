"""au_np: HRTEM images of Au nanoparticles with particle masks (Sytwu, Groschner & Scott 2022).

The raw ``.h5`` files are read from the manual directory and turned into 512x512 patches
by the published recipe (``recipe.py``): X-ray removal, per-image standardisation,
non-overlapping tiling, dropping tiles with <= 400 particle pixels, and the sequential
70/10/20 train/validation/test split over the kept tiles.
"""

import dataclasses
import logging

import h5py
import numpy as np
import tensorflow_datasets as tfds
from temzoo_datasets.au_np import recipe

logger = logging.getLogger(__name__)

ZENODO_URL = "https://doi.org/10.5281/zenodo.6419024"


@dataclasses.dataclass
class AuNpConfig(tfds.core.BuilderConfig):
    """One microscope set: its image/label files and its recipe parameters."""

    images_file: str = ""
    labels_file: str = ""
    images_key: str = "images"
    labels_key: str = "labels"
    # Upstream threshold above the image median; None: no X-ray removal.
    xray_threshold: float | None = None
    # Tiles with this many particle pixels or fewer are dropped; None: keep every tile.
    min_particle_pixels: int | None = recipe.MIN_PARTICLE_PIXELS
    # True: labels are a (N, H, W, 2) one-hot map (background, particle).
    one_hot_labels: bool = False


def _sytwu(name, stem, threshold, description):
    return AuNpConfig(
        name=name,
        description=description,
        images_file=f"{stem}_Images.h5",
        labels_file=f"{stem}_Labels.h5",
        xray_threshold=threshold,
    )


BUILDER_CONFIGS = [
    _sytwu(
        "au_20nm_87kx",
        "Au_20nm_87kx_16e",
        400,
        "20 nm Au particles at 87kx (low resolution); X-ray threshold 400 counts.",
    ),
    _sytwu(
        "au_2p2nm_330kx",
        "Au_2p2nm_330kx_423e",
        1500,
        "2.2 nm Au particles at 330kx; X-ray threshold 1500 counts.",
    ),
    _sytwu(
        "au_5nm_330kx",
        "Au_5nm_330kx_423e",
        1500,
        "5 nm Au particles at 330kx; X-ray threshold 1500 counts.",
    ),
    _sytwu(
        "au_10nm_330kx",
        "Au_10nm_330kx_425e",
        1500,
        "10 nm Au particles at 330kx; X-ray threshold 1500 counts.",
    ),
    AuNpConfig(
        name="groschner_5nm",
        description=(
            "Groschner, Choi & Scott (2021) 5 nm Au set: median-filtered 512x512 cut images "
            "with 2-channel one-hot maps; no X-ray removal and no tile filtering."
        ),
        images_file="Au_Bal_MedFilt_cutimages_20190726.h5",
        labels_file="Au_Bal_unFilt_cutimages_20190423_maps.h5",
        labels_key="maps",
        xray_threshold=None,
        min_particle_pixels=None,
        one_hot_labels=True,
    ),
]


def _find_file(manual_dir, filename, config_name, expected):
    """``<manual_dir>/<filename>`` or ``<manual_dir>/au_np/<filename>``, else a clear error."""
    for candidate in (manual_dir / filename, manual_dir / "au_np" / filename):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"au_np/{config_name}: {filename} not found in the manual directory {manual_dir} "
        f"(nor in {manual_dir / 'au_np'}). This config needs: {', '.join(expected)}. "
        f"Download them from {ZENODO_URL} and put them there, or give another --manual-dir."
    )


def _image_2d(array, path, index):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(
            f"{path}: image {index} has shape {array.shape}; expected (H, W) or (H, W, 1)"
        )
    return array


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the Au nanoparticle HRTEM segmentation sets."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: the published recipe of Sytwu et al. (2022)."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "au_20nm_87kx"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download from Zenodo ({ZENODO_URL}) the two files of the config you build and put
    them directly in the manual directory (or in its `au_np/` sub-folder):

      au_20nm_87kx:   Au_20nm_87kx_16e_Images.h5,   Au_20nm_87kx_16e_Labels.h5
      au_2p2nm_330kx: Au_2p2nm_330kx_423e_Images.h5, Au_2p2nm_330kx_423e_Labels.h5
      au_5nm_330kx:   Au_5nm_330kx_423e_Images.h5,  Au_5nm_330kx_423e_Labels.h5
      au_10nm_330kx:  Au_10nm_330kx_425e_Images.h5, Au_10nm_330kx_425e_Labels.h5
      groschner_5nm:  Au_Bal_MedFilt_cutimages_20190726.h5,
                      Au_Bal_unFilt_cutimages_20190423_maps.h5

    The manual directory defaults to ~/tensorflow_datasets/downloads/manual/; give
    another with `temzoo-cli data build au_np/<config> --manual-dir DIR`.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        size = recipe.PATCH_SIZE
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(
                        shape=(size, size, 1),
                        dtype=np.float32,
                        encoding=tfds.features.Encoding.ZLIB,
                    ),
                    "mask": tfds.features.Tensor(
                        shape=(size, size, 1), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB
                    ),
                    "source_index": np.int32,
                }
            ),
            supervised_keys=("image", "mask"),
            homepage="https://github.com/ScottLabUCB/HRTEM-Receptive-Field",
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        manual_dir = dl_manager.manual_dir
        expected = [config.images_file, config.labels_file]
        images_path = _find_file(manual_dir, config.images_file, config.name, expected)
        labels_path = _find_file(manual_dir, config.labels_file, config.name, expected)

        # First pass over the labels only: which tiles survive, in upstream order.
        tiles = []
        with labels_path.open("rb") as f, h5py.File(f, "r") as h5:
            labels = self._dataset(h5, config.labels_key, labels_path)
            for index in range(labels.shape[0]):
                mask = self._mask(labels[index], labels_path, index)
                for row, col in recipe.kept_tiles(
                    mask, recipe.PATCH_SIZE, config.min_particle_pixels
                ):
                    tiles.append((index, row, col))
        if not tiles:
            raise ValueError(
                f"au_np/{config.name}: no {recipe.PATCH_SIZE}x{recipe.PATCH_SIZE} tile of "
                f"{labels_path} has more than {config.min_particle_pixels} particle pixels; "
                "is this the right labels file?"
            )
        logger.info("au_np/%s: %d tiles kept", config.name, len(tiles))
        splits = recipe.sequential_split(tiles)
        return {
            name: self._generate_examples(images_path, labels_path, splits[name])
            for name in recipe.SPLIT_NAMES
        }

    @staticmethod
    def _dataset(h5, key, path):
        if key not in h5:
            raise KeyError(f"{path}: no dataset {key!r}; it has {sorted(h5.keys())}")
        return h5[key]

    def _mask(self, labels, path, index):
        if self.builder_config.one_hot_labels:
            return recipe.particle_channel(labels)
        return recipe.binary_mask(_image_2d(labels, path, index))

    def _generate_examples(self, images_path, labels_path, tiles):
        config = self.builder_config
        size = recipe.PATCH_SIZE
        by_image = {}
        for index, row, col in tiles:
            by_image.setdefault(index, []).append((row, col))
        with (
            images_path.open("rb") as fi,
            h5py.File(fi, "r") as h5i,
            labels_path.open("rb") as fl,
            h5py.File(fl, "r") as h5l,
        ):
            images = self._dataset(h5i, config.images_key, images_path)
            labels = self._dataset(h5l, config.labels_key, labels_path)
            if images.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"{images_path} has {images.shape[0]} images but {labels_path} has "
                    f"{labels.shape[0]} label maps"
                )
            for index, corners in by_image.items():
                image = _image_2d(images[index], images_path, index)
                mask = self._mask(labels[index], labels_path, index)
                if image.shape != mask.shape:
                    raise ValueError(
                        f"image {index}: {images_path} is {image.shape} but the labels are {mask.shape}"
                    )
                if config.xray_threshold is not None:
                    image = recipe.remove_xrays(image, config.xray_threshold)
                try:
                    image = recipe.standardize(image).astype(np.float32)
                except ValueError as err:
                    raise ValueError(f"{images_path}: image {index}: {err}") from err
                for row, col in corners:
                    yield (
                        f"{index:05d}_{row:05d}_{col:05d}",
                        {
                            "image": recipe.tile(image, row, col, size)[..., None],
                            "mask": recipe.tile(mask, row, col, size)[..., None],
                            "source_index": index,
                        },
                    )
