"""Particle polarity (bright particles in HAADF, dark in bright field): decided from the image, trained and predicted."""

import numpy as np
import pytest

from temzoo.analysis.polarity import contrast_skewness, inverted, particles_look_dark


def bright_particles(shape=(192, 192), seed=0, vacuum=0.0):
    """Bright disks (r 5) on a textured support; ``vacuum``: a smooth bright region (left third) of this height."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = ndimage.gaussian_filter(rng.normal(0, 1, shape), 2) * 3 + rng.normal(0, 1, shape)
    centres = [(20 + 38 * i + rng.integers(-4, 5), 20 + 38 * j + rng.integers(-4, 5)) for i in range(5) for j in range(5)]
    boxes = []
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] += 12
        boxes.append([cx - 5, cy - 5, cx + 6, cy + 6])
    image += vacuum * ndimage.gaussian_filter((xx < shape[1] // 3).astype(float), 8)
    return (image + 50).astype(np.float32), np.array(boxes, float)


@pytest.mark.parametrize("vacuum", [0.0, 40.0])
def test_bright_and_dark_particles_are_told_apart_from_the_image_alone(vacuum):
    image, _ = bright_particles(vacuum=vacuum)
    assert contrast_skewness(image) > 0.3 and not particles_look_dark(image)
    # bright field: the same scene inverted (a bright vacuum region then sits beside dark particles)
    assert contrast_skewness(inverted(image)) < -0.3 and particles_look_dark(inverted(image))
    assert contrast_skewness(np.full((64, 64), 3.0, np.float32)) == 0.0
    with pytest.raises(ValueError, match="2-D"):
        contrast_skewness(np.zeros((2, 8, 8)))


def test_a_bright_polarity_model_learns_inverted_bright_field_and_sees_dark_images_inverted(monkeypatch):
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes
    from temzoo.analysis.scale import maps_at_scale, trained_polarity

    image, boxes = bright_particles(shape=(96, 96), seed=1)
    boxes = boxes[(boxes[:, 2] < 96) & (boxes[:, 3] < 96)]
    dark = inverted(image)
    examples = [{"name": "haadf", "image": image, "boxes": boxes}, {"name": "bf", "image": dark, "boxes": boxes}]
    common = dict(steps=1, batch_size=2, patch_size=32, synthetic=None, target_particle_px=11.0, scale_jitter=1.0,
                  log_every=0)
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), examples, polarity="bright", **common)
    assert info["polarity"] == "bright" and info["inverted_images"] == ["bf"] and trained_polarity(model) == "bright"
    with pytest.raises(ValueError, match="polarity"):
        train_on_boxes("unet_b2_p22", examples, polarity="dark", **common)

    import temzoo.inference.tiling as tiling

    seen = []
    real_predict = tiling.predict

    def recording(model, x, **kwargs):
        seen.append(np.array(x))
        return real_predict(model, x, **kwargs)

    monkeypatch.setattr(tiling, "predict", recording)
    maps_at_scale(model, dark, scale=1.0)  # looks dark: the model sees it inverted (bright particles)
    np.testing.assert_allclose(seen[-1], image, atol=1e-3)
    maps_at_scale(model, image, scale=1.0)  # already bright: as it is
    np.testing.assert_allclose(seen[-1], image)
    maps_at_scale(model, dark, scale=1.0, dark=False)  # the caller knows better
    np.testing.assert_allclose(seen[-1], dark)
    result = temzoo.particles(model, dark, scale=1.0, dark=True)
    assert result.labels.shape == dark.shape
    np.testing.assert_allclose(seen[-1], image, atol=1e-3)
    # a model trained on the images as they are (both polarities) sees every image as it is
    from temzoo.zoo.pretrained import attach_card, card

    attach_card(model, {**card(model), "training": {**info, "polarity": None}})
    assert trained_polarity(model) is None
    maps_at_scale(model, dark, scale=1.0)
    np.testing.assert_allclose(seen[-1], dark)
