"""The lean inference graph of HRNet's head: same outputs, live weights, less memory."""

import keras
import numpy as np
import pytest

import temzoo
import temzoo.tasks as tasks
from temzoo.inference import tiling
from temzoo.models.hrnet import HRNet
from temzoo.models.hrnet_inference import lean_inference_model
from temzoo.models.unet import UNet
from temzoo.zoo.normalization import Normalizer


def _hrnet(input_skip_filters=3, seed=0, head_filters=1):
    """A tiny HRNet whose head, like hrnet_pretrained's, has fewer per-tap channels (9 x head_filters)
    than concatenated ones (sum(widths) + input_skip_filters = 12 + 3)."""
    keras.utils.set_random_seed(seed)
    model = HRNet(widths=(4, 8), blocks=(1, 1), modules=(1, 1), stem_filters=4, stage1_filters=2,
                  input_skip_filters=input_skip_filters, head_filters=head_filters)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # moving statistics away from 0/1, so normalisation is part of the check
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    return model


def _image(size=64, seed=1):
    return np.random.default_rng(seed).standard_normal((2, size, size, 1)).astype("float32")


@pytest.mark.parametrize("skip", [3, 0])
def test_lean_head_equals_the_model(skip):
    model = _hrnet(skip)
    lean = lean_inference_model(model)
    assert lean is not model
    names = {layer.name for layer in lean.layers}
    assert "lean_head_refine" in names and "head_refine_conv" not in names and "head_skip_concat" not in names
    x = _image()
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(lean(x, training=False)), expected, atol=1e-5 * float(np.abs(expected).max()))
    # the image border (zero "same" padding of the 3x3 convolution) is matched too
    np.testing.assert_allclose(np.asarray(tiling._forward(model)(x))[:, [0, -1]], expected[:, [0, -1]],
                               atol=1e-5 * float(np.abs(expected).max()))


def test_the_lean_head_is_used_only_where_it_holds_fewer_channels():
    """9 x 1 per-tap channels < 15 concatenated: lean; 9 x 2 = 18 >= 15: the model as it is."""
    model = _hrnet(3, head_filters=1)
    assert lean_inference_model(model) is not model
    model = _hrnet(3, head_filters=2)
    assert lean_inference_model(model) is model


def test_lean_head_predicts_with_weights_changed_after_first_use():
    model = _hrnet(3)
    x = _image()
    tiling._forward(model)(x)  # traced and cached
    conv = model.get_layer("head_refine_conv")
    conv.kernel.assign(conv.kernel * 2.0 + 0.1)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(tiling._forward(model)(x)), expected, atol=1e-5 * float(np.abs(expected).max()))


def test_task_models_on_hrnet_get_the_lean_head_and_predict_alike():
    model = tasks.segmentation(_hrnet(3), num_classes=3)
    lean = lean_inference_model(model)
    assert lean is not model
    image = _image(96)[0, ..., 0]
    untiled = np.asarray(model(image[None, ..., None], training=False))[0]
    predicted = temzoo.predict(model, image, normalizer=Normalizer("none"))
    np.testing.assert_allclose(predicted, untiled, atol=1e-5)


def test_other_graphs_are_left_alone():
    unet = UNet(widths=(4, 8), pools=(2,))
    assert lean_inference_model(unet) is unet
    # two outputs from the refined features: no single chain to rewire
    model = _hrnet(3)
    refined = model.get_layer("head_refine_act").output
    branched = keras.Model(model.inputs, [model.outputs[0], keras.layers.Conv2D(1, 1)(refined)])
    assert lean_inference_model(branched) is branched


def test_lean_head_predicts_in_mixed_precision_as_the_plain_model_does():
    """A bfloat16 copy's lean head computes in the refinement convolution's dtype; its error against
    float32 stays that of the plain bfloat16 model."""
    from temzoo.inference.precision import precision_copy

    model = _hrnet(3)
    image = _image(96)[0, ..., 0]
    none = Normalizer("none")
    exact = temzoo.predict(model, image, normalizer=none)
    lean = temzoo.predict(model, image, normalizer=none, precision="mixed_bfloat16")
    plain = np.asarray(precision_copy(model, "mixed_bfloat16")(image[None, ..., None], training=False))[0, ..., 0]
    assert lean.dtype == np.float32
    assert np.abs(lean - exact).max() <= 2 * np.abs(plain - exact).max() + 1e-6
