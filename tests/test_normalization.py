"""One normaliser: the statistics a model is trained with (tf.data) are the ones it is predicted with (NumPy)."""

import numpy as np
import pytest
import tensorflow as tf

from temzoo.data.normalize import tf_stats
from temzoo.zoo.normalization import Normalizer, normalizer_of


@pytest.mark.parametrize("config", [
    {"kind": "standardize"}, {"kind": "percentile"}, {"kind": "percentile", "low": 2.0, "high": 98.0},
    {"kind": "percentile", "low": 0.0, "high": 100.0}, {"kind": "none"},
])
def test_training_and_prediction_normalise_alike(config):
    rng = np.random.default_rng(3)
    # skewed intensities and an odd pixel count: nearest-rank and interpolated percentiles differ here
    image = (rng.gamma(1.5, 200.0, size=(37, 29, 1)) + 50).astype(np.float32)
    normalizer = Normalizer(**config)
    predicted, (offset, scale) = normalizer.before(image)
    tf_offset, tf_scale = (float(v) for v in tf_stats(normalizer, tf.constant(image)))
    assert tf_offset == pytest.approx(offset, rel=1e-5, abs=1e-4)
    assert tf_scale == pytest.approx(scale, rel=1e-5)
    trained = (image - tf_offset) / tf_scale
    np.testing.assert_allclose(trained, predicted, rtol=1e-4, atol=1e-4)


def test_percentiles_are_interpolated_like_numpy():
    values = np.array([0.0, 10.0, 20.0, 30.0, 100.0], np.float32)  # 5 values: the 90th lies between 30 and 100
    offset, scale = Normalizer("percentile", low=10, high=90, eps=0.0).tf_stats(tf.constant(values))
    assert float(offset) == pytest.approx(np.percentile(values, 10)) == pytest.approx(4.0)
    assert float(offset + scale) == pytest.approx(np.percentile(values, 90)) == pytest.approx(72.0)


def test_normalizer_of_reads_a_card_or_config():
    assert normalizer_of({"normalization": {"kind": "percentile", "low": 2.0}}) == Normalizer("percentile", low=2.0)
    assert normalizer_of({}, Normalizer("none")) == Normalizer("none")
    assert normalizer_of(None) is None
