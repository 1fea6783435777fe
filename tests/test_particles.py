"""Particles from segmentations, boxes as weak labels, matching to boxes, and ``temzoo-cli analyze``."""

import csv

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from particle_scenes import disk_grid, disks

from temzoo.analysis.particles import COLUMNS, NM_COLUMNS, instances, particle_table
from temzoo.analysis.scoring import compare_to_boxes
from temzoo.data import boxes as bx
from temzoo.errors import BadInputError
from temzoo.io import read_pixel_size_nm as pixel_size_nm


# ----------------------------------------------------------------------------- instances and table
def test_two_touching_disks_are_split_in_two_and_kept_whole_without_splitting():
    mask = disks((64, 80), [(30, 25), (30, 43)], 10)
    assert instances(mask).max() == 2
    assert instances(mask, split_depth=None).max() == 1
    labels = instances(mask)
    assert (labels > 0).sum() == mask.sum()  # the watershed loses no pixel
    areas = sorted(np.bincount(labels.ravel())[1:])
    assert abs(areas[0] - areas[1]) < 0.1 * areas[0]


def test_a_round_particle_is_not_split_and_small_specks_are_dropped():
    mask = disks((64, 64), [(32, 32)], 15)
    mask[2, 2] = mask[2, 3] = True  # a 2-pixel speck
    labels = instances(mask)
    assert labels.max() == 1 and labels[2, 2] == 0


def test_probabilities_are_thresholded():
    prob = np.zeros((32, 32), np.float32)
    prob[5:15, 5:15] = 0.7
    prob[20:30, 20:30] = 0.3
    assert instances(prob, threshold=0.5).max() == 1
    assert instances(prob, threshold=0.2).max() == 2


def test_table_bbox_is_end_exclusive_x_is_column_and_border_flags():
    labels = np.zeros((40, 50), np.int32)
    labels[10:14, 20:30] = 1  # rows 10..13, columns 20..29
    labels[0:5, 45:50] = 2  # touches the top and right edges
    prob = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    rows = {r["id"]: r for r in particle_table(labels, prob)}
    r = rows[1]
    assert (r["bbox_x0"], r["bbox_y0"], r["bbox_x1"], r["bbox_y1"]) == (20, 10, 30, 14)
    assert r["centroid_x"] == pytest.approx(24.5) and r["centroid_y"] == pytest.approx(11.5)
    assert r["area_px"] == 40 and r["equivalent_diameter_px"] == pytest.approx(np.sqrt(4 * 40 / np.pi))
    assert r["mean_probability"] == pytest.approx(0.9)
    assert r["touches_border"] is False and rows[2]["touches_border"] is True
    assert set(r) == set(COLUMNS)


def test_nm_columns_scale_with_the_pixel_size():
    labels = np.zeros((20, 20), np.int32)
    labels[5:9, 5:9] = 1
    (r,) = particle_table(labels, pixel_size_nm=0.5)
    assert set(NM_COLUMNS) <= set(r)
    assert r["area_nm2"] == pytest.approx(16 * 0.25)
    assert r["equivalent_diameter_nm"] == pytest.approx(r["equivalent_diameter_px"] * 0.5)
    assert r["centroid_x_nm"] == pytest.approx(6.5 * 0.5)


def test_pixel_size_is_read_from_imagej_and_resolution_tags(tmp_path):
    image = np.zeros((8, 8), np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", image, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "nm"})
    tifffile.imwrite(tmp_path / "um.tif", image, imagej=True, resolution=(1 / 0.002, 1 / 0.002),
                     metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "cm.tif", image, resolution=(1e6, 1e6), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "none.tif", image)
    assert pixel_size_nm(tmp_path / "ij.tif") == pytest.approx(0.25)
    assert pixel_size_nm(tmp_path / "um.tif") == pytest.approx(2.0)
    assert pixel_size_nm(tmp_path / "cm.tif") == pytest.approx(10.0)
    assert pixel_size_nm(tmp_path / "none.tif") is None


# ----------------------------------------------------------------------------- boxes
def test_yolo_boxes_are_parsed_to_pixel_corners(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0 0.5 0.25 0.2 0.1\n\n0 0.1 0.9 0.05 0.05\n")
    boxes = bx.read_yolo_boxes(path, (200, 100))  # height 200, width 100
    np.testing.assert_allclose(boxes[0], [40, 40, 60, 60])
    np.testing.assert_allclose(boxes[1], [7.5, 175, 12.5, 185])


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.1", "line 2: expected 'class cx cy w h'"),
    ("0 0.5 0.5 a 0.1", "line 2: expected"),
    ("0 1.5 0.5 0.1 0.1", "line 2: YOLO boxes are relative"),
    ("0 0.5 0.5 0 0.1", "line 2: YOLO boxes are relative"),
])
def test_bad_yolo_lines_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n" + line + "\n")
    with pytest.raises(BadInputError, match=message) as err:
        bx.read_yolo_boxes(path, (10, 10))
    assert "bad.txt" in str(err.value)


