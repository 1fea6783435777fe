"""synthetic_tem: simulated TEM images generated offline (no download), deterministic per seed.

Configs:

* ``au_np``: HRTEM of Au nanoparticles on amorphous carbon with exact particle
  masks (:func:`temzoo.simulate.hrtem.simulate_nanoparticles`).
* ``atomic``: TEMImageNet-like atomic-resolution STEM lattices with denoising,
  background-removal, super-resolution and atom-mask targets
  (:func:`temzoo.simulate.stem.simulate_lattice`).
* ``unlabeled``: both families, several FCC metals, zone axes, pixel sizes,
  noiseless images for self-supervised pretraining.
* ``realistic``: what real references look like (:mod:`temzoo.simulate.realistic`):
  lattices with non-round columns, HRTEM, low-magnification supported
  particles (HAADF and bright field) and overviews, with scan artefacts,
  detector blur, the reference's own residual noise, 8-bit and JPEG export.

Every example is drawn from its own generator seeded by
``(config.seed, split index, example index)``, so a build gives the same
bytes every time and examples do not depend on the order they are written in.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from temzoo.simulate.hrtem import HrtemRanges, simulate_nanoparticles
from temzoo.simulate.stem import StemRanges, simulate_lattice

FAMILIES = ("au_np", "atomic", "unlabeled", "realistic")
SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(eq=False)
class SyntheticTemConfig(tfds.core.BuilderConfig):
    """One synthetic dataset: which simulator, how many images, which parameter ranges.

    Attributes:
        family: ``"au_np"``, ``"atomic"``, ``"unlabeled"`` or ``"realistic"``; empty = the family
            whose name starts the config name (``"au_np_tiny"`` -> ``"au_np"``).
        image_size: height = width of every image, pixels.
        num_train, num_validation, num_test: examples per split (0 = no split).
        seed: base seed; the same seed and version give the same bytes.
        pixel_size_range: Å/px. ``None`` = the family's default
            (HRTEM (0.35, 0.6), STEM (0.12, 0.25)).
        dose_range: ``au_np``: electrons/Å^2 (default (100, 5000)); ``atomic``:
            electrons per pixel at unit column intensity (default (5, 200)).
            Drawn log-uniformly. Unused by ``unlabeled`` (noiseless images).
        diameter_range_nm: particle diameters (HRTEM), nm.
        max_particles: at most this many particles per HRTEM image.
        scan_jitter_px: (low, high) rms per-scan-line offset (STEM), px.
        hrtem_fraction: share of HRTEM images in ``unlabeled``.
        absorption_range: HRTEM metal's absorptive/elastic potential ratio
            (default (0.08, 0.2); (0, 0) draws the pure phase objects of version 1.0.0).
    """

    family: str = ""
    image_size: int = 256
    num_train: int = 400
    num_validation: int = 50
    num_test: int = 50
    seed: int = 0
    pixel_size_range: tuple | None = None
    dose_range: tuple | None = None
    diameter_range_nm: tuple = (2.0, 8.0)
    max_particles: int = 3
    scan_jitter_px: tuple = (0.0, 0.0)
    hrtem_fraction: float = 0.5
    absorption_range: tuple | None = None

    def __post_init__(self):
        if not self.family:
            matches = [f for f in FAMILIES if self.name == f or self.name.startswith(f + "_")]
            if not matches:
                raise ValueError(
                    f"SyntheticTemConfig {self.name!r}: set family= to one of {', '.join(FAMILIES)} "
                    "(or start the name with one)."
                )
            self.family = matches[0]
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r} is not supported; choose one of {', '.join(FAMILIES)}.")
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size}.")
        for split in SPLIT_INDEX:
            if getattr(self, f"num_{split}") < 0:
                raise ValueError(f"num_{split} must be >= 0.")

    def hrtem_ranges(self, materials=("Au",)):
        kwargs = {
            "materials": tuple(materials),
            "diameter": (10.0 * self.diameter_range_nm[0], 10.0 * self.diameter_range_nm[1]),
            "max_particles": int(self.max_particles),
        }
        if self.pixel_size_range is not None:
            kwargs["pixel_size"] = tuple(self.pixel_size_range)
        if self.dose_range is not None and self.family == "au_np":
            kwargs["dose"] = tuple(self.dose_range)
        if self.absorption_range is not None:
            kwargs["absorption"] = tuple(self.absorption_range)
        return HrtemRanges(**kwargs)

    def stem_ranges(self):
        kwargs = {"scan_jitter": tuple(self.scan_jitter_px)}
        if self.pixel_size_range is not None and self.family == "atomic":
            kwargs["pixel_size"] = tuple(self.pixel_size_range)
        if self.dose_range is not None and self.family == "atomic":
            kwargs["counts"] = tuple(self.dose_range)
        return StemRanges(**kwargs)


def _float_image(size):
    return tfds.features.Tensor(shape=(size, size, 1), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB)


def _uint8_image(size):
    return tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB)


class SyntheticTem(tfds.core.GeneratorBasedBuilder):
    """Simulated HRTEM nanoparticle and STEM lattice images; generated locally, nothing downloaded."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: au_np, atomic and unlabeled configs (realistic added later; "
                 "the other configs are unchanged).",
        "1.1.0": "HRTEM particles absorb (mass-thickness contrast, temzoo.simulate.hrtem): in 1.0.0 a "
                 "pure phase object made particles whose lattice lies beyond the band limit (Au [111] "
                 "at about 0.5 A/px, about a sixth of au_np) invisible in the image while the mask "
                 "marked them.",
    }
    # temzoo.datasets builds generated datasets on first use instead of asking for files.
    GENERATED = True
    BUILDER_CONFIGS = [
        SyntheticTemConfig(
            name="au_np",
            description="HRTEM of Au nanoparticles on amorphous carbon; noisy image, noiseless image, particle mask.",
        ),
        SyntheticTemConfig(
            name="atomic",
            description="TEMImageNet-like STEM lattices: noisy image, clean, background-free, "
            "super-resolution and atom masks.",
            num_train=300,  # six 256x256 arrays per example: ~1.1 MB each, writing dominates the build
        ),
        SyntheticTemConfig(
            name="unlabeled",
            description="Noiseless HRTEM and STEM images of varied metals and lattices for self-supervised pretraining.",
            num_train=800,
            num_validation=50,
            num_test=50,
        ),
        SyntheticTemConfig(
            name="realistic",
            description="Simulated references as real acquisitions give them: varied lattices, HRTEM, "
            "low-magnification supported particles (HAADF, bright field) and overviews, with scan artefacts, "
            "detector blur, residual shot noise, 8-bit and JPEG export; `image` (reference) and `clean`.",
            num_train=1200,
            num_validation=50,
            num_test=50,
        ),
    ]

    def _info(self):
        config = self.builder_config
        size = config.image_size
        if config.family == "au_np":
            features = {
                "image": _float_image(size),
                "clean": _float_image(size),
                "mask": _uint8_image(size),
                "pixel_size": np.float32,
                "dose": np.float32,
                "defocus": np.float32,
                "cs": np.float32,
                "zone_axis": tfds.features.Text(),
                "material": tfds.features.Text(),
                "num_particles": np.int32,
            }
            supervised = ("image", "mask")
        elif config.family == "atomic":
            features = {
                "image": _float_image(size),
                "clean": _float_image(size),
                "clean_no_background": _float_image(size),
                "super_resolution": _float_image(size),
                "circular_mask": _uint8_image(size),
                "gaussian_mask": _float_image(size),
                "lattice": tfds.features.Text(),
                "pixel_size": np.float32,
                "spacing": np.float32,
                "counts": np.float32,
            }
            supervised = ("image", "clean")
        elif config.family == "realistic":
            features = {
                "image": _float_image(size),
                "clean": _float_image(size),
                "family": tfds.features.Text(),
                "modality": tfds.features.Text(),
                "export": tfds.features.Text(),
                "pixel_size": np.float32,
                "residual_counts": np.float32,
            }
            supervised = None
        else:
            features = {
                "image": _float_image(size),
                "family": tfds.features.Text(),
                "material": tfds.features.Text(),
                "pixel_size": np.float32,
            }
            supervised = None
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            supervised_keys=supervised,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        config = self.builder_config
        return {
            split: self._generate_examples(split)
            for split in SPLIT_INDEX
            if getattr(config, f"num_{split}") > 0
        }

    def _generate_examples(self, split):
        config = self.builder_config
        for index in range(getattr(config, f"num_{split}")):
            rng = np.random.default_rng([config.seed, SPLIT_INDEX[split], index])
            yield f"{split}_{index:06d}", make_example(config, rng)


