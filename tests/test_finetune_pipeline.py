"""temzoo.training.pipeline: the one pipeline of ``finetune`` and the experiment (data, stride, logging)."""

import logging

import pytest

from temzoo.training import pipeline as pipeline

TINY = dict(name="au_np_pipeline", image_size=64, num_train=8, num_validation=3, num_test=2,
            diameter_range_nm=(1.0, 2.5))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(data_dir, config)``: the au_np family at 64 px, 8/3/2 images, built once into a temporary data dir."""
    from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import SyntheticTemConfig

    from temzoo import datasets

    root = str(tmp_path_factory.mktemp("tfds"))
    config = SyntheticTemConfig(**TINY)
    datasets.build_dataset("synthetic_tem/au_np", data_dir=root, config=config, progress=False)
    return root, config


@pytest.fixture
def temzoo_log():
    """The messages of logger ``temzoo`` at INFO (whatever an earlier CLI test configured), restored after."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("temzoo")
    saved = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(saved)


def test_validation_batch_is_the_training_batch_up_to_four_images():
    assert [pipeline.validation_batch_size(b) for b in (1, 2, 4, 8, 32)] == [1, 2, 4, 4, 4]


def test_prepare_slices_the_validation_split_and_takes_the_labelled_fraction(tiny, temzoo_log):
    data_dir, config = tiny
    run = pipeline.prepare("unet_b2_p22", "synthetic_tem/au_np", "segmentation", train_fraction=0.5, epochs=1,
                           batch_size=8, patch_size=32, learning_rate=1e-3, data_dir=data_dir, dataset_config=config,
                           validation_images=2)
    assert (run.train_examples, run.train_split_examples, run.validation_examples) == (4, 8, 2)
    assert run.steps_per_epoch == 1  # one pass over 4 images in batches of 8
    assert run.target == "mask" and run.resolved.random_init
    batches = [images.shape[0] for images, _ in run.val_pairs]
    assert batches == [2]  # both validation images (a TFDS slice), whole, in one batch of at most 4
    images, labels = next(iter(run.train_pairs))
    assert images.shape == (8, 32, 32, 1) and labels.shape == (8, 32, 32, 1)
    text = [r.getMessage() for r in temzoo_log]
    assert any("random weights" in t for t in text) and any("4 of 8 training images" in t for t in text)


def test_a_patch_off_the_stride_is_refused_and_the_experiment_marks_the_cell_not_available(tiny):
    data_dir, config = tiny
    with pytest.raises(pipeline.PatchStrideError, match="patch_size=30 is not a multiple.*stride 4") as caught:
        pipeline.prepare("unet_b2_p22", "synthetic_tem/au_np", "segmentation", train_fraction=1.0, epochs=1,
                         batch_size=2, patch_size=30, learning_rate=1e-3, data_dir=data_dir, dataset_config=config)
    assert (caught.value.stride, caught.value.patch_size) == (4, 30)

    from temzoo.training import experiment as ex

    spec = ex.DataSpec("synthetic_tem/au_np", {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()})
    budget = ex.Budget(epochs=1, steps_per_epoch=1, batch_size=2, patch_size=30, validation_images=1)
    cell = ex.Cell("pretraining", "segmentation", spec, "unet_b2_p22", "random", 1.0, 0, budget)
    record = ex.run_cell(cell, data_dir=data_dir)
    assert record["status"] == ex.NOT_AVAILABLE and record["reason"] == "total stride 4 does not divide patch 30"


def test_unknown_task_or_schedule_is_refused_before_anything_loads():
    with pytest.raises(ValueError, match="task 'segment' is not supported"):
        pipeline.check_names("segment", "cosine")
    with pytest.raises(ValueError, match="schedule='linear' is not supported"):
        pipeline.prepare("unet_b2_p22", "synthetic_tem/au_np", "segmentation", train_fraction=1.0, epochs=1,
                         batch_size=2, patch_size=32, learning_rate=1e-3, schedule="linear")


def test_fit_traces_the_training_step_once_with_the_fused_kernel(tiny):
    """Optimizer slots are built before the first step; otherwise tf.function creates them while
    tracing and traces the step twice (HRNet: about a minute of README's quick start). Trained
    BatchNormalization goes through FusedBatchNormV3 (fewer ops to trace and run)."""
    import tensorflow as tf

    data_dir, config = tiny
    run = pipeline.prepare("unet_b2_p22", "synthetic_tem/au_np", "segmentation", train_fraction=0.5, epochs=1,
                           batch_size=4, patch_size=32, learning_rate=1e-3, data_dir=data_dir, dataset_config=config,
                           validation_images=2)
    traces = []
    train_step = run.task_model.train_step

    def counted(data):
        outputs = train_step(data)
        ops = {op.type for op in tf.compat.v1.get_default_graph().get_operations()}
        traces.append("FusedBatchNormV3" in ops)  # Python runs only while tf.function traces
        return outputs

    run.task_model.train_step = counted
    history = pipeline.fit(run, epochs=2, learning_rate=1e-3)
    assert len(history["loss"]) == 2
    assert traces == [True]
    from temzoo.training.fused_batch_norm import batch_norm_layers

    layers = batch_norm_layers([run.task_model])
    assert layers and not any("call" in vars(layer) for layer in layers)  # the Keras layers again after fit


def test_finetune_trains_in_bfloat16_and_exports_float32(tiny, tmp_path):
    import keras

    from temzoo.finetune import finetune
    from temzoo.inference.precision import model_precision
    from temzoo.zoo import pretrained

    data_dir, config = tiny
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(model_precision(self.model))

    run = pipeline.prepare("unet_b2_p22", "synthetic_tem/au_np", "segmentation", train_fraction=0.5, epochs=1,
                           batch_size=4, patch_size=32, learning_rate=1e-3, data_dir=data_dir, dataset_config=config,
                           validation_images=2, precision="mixed_bfloat16")
    pipeline.fit(run, epochs=1, learning_rate=1e-3, callbacks=[Spy()])
    assert seen == ["mixed_bfloat16"]
    assert run.task_model.get_layer("head_activation").compute_dtype == "float32"
    assert pretrained.card(run.task_model)["task"] == "segmentation"  # the copy keeps its card

    result = finetune("unet_b2_p22", "synthetic_tem/au_np", out=tmp_path / "run", data_dir=data_dir,
                      dataset_config=config, epochs=1, steps_per_epoch=2, batch_size=4, patch_size=32,
                      validation_images=2, overlays=0, test_split=None, precision="mixed_bfloat16")
    exported = pretrained.load(result["paths"]["model"])
    assert model_precision(exported) == "float32"
    assert result["card"]["precision"] == "mixed_bfloat16"


def test_unknown_precision_is_refused_before_anything_is_written(tmp_path):
    from temzoo.finetune import finetune

    with pytest.raises(ValueError, match="precision"):
        finetune("unet_b2_p22", out=tmp_path / "run", precision="float8")
    assert not (tmp_path / "run").exists()