def test_ellipse_masks_fill_the_inscribed_ellipse_and_keep_neighbours_apart():
    boxes = np.array([[10, 10, 30, 20], [30, 10, 50, 20], [0, 40, 8, 48]], float)
    labels = bx.boxes_to_instances(boxes, (60, 60))
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    # area close to pi/4 of the box (minus the contact pixels)
    assert abs((labels == 1).sum() - np.pi / 4 * 200) < 0.12 * np.pi / 4 * 200
    ys, xs = np.nonzero(labels == 1)
    assert xs.min() >= 10 and xs.max() < 30 and ys.min() >= 10 and ys.max() < 20
    # the two touching ellipses are separated by background: two components
    from skimage.measure import label

    assert label(labels[:, :55] > 0, connectivity=2).max() == 3
    assert bx.box_touches_border(boxes, (60, 60)).tolist() == [False, False, True]


def test_refined_masks_follow_the_particle_and_fall_back_to_the_ellipse():
    image = np.full((64, 64), 10.0, np.float32)
    image[disks((64, 64), [(32, 32)], 8)] = 100.0  # a bright particle, drawn in a loose box
    loose = np.array([[22.5, 22.5, 42.5, 42.5]], float)
    refined = bx.boxes_to_mask(loose, image.shape, kind="refined", image=image)
    ellipse = bx.boxes_to_mask(loose, image.shape, kind="ellipse")
    true_area = disks((64, 64), [(32, 32)], 8).sum()
    assert abs(int(refined.sum()) - true_area) < 0.1 * true_area < 0.4 * true_area < abs(int(ellipse.sum()) - true_area)
    dark = 110.0 - image  # bright field: the particle is dark
    assert not bx.particles_are_bright(dark, loose)
    assert abs(int(bx.boxes_to_mask(loose, image.shape, kind="refined", image=dark).sum()) - true_area) < 0.1 * true_area
    flat = np.ones((64, 64), np.float32)  # nothing to refine by: the ellipse
    np.testing.assert_array_equal(bx.boxes_to_mask(loose, flat.shape, kind="refined", image=flat), ellipse)
    with pytest.raises(ValueError, match="pass image="):
        bx.boxes_to_mask(loose, flat.shape, kind="refined")


