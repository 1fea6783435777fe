"""How visible each annotated particle is (temzoo.analysis.scoring.box_contrast) and recall by it in the benchmark."""

import os
import sys

import numpy as np
from particle_scenes import disk_grid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))


def test_visible_particles_stand_out_and_empty_boxes_do_not():
    from temzoo.analysis.scoring import box_contrast

    image, boxes = disk_grid(128, 3, 24, 40, 7, noise=0.2)
    empty = np.array([[40, 40, 48, 48], [40, 84, 48, 92]], float)  # support only, between the disks
    contrast = box_contrast(image, np.concatenate([boxes, empty]))
    assert contrast.shape == (11,)
    assert (contrast[:9] > 3).all()  # disks of height 1 on noise of 0.2
    assert (np.abs(contrast[9:]) < 1.5).all()
    # bright field: dark particles score as high once reversed, and low if taken as bright
    dark = box_contrast(-image, boxes, bright=False)
    np.testing.assert_allclose(dark, contrast[:9], rtol=1e-6)
    assert (box_contrast(-image, boxes) < -3).all()
    # fainter particles score lower
    assert np.median(box_contrast(0.3 * (image > 0.5) + np.random.default_rng(1).normal(0, 0.2, image.shape),
                                  boxes)) < np.median(contrast[:9])
    assert box_contrast(image, np.zeros((0, 4))).shape == (0,)


def test_compare_to_boxes_says_which_counted_boxes_were_matched():
    from temzoo.analysis.particles import instances, particle_table
    from temzoo.analysis.scoring import compare_to_boxes

    image, boxes = disk_grid(96, 3, 16, 32, 6, noise=0.01)
    image[:, 40:] = 0  # the middle and right columns of disks are gone
    border = np.array([[0, 40, 10, 50]], float)
    result = compare_to_boxes(particle_table(instances(image, min_area=5, split_depth=None)),
                              np.concatenate([boxes, border]), image.shape)
    assert result["true_counted"].tolist() == [True] * 9 + [False]
    assert result["true_matched"].tolist() == [True, False, False] * 3
    assert result["tp"] == int(result["true_matched"].sum()) == 3


def test_the_benchmark_reports_recall_by_contrast_bin():
    import particles_real as bench

    per_image = [{"true_contrast": np.array([0.2, 0.7, 1.5, 3.0]), "true_matched": np.array([False, True, True, True])},
                 {"true_contrast": np.array([0.1, 0.8]), "true_matched": np.array([True, False])}]
    out = bench.recall_by_contrast(per_image)
    assert list(out) == ["< 0.5", "0.5-1", "1-2", ">= 2"]
    assert out["< 0.5"] == {"boxes": round(2 / 6, 4), "recall": 0.5}
    assert out["0.5-1"] == {"boxes": round(2 / 6, 4), "recall": 0.5}
    assert out["1-2"]["recall"] == 1.0 and out[">= 2"]["boxes"] == round(1 / 6, 4)


def test_the_benchmark_reports_recall_by_size_in_the_models_pixels():
    import particles_real as bench

    per_image = [{"true_model_px": np.array([4.0, 10.0, 15.0, 30.0]), "true_matched": np.array([False, False, True, True])},
                 {"true_model_px": np.array([7.9, 20.0]), "true_matched": np.array([True, True])}]
    out = bench.recall_by_size(per_image)
    assert list(out) == [f"< {bench.SIZE_BINS[0]:g}", "8-12", "12-20", ">= 20"]
    assert out["< 8"] == {"boxes": round(2 / 6, 4), "recall": 0.5}
    assert out["8-12"] == {"boxes": round(1 / 6, 4), "recall": 0.0}
    assert out[">= 20"] == {"boxes": round(2 / 6, 4), "recall": 1.0}
