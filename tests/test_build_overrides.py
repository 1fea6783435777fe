"""``temzoo.build(name, **overrides)``: a misspelt configuration key fails instead of being ignored."""

import pytest

import temzoo
from temzoo.errors import UnknownNameError
from temzoo.models import registry


def test_an_unknown_configuration_key_is_refused_not_ignored():
    with pytest.raises(UnknownNameError, match="Unknown configuration key 'base_filterz'. Did you mean: base_filters"):
        temzoo.build("unet_b2_p22", base_filterz=4)


def test_every_preset_accepts_its_own_configuration_keys():
    for name in registry.list_architectures():
        entry = registry.architecture(name)
        registry._check_overrides(name, entry, entry["config"])  # no model is built
