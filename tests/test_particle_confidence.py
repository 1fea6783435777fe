"""Particle confidence and the second look half an octave finer (temzoo.analysis.particles.found_particles)."""

import csv

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from temzoo.analysis.particles import confident, found_particles, particle_confidence

POST = {"threshold": 0.5, "min_area": 4, "split_depth": 2.0, "min_confidence": 0.0, "finer_scale": True,
        "finer_confidence": 0.9}


def blob(maps, row, col, radius, foreground, core):
    """Paint a round particle into ``maps`` (H x W x 2: foreground, core) with a core of half its radius."""
    yy, xx = np.mgrid[:maps.shape[0], :maps.shape[1]]
    distance = np.hypot(yy - row, xx - col)
    maps[distance <= radius, 0] = foreground
    maps[distance <= radius / 2, 1] = core


def test_confidence_is_the_particles_highest_score_and_unsure_particles_are_dropped_with_dense_ids():
    labels = np.zeros((10, 10), np.int32)
    labels[1:3, 1:3], labels[5:7, 5:7], labels[8:10, 0:2] = 1, 2, 3
    score = np.zeros((10, 10), np.float32)
    score[1, 1], score[2, 2] = 0.3, 0.95  # the highest pixel counts
    score[5:7, 5:7] = 0.6
    score[8:10, 0:2] = 0.85
    np.testing.assert_allclose(particle_confidence(labels, score), [0.95, 0.6, 0.85])
    kept = confident(labels, score, 0.8)
    assert kept.max() == 2 and (kept[5:7, 5:7] == 0).all()  # particle 2 dropped, particle 3 renumbered 2
    assert (kept[1:3, 1:3] == 1).all() and (kept[8:10, 0:2] == 2).all()
    assert confident(labels, score, 0.0) is labels
    assert particle_confidence(np.zeros((4, 4), np.int32), score[:4, :4]).shape == (0,)


def test_the_finer_look_adds_only_sure_particles_where_none_was_found():
    coarse, fine = np.zeros((64, 64, 2), np.float32), np.zeros((64, 64, 2), np.float32)
    blob(coarse, 16, 16, 6, 0.9, 0.95)  # found at the chosen factor
    blob(fine, 16, 16, 6, 0.9, 0.95)  # found again finer: overlaps, not added twice
    blob(fine, 45, 45, 5, 0.9, 0.97)  # only finer, sure: added
    blob(fine, 45, 15, 5, 0.9, 0.6)  # only finer, unsure: not added
    asked = []

    def maps_at(factor):
        asked.append(factor)
        return {1.0: coarse, 0.7071: fine}[factor]

    labels, foreground = found_particles(maps_at, 1.0, POST)
    assert asked == [1.0, 0.7071]
    assert labels.max() == 2 and labels[16, 16] == 1 and labels[45, 45] == 2 and labels[45, 15] == 0
    assert foreground[45, 45] == pytest.approx(0.9) and foreground[45, 15] == 0.0  # the finer map where added
    alone, _ = found_particles(maps_at, 1.0, {**POST, "finer_scale": False})
    assert alone.max() == 1 and asked[-1] == 1.0
    # the confidence floor applies at the chosen factor too
    floor, _ = found_particles(maps_at, 1.0, {**POST, "min_confidence": 0.96, "finer_confidence": 0.96})
    assert floor[16, 16] == 0 and floor[45, 45] > 0


def test_the_finer_factor_is_half_an_octave_and_stays_within_the_resampling_limits():
    from temzoo.analysis.scale import SCALES, finer_factor

    assert [finer_factor(f, (640, 640)) for f in (1.0, 1.4142, 2.0, 0.7071)] == [0.7071, 1.0, 1.4142, 0.5]
    assert finer_factor(SCALES[0], (640, 640)) is None  # never upsampled beyond 2x
    assert finer_factor(1.0, (2048, 2048)) is None  # would enlarge the image beyond 2048 px


def test_particles_takes_the_finer_look_from_the_model_at_the_finer_factor(tiny_model):
    import temzoo
    from temzoo.analysis.scale import maps_at_scale
    from temzoo.zoo import pretrained

    image = np.random.default_rng(7).random((48, 40)).astype(np.float32)
    settings = dict(scale=1.0, threshold=0.5, min_area=4, finer_scale=True, finer_confidence=0.0)
    result = temzoo.particles(tiny_model, image, **settings)
    model = pretrained.load(tiny_model)
    expected, foreground = found_particles(lambda f: maps_at_scale(model, image, scale=f)[0], 1.0,
                                           {**result.settings, "min_area": 4})
    np.testing.assert_array_equal(result.labels, expected)
    np.testing.assert_allclose(result.foreground, foreground, atol=1e-6)
    assert result.settings["finer_scale"] is True and result.settings["min_confidence"] == 0.0
    plain = temzoo.particles(tiny_model, image, **{**settings, "finer_scale": False})
    assert result.labels.max() >= plain.labels.max()


def test_analyze_confidence_options_reach_the_summary_and_bad_values_are_refused(tmp_path, tiny_model):
    from temzoo_cli.main import cli

    tifffile.imwrite(tmp_path / "x.tif", np.random.default_rng(3).random((40, 40)).astype(np.float32))
    runner = CliRunner()
    args = ["analyze", "--model", tiny_model, "--scale", "1", "--out"]
    ok = runner.invoke(cli, [*args, str(tmp_path / "o1"), "--min-confidence", "0.7", "--finer-scale",
                             "--finer-confidence", "0.8", str(tmp_path / "x.tif")], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    summary = next(csv.DictReader(open(tmp_path / "o1" / "particles_summary.csv")))
    assert float(summary["min_confidence"]) == 0.7 and float(summary["finer_confidence"]) == 0.8
    assert summary["finer_scale"] == "yes"
    bad = runner.invoke(cli, [*args, str(tmp_path / "o2"), "--min-confidence", "1.5", str(tmp_path / "x.tif")])
    assert bad.exit_code != 0 and "--min-confidence" in bad.output and not (tmp_path / "o2").exists()


def test_the_finer_look_reuses_a_prediction_the_scale_search_made(tmp_path, tiny_model, monkeypatch):
    import json
    import shutil

    import temzoo
    import temzoo.analysis.scale as scale
    import temzoo.inference.tiling as tiling
    from temzoo.zoo.cards import card_path

    sized = tmp_path / "sized.keras"
    shutil.copy(tiny_model, sized)
    card = json.loads(open(card_path(tiny_model)).read())
    card["training"] = {"target_particle_px": 8.0}  # scale="auto" searches the factors
    open(card_path(sized), "w").write(json.dumps(card))
    calls, real = [], tiling.predict
    monkeypatch.setattr(tiling, "predict", lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
    # the confidence rule looks at each octave, then at the best one's half-octave neighbours: here 1 and 1/sqrt 2
    monkeypatch.setattr(scale, "auto_factor", lambda at, *a, **k: [at(f) for f in (1.0, 0.7071)] and 1.0)
    image = np.random.default_rng(8).random((96, 96)).astype(np.float32)
    plain = temzoo.particles(str(sized), image, threshold=0.5, min_area=1)
    assert plain.scale == 1.0 and len(calls) == 2
    finer = temzoo.particles(str(sized), image, threshold=0.5, min_area=1, finer_scale=True, finer_confidence=0.0)
    assert finer.scale == 1.0 and len(calls) == 4  # no prediction beyond the search's
    temzoo.particles(str(sized), image, scale=1.0, finer_scale=True)
    assert len(calls) == 6  # a forced scale: the finer look is one more prediction
