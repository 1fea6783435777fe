"""Registered HRNet variants.

``w`` is the width of the highest-resolution branch; the other branches double
it. ``hrnet_w18_small`` follows HRNet-W18-Small-v1 (one module per stage, two
blocks per branch), light enough for CPU fine-tuning; ``hrnet_w18_small_skip``
adds a full-resolution path from the image into the head (``input_skip_filters``),
which pixel-level restoration needs and the shipped ``hrnet_pretrained`` uses;
``hrnet_w18`` and
``hrnet_w32`` follow HRNetV2-W18/W32 (1, 1, 4, 3 modules, four blocks per
branch). All have four branches and a total stride of 32.
"""

HRNET_PRESETS = {
    "hrnet_w18_small": {
        "description": "HRNet-W18-Small-v1 style: widths 18-144, 1 module per stage, 2 blocks per branch.",
        "config": {
            "widths": [18, 36, 72, 144],
            "blocks": [1, 2, 2, 2],
            "modules": [1, 1, 1, 1],
            "stem_filters": 64,
            "stage1_filters": 32,
        },
    },
    "hrnet_w18": {
        "description": "HRNetV2-W18: widths 18-144, modules 1-1-4-3, 4 blocks per branch.",
        "config": {
            "widths": [18, 36, 72, 144],
            "blocks": [4, 4, 4, 4],
            "modules": [1, 1, 4, 3],
            "stem_filters": 64,
            "stage1_filters": 64,
        },
    },
    "hrnet_w32": {
        "description": "HRNetV2-W32: widths 32-256, modules 1-1-4-3, 4 blocks per branch.",
        "config": {
            "widths": [32, 64, 128, 256],
            "blocks": [4, 4, 4, 4],
            "modules": [1, 1, 4, 3],
            "stem_filters": 64,
            "stage1_filters": 64,
        },
    },
}

HRNET_PRESETS["hrnet_w18_small_skip"] = {
    "description": "hrnet_w18_small plus a full-resolution input skip into the head (16 filters), for restoration.",
    "config": {**HRNET_PRESETS["hrnet_w18_small"]["config"], "input_skip_filters": 16},
}
