"""temzoo.receptive_field against hand-computed values and an empirical gradient probe.

The probe (tests/model_checks.py) gives every weight a positive averaging
value, zero biases and identity BN statistics, feeds a constant positive
image and takes the gradient of the centre output pixel; the width of the
columns with a nonzero gradient is the empirical receptive field. Max pooling
is evaluated as average pooling and global pooling's gradient is stopped
(see ``probe_semantics``), matching the definition in temzoo/receptive_field.py.
The agreement is exact: bilinear upsampling's border clamping never matters
because the probe image is wider than the receptive field plus a margin, and
taps with zero bilinear weight (odd factors) are excluded by both.
"""

import keras
import numpy as np
import pytest
from model_checks import float64, make_probe_weights, probe_receptive_width

from temzoo.errors import TemzooError
from temzoo.models.hrnet import HRNet
from temzoo.models.mobilenet_unet import MobileNetUNet
from temzoo.models.patchgan import PatchGANDiscriminator, patchgan_receptive_field
from temzoo.models.unet import UNet
from temzoo.receptive_field import receptive_extents, receptive_field


def _check_against_probe(model, stride, height=None):
    expected = receptive_extents(model)[1]
    # wide enough for the receptive field plus a margin, a multiple of 2 * stride
    width = 2 * stride * (-(-(expected + 4 * stride) // (2 * stride)))
    first, last = probe_receptive_width(model, width, height or 2 * stride)
    assert first > 0 and last < width - 1, "probe image too small: the border was reached"
    assert last - first + 1 == expected
    return expected


FAMILIES = {
    "unet_transpose": lambda: UNet(depth=2, base_filters=4, pool_sizes=[2, 4], normalization="none"),
    "unet_bilinear_residual": lambda: UNet(
        depth=2, base_filters=4, normalization="none", upsampling="bilinear", block_type="residual"
    ),
    "hrnet": lambda: HRNet(
        widths=(4, 8, 8), blocks=(1, 1, 1), modules=(1, 1, 1), stem_filters=4, stage1_filters=2,
        normalization="none",
    ),
    "mobilenetv2_unet": lambda: MobileNetUNet(
        alpha=0.35, decoder_filters=(8, 8, 4, 4, 4), normalization="none"
    ),
    "mobilenetv3small_unet": lambda: MobileNetUNet(
        encoder="mobilenetv3small", alpha=0.75, decoder_filters=(8, 8, 4, 4, 4), normalization="none",
        upsampling="bilinear",
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_receptive_field_matches_gradient_probe(family):
    with float64():
        model = FAMILIES[family]()
    make_probe_weights(model)
    rf = _check_against_probe(model, model.total_stride)
    assert rf == receptive_field(model)
    keras.backend.clear_session()


def test_patchgan_receptive_field_matches_probe_and_formula():
    with float64():
        model = PatchGANDiscriminator(num_layers=2, base_filters=4, normalization="none")
    make_probe_weights(model)
    assert _check_against_probe(model, 4, height=16) == patchgan_receptive_field(2) == 34
    for layers in (1, 3):
        assert receptive_field(PatchGANDiscriminator(num_layers=layers, base_filters=2)) == patchgan_receptive_field(layers)


def _chain(*layers):
    x = inputs = keras.Input((None, None, 1))
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def test_hand_computed_values():
    conv = keras.layers.Conv2D
    assert receptive_field(_chain(conv(1, 3, padding="same"))) == 3
    assert receptive_field(_chain(conv(1, 3, padding="same"), conv(1, 3, padding="same", dilation_rate=4))) == 11
    # stride 2 then 3x3 at half resolution: 3 + 2 * (3 - 1) = 7
    assert receptive_field(_chain(conv(1, 3, strides=2, padding="same"), conv(1, 3, padding="same"))) == 7
    assert receptive_field(_chain(keras.layers.MaxPooling2D(4), conv(1, 1))) == 4


LAYER_ZOO = {
    "dilated_separable": [
        keras.layers.SeparableConv2D(2, 3, dilation_rate=2, padding="same"),
        keras.layers.DepthwiseConv2D(5, strides=2, padding="same"),
    ],
    "transpose_odd_kernel": [
        keras.layers.Conv2D(2, 3, strides=2, padding="same"),
        keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"),
    ],
    "transpose_valid": [
        keras.layers.Conv2D(2, 2, strides=2, padding="valid"),
        keras.layers.Conv2DTranspose(2, 4, strides=2, padding="valid"),
    ],
    # at size 21 the centre output pixel 31 sits exactly on input pixel 10: its
    # neighbour has bilinear weight 0 and must not count (3, not 4)
    "bilinear_zero_weight_tap": [
        keras.layers.Conv2D(1, 3, padding="same"),
        keras.layers.UpSampling2D(3, interpolation="bilinear"),
    ],
    "bilinear_odd_factor": [
        keras.layers.AveragePooling2D(3, padding="same"),
        keras.layers.UpSampling2D(3, interpolation="bilinear"),
        keras.layers.Conv2D(1, 1),
    ],
    "resizing_and_padding": [
        keras.layers.ZeroPadding2D(((1, 2), (3, 1))),
        keras.layers.Conv2D(2, 5, padding="valid"),
        keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Resizing(64, 64, interpolation="bilinear"),
        keras.layers.Cropping2D(((0, 2), (2, 0))),
    ],
    "nearest_upsampling": [
        keras.layers.Conv2D(2, 3, strides=4, padding="same"),
        keras.layers.UpSampling2D(4),
        keras.layers.Conv2D(1, 3, padding="same"),
    ],
}


@pytest.mark.parametrize("case", sorted(LAYER_ZOO))
def test_layer_mappings_match_probe(case):
    with float64():
        model = _chain(*LAYER_ZOO[case])
    make_probe_weights(model)
    size = 21 if case == "bilinear_zero_weight_tap" else 64  # receptive fields here are < 30
    expected = receptive_extents(model, image_size=size)[1]
    if case == "bilinear_zero_weight_tap":
        assert expected == 3
    first, last = probe_receptive_width(model, size, size)
    assert first > 0 and last < size - 1
    assert last - first + 1 == expected


def test_image_size_clips_at_the_border():
    model = _chain(*[keras.layers.Conv2D(1, 3, padding="same") for _ in range(5)])  # 11 wide
    assert receptive_field(model) == 11
    assert receptive_field(model, image_size=8) == 8  # centre 4: pixels 0..7 (9 would be outside)
    assert receptive_extents(model, image_size=(64, 6)) == (11, 6)


def test_unknown_layer_is_refused_with_its_name():
    model = _chain(keras.layers.Conv2D(1, 3, padding="same"), keras.layers.RandomFlip(name="flip"))
    with pytest.raises(TemzooError, match="flip.*RandomFlip"):
        receptive_field(model)


def test_fixed_input_size_is_used():
    inputs = keras.Input((16, 16, 1))
    x = inputs
    for _ in range(10):
        x = keras.layers.Conv2D(1, 3, padding="same")(x)
    assert receptive_field(keras.Model(inputs, x)) == 16  # 21 wide, clipped to the 16-pixel image
    assert np.isscalar(receptive_field(keras.Model(inputs, x)))


def test_public_name_is_the_function_even_after_importing_the_module():
    import sys

    import temzoo
    import temzoo.receptive_field  # noqa: F401  (would rebind temzoo.receptive_field if lazy)

    module = sys.modules["temzoo.receptive_field"]
    assert temzoo.receptive_field is module.receptive_field
    assert temzoo.receptive_field(_chain(keras.layers.Conv2D(1, 5, padding="same"))) == 5


def test_graph_walk_reads_the_keras_internals_it_needs_and_fails_loudly_without_them(monkeypatch):
    """models/graph.py reads Keras' private graph; a Keras release that renames it must fail here, clearly."""
    from temzoo.models import graph

    inputs = keras.Input((None, None, 1))
    functional = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))
    sequential = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2, 5, padding="same")])
    assert sum(len(nodes) for nodes in graph._graph_of(functional).values()) >= 2
    assert [type(c.layer).__name__ for c in graph.flatten_calls(sequential)[0]] == ["Conv2D"]
    assert isinstance(graph.producer(functional.outputs[0]), keras.layers.Conv2D)
    monkeypatch.delattr(functional, "_nodes_by_depth")
    with pytest.raises(graph.KerasInternalsError, match=r"_nodes_by_depth.*Keras release"):
        graph.flatten_calls(functional)
    monkeypatch.delattr(sequential, "_functional")
    with pytest.raises(graph.KerasInternalsError, match=r"_functional.*Keras release"):
        graph.flatten_calls(sequential)
    monkeypatch.delattr(functional.outputs[0], "_keras_history")
    with pytest.raises(graph.KerasInternalsError, match=r"_keras_history.*Keras release"):
        graph.producer(functional.outputs[0])
