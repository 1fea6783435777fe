"""Registered MobileNet-encoder U-Nets.

``<encoder>_unet``: a ``keras.applications`` encoder at width multiplier 1.0
with random weights; pass ``encoder_weights="imagenet"`` to ``build`` to start
from ImageNet (Keras downloads the file once into ``~/.keras/models/``).
"""

MOBILENET_UNET_PRESETS = {
    "mobilenetv2_unet": {
        "description": "MobileNetV2 encoder (alpha 1.0), U-Net decoder 256-128-64-32-16.",
        "config": {"encoder": "mobilenetv2", "alpha": 1.0},
    },
    "mobilenetv3small_unet": {
        "description": "MobileNetV3-Small encoder (alpha 1.0), U-Net decoder 256-128-64-32-16.",
        "config": {"encoder": "mobilenetv3small", "alpha": 1.0},
    },
    "mobilenetv3large_unet": {
        "description": "MobileNetV3-Large encoder (alpha 1.0), U-Net decoder 256-128-64-32-16.",
        "config": {"encoder": "mobilenetv3large", "alpha": 1.0},
    },
}
