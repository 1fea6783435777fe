"""Builds every au_np config from the fake files in dummy_data/ (see make_dummy_data.py).

Per config the fake data has 10 tiles that survive the recipe, so the sequential
70/10/20 split gives 7 / 1 / 2 examples.
"""

import h5py
import numpy as np
import pytest
import tensorflow_datasets as tfds
from temzoo_datasets.au_np import au_np_dataset_builder


class AuNpTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = au_np_dataset_builder.Builder
    SPLITS = {"train": 7, "validation": 1, "test": 2}


def _build(tmp_path, manual_dir, config="au_20nm_87kx"):
    builder = au_np_dataset_builder.Builder(config=config, data_dir=str(tmp_path / "data"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def test_recipe_values_of_built_patches(tmp_path):
    builder = _build(tmp_path, AuNpTest.dummy_data)
    train = list(tfds.as_numpy(builder.as_dataset(split="train")))
    test = list(tfds.as_numpy(builder.as_dataset(split="test")))
    # Sequential split over kept tiles: image 0 left, image 1 right, images 2-4 both.
    assert sorted(int(ex["source_index"]) for ex in train) == [0, 1, 2, 2, 3, 3, 4]
    assert sorted(int(ex["source_index"]) for ex in test) == [5, 5]
    for ex in train + test:
        assert ex["image"].shape == (512, 512, 1) and ex["image"].dtype == np.float32
        assert ex["mask"].dtype == np.uint8 and set(np.unique(ex["mask"])) <= {0, 1}
        assert np.count_nonzero(ex["mask"]) > 400
        # Particles sit ~20 std above the flat background; a surviving 60000-count
        # X-ray hit would sit > 10^4 std out.
        assert np.abs(ex["image"]).max() < 100


def test_missing_file_names_expected_files_and_dir(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "Au_20nm_87kx_16e_Images.h5").write_bytes(
        (AuNpTest.dummy_data / "Au_20nm_87kx_16e_Images.h5").read_bytes()
    )
    with pytest.raises(FileNotFoundError) as err:
        _build(tmp_path, manual)
    message = str(err.value)
    assert "Au_20nm_87kx_16e_Labels.h5" in message and str(manual) in message


def test_groschner_mask_is_particle_channel(tmp_path):
    builder = _build(tmp_path, AuNpTest.dummy_data, config="groschner_5nm")
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
    with h5py.File(AuNpTest.dummy_data / "Au_Bal_unFilt_cutimages_20190423_maps.h5") as h5:
        maps = h5["maps"][...]
    by_index = {int(ex["source_index"]): ex for ex in examples}
    assert sorted(by_index) == list(range(7))
    for index, ex in by_index.items():
        np.testing.assert_array_equal(ex["mask"][..., 0], maps[index, ..., 1])
    assert np.count_nonzero(by_index[3]["mask"]) == 0  # kept: this config does not filter
