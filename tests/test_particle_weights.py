"""Pixel weights for box training: small particles count as much as median ones, contacts weigh more
(temzoo.data.boxes.boxes_to_weights, temzoo.tasks.losses.WeightedCrossEntropyDice, train_on_boxes(weight_map=True))."""

import keras
import numpy as np
from particle_scenes import disk_grid

MEDIAN = [[10, 10, 30, 30], [29, 10, 49, 30], [70, 10, 90, 30]]  # 20 px boxes, the first two touching
SMALL = [60, 60, 70, 70]  # 10 px: a quarter of the median area


def test_small_particles_and_contacts_weigh_more():
    from temzoo.data.boxes import CONTACT_WEIGHT, boxes_to_instances, boxes_to_weights

    boxes = np.array(MEDIAN + [SMALL], float)
    weights = boxes_to_weights(boxes, (100, 100))
    labels = boxes_to_instances(boxes, (100, 100))
    assert weights.shape == (100, 100) and weights.dtype == np.float32
    np.testing.assert_allclose(weights[labels == 1], 1.0)  # median-sized particles keep weight 1
    np.testing.assert_allclose(weights[labels == 4], 4.0)  # median area / its area = 20^2 / 10^2
    assert weights[20, 29] == CONTACT_WEIGHT and labels[20, 29] == 0  # the gap between the touching pair
    assert (weights[labels == 3] == 1.0).all() and weights[90, 90] == 1.0 and weights[50, 20] == 1.0
    # a particle far smaller than the median is clipped at the maximum weight
    tiny = boxes_to_weights(np.array(MEDIAN + [[60, 60, 63, 63]], float), (100, 100), max_size_weight=4.0)
    assert tiny.max() == CONTACT_WEIGHT and tiny[61, 61] == 4.0
    np.testing.assert_array_equal(boxes_to_weights(np.zeros((0, 4)), (8, 8)), np.ones((8, 8), np.float32))


def test_weighted_loss_with_unit_weights_is_the_task_loss_and_weights_move_it():
    from temzoo.tasks.losses import CrossEntropyDice, WeightedCrossEntropyDice

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (2, 8, 8, 1)).astype("float32")
    probabilities = keras.ops.softmax(rng.normal(size=(2, 8, 8, 2)).astype("float32"))
    plain = float(CrossEntropyDice()(labels, probabilities))
    ones = np.concatenate([labels, np.ones_like(labels)], -1)
    np.testing.assert_allclose(float(WeightedCrossEntropyDice()(ones, probabilities)), plain, rtol=1e-6)
    # weight on the pixels the prediction gets most wrong raises the loss
    wrong = np.abs(labels[..., 0] - np.asarray(probabilities)[..., 1]) > 0.7
    heavy = np.concatenate([labels, np.where(wrong, 10.0, 1.0)[..., None].astype("float32")], -1)
    assert float(WeightedCrossEntropyDice()(heavy, probabilities)) > plain + 0.1
    loss = WeightedCrossEntropyDice(dice_weight=0.5, focal=True)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(again, WeightedCrossEntropyDice) and (again.dice_weight, again.focal) == (0.5, True)


def test_box_training_images_carry_the_weights_as_a_second_channel():
    from temzoo.analysis.box_targets import box_training_images, median_box_size
    from temzoo.data.boxes import boxes_to_mask, boxes_to_weights
    from temzoo.zoo.normalization import Normalizer

    image, boxes = disk_grid(96, 3, 16, 24, 6)
    boxes = np.concatenate([boxes, [[70, 70, 74, 74]]])
    examples = [{"name": "a", "image": image, "boxes": boxes}, {"name": "b", "image": image, "boxes": boxes}]
    target = median_box_size(boxes)  # factor 1: the label maps are those of the boxes as given
    _, plain = box_training_images(examples, Normalizer(), target, 1.0, 32, "ellipse", {})
    _, weighted = box_training_images(examples, Normalizer(), target, 1.0, 32, "ellipse", {}, weights=True)
    assert len(weighted) == 2 and weighted[0].shape == (96, 96, 2)
    np.testing.assert_array_equal(weighted[1][..., 0], plain[1])
    np.testing.assert_array_equal(weighted[1][..., 0], boxes_to_mask(boxes, (96, 96)))
    np.testing.assert_array_equal(weighted[1][..., 1], boxes_to_weights(boxes, (96, 96)))
    assert weighted[1][..., 1].max() == 4.0


def test_train_on_boxes_with_a_weight_map_trains_on_weights_and_returns_the_task_loss(monkeypatch, tmp_path):
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes
    from temzoo.tasks import save
    from temzoo.tasks.losses import CrossEntropyDice, WeightedCrossEntropyDice

    targets, real = [], keras.Model.train_on_batch

    def spy(self, x, y=None, **kwargs):
        targets.append((np.shape(y), isinstance(self.loss, WeightedCrossEntropyDice), np.asarray(y)))
        return real(self, x, y, **kwargs)

    monkeypatch.setattr(keras.Model, "train_on_batch", spy)
    image, boxes = disk_grid(96, 3, 16, 24, 6)
    boxes = np.concatenate([boxes, [[70, 70, 74, 74]]])  # one small particle: weight above 1
    examples = [{"name": name, "image": image, "boxes": boxes} for name in ("a", "b")]
    model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), examples, steps=2, batch_size=2,
                                 patch_size=32, synthetic=None, target_particle_px=12.0, scale_jitter=1.0,
                                 log_every=0, weight_map=True)
    assert [t[:2] for t in targets] == [((2, 32, 32, 2), True)] * 2
    y = np.concatenate([t[2] for t in targets])
    assert set(np.unique(y[..., 0])) <= {0.0, 1.0} and y[..., 1].min() >= 1.0  # labels first, then weights
    assert info["weight_map"] is True and np.isfinite(info["final_loss"])
    assert type(model.loss) is CrossEntropyDice  # saved with the task's loss: fine-tunes on plain label maps
    save(model, str(tmp_path / "m.keras"))
    loaded = temzoo.load(str(tmp_path / "m.keras"))
    assert loaded(image[None, :64, :64, None].astype(np.float32)).shape == (1, 64, 64, 2)


def test_train_on_boxes_with_focal_trains_on_focal_cross_entropy(monkeypatch):
    """focal=True: every step's loss is the focal cross-entropy (weighted or not), and info says so."""
    import temzoo
    from temzoo.analysis.box_training import train_on_boxes

    seen, real = [], keras.Model.train_on_batch

    def spy(self, x, y=None, **kwargs):
        seen.append((type(self.loss).__name__, self.loss.focal))
        return real(self, x, y, **kwargs)

    monkeypatch.setattr(keras.Model, "train_on_batch", spy)
    image, boxes = disk_grid(96, 3, 16, 24, 6)
    examples = [{"name": "a", "image": image, "boxes": boxes}]
    for weight_map, loss in ((False, "CrossEntropyDice"), (True, "WeightedCrossEntropyDice")):
        seen.clear()
        model, info = train_on_boxes(temzoo.build("unet_b2_p22", base_filters=4), examples, steps=2, batch_size=2,
                                     patch_size=32, synthetic=None, target_particle_px=12.0, scale_jitter=1.0,
                                     log_every=0, weight_map=weight_map, focal=True)
        assert seen == [(loss, True)] * 2
        assert info["focal"] is True and model.loss.focal and np.isfinite(info["final_loss"])
