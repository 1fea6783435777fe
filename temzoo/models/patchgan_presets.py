"""Registered PatchGAN discriminators.

``patchgan_<N>``: N is the receptive field of one output logit in pixels
(``temzoo.models.patchgan.patchgan_receptive_field``). ``patchgan_70`` is the
discriminator of Isola et al. 2017 (C64-C128-C256-C512). The name is a key
only: the configuration below is what is built.
"""

PATCHGAN_PRESETS = {
    "patchgan_16": {
        "description": "PatchGAN with 16x16 patches (1 strided layer, C64-C128): judges fine texture only.",
        "config": {"num_layers": 1, "base_filters": 64},
    },
    "patchgan_34": {
        "description": "PatchGAN with 34x34 patches (2 strided layers, C64-C128-C256).",
        "config": {"num_layers": 2, "base_filters": 64},
    },
    "patchgan_70": {
        "description": "The 70x70 PatchGAN of Isola et al. 2017 (C64-C128-C256-C512).",
        "config": {"num_layers": 3, "base_filters": 64},
    },
    "patchgan_142": {
        "description": "PatchGAN with 142x142 patches (4 strided layers, C64-C128-C256-C512-C512).",
        "config": {"num_layers": 4, "base_filters": 64},
    },
}
