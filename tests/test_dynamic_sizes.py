"""Models run on images of any fitting size, also when traced with unknown height and width.

``model.predict`` relaxes the traced shape to ``None`` after two sizes; a user's
``tf.function`` may do so from the start. Keras' bilinear ``UpSampling2D`` cannot
trace that, temzoo's can (``temzoo.models.layers.UpSampling2D``).
"""

import numpy as np
import pytest
import tensorflow as tf

import temzoo

TINY = {
    "hrnet": ("hrnet_w18_small", {"widths": [4, 8, 12, 16], "normalization": "none"}),
    "unet_bilinear": ("unet_b2_p22", {"base_filters": 4, "upsampling": "bilinear"}),
}


@pytest.mark.parametrize("family", sorted(TINY))
def test_predict_at_several_sizes_and_unknown_size_trace(family):
    name, overrides = TINY[family]
    model = temzoo.build(name, **overrides)
    rng = np.random.default_rng(0)
    images = {s: rng.standard_normal((1, s, s, 1)).astype("float32") for s in (32, 64, 96)}
    for size, image in images.items():
        out = model.predict(image, verbose=0)
        assert out.shape == (1, size, size, 1)
        np.testing.assert_allclose(out, model(image, training=False), atol=1e-5)
    traced = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None, None, 1])])
    np.testing.assert_allclose(traced(images[64]), model(images[64], training=False), atol=1e-6)