def test_box_folder_finds_images_beside_or_above_the_labels(tmp_path):
    from PIL import Image

    root = tmp_path / "set"
    (root / "labels").mkdir(parents=True)
    (root / "images").mkdir()
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(root / "images" / "a.jpg")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((16, 16), np.uint16))
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 0.25 0.25\n0 0.2 0.2 0.1 0.1\n")
    examples = bx.load_box_folder(root)
    assert [e["name"] for e in examples] == ["a", "b"]
    assert examples[0]["image"].shape == (20, 30) and len(examples[1]["boxes"]) == 2
    (root / "labels" / "c.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(BadInputError, match="no image c"):
        bx.load_box_folder(root)


# ----------------------------------------------------------------------------- matching
def test_matching_counts_iou_and_leaves_out_border_particles():
    shape = (100, 100)
    truth = np.array([[10, 10, 20, 20], [40, 40, 50, 50], [70, 70, 80, 80], [0, 50, 10, 60]], float)
    rows = [
        dict(bbox_x0=10, bbox_y0=10, bbox_x1=20, bbox_y1=20, equivalent_diameter_px=11.0, touches_border=False),
        dict(bbox_x0=43, bbox_y0=43, bbox_x1=53, bbox_y1=53, equivalent_diameter_px=10.0, touches_border=False),
        dict(bbox_x0=0, bbox_y0=80, bbox_x1=5, bbox_y1=90, equivalent_diameter_px=5.0, touches_border=True),
        dict(bbox_x0=85, bbox_y0=10, bbox_x1=95, bbox_y1=20, equivalent_diameter_px=8.0, touches_border=False),
    ]
    s = compare_to_boxes(rows, truth, shape)
    # IoU of box 2 is 49/151 < 0.5: a miss and a false positive; the border box and row are ignored
    assert (s["tp"], s["fp"], s["fn"]) == (1, 2, 2)
    assert s["f1"] == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    np.testing.assert_allclose(s["true_diameters"], [10.0])
    np.testing.assert_allclose(s["pred_diameters"], [11.0])
    assert compare_to_boxes(rows, truth, shape, iou_threshold=0.3)["tp"] == 2


def test_misses_are_told_apart_missed_merged_and_mislocated():
    shape = (60, 100)
    truth = np.array([[5, 5, 15, 15], [30, 5, 40, 15], [40, 5, 50, 15], [70, 5, 80, 15], [5, 40, 15, 50]], float)
    labels = np.zeros(shape, np.int32)
    labels[5:15, 5:15] = 1  # box 0 found
    labels[4:16, 28:52] = 2  # boxes 1 and 2 in one particle
    labels[8:12, 73:77] = 3  # box 3: a particle far too small
    rows = particle_table(labels)  # box 4: nothing there
    s = compare_to_boxes(rows, truth, shape, labels=labels)
    assert (s["tp"], s["fn"]) == (1, 4)
    assert s["misses"] == {"missed": 1, "merged": 2, "mislocated": 1}
    assert "misses" not in compare_to_boxes(rows, truth, shape)


# ----------------------------------------------------------------------------- particles() and the CLI
def run(*args):
    from temzoo_cli.main import cli

    return CliRunner().invoke(cli, ["analyze", *[str(a) for a in args]], catch_exceptions=False)


def test_particles_returns_labels_that_match_its_table(tiny_model):
    import temzoo

    image = np.random.default_rng(0).random((40, 36)).astype(np.float32)
    result = temzoo.particles(tiny_model, image, threshold=0.5, pixel_size_nm=2.0)
    assert result.labels.shape == image.shape and result.foreground.shape == image.shape
    assert len(result.rows) == result.labels.max()
    for r in result.rows:
        assert (result.labels == r["id"]).sum() == r["area_px"]
        assert r["equivalent_diameter_nm"] == pytest.approx(2 * r["equivalent_diameter_px"])
    with pytest.raises(BadInputError, match="one 2-D image"):
        temzoo.particles(tiny_model, np.zeros((2, 8, 8)))


def test_analyze_writes_tables_figures_and_summary_and_refuses_to_overwrite(tmp_path, tiny_model):
    image = (np.random.default_rng(1).random((48, 40)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "nm"})
    tifffile.imwrite(tmp_path / "b.tif", image)
    out = tmp_path / "out"
    result = run("--model", tiny_model, "--out", out, "--threshold", "0.3", tmp_path / "a.tif", tmp_path / "b.tif")
    assert result.exit_code == 0, result.output
    for stem in "ab":
        for suffix in ("_particles.csv", "_histogram.png", "_overlay.png"):
            assert (out / f"{stem}{suffix}").stat().st_size > 0
    header_a = next(csv.reader(open(out / "a_particles.csv")))
    header_b = next(csv.reader(open(out / "b_particles.csv")))
    assert header_a == list(COLUMNS + NM_COLUMNS) and header_b == list(COLUMNS)
    summary = list(csv.DictReader(open(out / "particles_summary.csv")))
    assert [s["file"] for s in summary] == ["a.tif", "b.tif"]
    assert float(summary[0]["pixel_size_nm"]) == pytest.approx(0.5) and summary[1]["pixel_size_nm"] == ""
    assert int(summary[0]["particles"]) == len(list(csv.DictReader(open(out / "a_particles.csv"))))
    before = (out / "a_particles.csv").read_bytes()
    again = run("--model", tiny_model, "--out", out, tmp_path / "a.tif")
    assert again.exit_code != 0 and "exists" in again.output and "--overwrite" in again.output
    assert (out / "a_particles.csv").read_bytes() == before
    assert run("--model", tiny_model, "--out", out, "--overwrite", tmp_path / "a.tif").exit_code == 0


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"not a tiff at all"), "bad.tif"),
    (lambda p: tifffile.imwrite(p, np.zeros((3, 16, 16), np.uint16), photometric="minisblack"), "stack of 3 frames"),
])
def test_analyze_bad_input_fails_naming_the_file_and_writes_nothing(tmp_path, tiny_model, make, message):
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.zeros((16, 16), np.uint16))
    bad = tmp_path / "bad.tif"
    make(bad)
    result = run("--model", tiny_model, "--out", tmp_path / "out", good, bad)
    assert result.exit_code != 0
    assert message in result.output and "bad.tif" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_analyze_rejects_a_restoration_model_and_bad_options(tmp_path, tiny_model):
    import temzoo
    import temzoo.tasks as tasks

    den = tasks.denoising(temzoo.build("unet_b2_p22", base_filters=4))
    tasks.save(den, tmp_path / "den.keras", name="tiny_den")
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((16, 16), np.uint16))
    result = run("--model", tmp_path / "den.keras", "--out", tmp_path / "o1", tmp_path / "x.tif")
    assert result.exit_code != 0 and "segmentation model" in result.output and "x.tif" in result.output
    assert run("--model", tiny_model, "--out", tmp_path / "o2", "--threshold", "1.5", tmp_path / "x.tif").exit_code != 0
    result = run("--model", tiny_model, "--out", tmp_path / "o3", "--no-split", "--split-depth", "1", tmp_path / "x.tif")
    assert result.exit_code != 0 and "exclude each other" in result.output


