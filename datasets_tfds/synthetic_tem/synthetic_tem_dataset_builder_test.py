"""synthetic_tem builder: TFDS builder test on tiny configs, determinism, feature contents.

The dataset is generated (nothing downloaded), so ``dummy_data/`` holds no
fake files and no URL is ever requested (the checksum check has nothing to
verify). Every tiny config below has the same split sizes, as
``DatasetBuilderTestCase.SPLITS`` is shared by all configs tested.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import (
    SyntheticTem,
    SyntheticTemConfig,
)

TINY = {"image_size": 32, "num_train": 3, "num_validation": 2, "num_test": 1}


def tiny(family, **overrides):
    return SyntheticTemConfig(name=f"{family}_tiny", **{**TINY, **overrides})


class SyntheticTemTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = SyntheticTem
    BUILDER_CONFIG_NAMES_TO_TEST = [tiny("au_np"), tiny("atomic"), tiny("unlabeled")]
    SPLITS = {"train": 3, "validation": 2, "test": 1}
    SKIP_CHECKSUMS = True  # generated: no URLs


def _build(tmp_path, config):
    builder = SyntheticTem(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        compute_stats=tfds.download.ComputeStatsMode.SKIP))
    return builder


def _record_bytes(builder):
    files = sorted(tf.io.gfile.glob(f"{builder.data_dir}/*.tfrecord*"))
    assert files
    return {f.rsplit("/", 1)[-1]: tf.io.gfile.GFile(f, "rb").read() for f in files}


@pytest.mark.parametrize("family", ["au_np", "atomic"])
def test_two_builds_give_identical_bytes(tmp_path, family):
    first = _build(tmp_path / "a", tiny(family))
    second = _build(tmp_path / "b", tiny(family))
    assert _record_bytes(first) == _record_bytes(second)
    other_seed = _build(tmp_path / "c", tiny(family, seed=1))
    assert _record_bytes(other_seed) != _record_bytes(first)


def test_au_np_features(tmp_path):
    builder = _build(tmp_path, tiny("au_np", image_size=64, num_train=4, pixel_size_range=(0.5, 0.5)))
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
    assert len(examples) == 4
    for ex in examples:
        assert ex["image"].shape == (64, 64, 1) and ex["image"].dtype == np.float32
        assert ex["mask"].dtype == np.uint8 and set(np.unique(ex["mask"])) <= {0, 1}
        assert ex["zone_axis"].decode() in ("[100]", "[110]", "[111]")
        assert ex["pixel_size"] == pytest.approx(0.5)
        assert 100 <= ex["dose"] <= 5000
        assert ex["num_particles"] >= 1
    assert any(ex["mask"].any() for ex in examples)


def test_atomic_features(tmp_path):
    builder = _build(tmp_path, tiny("atomic", image_size=48))
    ex = next(iter(tfds.as_numpy(builder.as_dataset(split="train"))))
    for key in ("image", "clean", "clean_no_background", "super_resolution", "gaussian_mask"):
        assert ex[key].shape == (48, 48, 1) and ex[key].dtype == np.float32, key
    assert ex["circular_mask"].dtype == np.uint8
    assert np.all(ex["clean"] >= ex["clean_no_background"] - 1e-5)
    assert 0 <= ex["gaussian_mask"].min() and ex["gaussian_mask"].max() <= 1.0


def test_family_from_name_and_bad_family():
    assert SyntheticTemConfig(name="atomic_small").family == "atomic"
    with pytest.raises(ValueError, match="family"):
        SyntheticTemConfig(name="whatever")
