"""Tiled prediction: equal to untiled, any size, normalisation, bad input, OOM retry."""

import keras
import numpy as np
import pytest

import temzoo
import temzoo.tasks as tasks
from temzoo.errors import BadInputError, InputSizeError
from temzoo.inference import tile_layout, tiling
from temzoo.receptive_field import receptive_field
from temzoo.zoo.normalization import Normalizer
from temzoo.zoo.pretrained import attach_card


def _randomise_batchnorm(model, seed=0):
    """Non-trivial moving statistics, so the test would notice batch statistics leaking between tiles."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    return model


@pytest.fixture(scope="module")
def unet():
    keras.utils.set_random_seed(0)
    return _randomise_batchnorm(temzoo.build("unet_b3_p224", base_filters=4))  # stride 16


def test_tiled_equals_untiled_on_an_image_that_fits(unet):
    image = np.random.default_rng(0).random((480, 640)).astype("float32")
    untiled = unet.predict_on_batch(image[None, ..., None])[0, ..., 0]
    whole = temzoo.predict(unet, image, tile_size=640)
    tiled = temzoo.predict(unet, image, tile_size=432, batch_size=3)
    margin, ramp = tiling.tile_geometry(receptive_field(unet), 16)
    assert 2 * margin + ramp <= 432 / 2  # 2 x 3 tiles whose overlaps include the zero-weight margins
    np.testing.assert_allclose(whole, untiled, atol=1e-5)
    np.testing.assert_allclose(tiled, untiled, atol=1e-4)


def test_many_image_shapes_keep_tensorflows_retracing_warning_off_the_log_for_predict_only(unet):
    # predict traces each tile shape once by design (the particle scale search predicts one image at several sizes);
    # TensorFlow warns after 5 traces in 10 calls of one function, which would only alarm users
    import logging

    import tensorflow as tf

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    try:
        for side in (64, 80, 96, 112, 128, 144):
            temzoo.predict(unet, np.zeros((side, side + 16), "float32"))
        doubled = tf.function(lambda x: x * 2)  # anyone else's function keeps the warning
        for length in range(1, 7):
            doubled(tf.zeros((length,)))
    finally:
        tf_logger.removeHandler(handler)
    retracing = [r.getMessage() for r in records if "triggered tf.function retracing" in r.getMessage()]
    assert retracing, "TensorFlow's warning did not fire for a function traced 6 times"
    assert not any("tile_forward" in message for message in retracing), retracing


def test_odd_sizes_come_back_with_the_input_shape(unet):
    image = np.random.default_rng(1).random((517, 389)).astype("float32")
    out = temzoo.predict(unet, image, tile_size=432)
    assert out.shape == (517, 389) and out.dtype == np.float32 and np.isfinite(out).all()
    assert temzoo.predict(unet, image[..., None], tile_size=432).shape == (517, 389, 1)
    assert temzoo.predict(unet, image[:3, :5]).shape == (3, 5)  # smaller than the stride: padded


def test_segmentation_returns_probabilities_and_scale_2_doubles():
    backbone = temzoo.build("unet_b2_p22", base_filters=4)
    seg = tasks.segmentation(backbone, num_classes=3)
    image = np.random.default_rng(2).random((101, 67)).astype("float32")
    probs = temzoo.predict(seg, image, tile_size=96)
    assert probs.shape == (101, 67, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    sr = tasks.super_resolution(backbone, scale=2)
    whole = temzoo.predict(sr, image, tile_size=256)
    tiled = temzoo.predict(sr, image, tile_size=96)
    assert whole.shape == (202, 134)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def _identity_restorer():
    inputs = keras.Input((None, None, 1), name="image")
    x = keras.layers.Conv2D(1, 1, name="head", kernel_initializer="ones", bias_initializer="zeros")(inputs)
    outputs = keras.layers.Activation("linear", dtype="float32", name="head_activation")(x)
    return keras.Model(inputs, outputs)


def test_restoration_normalises_before_and_maps_back_after():
    model = _identity_restorer()
    image = np.random.default_rng(3).normal(1000.0, 50.0, (40, 30)).astype("float32")
    seen = []
    original = tiling._forward

    def spy(m):
        fn = original(m)
        return lambda batch: seen.append(np.asarray(batch)) or fn(batch)

    attach_card(model, {"task": "denoising", "normalization": Normalizer("standardize").get_config()})
    try:
        tiling._forward = spy
        out = temzoo.predict(model, image)
    finally:
        tiling._forward = original
    assert abs(float(seen[0].mean())) < 1e-3 and float(seen[0].std()) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(out, image, rtol=1e-5)  # identity network: the round trip is exact
    # an explicit normaliser wins over the card's
    out = temzoo.predict(model, image, normalizer=Normalizer("percentile"))
    np.testing.assert_allclose(out, image, rtol=1e-5)


def test_bad_images_get_clear_errors(unet):
    with pytest.raises(InputSizeError, match="1x1"):
        temzoo.predict(unet, np.ones((1, 1), "float32"))
    nan = np.zeros((32, 32), "float32")
    nan[3, 4] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        temzoo.predict(unet, nan)
    with pytest.raises(BadInputError, match="shape"):
        temzoo.predict(unet, np.zeros((2, 32, 32), "float32"))
    with pytest.raises(ValueError, match="too small"):
        temzoo.predict(unet, np.zeros((300, 300), "float32"), tile_size=64)


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    import tensorflow as tf

    unet = temzoo.build("unet_b2_p22", base_filters=4)  # stride 4, overlap 72: tiles can halve
    calls = []
    original = tiling._forward

    def flaky(model):
        fn = original(model)

        def run(batch):
            calls.append(batch.shape)
            if len(calls) == 1:
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
            return fn(batch)

        return run

    image = np.random.default_rng(4).random((300, 260)).astype("float32")
    expected = temzoo.predict(unet, image, tile_size=512)
    monkeypatch.setattr(tiling, "_forward", flaky)
    with pytest.warns(UserWarning, match="Out of memory"):
        out = temzoo.predict(unet, image, tile_size=512)
    assert calls[0][1:3] == (300, 260)
    assert max(calls[1][1:3]) <= 256 and len(calls) > 2  # retried with smaller tiles (split evenly)
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("length", [16, 48, 160, 516, 1000])
def test_window_weights_cover_every_pixel(length):
    stride, margin, ramp, tile = 4, 12, 8, 64
    starts = tiling.tile_starts(length, min(tile, length), min(tile, length) - 2 * margin - ramp)
    assert all(s % stride == 0 for s in starts) and starts[-1] + min(tile, length) == length
    total = tiling.profile_sum(length, min(tile, length), starts, margin, ramp)
    assert (total > 0).all()


def test_default_tile_size_fits_the_budget(unet, monkeypatch):
    monkeypatch.setattr(tile_layout, "memory_budget", lambda image_bytes=0: 256 << 20)
    overlap = 2 * 80 + 48
    side, batch = tiling.choose_tile_size(unet, 16, overlap)
    assert side % 16 == 0 and side >= 2 * overlap
    assert side * side * batch * tiling.bytes_per_pixel(unet) <= (256 << 20)
    monkeypatch.setattr(tile_layout, "memory_budget", lambda image_bytes=0: 1 << 40)
    assert tiling.choose_tile_size(unet, 16, overlap) == (tiling.MAX_TILE, tiling.MAX_BATCH)


@pytest.mark.parametrize("length,max_tile,overlap,stride", [
    (4096, 1104, 208, 16), (8192, 2048, 96, 8), (1000, 400, 72, 4), (640, 640, 64, 16), (4096, 1088, 512, 32),
])
def test_axis_layout_splits_evenly_with_the_fewest_tiles(length, max_tile, overlap, stride):
    tile, starts = tiling.axis_layout(length, max_tile, overlap, stride)
    assert tile <= max_tile and tile % stride == 0 and all(s % stride == 0 for s in starts)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))
    count = len(starts)
    # one tile fewer, even at the largest size, could not cover the axis
    assert count == 1 or (count - 2) * (max_tile - overlap) + max_tile < length
    # never more pixels than the old layout (max-size tiles, the last flush with the end)
    old = tiling.tile_starts(length, min(max_tile, length), min(max_tile, length) - overlap)
    assert count * tile <= len(old) * min(max_tile, length)


def test_even_split_computes_fewer_pixels_than_flush_tiles():
    """The issue's case: 4096 px in tiles of at most 1104 px took 5 tiles of 1104 px (1.35x per axis)."""
    tile, starts = tiling.axis_layout(4096, 1104, 208, 16)
    assert len(starts) == 5 and len(starts) * tile <= 1.1 * (4096 + 4 * 208)


