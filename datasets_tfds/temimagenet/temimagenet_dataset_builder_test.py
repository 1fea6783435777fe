"""Builds the temimagenet configs from the fake PNG tree in dummy_data/.

Ids 00002-00005 hash to train, 00008 to validation, 00011 and 00022 to test;
noNoise/00004.png is missing, so ``denoise`` has one train example fewer.
"""

import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds
from temzoo_datasets.temimagenet import temimagenet_dataset_builder as tin


class TemImageNetTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tin.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [
        "background_removal",
        "super_resolution",
        "upsample_2x",
        "upsample_2x_no_background",
        "circular_mask",
        "gaussian_mask",
    ]
    SPLITS = {"train": 4, "validation": 1, "test": 2}


class TemImageNetDenoiseTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = tin.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["denoise"]
    SPLITS = {"train": 3, "validation": 1, "test": 2}


def test_split_of_is_a_stable_hash_bucket():
    assert [tin.split_of(i) for i in ("00002", "00008", "00011")] == ["train", "validation", "test"]
    counts = {"train": 0, "validation": 0, "test": 0}
    for n in range(20_000):
        counts[tin.split_of(f"{n:05d}")] += 1
    assert 0.78 < counts["train"] / 20_000 < 0.82
    assert 0.09 < counts["validation"] / 20_000 < 0.11


def _build(tmp_path, manual_dir, config):
    builder = tin.Builder(config=config, data_dir=str(tmp_path / "data"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def test_pairs_by_name_and_logs_the_dropped_id(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=tin.__name__):
        builder = _build(tmp_path, TemImageNetTest.dummy_data, "denoise")
    assert "00004" in caplog.text and "dropped 1 of 7" in caplog.text
    root = TemImageNetTest.dummy_data
    for ex in tfds.as_numpy(builder.as_dataset(split="train")):
        image_id = ex["id"].decode()
        assert image_id != "00004"
        expected = tin._read_gray(root / "noNoise" / f"{image_id}.png", 256)
        np.testing.assert_array_equal(ex["target"], expected)
        np.testing.assert_array_equal(
            ex["image"], tin._read_gray(root / "image" / f"{image_id}.png", 256)
        )


def test_upsample_target_keeps_its_size(tmp_path):
    builder = _build(tmp_path, TemImageNetTest.dummy_data, "upsample_2x")
    ex = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
    assert ex["image"].shape == (256, 256, 1) and ex["target"].shape == (512, 512, 1)


def test_missing_input_folder_says_where_to_point(tmp_path):
    (tmp_path / "manual" / "something").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="folder that contains image/"):
        _build(tmp_path, tmp_path / "manual", "denoise")


def test_wrong_image_size_names_the_file(tmp_path):
    from PIL import Image

    root = tmp_path / "manual" / "TEM-ImageNet-v1.3"
    for folder in ("image", "noNoise"):
        (root / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((128, 128), np.uint8)).save(root / folder / "00002.png")
    with pytest.raises(ValueError, match=r"00002\.png: image is 128x128, expected 256x256"):
        _build(tmp_path, tmp_path / "manual", "denoise")
