"""Model families and the registry.

Every family runs the shared ``run_model_test`` (tests/model_checks.py) on a
tiny instance; every registered architecture is built once and its config
round-trips.
"""

import json

import keras
import numpy as np
import pytest
from model_checks import run_model_test

import temzoo
from temzoo.errors import BadInputError, TemzooError, UnknownNameError
from temzoo.models import registry
from temzoo.models.hrnet import HRNet
from temzoo.models.mobilenet_unet import MobileNetUNet, imagenet_weights_file
from temzoo.models.patchgan import PatchGANDiscriminator
from temzoo.models.unet import UNet

TINY = {
    "unet": (lambda: UNet(depth=2, base_filters=4, pool_sizes=[2, 4], name="tiny_unet"), 32, 20),
    "unet_group_residual_bilinear": (
        lambda: UNet(depth=2, base_filters=4, normalization="group", block_type="residual", upsampling="bilinear"),
        32,
        18,
    ),
    "hrnet": (
        lambda: HRNet(widths=(4, 8, 8), blocks=(1, 1, 1), modules=(1, 2, 1), stem_filters=4, stage1_filters=2),
        32,
        24,
    ),
    "hrnet_instance_one_branch": (
        lambda: HRNet(widths=(4,), blocks=(1,), modules=(1,), stem_filters=4, stage1_filters=2, normalization="instance",
                      input_skip_filters=3),
        32,
        30,
    ),
    "mobilenetv2_unet": (lambda: MobileNetUNet(alpha=0.35, decoder_filters=(8, 8, 4, 4, 4)), 64, 48),
    "mobilenetv3small_unet_replicate": (
        lambda: MobileNetUNet(
            encoder="mobilenetv3small", alpha=0.75, decoder_filters=(8, 8, 4, 4, 4), input_adapter="replicate",
            upsampling="bilinear", output_channels=2, output_activation="softmax",
        ),
        64,
        40,
    ),
}


@pytest.mark.parametrize("case", sorted(TINY))
def test_family(case, tmp_path):
    make, size, bad = TINY[case]
    model = make()
    # graph-mode fit for the plain U-Net and PatchGAN; eager for the rest (see run_model_test)
    run_model_test(model, tmp_path, size=size, bad_size=bad, run_eagerly=case != "unet")
    keras.backend.clear_session()


def test_patchgan_family(tmp_path):
    model = PatchGANDiscriminator(num_layers=2, base_filters=4)
    run_model_test(model, tmp_path, size=32, output_size=8)


def test_hrnet_shape_checks():
    with pytest.raises(ValueError, match="one value per stage"):
        HRNet(widths=(4, 8), blocks=(1,), modules=(1, 1))
    with pytest.raises(ValueError, match="modules\\[0\\] must be 1"):
        HRNet(widths=(4, 8), blocks=(1, 1), modules=(2, 1))
    assert HRNet(widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1), modules=(1, 1, 1, 1), stem_filters=4,
                 stage1_filters=2).total_stride == 32
    with pytest.raises(ValueError, match="input_skip_filters"):
        HRNet(widths=(4,), blocks=(1,), modules=(1,), input_skip_filters=-1)


def test_hrnet_input_skip_adds_a_full_resolution_path():
    tiny = dict(widths=(4,), blocks=(1,), modules=(1,), stem_filters=4, stage1_filters=2)
    plain, skipped = HRNet(**tiny), HRNet(**tiny, input_skip_filters=3)
    assert "head_skip_concat" not in [layer.name for layer in plain.layers]
    # the skip's 3x3 conv reads the image at full resolution and feeds the refinement conv
    skip = skipped.get_layer("head_skip_concat")
    assert skip.output.shape[-1] == 4 + 3
    assert skipped.get_config()["input_skip_filters"] == 3
    assert plain.count_params() < skipped.count_params()


@pytest.fixture(scope="module")
def tiny_app_weights(tmp_path_factory):
    """A keras.applications MobileNetV2 weights file made here (no download)."""
    app = keras.applications.MobileNetV2(input_shape=(None, None, 3), alpha=0.35, include_top=False, weights=None)
    rng = np.random.default_rng(1)
    app.set_weights([rng.normal(size=w.shape).astype("float32") for w in app.get_weights()])
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_035.weights.h5"
    app.save_weights(path)
    return path, app.get_weights()


