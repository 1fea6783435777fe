"""temzoo.analysis.box_crops: where training crops are cut and how their intensities vary."""

import numpy as np
import pytest


def _one_particle(side=96, at=(80, 80)):
    image = np.zeros((side, side), np.float32)
    mask = np.zeros((side, side), np.uint8)
    mask[at[0] - 2:at[0] + 3, at[1] - 2:at[1] + 3] = 1
    image[mask > 0] = 5.0
    return image, mask


def test_foreground_crops_hold_a_particle_far_more_often_than_random_crops():
    from temzoo.analysis.box_crops import crop_sampler

    image, mask = _one_particle()
    rng = np.random.default_rng(0)
    centred = crop_sampler([image], [mask], 16, rng, foreground=1.0)
    anywhere = crop_sampler([image], [mask], 16, np.random.default_rng(0), foreground=0.0)
    with_particle = [centred()[1].any() for _ in range(200)]
    by_chance = [anywhere()[1].any() for _ in range(200)]
    assert all(with_particle)  # the chosen particle pixel is always inside the crop
    assert sum(by_chance) < 40  # a 5 px particle in a 96 px image: about 5 % of random 16 px crops


def test_crops_keep_image_and_mask_aligned_through_rotations_and_flips():
    from temzoo.analysis.box_crops import crop_sampler

    image, mask = _one_particle()
    sample = crop_sampler([image], [mask], 16, np.random.default_rng(3), foreground=1.0)
    for _ in range(50):
        a, b = sample()
        assert a.shape == b.shape == (16, 16)
        np.testing.assert_array_equal(a > 2.5, b > 0)


def test_intensity_variation_changes_contrast_but_not_the_mask():
    from temzoo.analysis.box_crops import crop_sampler, vary_intensity

    image, mask = _one_particle()
    rng = np.random.default_rng(1)
    stds = [float(vary_intensity(image, rng).std()) for _ in range(100)]
    assert min(stds) < 0.9 * image.std() and max(stds) > 1.1 * image.std()
    for seed in range(10):  # the first crop of two samplers seeded alike: same position and symmetry
        a, b = crop_sampler([image], [mask], 16, np.random.default_rng(seed), foreground=1.0)()
        c, d = crop_sampler([image], [mask], 16, np.random.default_rng(seed), foreground=1.0, intensity=True)()
        np.testing.assert_array_equal(b, d)  # same crop, same mask
        assert not np.allclose(a, c)
        assert c.dtype == np.float32


def test_the_sampler_refuses_a_foreground_probability_outside_0_1_and_small_images():
    from temzoo.analysis.box_crops import crop_sampler

    image, mask = _one_particle()
    with pytest.raises(ValueError, match="foreground"):
        crop_sampler([image], [mask], 16, np.random.default_rng(0), foreground=1.5)
    with pytest.raises(ValueError, match="patch_size=128"):
        crop_sampler([image], [mask], 128, np.random.default_rng(0))