# ----------------------------------------------------------------------------- scale
def test_rescale_resizes_keeps_levels_and_upscale_restores_the_shape():
    from temzoo.analysis.scale import rescale, upscale_to

    image = np.arange(35, dtype=np.float32).reshape(5, 7)
    assert rescale(image, 2).shape == (2, 4) and rescale(image, 0.5).shape == (10, 14)
    assert rescale(image, 1) is not None and rescale(image, 1).shape == (5, 7)
    flat = np.full((40, 30), 0.7, np.float32)
    np.testing.assert_allclose(rescale(flat, 1.4142), 0.7, atol=1e-5)
    np.testing.assert_allclose(upscale_to(rescale(flat, 4), (40, 30)), 0.7, atol=1e-5)
    assert upscale_to(rescale(image, 2), image.shape).shape == (5, 7)


def test_box_images_are_scaled_to_the_target_particle_size():
    from temzoo.analysis.box_training import scale_for, training_factors

    def boxes(size):
        return np.array([[0, 0, size, size], [10, 10, 10 + size, 10 + size]], float)

    assert scale_for(boxes(8), 16) == 0.5
    assert scale_for(boxes(30), 16) == 2
    assert scale_for(boxes(70), 16) == 4
    assert scale_for(boxes(70), None) == 1 and scale_for(np.zeros((0, 4)), 16) == 1
    # training sees each image at the target size and the jitter either side ...
    np.testing.assert_allclose(training_factors(boxes(32), 16, 1.5, (2048, 2048), 128), [2 / 1.5, 2, 3])
    np.testing.assert_allclose(training_factors(boxes(32), 16, 1.0, (2048, 2048), 128), [2])
    # ... but never smaller than a crop
    np.testing.assert_allclose(training_factors(boxes(64), 16, 2.0, (640, 640), 128), [2, 4])


def test_auto_scale_keeps_the_estimate_of_the_factor_whose_particles_fit_the_target():
    from temzoo.analysis.scale import choose_factor

    # at factor 1 the particles measure 40 px (2.5 x the target), at 2 they measure 36 px (18 px seen: close)
    assert choose_factor({1.0: 40.0, 2.0: 36.0, 4.0: None}, 16) == 2
    # small particles: at factor 1 they are 9 px, so the image is enlarged (0.5)
    assert choose_factor({1.0: 9.0, 2.0: None, 4.0: None}, 16) == 0.5
    assert choose_factor({1.0: None, 2.0: None}, 16) == 1 and choose_factor({1.0: 30.0}, None) == 1
    # ... unless the image is already large: auto enlarges none beyond MAX_AUTO_SIDE
    from temzoo.analysis.scale import allowed_factors

    assert choose_factor({1.0: 9.0}, 16, allowed_factors((2048, 2048))) == 1
    assert min(allowed_factors((640, 640))) == 0.5 and max(allowed_factors((640, 640))) == 8
    assert max(allowed_factors((100, 300))) == 2.8284


def test_particles_at_a_forced_scale_are_measured_in_full_image_pixels(tiny_model):
    import temzoo

    image = np.random.default_rng(2).random((50, 44)).astype(np.float32)
    result = temzoo.particles(tiny_model, image, scale=2, threshold=0.5)
    assert result.scale == 2 and result.labels.shape == image.shape and result.foreground.shape == image.shape
    assert temzoo.particles(tiny_model, image, scale=1.5).labels.shape == image.shape
    assert temzoo.particles(tiny_model, image).scale == 1  # no target size in its card: native scale
    for bad in (0, -2, "big", True):
        with pytest.raises(BadInputError, match="resampling factor"):
            temzoo.particles(tiny_model, image, scale=bad)


