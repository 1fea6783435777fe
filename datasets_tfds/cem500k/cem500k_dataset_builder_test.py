"""Builds cem500k from the fake TIFF tree in dummy_data/ (see make_dummy_data.py).

Five readable files (one hashes to validation) and one truncated file, which is skipped.
One bad file in six is far above the 1% limit, so the skip test raises the limit; a
separate test checks that the default limit fails the build.
"""

import logging
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
import tifffile
from temzoo_datasets.cem500k import cem500k_dataset_builder as cem


class Cem500kTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = cem.Builder
    SPLITS = {"train": 4, "validation": 1}

    def setUp(self):
        super().setUp()
        patcher = mock.patch.object(cem.Builder, "MAX_UNREADABLE_FRACTION", 0.5)
        patcher.start()
        self.addCleanup(patcher.stop)


def _build(tmp_path, manual_dir):
    builder = cem.Builder(data_dir=str(tmp_path / "data"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def test_features_keep_source_and_filename_and_skip_is_logged(tmp_path, caplog):
    with (
        mock.patch.object(cem.Builder, "MAX_UNREADABLE_FRACTION", 0.5),
        caplog.at_level(logging.WARNING),
    ):
        builder = _build(tmp_path, Cem500kTest.dummy_data)
    assert "openorganelle_hela/openorganelle_hela_00002.tiff" in caplog.text
    assert "skipped 1 unreadable of 5 files in train" in caplog.text
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
    got = sorted((ex["source"].decode(), ex["filename"].decode()) for ex in examples)
    assert got == [
        ("empiar_10094", "empiar_10094_00001.tiff"),
        ("empiar_10094", "empiar_10094_00002.tif"),
        ("openorganelle_hela", "openorganelle_hela_00000.tiff"),
        ("openorganelle_hela", "openorganelle_hela_00001.TIF"),
    ]
    root = Cem500kTest.dummy_data / "cem500k"
    nested = next(ex for ex in examples if ex["filename"] == b"openorganelle_hela_00001.TIF")
    expected = tifffile.imread(root / "openorganelle_hela/crop/deep/openorganelle_hela_00001.TIF")
    np.testing.assert_array_equal(nested["image"][..., 0], expected)


def _fake_tree(tmp_path, n_good, n_bad):
    """``n_good`` readable and ``n_bad`` broken train files in two source folders."""
    root = tmp_path / "manual" / "cem500k"
    for source in ("src_a", "src_b"):
        (root / source).mkdir(parents=True)
    relative = [f"src_{'ab'[n % 2]}/img_{n:03d}.tiff" for n in range(3 * (n_good + n_bad))]
    relative = [r for r in relative if cem.split_of(r) == "train"][: n_good + n_bad]
    for r in relative[:n_good]:
        tifffile.imwrite(root / r, np.zeros((224, 224), np.uint8))
    for r in relative[n_good:]:
        (root / r).write_bytes(b"II*\x00garbage")
    return relative[n_good:]


def test_more_than_one_percent_unreadable_fails_naming_count_and_files(tmp_path):
    bad = _fake_tree(tmp_path, n_good=49, n_bad=1)  # 1 of 50 = 2% > 1%
    with pytest.raises(cem.UnreadableFilesError, match=r"1 of 50 files .*: " + bad[0]):
        _build(tmp_path, tmp_path / "manual")


def test_one_percent_unreadable_is_tolerated(tmp_path):
    _fake_tree(tmp_path, n_good=99, n_bad=1)  # 1 of 100 = exactly 1%: skipped, not fatal
    builder = _build(tmp_path, tmp_path / "manual")
    assert builder.info.splits["train"].num_examples == 99


def test_wrong_shape_or_dtype_is_unreadable(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((100, 224), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(100, 224\)"):
        cem.read_image(path)
    tifffile.imwrite(path, np.zeros((224, 224), np.uint16))
    with pytest.raises(ValueError, match="dtype uint16"):
        cem.read_image(path)


def test_validation_is_about_one_percent_and_stable():
    paths = [f"set_{s}/img_{n:05d}.tiff" for s in range(5) for n in range(4000)]
    share = sum(cem.split_of(p) == "validation" for p in paths) / len(paths)
    assert 0.008 < share < 0.012
    assert cem.split_of("empiar_10094/empiar_10094_00047.tiff") == "validation"


def test_normalisation_constants_are_the_published_ones():
    assert (cem.MEAN, cem.STD) == (0.57287007, 0.12740536)


def test_symlinks_never_leave_the_folder_and_each_file_is_read_once(tmp_path, caplog):
    root, outside = tmp_path / "cem500k", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    for path in (root / "a" / "1.tif", root / "a" / "2.tif", outside / "secret.tif"):
        tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    (root / "b").symlink_to(root / "a")  # a second way into a/
    (root / "a" / "loop").symlink_to(root)  # a cycle
    (root / "out").symlink_to(outside)  # a folder out of the tree
    (root / "c.tif").symlink_to(outside / "secret.tif")  # a file out of the tree
    (root / "d.tif").symlink_to(root / "a" / "1.tif")  # a second name for a/1.tif
    with caplog.at_level(logging.WARNING):
        found = cem.list_tiffs(root)
    assert [relative for relative, _ in found] == ["a/1.tif", "a/2.tif"]
    assert all(path.exists() for _, path in found)
    assert "2 symbolic link(s) that lead out of" in caplog.text and "c.tif" in caplog.text