def make_example(config, rng):
    """One example (feature dict of numpy values) of ``config``'s family."""
    size = config.image_size
    if config.family == "au_np":
        sim = simulate_nanoparticles(rng, size, config.hrtem_ranges())
        return {
            "image": sim["image"][..., None],
            "clean": sim["clean"][..., None],
            "mask": sim["mask"][..., None],
            **{key: np.float32(sim[key]) for key in ("pixel_size", "dose", "defocus", "cs")},
            "zone_axis": sim["zone_axis"],
            "material": sim["material"],
            "num_particles": np.int32(sim["num_particles"]),
        }
    if config.family == "atomic":
        sim = simulate_lattice(rng, size, config.stem_ranges())
        example = {key: sim[key][..., None] for key in (
            "image", "clean", "clean_no_background", "super_resolution", "circular_mask", "gaussian_mask")}
        example.update({key: np.float32(sim[key]) for key in ("pixel_size", "spacing", "counts")})
        example["lattice"] = sim["lattice"]
        return example
    if config.family == "realistic":
        from temzoo.simulate.realistic import simulate_realistic

        sim = simulate_realistic(rng, size)
        return {
            "image": sim["image"][..., None],
            "clean": sim["clean"][..., None],
            **{key: sim[key] for key in ("family", "modality", "export")},
            "pixel_size": np.float32(sim["pixel_size"]),
            "residual_counts": np.float32(sim["residual_counts"]),
        }
    if rng.uniform() < config.hrtem_fraction:
        from temzoo.simulate.crystal import MATERIALS

        ranges = config.hrtem_ranges(materials=tuple(MATERIALS))
        if config.pixel_size_range is None:
            ranges = dataclasses.replace(ranges, pixel_size=(0.25, 0.8))
        sim = simulate_nanoparticles(rng, size, ranges)
        return {"image": sim["clean"][..., None], "family": "hrtem", "material": sim["material"],
                "pixel_size": np.float32(sim["pixel_size"])}
    sim = simulate_lattice(rng, size, config.stem_ranges())
    return {"image": sim["clean"][..., None], "family": "stem", "material": sim["lattice"],
            "pixel_size": np.float32(sim["pixel_size"])}