def test_analyze_scale_option(tmp_path, tiny_model):
    tifffile.imwrite(tmp_path / "x.tif", np.random.default_rng(3).random((40, 40)).astype(np.float32))
    result = run("--model", tiny_model, "--out", tmp_path / "o", "--scale", "2", tmp_path / "x.tif")
    assert result.exit_code == 0, result.output
    assert float(list(csv.DictReader(open(tmp_path / "o" / "particles_summary.csv")))[0]["scale"]) == 2
    bad = run("--model", tiny_model, "--out", tmp_path / "o2", "--scale", "big", tmp_path / "x.tif")
    assert bad.exit_code != 0 and "--scale" in bad.output


def test_a_known_particle_size_picks_the_factor():
    from temzoo.analysis.scale import factor_for_size

    assert [factor_for_size(s, 16) for s in (6, 16, 30, 40, 64, 200)] == [0.5, 1, 2, 2.8284, 4, 8]
    assert factor_for_size(64, None) == 1


def test_analyze_particle_size_needs_a_pixel_size(tmp_path, tiny_model):
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((32, 32), np.float32))
    result = run("--model", tiny_model, "--out", tmp_path / "o", "--particle-size", "5", tmp_path / "x.tif")
    assert result.exit_code != 0 and "x.tif" in result.output and "--pixel-size" in result.output
    ok = run("--model", tiny_model, "--out", tmp_path / "o", "--particle-size", "5", "--pixel-size", "0.5",
             tmp_path / "x.tif")
    assert ok.exit_code == 0, ok.output


def test_auto_factor_rules_fit_and_count_read_the_models_particles_at_coarse_factors():
    from temzoo.analysis.scale import auto_factor

    shape = (256, 256)
    small = disks(shape, [(20 + 40 * i, 20 + 40 * j) for i in range(6) for j in range(5)], 4.5)  # 30 of ~9 px
    large = disks(shape, [(60, 60), (60, 190), (190, 60), (190, 190)], 15)  # 4 of ~30 px
    maps = {1.0: small.astype(np.float32), 2.0: large.astype(np.float32),
            4.0: np.zeros(shape, np.float32), 8.0: np.zeros(shape, np.float32)}
    # fit: at factor 2 the model saw 15 px particles (closest to 13): estimate 30 / 13 -> 2
    assert auto_factor(maps.__getitem__, shape, 13.0, rule="fit") == 2
    # count: factor 1 finds the most particles within 2x of 13 px: estimate 9 / 13 -> 0.71 (enlarge)
    assert auto_factor(maps.__getitem__, shape, 13.0, rule="count") == pytest.approx(0.7071)
    with pytest.raises(ValueError, match="rule"):
        auto_factor(maps.__getitem__, shape, 13.0, rule="best")


def test_auto_factor_confidence_rule_picks_the_factor_the_model_is_surest_of():
    from scipy import ndimage

    from temzoo.analysis.scale import auto_factor, uncertain_fraction

    shape = (256, 256)
    grid = disks(shape, [(16 + 32 * i, 16 + 32 * j) for i in range(8) for j in range(8)], 6)  # 64 particles

    def blurred(sigma):  # the same 64 particles, sure (crisp) or unsure (blurred edges)
        return ndimage.gaussian_filter(grid.astype(np.float32), sigma)

    assert uncertain_fraction(blurred(0.1)) < 0.01 < uncertain_fraction(blurred(3)) < 1
    assert uncertain_fraction(np.zeros(shape, np.float32)) == 1.0
    seen = []

    def at(sharpest, specks_at=None):
        def predict(factor):
            seen.append(factor)
            if factor == specks_at:  # a flood of specks, crisp, but no particles
                specks = np.zeros(shape, np.float32)
                specks[::4, ::4] = 1
                return ndimage.grey_dilation(specks, size=3)
            return blurred(0.3 + 2 * abs(np.log2(factor / sharpest)))
        return predict

    # octaves first, then the half-octave neighbours of the surest one
    assert auto_factor(at(1.4142), shape, 16.0, min_area=1) == pytest.approx(1.4142)
    assert sorted(set(seen)) == pytest.approx([0.5, 0.7071, 1, 1.4142, 2, 4, 8])
    assert auto_factor(at(0.5), shape, 16.0, min_area=1) == 0.5
    # a factor finding far more than the octaves' median count is not trusted, however crisp
    assert auto_factor(at(4.0, specks_at=1.0), shape, 16.0, min_area=1) == 4
    # dense small particles at a fine factor outnumber the coarse factors' merged blobs (here 8x their
    # median count) and are still trusted when the model is surest of them
    few = disks(shape, [(64, 64), (64, 192), (192, 64), (192, 192)], 40)
    many = disks(shape, [(16 + 32 * i, 16 + 32 * j) for i in range(8) for j in range(4)], 6)  # 32 particles

    def dense(factor):
        return many.astype(np.float32) if factor == 0.5 else ndimage.gaussian_filter(few.astype(np.float32), 3)
    assert auto_factor(dense, shape, 16.0, min_area=1) == 0.5
    # no particles at any factor: the fit rule's answer (1 here)
    assert auto_factor(lambda f: np.zeros(shape, np.float32), shape, 16.0) == 1


