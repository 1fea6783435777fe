"""One registry of named architectures, collected from each family's presets."""

import copy

from temzoo.errors import UnknownNameError


def _families():
    """family name -> (model class, presets dict). Imported lazily (Keras)."""
    from temzoo.models.unet import UNet
    from temzoo.models.unet_presets import UNET_PRESETS

    families = {"unet": (UNet, UNET_PRESETS)}
    return families


def family_classes():
    """family name -> model class."""
    return {family: cls for family, (cls, _) in _families().items()}


def _architectures():
    table = {}
    for family, (cls, presets) in _families().items():
        for name, preset in presets.items():
            table[name] = {"family": family, "cls": cls, **preset}
    return table


def list_architectures():
    """Names of all registered architectures, sorted."""
    return sorted(_architectures())


def architecture(name):
    """The registry entry of ``name``: family, class, description and config."""
    table = _architectures()
    if name not in table:
        raise UnknownNameError("architecture", name, table)
    return table[name]


def build(name, **overrides):
    """Build the registered architecture ``name`` with random weights.

    Keyword arguments override the preset's configuration, e.g.
    ``build("unet_b3_p222", output_channels=2, output_activation="softmax")``.
    """
    entry = architecture(name)
    config = copy.deepcopy(entry["config"])
    config.update(overrides)
    config.setdefault("name", name)
    return entry["cls"](**config)
