"""FinetuneConfig: the one place a fine-tuning setting is written; the CLI's options come from it."""

import dataclasses
import subprocess
import sys

import pytest

from temzoo.training.config import DEFAULTS, FinetuneConfig, cli_fields


def test_cli_options_are_the_config_fields_with_their_defaults_choices_and_help():
    from temzoo_cli.finetune_cmd import finetune

    params = {p.name: p for p in finetune.params}
    for field in cli_fields():
        param = params[field.name]
        assert param.help.startswith(field.metadata["help"]), field.name
        if field.metadata["cli"] == "required":
            assert param.required
        else:
            assert param.default == field.default, field.name
        if field.metadata["kind"] == "choice":
            assert tuple(param.type.choices) == tuple(field.metadata["choices"])
    python_only = {f.name for f in dataclasses.fields(FinetuneConfig) if not f.metadata["cli"]}
    assert set(params) == {f.name for f in cli_fields()} | {"out", "overwrite"}
    assert python_only == {"dataset_config"}


def test_bad_and_unknown_settings_are_refused_with_the_reason():
    with pytest.raises(TypeError, match="did you mean epochs"):
        DEFAULTS.replace(epoch=3)
    with pytest.raises(ValueError, match="train_fraction must be a number > 0 and <= 1"):
        FinetuneConfig(train_fraction=0)
    with pytest.raises(ValueError, match="precision='float8' is not supported"):
        DEFAULTS.replace(precision="float8")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        DEFAULTS.replace(batch_size=0)
    assert DEFAULTS.replace(steps_per_epoch=0).steps is None  # one pass over the training fraction
    assert DEFAULTS.replace(validation_images=None, test_split=None).test_split is None
    assert DEFAULTS["epochs"] == DEFAULTS.epochs and {**DEFAULTS}["task"] == "segmentation"  # as the old dict


def test_config_and_help_load_without_tensorflow():
    code = ("import sys, temzoo.training.config, temzoo_cli.finetune_cmd;"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_finetune_refuses_a_config_error_before_writing(tmp_path):
    from temzoo.finetune import finetune

    with pytest.raises(TypeError, match="did you mean"):
        finetune("unet_b2_p22", out=tmp_path / "run", epoch=2)
    with pytest.raises(ValueError, match="learning_rate"):
        finetune("unet_b2_p22", out=tmp_path / "run", config=FinetuneConfig(learning_rate=1.0).replace(), learning_rate=-1)
    assert not (tmp_path / "run").exists()