def test_train_on_boxes_sees_each_image_at_three_scales_and_records_what_auto_needs():
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes
    from temzoo.analysis.scale import measured_particle_px, target_particle_px

    image, boxes = disk_grid(160, 4, 24, 40, 8)
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [{"name": "a", "image": image,
                                 "boxes": boxes}], steps=2, batch_size=2, patch_size=32, synthetic=None,
                                 target_particle_px=8.0, scale_jitter=1.5, log_every=0)
    np.testing.assert_allclose(info["scales"]["a"], [17 / 8 / 1.5, 17 / 8, 17 / 8 * 1.5], rtol=1e-3)
    assert info["cpu_seconds"] > 0 and info["steps"] == 2
    # the default polarity is the shipped recipe's: bright-field images inverted, these bright disks kept as they are
    assert info["polarity"] == "bright" and info["inverted_images"] == []
    assert target_particle_px(model) == 8.0
    # the size its particles come out at on its own images (untrained here: any value, or the target if none)
    assert measured_particle_px(model) == (info["measured_particle_px"] or 8.0)


def record_particle_calls(monkeypatch, keyword):
    """Make analyze's particle finder record the ``keyword`` argument of each call; the list of values."""
    import temzoo.analysis.files as files

    seen, real = [], files.particles

    def recording(*args, **kwargs):
        seen.append(kwargs[keyword])
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "particles", recording)
    return seen


def test_analyze_contrast_option_reaches_the_particle_finder(tmp_path, tiny_model, monkeypatch):
    seen = record_particle_calls(monkeypatch, "dark")
    tifffile.imwrite(tmp_path / "x.tif", np.random.default_rng(3).random((40, 40)).astype(np.float32))
    for i, (choice, dark) in enumerate((("auto", None), ("bright", False), ("dark", True))):
        result = run("--model", tiny_model, "--out", tmp_path / f"o{i}", "--contrast", choice, tmp_path / "x.tif")
        assert result.exit_code == 0, result.output
        assert seen[-1] is dark
    bad = run("--model", tiny_model, "--out", tmp_path / "o9", "--contrast", "grey", tmp_path / "x.tif")
    assert bad.exit_code != 0 and "--contrast" in bad.output


def test_particles_ensemble_averages_flips_at_the_factor_auto_chose(tiny_model):
    import temzoo
    from temzoo.analysis.scale import particle_maps, upscale_to
    from temzoo.inference.tiling import predict
    from temzoo.zoo import pretrained

    image = np.random.default_rng(5).random((48, 40)).astype(np.float32)
    plain = temzoo.particles(tiny_model, image, scale=1.0)
    averaged = temzoo.particles(tiny_model, image, scale=1.0, ensemble=8)
    expected = upscale_to(particle_maps(predict(pretrained.load(tiny_model), image, ensemble=8)), image.shape)[..., 0]
    np.testing.assert_allclose(averaged.foreground, expected, atol=1e-6)
    assert not np.allclose(averaged.foreground, plain.foreground, atol=1e-4)  # an untrained net is not flip-invariant
    assert temzoo.particles(tiny_model, image, ensemble=8).scale == temzoo.particles(tiny_model, image).scale
    with pytest.raises(ValueError, match="ensemble must be one of"):
        temzoo.particles(tiny_model, image, ensemble=3)


