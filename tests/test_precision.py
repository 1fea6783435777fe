"""Precision: "auto" resolves per machine; bfloat16 copies of float32 models run and predict."""

import keras
import numpy as np
import pytest

import temzoo
from temzoo.inference import precision

_DETECT = precision.fast_bfloat16  # the cached function, whatever a test patches in its place


@pytest.fixture
def fresh_detection():
    _DETECT.cache_clear()
    yield
    _DETECT.cache_clear()


def test_auto_resolves_to_bfloat16_only_where_it_is_fast(monkeypatch, fresh_detection):
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: True)
    assert precision.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: False)
    assert precision.resolve_precision("auto") == "float32"
    assert precision.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"  # explicit names pass through
    with pytest.raises(ValueError, match="auto, float32"):
        precision.resolve_precision("bf16")


def test_cpu_flags_decide_on_a_cpu_only_machine(tmp_path, monkeypatch, fresh_detection):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_vnni\n")
    assert precision._cpu_flags(str(cpuinfo)) == ["fpu", "sse", "avx512f", "avx512_vnni"]
    assert precision._cpu_flags(str(tmp_path / "missing")) == []
    monkeypatch.setattr(precision, "_cpu_flags", lambda: ["avx512f", "avx512_vnni"])
    assert precision.fast_bfloat16() is False  # AVX-512 without BF16: emulated, slower
    _DETECT.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: ["avx512f", "amx_bf16"])
    assert precision.fast_bfloat16() is True


def test_policy_scope_resolves_auto(monkeypatch):
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: True)
    with precision.policy_scope("auto"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def test_bfloat16_copy_computes_in_bfloat16_and_predicts_close_to_float32():
    keras.utils.set_random_seed(0)
    model = temzoo.build("unet_b2_p22", base_filters=4)
    copy = precision.precision_copy(model, "mixed_bfloat16")
    assert precision.model_precision(model) == "float32" and precision.model_precision(copy) == "mixed_bfloat16"
    assert precision.precision_copy(copy, "mixed_bfloat16") is copy
    image = np.random.default_rng(0).random((96, 80)).astype("float32")
    full = temzoo.predict(model, image)
    half = temzoo.predict(model, image, precision="mixed_bfloat16")
    assert half.dtype == np.float32 and half.shape == full.shape
    error = np.abs(half - full)
    # bfloat16 keeps 8 bits of mantissa: close to float32, not equal
    assert 0 < error.max() < 0.05 * np.abs(full).max() and error.mean() < 0.05 * full.std()
    np.testing.assert_array_equal(precision.float32_copy(copy).get_weights()[0], model.get_weights()[0])


def test_bfloat16_copy_of_a_single_output_model_keeps_its_output_layer_float32():
    """Keras writes one output as a flat ``[name, node, index]``; the copy read it as a list of
    outputs and cast the output activation to bfloat16 too."""
    from temzoo import tasks
    from temzoo.inference.precision import precision_copy

    model = tasks.segmentation("unet_b2_p22")
    assert isinstance(model.get_config()["output_layers"][0], str)  # the flat form this test is about
    copy = precision_copy(model, "mixed_bfloat16")
    assert copy.get_layer("head").compute_dtype == "bfloat16"
    assert copy.get_layer("head_activation").compute_dtype == "float32"


def test_training_copy_refuses_float16_and_keeps_float32_models_as_they_are():
    """One rule for the trainers without loss scaling (fine-tuning, train_on_boxes): float16 is refused by name."""
    from temzoo.errors import BadInputError
    from temzoo.inference.precision import model_precision, training_copy

    model = temzoo.build("unet_b2_p22", base_filters=4)
    assert training_copy(model, "float32", "fine-tuning") is model
    copy = training_copy(model, "mixed_bfloat16", "fine-tuning")
    assert copy is not model and model_precision(copy) == "mixed_bfloat16"
    with pytest.raises(BadInputError, match="loss scaling, which fine-tuning does not do"):
        training_copy(model, "mixed_float16", "fine-tuning")
