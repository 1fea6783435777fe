"""Input pipelines: pretext pairs, supervised pairs, targets table, fractions (temzoo.data)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from temzoo import data
from temzoo.errors import BadInputError, UnknownNameError
from temzoo.zoo.normalization import Normalizer

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 60, size=(12, 40, 48)).astype(np.float32)


def labelled(n=12, h=40, w=48):
    """Dict dataset whose mask is a function of the image (mask = image mod 3)."""
    image = RNG.integers(0, 60, size=(n, h, w, 1)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices({"image": image, "mask": (image % 3).astype(np.uint8)})


def take(ds, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(n)]


def test_pretext_pairs_shapes_and_standardisation_with_noisy_stats():
    ds = data.pretext_pairs(IMAGES, patch_size=32, batch_size=4, seed=1, augment=False, shuffle_buffer=0)
    noisy, clean = next(iter(ds))
    assert noisy.shape == (4, 32, 32, 1) and clean.shape == (4, 32, 32, 1)
    # Without crop (patch = image), the noisy image is standardised by its own stats.
    full = data.pretext_pairs(IMAGES[:, :40, :40], patch_size=40, batch_size=3, augment=False, shuffle_buffer=0)
    noisy, clean = next(iter(full))
    np.testing.assert_allclose(tf.reduce_mean(noisy, axis=[1, 2, 3]), 0.0, atol=1e-4)
    np.testing.assert_allclose(tf.math.reduce_std(noisy, axis=[1, 2, 3]), 1.0, atol=1e-3)
    # The clean target is on the same scale: standardised with the NOISY image's stats.
    clean_raw = IMAGES[:3, :40, :40, None] / IMAGES[:3, :40, :40].mean(axis=(1, 2))[:, None, None, None]
    corr = [np.corrcoef(clean[i].numpy().ravel(), clean_raw[i].ravel())[0, 1] for i in range(3)]
    assert min(corr) > 0.999
    assert not np.allclose(tf.reduce_mean(clean, axis=[1, 2, 3]), 0.0, atol=1e-6)


def test_pretext_noise_follows_the_dose():
    flat = np.full((16, 64, 64), 7.0, dtype=np.float32)
    for dose in (20.0, 400.0):
        ds = data.pretext_pairs(flat, patch_size=64, batch_size=16, dose_range=(dose, dose),
                                normalizer=Normalizer("none"), repeat=False)
        noisy, clean = next(iter(ds))
        np.testing.assert_allclose(clean, 1.0, atol=1e-5)  # mean-intensity units
        assert float(tf.reduce_mean(noisy)) == pytest.approx(1.0, abs=0.01)
        assert float(tf.math.reduce_variance(noisy)) == pytest.approx(1.0 / dose, rel=0.05)
    # Log-uniform dose per image: the per-image doses spread over the range.
    ds = data.pretext_pairs(np.full((64, 64, 64), 1.0, np.float32), patch_size=64, batch_size=64,
                            dose_range=(10.0, 1000.0), normalizer=Normalizer("none"), repeat=False)
    noisy, _ = next(iter(ds))
    doses = 1.0 / tf.math.reduce_variance(noisy, axis=[1, 2, 3]).numpy()
    assert doses.min() > 10 * 0.8 and doses.max() < 1000 * 1.25
    assert (doses < 60).any() and (doses > 200).any()
    log_d = np.log(doses)
    assert abs(np.median(log_d) - np.log(100.0)) < 0.8


def test_read_noise_adds_gaussian_variance():
    flat = np.full((8, 64, 64), 1.0, dtype=np.float32)
    ds = data.pretext_pairs(flat, patch_size=64, batch_size=8, dose_range=(1e6, 1e6), read_noise=0.1,
                            normalizer=Normalizer("none"), repeat=False)
    noisy, _ = next(iter(ds))
    assert float(tf.math.reduce_std(noisy)) == pytest.approx(0.1, rel=0.05)


def test_same_seed_same_batches_other_seed_other_batches():
    def make(seed):
        return data.pretext_pairs(IMAGES, patch_size=24, batch_size=4, seed=seed, shuffle_buffer=8)

    a, b, c = take(make(3), 4), take(make(3), 4), take(make(4), 4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    assert not np.array_equal(a[0][0], c[0][0])
    # repeated epochs draw new crops and noise
    assert not np.array_equal(a[0][0], a[3][0])


def test_supervised_augmentation_moves_image_and_mask_together():
    ds = data.supervised_pairs(labelled(), target_key="mask", patch_size=24, batch_size=4, seed=0,
                               normalizer=Normalizer("none"), num_classes=3)
    seen_rotations = set()
    for image, mask in take(ds, 6):
        assert mask.dtype == np.int32 and image.dtype == np.float32
        np.testing.assert_array_equal(mask, (image % 3).astype(np.int32))
        seen_rotations.add(image.shape)
    assert seen_rotations == {(4, 24, 24, 1)}


def test_supervised_dihedral_covers_all_eight_symmetries():
    image = np.arange(16 * 16, dtype=np.float32).reshape(1, 16, 16, 1)
    ds = tf.data.Dataset.from_tensor_slices({"image": image, "mask": np.zeros_like(image, np.uint8)})
    pairs = data.supervised_pairs(ds, target_key="mask", patch_size=16, batch_size=1, seed=0,
                                  normalizer=Normalizer("none"), shuffle_buffer=0)
    seen = {tuple(x[0, :2, :2, 0].ravel()) for x, _ in take(pairs, 80)}
    assert len(seen) == 8


def test_restoration_target_normalised_with_input_stats():
    image = RNG.uniform(0, 5, size=(6, 32, 32, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices({"image": image, "clean": image * 1.0})
    x, y = next(iter(data.supervised_pairs(ds, task="denoising", patch_size=32, batch_size=6)))
    np.testing.assert_allclose(x, y, atol=1e-5)  # same stats: identical arrays stay identical
    np.testing.assert_allclose(tf.reduce_mean(x, axis=[1, 2, 3]), 0.0, atol=1e-4)


def test_global_batch_is_split_across_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = data.pretext_pairs(IMAGES, patch_size=16, batch_size=8)
    dist = strategy.experimental_distribute_dataset(ds)
    noisy, _ = next(iter(dist))
    shapes = [t.shape for t in strategy.experimental_local_results(noisy)]
    assert shapes == [(4, 16, 16, 1), (4, 16, 16, 1)]


def test_keras_random_flip_on_the_keras_dict():
    ds = data.supervised_pairs(labelled(), target_key="mask", patch_size=24, batch_size=4, seed=0,
                               normalizer=Normalizer("none"), augment=False, as_keras_dict=True)
    flip = keras.layers.RandomFlip("horizontal_and_vertical", seed=5)
    before = take(ds, 3)
    after = take(ds.map(lambda d: flip(d)), 3)
    changed = False
    for b, a in zip(before, after, strict=True):
        assert set(a) == {"images", "segmentation_masks"}
        np.testing.assert_array_equal(a["segmentation_masks"], (a["images"] % 3).astype(np.int32))
        changed |= not np.array_equal(a["images"], b["images"])
    assert changed
    # The dict is accepted as input, too.
    unbatched = ds.unbatch()
    x, y = next(iter(data.supervised_pairs(unbatched, patch_size=16, batch_size=2, normalizer=Normalizer("none"))))
    np.testing.assert_array_equal(y, (x.numpy() % 3).astype(np.int32))


def test_take_fraction_is_deterministic_and_nested():
    ds = tf.data.Dataset.range(200)
    small = sorted(int(v) for v in data.take_fraction(ds, 0.02, seed=1))
    medium = sorted(int(v) for v in data.take_fraction(ds, 0.10, seed=1))
    assert len(small) == 4 and len(medium) == 20
    assert set(small) <= set(medium)
    assert small == sorted(int(v) for v in data.take_fraction(ds, 0.02, seed=1))
    assert small != sorted(int(v) for v in data.take_fraction(ds, 0.02, seed=2))
    assert len(list(data.take_fraction(ds, 1.0))) == 200
    assert int(data.take_fraction(ds, 0.1).cardinality()) == 20
    with pytest.raises(BadInputError, match="fraction"):
        data.take_fraction(ds, 0.0)


def test_target_key_table():
    assert data.target_key("synthetic_tem/au_np", "segmentation") == "mask"
    assert data.target_key("synthetic_tem/atomic", "denoising") == "clean"
    assert data.target_key("synthetic_tem/atomic", "background_removal") == "clean_no_background"
    assert data.target_key("synthetic_tem/atomic", "super_resolution") == "super_resolution"
    assert data.target_key("synthetic_tem/atomic", "atom_segmentation") == "circular_mask"
    assert data.target_key("temimagenet/denoise", "denoising", features=["image", "target", "id"]) == "target"
    with pytest.raises(BadInputError, match=r"synthetic_tem/unlabeled has no labels for segmentation \(features:"):
        data.target_key("synthetic_tem/unlabeled", "segmentation")
    with pytest.raises(BadInputError, match="no labels for denoising"):
        data.target_key("temimagenet/circular_mask", "denoising", features=["image", "target", "id"])
    with pytest.raises(UnknownNameError, match="segmentation"):
        data.target_key("synthetic_tem/au_np", "segmentaton")


def test_bad_inputs_get_clear_errors():
    with pytest.raises(BadInputError, match="smaller than patch_size=64"):
        data.pretext_pairs(IMAGES, patch_size=64, batch_size=2)
    with pytest.raises(BadInputError, match="no 'clean' feature"):
        data.supervised_pairs(labelled(), target_key="clean", patch_size=16, batch_size=2)
    bigger = tf.data.Dataset.from_tensor_slices(
        {"image": np.zeros((2, 32, 32, 1), np.uint8), "target": np.zeros((2, 64, 64, 1), np.uint8)})
    with pytest.raises(BadInputError, match="needs targets of the input's size"):
        data.supervised_pairs(bigger, target_key="target", patch_size=16, batch_size=2)
    with pytest.raises(BadInputError, match="dose_range"):
        data.pretext_pairs(IMAGES, patch_size=16, batch_size=2, dose_range=(0, 10))


def test_pipelines_run_without_the_autotune_thread():
    """tf.data's autotuning thread makes deleting a long-lived iterator wait up to a minute (TF 2.21):
    every pipeline switches it off, training (repeated) and validation (one pass) alike."""
    pipelines = {
        "pretext": data.pretext_pairs(IMAGES, patch_size=32, batch_size=4, seed=1),
        "supervised": data.supervised_pairs(labelled(), target_key="mask", patch_size=32, batch_size=4),
        "supervised, one pass": data.supervised_pairs(labelled(), target_key="mask", patch_size=32, batch_size=4,
                                                      repeat=False),
    }
    for name, ds in pipelines.items():
        assert ds.options().autotune.enabled is False, name
        assert next(iter(ds))[0].shape == (4, 32, 32, 1), name  # and they still deliver batches