def test_analyze_ensemble_option_reaches_the_particle_finder_and_bad_sizes_are_refused(tmp_path, tiny_model,
                                                                                        monkeypatch):
    import temzoo.analysis.files as files

    seen = record_particle_calls(monkeypatch, "ensemble")
    tifffile.imwrite(tmp_path / "x.tif", np.random.default_rng(3).random((40, 40)).astype(np.float32))
    assert run("--model", tiny_model, "--out", tmp_path / "o1", "--ensemble", "4", tmp_path / "x.tif").exit_code == 0
    assert seen == [4]
    bad = run("--model", tiny_model, "--out", tmp_path / "o2", "--ensemble", "3", tmp_path / "x.tif")
    assert bad.exit_code != 0 and "--ensemble" in bad.output
    with pytest.raises(BadInputError, match="ensemble must be one of"):
        files.analyze_files(tiny_model, [str(tmp_path / "x.tif")], str(tmp_path / "o3"), ensemble=3)
    assert not (tmp_path / "o3").exists()  # refused before anything was written


def test_the_model_cards_postprocessing_is_the_default_and_given_settings_win(tmp_path, tiny_model):
    import json
    import math
    import shutil

    import temzoo
    from temzoo.analysis.particles import instances
    from temzoo.names import PARTICLE_DEFAULTS
    from temzoo.zoo.cards import card_path

    tuned = tmp_path / "tuned.keras"
    shutil.copy(tiny_model, tuned)
    own = json.loads(open(card_path(tiny_model)).read())
    own["postprocessing"] = {"threshold": 0.3, "min_area": 7, "split_depth": 0.5}
    open(card_path(tuned), "w").write(json.dumps(own))
    image = np.random.default_rng(6).random((48, 40)).astype(np.float32)

    result = temzoo.particles(str(tuned), image, scale=1.0)
    assert result.settings == {**PARTICLE_DEFAULTS, "threshold": 0.3, "min_area": 7, "split_depth": 0.5, "scale": 1.0}
    np.testing.assert_array_equal(result.labels, instances(result.foreground, threshold=0.3, min_area=7, split_depth=0.5))
    given = temzoo.particles(str(tuned), image, scale=1.0, threshold=0.6, split_depth=math.inf)
    assert (given.settings["threshold"], given.settings["min_area"]) == (0.6, 7)
    np.testing.assert_array_equal(given.labels, instances(given.foreground, threshold=0.6, min_area=7, split_depth=None))
    plain = temzoo.particles(tiny_model, image, scale=1.0)  # no postprocessing in its card: the library's
    assert plain.settings == {**PARTICLE_DEFAULTS, "scale": 1.0}
    with pytest.raises(TypeError, match="unknown post-processing"):
        temzoo.analysis.particles.postprocessing(temzoo.zoo.pretrained.load(str(tuned)), treshold=0.3)

    tifffile.imwrite(tmp_path / "x.tif", image)
    for i, (options, expected) in enumerate((((), (0.3, 7, 0.5)), (("--threshold", "0.6", "--no-split"),
                                                                 (0.6, 7, math.inf)))):
        result = run("--model", tuned, "--out", tmp_path / f"o{i}", "--scale", "1", *options, tmp_path / "x.tif")
        assert result.exit_code == 0, result.output
        summary = next(csv.DictReader(open(tmp_path / f"o{i}" / "particles_summary.csv")))
        assert tuple(float(summary[key]) for key in ("threshold", "min_area", "split_depth")) == expected


def test_train_on_boxes_traces_its_step_with_fused_batch_norm(monkeypatch):
    """Box training steps go through the fused BatchNormalization kernel, like finetune's fit."""
    import contextlib

    import temzoo
    import temzoo.training.fused_batch_norm as fused
    from temzoo.analysis.box_training import train_on_boxes

    entered, real = [], fused.fused_batch_norm

    @contextlib.contextmanager
    def spy(models):
        with real(models):
            entered.append([m.name for m in models])
            yield

    monkeypatch.setattr(fused, "fused_batch_norm", spy)
    image, boxes = disk_grid(96, 3, 16, 24, 6)
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [{"name": "a", "image": image,
                                 "boxes": boxes}], steps=2, batch_size=2, patch_size=32, synthetic=None,
                                 target_particle_px=6.0, scale_jitter=1.0, log_every=0)
    assert entered == [[model.name]]
    assert np.isfinite(info["final_loss"])