def _blur_chain(layers=16, dilation=8):
    """A linear chain of 3x3 box blurs: a Gaussian-like influence, far narrower than its receptive field."""
    inputs = keras.Input((None, None, 1))
    x = inputs
    for _ in range(layers):
        x = keras.layers.Conv2D(1, 3, padding="same", dilation_rate=dilation, use_bias=False,
                                kernel_initializer=keras.initializers.Constant(1 / 9))(x)
    return keras.Model(inputs, x)


def test_effective_receptive_field_is_narrower_and_keeps_tiling_close_to_untiled():
    from temzoo.receptive_field import effective_receptive_field

    model = _blur_chain()
    theoretical = receptive_field(model)
    effective = effective_receptive_field(model)
    assert theoretical == 257 > tiling.LARGE_RECEPTIVE_FIELD
    # 16 box blurs of dilation 8: Gaussian of sigma 8 * sqrt(16 * 2 / 3) = 26 px; 1e-4 of the
    # influence lies beyond about 3.9 sigma
    assert 150 < effective < 240
    assert effective_receptive_field(model, tolerance=1e-2) < effective
    image = np.random.default_rng(5).random((560, 560)).astype("float32")
    untiled = np.asarray(model(image[None, ..., None]))[0, ..., 0]
    auto = temzoo.predict(model, image, tile_size=256)  # RF > 256: margins from the effective field
    scale = float(untiled.std())
    assert np.abs(auto - untiled).max() <= 1e-3 * scale
    with pytest.raises(ValueError, match="too small"):  # the exact overlap would not fit these tiles
        temzoo.predict(model, image, tile_size=256, overlap="exact")


