"""Training the particle model where TensorFlow is absent (a lent GPU machine running Keras on JAX).

What that path needs, checked here on TensorFlow: au_np images made without TFDS equal the builder's,
train_on_boxes takes them, the box-training modules import without TensorFlow, saved synchronized
BatchNormalization loads on another backend, and the benchmark's ``--train-only`` trains into its cache.
"""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def test_au_np_images_are_made_as_the_tfds_builder_makes_them():
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import (
        SyntheticTemConfig,
        make_example,
    )

    from temzoo.simulate.hrtem import nanoparticle_set

    made = nanoparticle_set(2, image_size=48)
    config = SyntheticTemConfig(name="au_np", image_size=48)
    for i in range(2):
        example = make_example(config, np.random.default_rng([config.seed, 0, i]))
        np.testing.assert_array_equal(made["images"][i], example["image"][..., 0])
        np.testing.assert_array_equal(made["masks"][i], example["mask"][..., 0])
    assert made["name"].startswith("synthetic_tem/au_np (simulated")


def test_train_on_boxes_takes_synthetic_images_at_hand_and_makes_their_particles_bright():
    import temzoo
    from temzoo.analysis.box_training import synthetic_examples, train_on_boxes
    from temzoo.simulate.hrtem import nanoparticle_set

    given = nanoparticle_set(3)  # 256 px: particles of 33-230 px fill a smaller image
    images, masks = synthetic_examples(given, 2, polarity="bright")
    assert len(images) == 2
    for image, mask in zip(images, masks, strict=True):
        assert 0 < mask.mean() < 1
        assert image[mask > 0].mean() > image[mask == 0].mean()
    assert any(not np.array_equal(image, original) for image, original in zip(images, given["images"][:2], strict=True))

    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), [], steps=2, batch_size=2,
                                 patch_size=32, synthetic=given, synthetic_fraction=1.0, synthetic_images=3)
    assert info["synthetic"] == given["name"]
    assert model.output_shape[-1] == 2


def test_box_training_modules_import_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"  # any `import tensorflow` now fails
        "import temzoo.data.boxes, temzoo.simulate.hrtem, temzoo.analysis.box_training, temzoo.analysis.scoring\n"
        "import temzoo.zoo.cards, temzoo.zoo.pretrained\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_synchronized_batch_norm_loads_as_a_plain_one_on_other_backends(monkeypatch):
    import keras

    from temzoo.models.layers import batch_norm_for_backend, normalization_layer
    from temzoo.zoo.cards import software_versions

    assert batch_norm_for_backend() == {}
    assert normalization_layer("batch", 8).synchronized
    assert "tensorflow" in software_versions() and "keras_backend" not in software_versions()

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    layer = batch_norm_for_backend()["BatchNormalization"](synchronized=True, name="bn")
    assert isinstance(layer, keras.layers.BatchNormalization)
    assert not layer.synchronized
    assert not normalization_layer("batch", 8).synchronized


def test_train_only_trains_into_the_cache_once(tmp_path):
    import particles_real as bench

    import temzoo
    from temzoo import tasks

    calls = []

    def train():
        calls.append(1)
        return tasks.segmentation(temzoo.build("unet_b2_p22", base_filters=4), num_classes=2), {"seconds": 1.0}

    fgs, info = bench.cached_foreground(str(tmp_path), "key", [], train, train_only=True)
    assert fgs == {} and calls == [1]
    assert os.path.exists(tmp_path / "key" / "model.keras")
    assert json.load(open(tmp_path / "key" / "train.json"))["seconds"] == 1.0

    def refuse():
        raise AssertionError("trained again")

    fgs, info = bench.cached_foreground(str(tmp_path), "key", [], refuse, train_only=True)
    assert info["seconds"] == 1.0


def test_the_cache_key_names_a_batch_size_other_than_the_old_default():
    import particles_real as bench

    old = bench.cache_tag(bench.parse_args(["--steps", "1000", "--polarity", "bright"]))
    assert old == "_s1000_p128_t16_j1.4142_polbright"  # the key of the models cached before batch size was in it
    big = bench.cache_tag(bench.parse_args(["--steps", "1000", "--polarity", "bright", "--batch-size", "32"]))
    assert big == "_s1000_p128_t16_j1.4142_b32_polbright"

