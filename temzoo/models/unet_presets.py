"""Registered U-Net variants.

Naming scheme: ``unet_b{depth}_p{pool sizes}``: ``b`` is the number of pooling
stages, ``p`` lists the pool size of each stage, so ``unet_b3_p224`` pools by 2,
2 and 4 (total stride 16). At the same depth, larger pools give a larger
receptive field, as in the UNet variants of Sytwu et al. 2022. A ``_f{filters}``
suffix names a preset whose base width differs from its depth's usual one
(``unet_b4_p2222_f16``: 16 base filters instead of 32). The name is a key
only: the configuration below is what is built.
"""

UNET_PRESETS = {
    "unet_b2_p22": {
        "description": "Small 2-stage U-Net, 16 base filters; small receptive field.",
        "config": {"depth": 2, "base_filters": 16, "pool_sizes": [2, 2]},
    },
    "unet_b3_p222": {
        "description": "3-stage U-Net, 16 base filters.",
        "config": {"depth": 3, "base_filters": 16, "pool_sizes": [2, 2, 2]},
    },
    "unet_b3_p224": {
        "description": "3-stage U-Net with a 4x last pool: larger receptive field at the same depth.",
        "config": {"depth": 3, "base_filters": 16, "pool_sizes": [2, 2, 4]},
    },
    "unet_b3_p244": {
        "description": "3-stage U-Net pooling 2, 4, 4: large receptive field, still shallow.",
        "config": {"depth": 3, "base_filters": 16, "pool_sizes": [2, 4, 4]},
    },
    "unet_b4_p2222": {
        "description": "Classic 4-stage U-Net, 32 base filters (the paper's larger U-Net class).",
        "config": {"depth": 4, "base_filters": 32, "pool_sizes": [2, 2, 2, 2]},
    },
    "unet_b4_p2222_f16": {
        "description": "4-stage U-Net with 16 base filters: the 3-stage U-Net's width, one more stage "
                       "(4x the parameters, about 1.25x its training time on a CPU).",
        "config": {"depth": 4, "base_filters": 16, "pool_sizes": [2, 2, 2, 2]},
    },
    "unet_b5_p22222_f16": {
        "description": "5-stage U-Net with 16 base filters: a receptive field of about 380 px at about 1.6x "
                       "the 3-stage U-Net's training time on a CPU.",
        "config": {"depth": 5, "base_filters": 16, "pool_sizes": [2, 2, 2, 2, 2]},
    },
    "unet_b4_p4242": {
        "description": "4-stage U-Net pooling 4, 2, 4, 2 (the paper's U-Net_4_424 style); large receptive field.",
        "config": {"depth": 4, "base_filters": 32, "pool_sizes": [4, 2, 4, 2]},
    },
    "unet_b4_p4444": {
        "description": "4-stage U-Net pooling 4 at every stage: the largest receptive field.",
        "config": {"depth": 4, "base_filters": 32, "pool_sizes": [4, 4, 4, 4]},
    },
}
