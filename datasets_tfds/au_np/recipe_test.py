"""Unit tests of the au_np preprocessing recipe (plain NumPy, no TFDS)."""

import numpy as np
import pytest
from temzoo_datasets.au_np import recipe


def _flat(value=100.0, shape=(8, 8)):
    return np.full(shape, value, dtype=np.float64)


def test_remove_xrays_replaces_only_pixels_above_median_plus_threshold():
    image = _flat()
    image[0, 0] = 90.0  # below the median: untouched
    image[2, 3] = 100.0 + 400.0  # exactly median + threshold: not above, untouched
    image[5, 5] = 100.0 + 401.0  # above: replaced by the mean of its 8 neighbours
    out = recipe.remove_xrays(image, threshold=400)
    expected = image.copy()
    block = image[4:7, 4:7]
    expected[5, 5] = (block.sum() - image[5, 5]) / 8.0
    np.testing.assert_allclose(out, expected)
    assert image[5, 5] == 501.0  # the input is not modified


def test_remove_xrays_border_pixel_takes_the_image_mean():
    image = _flat()
    image[0, 4] = 10_000.0
    mean_with_hit = image.mean()
    out = recipe.remove_xrays(image, threshold=1500)
    assert out[0, 4] == pytest.approx(mean_with_hit)
    assert np.count_nonzero(out != image) == 1


def test_remove_xrays_second_pass_fixes_adjacent_hits():
    # Two adjacent hits: the brighter is fixed first from its (still bright) neighbour
    # (to 712.5 > cutoff 500), so only the second pass brings it under the cutoff.
    image = _flat(shape=(9, 9))
    image[4, 4] = 20_000.0
    image[4, 5] = 5_000.0
    out = recipe.remove_xrays(image, threshold=400)
    assert out.max() <= np.median(out) + 400
    assert np.count_nonzero(out != 100.0) == 2


def test_remove_xrays_clips_negative_counts():
    image = _flat()
    image[3, 3] = -5.0
    assert recipe.remove_xrays(image, threshold=400)[3, 3] == 0.0


def test_standardize_gives_zero_mean_unit_std_and_rejects_constant():
    rng = np.random.default_rng(0)
    out = recipe.standardize(rng.normal(50, 7, (32, 32)))
    assert out.mean() == pytest.approx(0, abs=1e-12) and out.std() == pytest.approx(1)
    with pytest.raises(ValueError, match="constant"):
        recipe.standardize(_flat())


def test_tiles_are_non_overlapping_row_major_and_drop_the_remainder():
    assert recipe.tile_positions(1100, 1600, 512) == [
        (0, 0),
        (0, 512),
        (0, 1024),
        (512, 0),
        (512, 512),
        (512, 1024),
    ]
    assert recipe.tile_positions(511, 2048, 512) == []
    array = np.arange(1024 * 1024).reshape(1024, 1024)
    np.testing.assert_array_equal(recipe.tile(array, 512, 0), array[512:, :512])


def test_keep_patch_drops_exactly_400_particle_pixels():
    mask = np.zeros((512, 512), np.uint8)
    mask.flat[:400] = 1
    assert not recipe.keep_patch(mask)
    mask.flat[400] = 1
    assert recipe.keep_patch(mask)


def test_kept_tiles_filters_and_none_keeps_everything():
    mask = np.zeros((512, 1024), np.uint8)
    mask[:30, 600:630] = 1  # 900 px in the right tile only
    assert recipe.kept_tiles(mask) == [(0, 512)]
    assert recipe.kept_tiles(mask, min_particle_pixels=None) == [(0, 0), (0, 512)]


def test_sequential_split_matches_upstream_integer_arithmetic():
    # The 20 nm set: 132 kept tiles -> 92 / 13 / 27 in the published notebook's output.
    splits = recipe.sequential_split(range(132))
    assert [len(splits[name]) for name in recipe.SPLIT_NAMES] == [92, 13, 27]
    assert splits["train"] == list(range(92)) and splits["test"][0] == 105
    splits = recipe.sequential_split(range(10))
    assert [len(splits[name]) for name in recipe.SPLIT_NAMES] == [7, 1, 2]


def test_masks_from_labels_and_one_hot_maps():
    np.testing.assert_array_equal(recipe.binary_mask([[0, 1], [255, 0]]), [[0, 1], [1, 0]])
    maps = np.zeros((2, 2, 2), np.float32)
    maps[..., 0] = [[1, 0], [1, 0]]
    maps[..., 1] = [[0, 1], [0, 1]]
    np.testing.assert_array_equal(recipe.particle_channel(maps), [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="one-hot"):
        recipe.particle_channel(np.zeros((2, 2, 3)))
