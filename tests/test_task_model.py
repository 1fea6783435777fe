"""Task models carry their task and normalisation in their own Keras config; old files with cards still work."""

import ast
import pathlib
import shutil

import keras
import numpy as np
import pytest

import temzoo
import temzoo.tasks as tasks
from temzoo.zoo.normalization import Normalizer
from temzoo.zoo.task_model import TaskModel


def _image(size=40, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.gamma(2.0, 300.0, size=(size, size)) + 1000.0).astype("float32")  # far from 0 mean, unit std


def test_a_keras_file_alone_predicts_like_the_model_it_was_saved_from(tmp_path):
    normalizer = Normalizer("percentile", low=2.0, high=98.0)
    model = tasks.denoising(temzoo.build("unet_b2_p22", base_filters=4), normalizer=normalizer, head="new")
    assert isinstance(model, TaskModel)
    tasks.save(model, tmp_path / "den.keras")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "den.keras", alone / "den.keras")  # no side-car card travels with it
    loaded = keras.saving.load_model(alone / "den.keras")  # plain Keras, no temzoo.load
    assert isinstance(loaded, TaskModel) and loaded.task == "denoising" and loaded.normalizer == normalizer
    assert temzoo.card(loaded) == {"name": model.name, "task": "denoising", "normalization": normalizer.get_config(),
                                   "scale": 1}
    image = _image()
    expected = temzoo.predict(model, image)
    np.testing.assert_allclose(temzoo.predict(loaded, image), expected, rtol=1e-5, atol=1e-3)
    # the normalisation matters: without it the same weights give another image
    unnormalised = temzoo.predict(loaded, image, normalizer=Normalizer("none"))
    assert np.abs(unnormalised - expected).max() > 1.0
    # the temzoo loader without a card (it warns) and the bfloat16 copy know the task too
    via_temzoo = temzoo.load(alone / "den.keras")
    assert temzoo.card(via_temzoo)["normalization"] == normalizer.get_config()
    from temzoo.inference.precision import precision_copy

    copy = precision_copy(loaded, "mixed_bfloat16")
    assert isinstance(copy, TaskModel) and copy.normalizer == normalizer


def test_task_model_config_round_trips_segmentation_and_scale():
    seg = tasks.segmentation(temzoo.build("unet_b2_p22", base_filters=4), num_classes=3)
    revived = TaskModel.from_config(seg.get_config())
    assert (revived.task, revived.scale, revived.output_shape[-1]) == ("segmentation", 1, 3)
    assert revived.normalizer == Normalizer("standardize")  # the default for a backbone without a card
    sr = tasks.super_resolution(temzoo.build("unet_b2_p22", base_filters=4), scale=2)
    assert temzoo.card(TaskModel.from_config(sr.get_config()))["scale"] == 2
    with pytest.raises(ValueError, match="task='colouring'"):
        TaskModel(seg.inputs, seg.outputs, task="colouring")


def test_an_old_model_file_with_a_side_car_card_predicts_with_its_card(tmp_path):
    """Files saved before TaskModel existed: a plain functional model plus a JSON card beside it
    (the first shipped ``nanoparticles`` was one; users' fine-tuned files still are)."""
    from temzoo.zoo.cards import export_model

    backbone = temzoo.build("unet_b2_p22", base_filters=4)
    x = keras.layers.Conv2D(2, 1, name="segmentation_head")(backbone.outputs[0])
    plain = keras.Model(backbone.inputs, keras.layers.Softmax(name="probabilities")(x))
    normalizer = Normalizer("percentile", low=2.0, high=98.0)
    export_model(plain, tmp_path / "old.keras", {"name": "old", "task": "segmentation",
                                                  "normalization": normalizer.get_config()})
    model = temzoo.load(tmp_path / "old.keras")
    card = temzoo.card(model)
    assert not isinstance(model, TaskModel) and card["task"] == "segmentation"
    image = _image(64, seed=1)
    normalizer = Normalizer.from_config(card["normalization"])
    by_hand = np.asarray(model(normalizer.before(image)[0][None, ..., None], training=False))[0]
    np.testing.assert_allclose(temzoo.predict(model, image), by_hand, atol=1e-5)


def _temzoo_imports(module):
    """The temzoo modules ``module``'s source imports anywhere (top level or inside functions)."""
    path = _source(module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if parts[0] == "temzoo"}
    return {m for m in found if _source(m) is not None}


def _source(module):
    path = pathlib.Path(temzoo.__file__).parent.parent / module.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_loading_a_model_does_not_reach_the_task_layer():
    """Everything ``temzoo.zoo.pretrained`` (load, card) can import, at any depth, stays below ``temzoo.tasks``."""
    reached, todo = set(), ["temzoo.zoo.pretrained"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(_temzoo_imports(module))
    assert {"temzoo.zoo.serialization", "temzoo.zoo.task_model", "temzoo.zoo.metrics"} <= reached
    assert not [m for m in reached if m.startswith(("temzoo.tasks", "temzoo.finetune", "temzoo.evaluate"))]