def test_train_on_boxes_trains_in_bfloat16_and_saves_a_float32_model(tmp_path):
    """``precision="mixed_bfloat16"``: the layers compute in bfloat16, the saved model is float32 and predicts alike."""
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes
    from temzoo.inference.precision import model_precision
    from temzoo.tasks import save

    image, boxes = disk_grid(96, 3, 16, 24, 6)
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [{"name": "a", "image": image,
                                 "boxes": boxes}], steps=2, batch_size=2, patch_size=32, synthetic=None,
                                 target_particle_px=6.0, scale_jitter=1.0, log_every=0, precision="mixed_bfloat16")
    assert model_precision(model) == "mixed_bfloat16" and info["precision"] == "mixed_bfloat16"
    assert np.isfinite(info["final_loss"])
    save(model, str(tmp_path / "m.keras"))
    loaded = temzoo.load(str(tmp_path / "m.keras"))
    assert model_precision(loaded) == "float32"
    x = image[None, :64, :64, None].astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x), np.float32), atol=0.05)


def test_train_on_boxes_refuses_float16_without_loss_scaling():
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes

    image, boxes = disk_grid(96, 3, 16, 24, 6)
    with pytest.raises(ValueError, match="mixed_float16"):
        train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [{"name": "a", "image": image, "boxes": boxes}],
                       steps=1, synthetic=None, precision="mixed_float16")


def test_flattened_takes_out_a_smooth_background_and_keeps_particles():
    from temzoo.analysis.flatten import flattened

    image, _ = disk_grid(256, 3, 40, 88, 6)  # sparse particles on a flat support
    yy, xx = np.mgrid[:256, :256]
    lit = image + 5.0 + 0.03 * xx + 6.0 * np.sin(yy / 80.0)
    out = flattened(lit, 32.0)
    support, disk = image < 0.3, image > 0.7
    support[:32], support[-32:], support[:, :32], support[:, -32:] = False, False, False, False  # reflected edges
    left, right = support & (xx < 100), support & (xx > 156)
    top, middle = support & (yy < 80) & (yy > 50), support & (yy > 110) & (yy < 140)
    # the ramp (about 5 units between these columns) and the sine (1.6 between these rows) are gone
    assert abs(lit[right].mean() - lit[left].mean()) > 3 and abs(out[right].mean() - out[left].mean()) < 0.3
    assert abs(lit[top].mean() - lit[middle].mean()) > 1 and abs(out[top].mean() - out[middle].mean()) < 0.3
    # the particles keep most of their contrast
    assert out[disk].mean() - out[support].mean() > 0.8
    np.testing.assert_array_equal(flattened(image, 0), image.astype(np.float32))


def test_flattened_is_exact_for_a_flat_image_of_any_size_and_for_a_ramp_inside():
    """Partial blocks at the last row and column average only the pixels they hold (no zero padding)."""
    from temzoo.analysis.flatten import flattened

    for shape in ((100, 103), (97, 61)):
        np.testing.assert_allclose(flattened(np.full(shape, 5.0), 48.0), 0.0, atol=1e-5)
    yy, xx = np.mgrid[:400, :403]
    ramp = flattened(0.05 * xx + 0.02 * yy, 48.0)
    np.testing.assert_allclose(ramp[150:-150, 150:-150], 0.0, atol=0.01)  # beyond the reflected edges


def test_a_model_trained_on_flattened_images_sees_flattened_images(monkeypatch):
    """``train_on_boxes(flatten=...)``: the card records the sigma and temzoo.particles' maps flatten alike."""
    import temzoo
    import temzoo.inference.tiling as tiling
    from temzoo.analysis.box_training import train_on_boxes
    from temzoo.analysis.flatten import flattened
    from temzoo.analysis.scale import maps_at_scale

    image, boxes = disk_grid(96, 3, 16, 24, 6)
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [{"name": "a", "image": image,
                                 "boxes": boxes}], steps=1, batch_size=2, patch_size=32, synthetic=None,
                                 target_particle_px=6.0, scale_jitter=1.0, log_every=0, flatten=4.0)
    assert info["flatten_px"] == 24.0 and temzoo.card(model)["training"]["flatten_px"] == 24.0
    seen, real = [], tiling.predict
    monkeypatch.setattr(tiling, "predict", lambda m, x, **kw: (seen.append(x), real(m, x, **kw))[1])
    lit = image + np.linspace(0, 3, 96)[None, :]
    maps_at_scale(model, lit, scale=1.0)
    np.testing.assert_allclose(seen[-1], flattened(lit, 24.0), atol=1e-5)