def test_a_recorded_effective_receptive_field_is_used_without_measuring(monkeypatch):
    import sys

    rf_module = sys.modules["temzoo.receptive_field"]  # the package attribute is the function
    model = _blur_chain(layers=4, dilation=1)
    attach_card(model, {"task": "denoising", "effective_receptive_field": 5})
    monkeypatch.setattr(rf_module, "effective_receptive_field", lambda *a, **k: pytest.fail("measured"))
    assert tiling.effective_receptive_field(model) == 5
    # a bfloat16 copy made for predict(precision=...) keeps the card, hence the recorded field
    copy = tiling._with_precision(model, "mixed_bfloat16")
    assert copy is not model and tiling.effective_receptive_field(copy) == 5


def test_activation_size_counts_the_layers_of_nested_models():
    """A keras.applications-style encoder nested as a layer is opened up, not replaced by a guess."""
    inner_in = keras.Input((None, None, 1))
    inner = keras.Model(inner_in, keras.layers.Conv2D(8, 3, padding="same")(inner_in), name="encoder")
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.MaxPooling2D(2)(inner(inputs)))
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(x))
    # 8 channels at full size, pooled 8 and conv 4 at a quarter of the pixels, upsampled 4 at full size
    assert tiling.activation_floats_per_pixel(model) == pytest.approx(8 + 8 / 4 + 4 / 4 + 4)
    assert tiling.bytes_per_pixel(model) == pytest.approx(tile_layout.ACTIVATION_FRACTION * 4 * 15)


