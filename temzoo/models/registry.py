"""One registry of named architectures, collected from each family's presets.

Every entry has a ``family`` and a ``kind``: ``"dense"`` for image-to-image
models (output as large as the input, ending in the layer ``head``) and
``"discriminator"`` for the conditional PatchGAN (called on ``[input,
target]``, output a map of patch logits). ``list_architectures(kind="dense")``
lists only models a task can be built on.
"""

import copy

from temzoo.errors import UnknownNameError

KINDS = ("dense", "discriminator")


def _families():
    """family name -> (model class, presets dict, kind). Imported lazily (Keras)."""
    from temzoo.models.hrnet import HRNet
    from temzoo.models.hrnet_presets import HRNET_PRESETS
    from temzoo.models.mobilenet_unet import MobileNetUNet
    from temzoo.models.mobilenet_unet_presets import MOBILENET_UNET_PRESETS
    from temzoo.models.patchgan import PatchGANDiscriminator
    from temzoo.models.patchgan_presets import PATCHGAN_PRESETS
    from temzoo.models.unet import UNet
    from temzoo.models.unet_presets import UNET_PRESETS

    return {
        "unet": (UNet, UNET_PRESETS, "dense"),
        "hrnet": (HRNet, HRNET_PRESETS, "dense"),
        "mobilenet_unet": (MobileNetUNet, MOBILENET_UNET_PRESETS, "dense"),
        "patchgan": (PatchGANDiscriminator, PATCHGAN_PRESETS, "discriminator"),
    }


def family_classes():
    """family name -> model class."""
    return {family: cls for family, (cls, _, _) in _families().items()}


def _architectures():
    table = {}
    for family, (cls, presets, kind) in _families().items():
        for name, preset in presets.items():
            if name in table:
                raise AssertionError(f"architecture {name!r} is registered by two families")
            table[name] = {"family": family, "kind": kind, "cls": cls, **preset}
    return table


def list_architectures(family=None, kind=None):
    """Names of the registered architectures, sorted; optionally of one family or kind."""
    table = _architectures()
    if family is not None and family not in family_classes():
        raise UnknownNameError("family", family, family_classes())
    if kind is not None and kind not in KINDS:
        raise UnknownNameError("kind", kind, KINDS)
    return sorted(
        name
        for name, entry in table.items()
        if (family is None or entry["family"] == family) and (kind is None or entry["kind"] == kind)
    )


def architecture(name):
    """The registry entry of ``name``: family, kind, class, description and config."""
    table = _architectures()
    if name not in table:
        raise UnknownNameError("architecture", name, table)
    return table[name]


def build(name, **overrides):
    """Build the registered architecture ``name`` with random weights.

    Keyword arguments override the preset's configuration, e.g.
    ``build("unet_b3_p222", output_channels=2, output_activation="softmax")``
    or ``build("mobilenetv2_unet", encoder_weights="imagenet")``.
    """
    entry = architecture(name)
    config = copy.deepcopy(entry["config"])
    _check_overrides(name, entry, overrides)
    config.update(overrides)
    config.setdefault("name", name)
    return entry["cls"](**config)


def _check_overrides(name, entry, overrides):
    """Unknown configuration keys fail (a family's ``**kwargs`` would otherwise swallow a typo)."""
    import inspect

    parameters = inspect.signature(entry["cls"].__init__).parameters
    known = {k for k, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
    known |= set(entry["config"]) | {"name", "trainable", "dtype"}
    for key in overrides:
        if key not in known:
            raise UnknownNameError("configuration key", key, known,
                                   hint=f"These are the keys of {name}'s config (temzoo.build({name!r}).get_config()).")