def test_mobilenet_encoder_weights_from_path(tiny_app_weights, tmp_path):
    path, expected = tiny_app_weights
    model = MobileNetUNet(alpha=0.35, decoder_filters=(8, 8, 4, 4, 4), encoder_weights=path)
    encoder = model.get_layer("encoder")
    for got, want in zip(encoder.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.get_config()["encoder_weights"] == str(path)
    # loading the saved model takes the weights from the file, never from encoder_weights
    saved = tmp_path / "m.keras"
    model.save(saved)
    path.rename(path.with_suffix(".moved"))
    try:
        loaded = keras.saving.load_model(saved, safe_mode=True)
    finally:
        path.with_suffix(".moved").rename(path)
    assert loaded.get_config()["encoder_weights"] == str(path)
    for got, want in zip(loaded.get_layer("encoder").get_weights(), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_mobilenet_missing_weights_path_is_named(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(BadInputError, match="nope.h5"):
        MobileNetUNet(alpha=0.35, encoder_weights=missing)


@pytest.mark.parametrize(
    "encoder, alpha, expected",
    [
        ("mobilenetv2", 0.35, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"),
        ("mobilenetv3small", 0.75, "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"),
    ],
)
def test_mobilenet_imagenet_offline_names_the_file(monkeypatch, encoder, alpha, expected):
    """Offline, "imagenet" fails with the file name and where to put it; nothing is downloaded."""
    from keras.src.utils import file_utils

    requested = []

    def offline(fname=None, origin=None, **kwargs):
        requested.append(fname)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(TemzooError) as info:
        MobileNetUNet(encoder=encoder, alpha=alpha, decoder_filters=(8, 8, 4, 4, 4), encoder_weights="imagenet")
    assert requested == [expected] == [imagenet_weights_file(encoder, alpha)]
    assert f"~/.keras/models/{expected}" in str(info.value)
    assert "name resolution" in str(info.value)


def test_mobilenet_input_adapters():
    conv = MobileNetUNet(alpha=0.35, decoder_filters=(8, 8, 4, 4, 4))
    replicate = MobileNetUNet(alpha=0.35, decoder_filters=(8, 8, 4, 4, 4), input_adapter="replicate")
    assert conv.count_params() == replicate.count_params() + 6  # 1x1 conv 1->3 with bias
    x = np.random.default_rng(0).random((1, 32, 32, 1)).astype("float32")
    adapter = keras.Model(conv.input, conv.get_layer("input_adapter").output)
    np.testing.assert_allclose(adapter(x), np.repeat(x, 3, axis=-1), rtol=1e-6)  # starts as replication
    with pytest.raises(ValueError, match="replicate"):
        MobileNetUNet(input_channels=2, input_adapter="replicate")
    with pytest.raises(ValueError, match="input_adapter"):
        MobileNetUNet(input_adapter="tile")


def test_mobilenet_taps_have_strides_2_to_32():
    for encoder, alpha in (("mobilenetv2", 0.35), ("mobilenetv3large", 0.75)):
        from temzoo.models.mobilenet_unet import build_encoder

        model = build_encoder(encoder, alpha)
        features = model(np.zeros((1, 64, 64, 3), "float32"))
        assert [f.shape[1] for f in features] == [32, 16, 8, 4, 2]
        # no hidden ImageNet rescaling inside the encoder (V3's include_preprocessing is off)
        assert not any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)


# ---------------------------------------------------------------- registry


def test_registry_lists_every_family_and_kind():
    names = registry.list_architectures()
    for required in ("hrnet_w18_small", "hrnet_w18", "hrnet_w32", "mobilenetv2_unet", "mobilenetv3small_unet",
                     "unet_b3_p224", "patchgan_70"):
        assert required in names
    assert registry.architecture("patchgan_70")["kind"] == "discriminator"
    assert registry.architecture("hrnet_w18")["family"] == "hrnet"
    dense = registry.list_architectures(kind="dense")
    assert "patchgan_70" not in dense and "mobilenetv2_unet" in dense
    assert registry.list_architectures(family="hrnet") == ["hrnet_w18", "hrnet_w18_small", "hrnet_w18_small_skip",
                                                           "hrnet_w32"]
    assert temzoo.list_architectures() == names
    with pytest.raises(UnknownNameError, match="Did you mean: hrnet"):
        registry.list_architectures(family="hrnte")


def test_build_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError) as info:
        temzoo.build("hrnet_w18_smal")
    assert "Did you mean: hrnet_w18_small" in str(info.value)
    with pytest.raises(KeyError):  # UnknownNameError is also a KeyError
        temzoo.build("unet_b9")


def test_build_overrides():
    model = temzoo.build("unet_b2_p22", base_filters=4, output_channels=3, output_activation="softmax")
    assert model.name == "unet_b2_p22"
    assert model.get_config()["base_filters"] == 4
    y = model(np.zeros((1, 16, 16, 1), "float32"))
    assert y.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(np.sum(y, axis=-1), 1.0, rtol=1e-5)
    # the registry's preset is not modified by overrides
    assert "base_filters" not in registry.architecture("unet_b2_p22")["config"] or \
        registry.architecture("unet_b2_p22")["config"]["base_filters"] == 16


@pytest.mark.parametrize("name", registry.list_architectures())
def test_every_registered_architecture_builds_and_round_trips(name):
    entry = registry.architecture(name)
    model = registry.build(name)
    config = model.get_config()
    json.dumps(config)  # plain data only
    for key, value in entry["config"].items():
        assert config[key] == value, key
    if entry["kind"] == "dense":
        assert model.get_layer("head").output.shape[-1] == config["output_channels"]
        assert model.inputs[0].shape[1:] == (None, None, 1)
    rf = temzoo.receptive_field(model)
    assert isinstance(rf, int) and rf > 1
    if entry["kind"] == "discriminator":
        assert rf == model.patch_size
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()
    keras.backend.clear_session()