def test_a_recorded_activation_size_sizes_the_tiles(monkeypatch):
    model = _blur_chain(layers=2, dilation=1)
    attach_card(model, {"task": "denoising", "activation_bytes_per_pixel": 1000})
    assert tiling.bytes_per_pixel(model) == 1000
    monkeypatch.setattr(tile_layout, "memory_budget", lambda image_bytes=0: 1000 * 512 * 512)
    assert tiling.choose_tile_size(model, 1, 16) == (512, 1)


def test_measured_activation_size_is_the_peak_memory_of_one_call():
    """In a fresh process: a chain of three convolutions (33 floats per pixel in all) grows the
    peak RSS by about that much per pixel (oneDNN adds layout copies), not by KiB or GiB. Started from
    pytest, whose own peak a child's ``ru_maxrss`` inherits, so it also checks that the peak is the child's."""
    import subprocess
    import sys

    code = (
        "import keras; from temzoo.inference import tiling\n"
        "x = inputs = keras.Input((None, None, 1))\n"
        "for width in (16, 16, 1): x = keras.layers.Conv2D(width, 3, padding='same')(x)\n"
        "model = keras.Model(inputs, x)\n"
        "print('RATIO', tiling.measure_bytes_per_pixel(model, 1024) / (4 * tiling.activation_floats_per_pixel(model)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ratio = float(out.split("RATIO")[-1])
    assert 0.3 < ratio < 3, ratio


@pytest.mark.parametrize("shape,stride", [((37, 50, 1), 16), ((64, 33, 2), 32), ((2, 5, 1), 8), ((100, 100, 1), 4)])
def test_tiles_are_cut_from_the_image_as_from_a_normalised_padded_copy(shape, stride):
    image = np.random.default_rng(3).integers(0, 255, shape).astype(np.uint8)
    stats = (12.5, 3.0)
    view = tiling._NormalizedPadded(image, stats, stride)
    height, width = tile_layout.round_up(shape[0], stride), tile_layout.round_up(shape[1], stride)
    reference = np.pad(image.astype(np.float32), ((0, height - shape[0]), (0, width - shape[1]), (0, 0)), mode="reflect")
    reference = (reference - np.float32(12.5)) / np.float32(3.0)
    assert view.shape == reference.shape
    for r0, r1, c0, c1 in [(0, height, 0, width), (height - stride, height, width - stride, width),
                           (0, stride, width - stride, width), (height // 2, height, 0, width // 2 + 1)]:
        np.testing.assert_array_equal(view[r0:r1, c0:c1], reference[r0:r1, c0:c1])


def test_the_budget_leaves_room_for_the_image_itself(monkeypatch):
    import psutil

    class Memory:
        available = 16 << 30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory)
    monkeypatch.setattr(tile_layout, "resident_bytes", lambda: 2 << 30)  # no room under the target left
    assert tiling.memory_budget() == tiling.BASE_BUDGET_BYTES
    # the image's arrays come out of the free memory, not out of the activations' base budget
    assert tiling.memory_budget(512 << 20) == tiling.BASE_BUDGET_BYTES
    assert tiling.memory_budget(8 << 30) == tiling.MIN_BUDGET_BYTES
    Memory.available = 2 << 30
    assert tiling.memory_budget(512 << 20) == (1 << 30) - (512 << 20)
    Memory.available = 1 << 30
    assert tiling.memory_budget() == min(512 << 20, tiling.BASE_BUDGET_BYTES)  # half of what is available


def test_the_budget_grows_to_the_memory_target_less_what_the_process_and_the_image_hold(monkeypatch):
    import psutil

    class Memory:
        available = 64 << 30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory)
    monkeypatch.setattr(tile_layout, "resident_bytes", lambda: 600 << 20)
    monkeypatch.delenv(tile_layout.PREDICT_MEMORY_ENV, raising=False)
    target = tile_layout.PROCESS_MEMORY_TARGET
    assert tiling.memory_budget(64 << 20) == target - (600 << 20) - (64 << 20)
    # a larger output leaves less room, but never less than the base budget
    assert tiling.memory_budget(1 << 30) == max(target - (600 << 20) - (1 << 30), tiling.BASE_BUDGET_BYTES)
    monkeypatch.setenv(tile_layout.PREDICT_MEMORY_ENV, "8G")
    assert tiling.memory_budget(64 << 20) == (8 << 30) - (600 << 20) - (64 << 20)
    monkeypatch.setenv(tile_layout.PREDICT_MEMORY_ENV, str(4 << 30))
    assert tile_layout.memory_target() == 4 << 30
    Memory.available = 4 << 30  # still at most half of what is free
    assert tiling.memory_budget(64 << 20) == (2 << 30) - (64 << 20)
    for bad in ("lots", "-1G", "0"):
        monkeypatch.setenv(tile_layout.PREDICT_MEMORY_ENV, bad)
        with pytest.raises(ValueError, match="TEMZOO_PREDICT_MEMORY"):
            tiling.memory_budget()


def test_a_4096_px_image_is_split_into_two_by_two_tiles_when_the_memory_target_allows(monkeypatch):
    """With room for about 2100 px tiles, a U-Net (overlap 104 px) splits 4096 px into 2 x 2, not 3 x 3."""
    monkeypatch.setattr(tile_layout, "memory_budget", lambda image_bytes=0: 1900 << 20)
    monkeypatch.setattr(tile_layout, "bytes_per_pixel", lambda model: 385.0)
    side, _ = tiling.choose_tile_size(None, 8, 104, batch_size=1)
    tile, starts = tiling.axis_layout(4096, side, 104, 8)
    assert len(starts) == 2 and tile <= side
    monkeypatch.setattr(tile_layout, "memory_budget", lambda image_bytes=0: tiling.BASE_BUDGET_BYTES)
    side, _ = tiling.choose_tile_size(None, 8, 104, batch_size=1)
    assert len(tiling.axis_layout(4096, side, 104, 8)[1]) == 3


def test_the_receptive_field_is_analysed_once_per_model(monkeypatch):
    import importlib

    rf = importlib.import_module("temzoo.receptive_field")  # the module; temzoo.receptive_field is a function
    keras.utils.set_random_seed(1)
    model = temzoo.build("unet_b3_p224", base_filters=2)
    calls = []
    real = rf.receptive_field
    monkeypatch.setattr(rf, "receptive_field", lambda m: calls.append(m) or real(m))
    image = np.random.default_rng(1).random((64, 64)).astype("float32")
    first = temzoo.predict(model, image)
    for _ in range(3):
        np.testing.assert_array_equal(temzoo.predict(model, image), first)
    assert calls == [model]  # an evaluation predicts every image of a split: analysed once, not per image


def test_the_layout_is_decided_once_per_model_and_image_shape(monkeypatch):
    """The budget counts the process's memory, which grows as it runs; a model's next prediction of the same
    shape keeps the first one's tiles (same traced shape, same result), a new shape gets its own."""
    keras.utils.set_random_seed(3)
    model = temzoo.build("unet_b3_p224", base_filters=2)
    budgets = iter([300 * 300 * 64, 10 * 300 * 300 * 64, 10 * 300 * 300 * 64])
    monkeypatch.setattr(tile_layout, "memory_budget", lambda image_bytes=0: next(budgets))
    monkeypatch.setattr(tile_layout, "bytes_per_pixel", lambda model: 64.0)
    first = tiling.image_layout(model, 700, 700)
    assert tiling.image_layout(model, 700, 700) == first  # not asked again
    assert tiling.image_layout(model, 700, 600) != first  # a new shape, with the larger budget
    image = np.random.default_rng(3).random((700, 700)).astype("float32")
    np.testing.assert_array_equal(temzoo.predict(model, image), temzoo.predict(model, image))


@pytest.mark.parametrize("start,tile,length,margin,ramp", [
    (0, 64, 200, 8, 8), (64, 64, 200, 8, 8), (136, 64, 200, 8, 8), (0, 200, 200, 8, 8), (40, 40, 120, 16, 8),
])
def test_weighted_blending_adds_what_the_whole_weight_array_adds(start, tile, length, margin, ramp):
    """The tile is added where its weights are 1 and weighted only in the frame around that: the same sums,
    bit for bit, as multiplying by the whole weight array (also for a tile with no middle of ones)."""
    rng = np.random.default_rng(start + tile)
    wy = tiling.window_1d(tile, start, length, margin, ramp)
    wx = tiling.window_1d(tile, length - tile - start if start + tile <= length else 0, length, margin, ramp)
    out = rng.standard_normal((tile, tile, 3)).astype(np.float32)
    dest = rng.standard_normal((tile, tile, 3)).astype(np.float32)
    expected = dest + out * (wy[:, None, None] * wx[None, :, None])
    tiling.add_weighted(dest, out, wy, wx)
    np.testing.assert_array_equal(dest, expected)


@pytest.mark.parametrize("length,tile,margin,ramp,chunk", [
    (300, 128, 8, 8, 256), (300, 128, 8, 8, 7), (300, 300, 8, 8, 256), (200, 64, 16, 24, 5), (257, 100, 0, 30, 64),
])
def test_dividing_by_the_summed_weights_only_in_the_overlaps_equals_dividing_everywhere(length, tile, margin, ramp,
                                                                                        chunk):
    """The overlap bands alone are rescaled; the result is the whole-image product, bit for bit."""
    overlap = 2 * margin + ramp
    tile, starts = tiling.axis_layout(length, tile, overlap, 1)
    total = tiling.profile_sum(length, tile, starts, margin, ramp)
    total_x = total[: length - 13] if length > 13 else total  # another width, another layout of bands
    rng = np.random.default_rng(length + tile)
    output = rng.standard_normal((length, len(total_x), 2)).astype(np.float32)
    expected = output * ((1.0 / total).astype(np.float32)[:, None, None]
                         * (1.0 / total_x).astype(np.float32)[None, :, None])
    tiling.divide_by_weights(output, total, total_x, rows_per_chunk=chunk)
    np.testing.assert_array_equal(output, expected)
    if len(starts) > 1:
        assert (total != 1).any()  # the case has overlaps to rescale


def test_a_large_output_is_in_its_own_small_page_mapping_and_equals_np_zeros_blending(unet, monkeypatch):
    """predict's output and tile batch come from temzoo.inference.buffers (4 KiB pages); the result is the same as
    with NumPy's zeros, bit for bit, and stays a writable array after the tiles' memory is gone."""
    import mmap

    from temzoo.inference import buffers

    image = np.random.default_rng(5).random((1040, 1060)).astype("float32")  # output 4.4 MB: above the threshold
    out = temzoo.predict(unet, image, tile_size=432, batch_size=2)
    owner = out
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if hasattr(mmap, "MAP_PRIVATE"):
        assert isinstance(getattr(owner, "obj", owner), mmap.mmap)
    monkeypatch.setattr(buffers, "zeros", lambda shape, dtype=np.float32: np.zeros(shape, dtype))
    np.testing.assert_array_equal(out, temzoo.predict(unet, image, tile_size=432, batch_size=2))
    out[:5] = 1.0
    assert out.flags.writeable and (out[:5] == 1).all()
