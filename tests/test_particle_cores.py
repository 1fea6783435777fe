"""Three-class particle targets (background / boundary / core), core-marker instances, intensity inversion,
minimum particle size in the model's pixels."""

import numpy as np
import pytest
from particle_scenes import disk_grid, disks

from temzoo.analysis.particles import instances, scaled_post
from temzoo.data import boxes as bx


def test_box_classes_have_one_core_per_box_inside_its_ellipse_and_a_boundary_ring():
    from skimage import measure

    boxes = np.array([[10, 10, 30, 30], [29, 10, 49, 30], [60, 60, 70, 70]], float)  # two touching, one apart
    classes = bx.boxes_to_classes(boxes, (80, 80))
    masks = bx.boxes_to_mask(boxes, (80, 80))
    assert set(np.unique(classes)) == {0, 1, 2}
    np.testing.assert_array_equal(classes > 0, masks > 0)  # the same particles as the two-class target
    assert measure.label(classes == 2).max() == 3  # touching particles keep separate cores
    # core = inscribed ellipse at 60 % of the radii: 0.36 of the particle's area (first box: r = 10 -> 6)
    core_area = (classes[:, :29] == 2).sum()
    assert core_area == pytest.approx(np.pi * 6 ** 2, rel=0.15)
    assert classes[20, 20] == 2 and classes[20, 12] == 1 and classes[2, 2] == 0
    assert (bx.boxes_to_classes(boxes, (80, 80), core=0.3) == 2).sum() < (classes == 2).sum()
    with pytest.raises(ValueError, match="fraction"):
        bx.boxes_to_classes(boxes, (80, 80), core=1.5)


def test_core_markers_split_particles_the_distance_watershed_cannot():
    # two disks overlapping so much that their distance map has one maximum: no split without cores
    mask = disks((64, 80), [(32, 35), (32, 43)], 12)
    cores = disks((64, 80), [(32, 30), (32, 48)], 3)
    assert instances(mask, min_area=5).max() == 1
    labels = instances(mask.astype(np.float32), core=cores.astype(np.float32), min_area=5)
    assert labels.max() == 2
    assert (labels > 0).sum() == mask.sum()  # every foreground pixel goes to a particle
    assert labels[32, 28] != labels[32, 50]
    # a foreground region without a core is a particle of its own; a lone speck still goes
    mask2 = mask | disks((64, 80), [(8, 70)], 5)
    mask2[60, 2] = True
    labels2 = instances(mask2, core=cores.astype(np.float32), min_area=5)
    assert labels2.max() == 3 and labels2[8, 70] > 0 and labels2[60, 2] == 0
    with pytest.raises(ValueError, match="shape"):
        instances(mask, core=cores[:10])


def test_min_area_is_in_the_models_pixels():
    assert scaled_post(2.0, min_area=50)["min_area"] == 200  # the model saw the image at half size
    assert scaled_post(0.5, min_area=50)["min_area"] == 12.5
    assert scaled_post(2.0, split_depth=2.0)["split_depth"] == 4.0
    assert scaled_post(0.5, split_depth=2.0)["split_depth"] == 2.0
    assert scaled_post(1.0, split_depth=None)["split_depth"] is None


def test_synthetic_masks_get_a_core_per_touching_particle():
    from skimage import measure

    from temzoo.analysis.box_training import classes_from_mask

    mask = disks((64, 80), [(32, 25), (32, 45)], 10).astype(np.uint8)
    classes = classes_from_mask(mask)
    np.testing.assert_array_equal(classes > 0, mask > 0)
    assert measure.label(classes == 2).max() == 2
    # a disk keeps about the inner 60 % of its radius as core
    assert (classes[:, :35] == 2).sum() == pytest.approx(np.pi * 6 ** 2, rel=0.3)
    assert classes_from_mask(np.zeros((8, 8))).max() == 0


def test_particle_maps_add_the_core_channel_of_three_class_models():
    from temzoo.analysis.scale import particle_maps, upscale_to

    p2 = np.random.default_rng(0).dirichlet([1, 1], (6, 5)).astype(np.float32)
    p3 = np.random.default_rng(1).dirichlet([1, 1, 1], (6, 5)).astype(np.float32)
    assert particle_maps(p2).shape == (6, 5, 1)
    np.testing.assert_allclose(particle_maps(p2)[..., 0], 1 - p2[..., 0], atol=1e-6)
    maps = particle_maps(p3)
    assert maps.shape == (6, 5, 2)
    np.testing.assert_allclose(maps[..., 0], 1 - p3[..., 0], atol=1e-6)
    np.testing.assert_allclose(maps[..., 1], p3[..., 2])
    assert upscale_to(maps, (12, 10)).shape == (12, 10, 2)


def test_inverted_crops_reverse_the_intensities():
    from temzoo.analysis.box_crops import crop_sampler as _crop_sampler
    from temzoo.analysis.polarity import inverted

    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.testing.assert_allclose(inverted(image), 63 - image)
    rng = np.random.default_rng(0)
    always = _crop_sampler([image], [np.zeros((8, 8), np.uint8)], 8, rng, invert=1.0)
    never = _crop_sampler([image], [np.zeros((8, 8), np.uint8)], 8, rng, invert=0.0)
    assert all(always()[0].sum() == -image.sum() for _ in range(5))
    assert all(never()[0].sum() == image.sum() for _ in range(5))
    half = _crop_sampler([image + 1], [np.zeros((8, 8), np.uint8)], 8, np.random.default_rng(1), invert=0.5)
    signs = [np.sign(half()[0].sum()) for _ in range(200)]
    assert 60 < signs.count(-1) < 140


def test_a_three_class_model_from_boxes_gives_particles_through_its_cores():
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes

    image, boxes = disk_grid(96, 3, 20, 30, 7)
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [{"name": "a", "image": image,
                                 "boxes": boxes}], steps=2, batch_size=2, patch_size=32, synthetic=None,
                                 target_particle_px=15.0, scale_jitter=1.0, classes=3, invert=0.5, log_every=0)
    assert model.output_shape[-1] == 3
    assert info["classes"] == ["background", "boundary", "core"] and info["invert"] == 0.5
    result = temzoo.particles(model, image, scale=1.0, threshold=0.5)
    assert result.labels.shape == image.shape and len(result.rows) == result.labels.max()
    with pytest.raises(ValueError, match="classes"):
        train_on_boxes("unet_b2_p22", [{"name": "a", "image": image, "boxes": boxes}], classes=4, synthetic=None)
