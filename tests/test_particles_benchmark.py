"""benchmarks/particles_real.py: its scale rules on made-up probability maps."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))


def test_the_best_scale_rule_picks_the_factor_whose_particles_match_the_boxes():
    import particles_real as bench
    from particle_scenes import disks

    centres = [(32 + 64 * i, 32 + 64 * j) for i in range(4) for j in range(4)]
    right = disks((256, 256), centres, 12).astype(np.float32)  # the boxed particles
    merged = disks((256, 256), [(64 + 128 * i, 64 + 128 * j) for i in range(2) for j in range(2)], 60)
    boxes = np.array([[cx - 12, cy - 12, cx + 13, cy + 13] for cy, cx in centres], float)
    post = {"threshold": 0.5, "split_depth": 2.0, "min_area": 5.0, "core": True}
    maps = {1.0: merged.astype(np.float32), 2.0: right}
    example = {"image": right, "boxes": boxes}
    assert bench.pick_factor("best", maps, example, 16.0, post) == 2.0
    assert bench.pick_factor("best", {1.0: right, 2.0: merged.astype(np.float32)}, example, 16.0, post) == 1.0


def test_train_only_refuses_options_that_train_nothing(capsys):
    import particles_real as bench
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--train-only", "--model", "nanoparticles"])
    assert exit_info.value.code == 2
    assert "--train-only" in capsys.readouterr().err
    assert bench.parse_args(["--train-only"]).train_only


def test_a_model_cache_key_changes_with_the_model_file(tmp_path):
    """A re-shipped model under the same name must not be scored from the maps of the previous one."""
    import particles_real as bench

    path = tmp_path / "m.keras"
    path.write_bytes(b"first model")
    first = bench.model_sha256(str(path))
    path.write_bytes(b"second model")
    assert bench.model_sha256(str(path)) != first
    assert len(bench.model_sha256("nanoparticles")) == 64  # a registered name: its weights file


def test_scoring_a_trained_model_keeps_its_card(tmp_path):
    """--model: the model is scored as shipped. Re-saving it into the cache replaced its card's training
    (the polarity with it), so bright-field images were no longer inverted and scored 0."""
    import particles_real as bench

    import temzoo
    from temzoo import tasks
    from temzoo.analysis.box_training import DEFAULTS
    from temzoo.zoo.pretrained import attach_card, card

    model = tasks.segmentation(temzoo.build("unet_b2_p22", base_filters=4), num_classes=2)
    attach_card(model, {"name": "m", "training": {"polarity": "bright", "target_particle_px": 16.0}})
    bench._train_into(str(tmp_path), "model_m", lambda: (model, {"model": "m.keras", "seconds": 0.0}))
    assert card(model)["training"]["polarity"] == DEFAULTS["polarity"] == "bright"
    assert not (tmp_path / "model.keras").exists()
    assert (tmp_path / "train.json").exists()


def test_ensembled_maps_are_predicted_once_and_then_read_from_the_cache(tmp_path):
    import particles_real as bench

    import temzoo
    from temzoo import tasks

    folder = tmp_path / "fold"
    folder.mkdir()
    model = tasks.segmentation(temzoo.build("unet_b2_p22", base_filters=4), num_classes=2)
    tasks.save(model, folder / "model.keras", name="fold")
    example = {"name": "img", "image": np.random.default_rng(0).random((40, 36)).astype(np.float32)}
    first = bench.ensembled((str(tmp_path), "fold", None), example, 1.0, 8)
    assert first.shape[:2] == (40, 36) and (folder / "img.e8.maps.npz").exists()  # every channel of the maps
    (folder / "model.keras").unlink()  # a second call must not need the model
    np.testing.assert_allclose(bench.ensembled((str(tmp_path), "fold", None), example, 1.0, 8), first, atol=1 / 255)


def test_row_labels_name_each_post_processing_setting_off_its_default_or_varied():
    import particles_real as bench

    from temzoo.names import PARTICLE_DEFAULTS

    def posts(*keys):
        return {key: {} for key in keys}  # post_label reads the keys only

    defaults = {**PARTICLE_DEFAULTS, "threshold": 0.5, "split_depth": 2.0, "min_area": 50}
    plain = (0.5, 2.0, 50.0, True, 0.0, None)
    assert bench.post_label(plain, posts(plain), defaults) == ""
    tuned = (0.4, 0.5, 80.0, True, 0.9, 0.9)
    assert bench.post_label(tuned, posts(tuned), defaults) == (" (threshold 0.4) (split 0.5) (min area 80.0)"
                                                               " (min confidence 0.9) (finer 0.9)")
    # the same settings are the defaults of a model whose card carries them: nothing to name
    card = {**defaults, "threshold": 0.4, "split_depth": 0.5, "min_area": 80, "min_confidence": 0.9,
            "finer_scale": True, "finer_confidence": 0.9}
    assert bench.post_label(tuned, posts(tuned), card) == ""
    assert bench.post_label(plain, posts(plain), card) == (" (threshold 0.5) (split 2.0) (min area 50.0)"
                                                           " (min confidence 0.0) (finer off)")
    varied = [(0.5, d, 50.0, True, 0.0, None) for d in (1.0, 2.0)]
    assert [bench.post_label(k, posts(*varied), defaults) for k in varied] == [" (split 1.0)", " (split 2.0)"]


def test_post_processing_chosen_on_other_folds_never_sees_the_scored_fold():
    import particles_real as bench

    def score(image, tp, fp):
        d = np.full(tp, 10.0)
        return {"image": image, "tp": tp, "fp": fp, "fn": 10 - tp, "f1": 2 * tp / (2 * tp + fp + 10 - tp),
                "pred_diameters": d, "true_diameters": d, "pred_all": d, "true_all": d}

    # post A scores well on fold 1's images, post B on fold 2's
    scored = {("v", "auto", 1): {
        "A": ("v (A)", [score("a1", 9, 0), score("a2", 9, 0), score("b1", 2, 5), score("b2", 2, 5)]),
        "B": ("v (B)", [score("a1", 3, 4), score("a2", 3, 4), score("b1", 8, 1), score("b2", 8, 1)]),
    }}
    runs = {"v": [(["a1", "a2"], None, None, None), (["b1", "b2"], None, None, None)]}
    rows, per_image = {}, {}
    labels = bench.choose_post_rows(runs, scored, rows, per_image, {"v": "note"})
    assert labels == ["v (post chosen on other folds)"]
    row = rows[labels[0]]
    assert row["post_chosen_per_fold"] == ["v (B)", "v (A)"]  # each fold gets what won on the other
    assert (row["true_particles"], row["predicted"]) == (40, 3 + 3 + 2 + 2 + 4 + 4 + 5 + 5)
    assert [s["image"] for s in per_image[labels[0]]] == ["a1", "a2", "b1", "b2"]
    assert bench.choose_post_rows(runs, {("v", "auto", 1): {"A": scored[("v", "auto", 1)]["A"]}}, {}, {}, {}) == []


def test_fold_models_trained_in_bfloat16_have_their_own_cache_key(monkeypatch):
    """float32 and bfloat16 fold models never share cached maps; "auto" keys by what it resolves to here."""
    import particles_real as bench

    import temzoo.inference.precision as precision

    float32 = bench.cache_tag(bench.parse_args([]))
    bfloat16 = bench.cache_tag(bench.parse_args(["--precision", "mixed_bfloat16"]))
    assert bfloat16 == float32 + "_bf16"
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: False)
    assert bench.cache_tag(bench.parse_args(["--precision", "auto"])) == float32
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: True)
    assert bench.cache_tag(bench.parse_args(["--precision", "auto"])) == bfloat16


def test_a_learning_rate_weight_map_or_training_seed_keys_its_own_fold_models():
    """Fold models trained at another learning rate, with a weight map, a focal loss or another training seed get their own cache key; the default keeps older keys valid."""
    import particles_real as bench

    default = bench.cache_tag(bench.parse_args([]))
    assert "_lr" not in default
    tagged = bench.cache_tag(bench.parse_args(["--learning-rate", "0.003"]))
    assert "_lr0.003" in tagged and tagged.replace("_lr0.003", "") == default
    weighted = bench.cache_tag(bench.parse_args(["--weight-map"]))
    assert "_wm" in weighted and weighted.replace("_wm", "") == default
    focal = bench.cache_tag(bench.parse_args(["--focal"]))
    assert "_focal" in focal and focal.replace("_focal", "") == default
    reseeded = bench.cache_tag(bench.parse_args(["--train-seed", "1"]))
    assert "_ts1" in reseeded and reseeded.replace("_ts1", "") == default
    assert bench.cache_tag(bench.parse_args(["--train-seed", "0"])) == default  # the same seed as --seed


def test_averaged_seeds_reuse_each_seeds_fold_model_and_average_their_maps(capsys):
    """--average-seeds: each seed's fold model is the one --train-seed trains (same cache key); the maps are
    averaged per image and factor; bad lists and options that cannot combine are refused."""
    import particles_real as bench
    import pytest

    opts = bench.parse_args(["--average-seeds", "0,1", "--steps", "50"])
    assert opts.average_seeds == [0, 1]
    assert bench.seed_tag(opts, 1) == bench.cache_tag(bench.parse_args(["--train-seed", "1", "--steps", "50"]))
    assert bench.seed_tag(opts, 0) == bench.cache_tag(bench.parse_args(["--steps", "50"]))
    a = {"img": {1.0: np.full((2, 2), 0.2, np.float32), 2.0: np.zeros((4, 4), np.float32)}}
    b = {"img": {1.0: np.full((2, 2), 0.6, np.float32), 2.0: np.ones((4, 4), np.float32)}}
    maps, size = bench.averaged_maps([(a, 10.0, "k0"), (b, 14.0, "k1")])
    np.testing.assert_allclose(maps["img"][1.0], 0.4)
    np.testing.assert_allclose(maps["img"][2.0], 0.5)
    assert size == 12.0
    assert bench.averaged_maps([(a, 10.0, "k0")]) == (a, 10.0)
    for bad in (["--average-seeds", "0,x"], ["--average-seeds", "0,1", "--ensemble", "8"],
                ["--average-seeds", "0,1", "--train-seed", "2"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    assert "--average-seeds" in capsys.readouterr().err


def test_the_target_ceiling_scores_the_training_targets_through_the_post_processing():
    """Separate particles' targets are found exactly; particles the post-processing's minimum area drops are
    missed, and the ceiling says so."""
    import particles_real as bench

    boxes = np.array([[20 + 60 * i, 20 + 60 * j, 45 + 60 * i, 45 + 60 * j] for i in range(4) for j in range(4)], float)
    example = {"name": "apart", "image": np.zeros((256, 256), np.float32), "boxes": boxes}
    post = {"threshold": 0.5, "split_depth": 0.5, "min_area": 5.0, "core": True, "min_confidence": 0.0}
    for classes in (2, 3):
        (score,) = bench.target_ceiling([example], post, classes=classes, target_px=25.0)
        assert (score["tp"], score["fp"], score["fn"]) == (16, 0, 0)
        assert score["factor"] == 1.0

    small = np.array([[20 + 60 * i, 20 + 60 * j, 26 + 60 * i, 26 + 60 * j] for i in range(4) for j in range(4)], float)
    tiny = {"name": "tiny", "image": np.zeros((256, 256), np.float32), "boxes": small}
    (kept,) = bench.target_ceiling([tiny], post, classes=2, target_px=6.0)
    assert kept["tp"] == 16
    (dropped,) = bench.target_ceiling([tiny], {**post, "min_area": 50.0}, classes=2, target_px=6.0)
    assert dropped["tp"] == 0 and dropped["misses"]["missed"] == 16
