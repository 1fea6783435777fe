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
