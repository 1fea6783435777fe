"""Conditional PatchGAN discriminator (Isola et al. 2017, "Image-to-Image Translation
with Conditional Adversarial Networks")."""

import keras

from temzoo.models.layers import NORMALIZATIONS, check_choice, normalization_layer


def patchgan_receptive_field(num_layers=3, kernel_size=4):
    """Receptive field (pixels) of one output logit of a PatchGAN.

    The network has ``num_layers`` stride-2 convolutions, then one stride-1
    convolution and the stride-1 output convolution, all ``kernel_size`` wide.
    For the default (3 layers, kernel 4) this is the 70x70 of Isola et al.
    """
    strides = [2] * num_layers + [1, 1]
    rf = 1
    for s in reversed(strides):
        rf = (rf - 1) * s + kernel_size
    return rf


@keras.saving.register_keras_serializable(package="temzoo")
class PatchGANDiscriminator(keras.Model):
    """Conditional PatchGAN: classifies each overlapping patch of ``[input, target]`` as real or fake.

    The two images are concatenated on the channel axis and passed through
    ``num_layers`` strided convolutions (widths ``base_filters * 2**i``, capped
    at ``max_filters``), one stride-1 convolution and a 1-channel stride-1
    output convolution, all ``kernel_size`` wide with ``"same"`` padding. Every
    hidden convolution is followed by the normalisation (none on the first, as
    in the paper) and LeakyReLU. The output is a map of *logits* (no sigmoid),
    one per patch, in float32 even under mixed precision.

    With the defaults this is the C64-C128-C256-C512 70x70 PatchGAN of Isola
    et al.; ``num_layers=1, 2, 4`` give 16, 34 and 142 pixel patches
    (:func:`patchgan_receptive_field`). Input height and width must be
    multiples of ``2**num_layers`` only for the output map to tile the image
    exactly; any size works.

    Args:
        num_layers: number of stride-2 convolutions.
        base_filters: width of the first convolution.
        max_filters: cap on the widths.
        kernel_size: convolution kernel size (4 in the paper).
        normalization: ``"batch"`` (synchronized across replicas, the paper's
            choice), ``"group"``, ``"instance"`` or ``"none"``.
        groups: groups for ``"group"`` normalisation.
        negative_slope: slope of the LeakyReLU (0.2 in the paper).
        input_channels: channels of the conditioning (input) image.
        target_channels: channels of the target / generated image.
    """

    family = "patchgan"

    def __init__(
        self,
        num_layers=3,
        base_filters=64,
        max_filters=512,
        kernel_size=4,
        normalization="batch",
        groups=8,
        negative_slope=0.2,
        input_channels=1,
        target_channels=1,
        **kwargs,
    ):
        check_choice("normalization", normalization, NORMALIZATIONS)
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        name = kwargs.pop("name", "patchgan")
        image = keras.Input((None, None, input_channels), name="input_image")
        target = keras.Input((None, None, target_channels), name="target_image")
        x = keras.layers.Concatenate(axis=-1, name="concat")([image, target])
        widths = [min(base_filters * 2**i, max_filters) for i in range(num_layers + 1)]
        for i, filters in enumerate(widths):
            stride = 2 if i < num_layers else 1
            norm = None if i == 0 else normalization_layer(normalization, filters, groups, name=f"block{i}_norm")
            x = keras.layers.Conv2D(
                filters, kernel_size, strides=stride, padding="same", use_bias=norm is None, name=f"block{i}_conv"
            )(x)
            if norm is not None:
                x = norm(x)
            x = keras.layers.LeakyReLU(negative_slope=negative_slope, name=f"block{i}_act")(x)
        x = keras.layers.Conv2D(1, kernel_size, strides=1, padding="same", name="logits_conv")(x)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
        super().__init__(inputs=[image, target], outputs=logits, name=name, **kwargs)

        self.num_layers = num_layers
        self.base_filters = base_filters
        self.max_filters = max_filters
        self.kernel_size = kernel_size
        self.normalization = normalization
        self.groups = groups
        self.negative_slope = negative_slope
        self.input_channels = input_channels
        self.target_channels = target_channels
        self.total_stride = 2**num_layers

    @property
    def patch_size(self):
        """Receptive field of one output logit, in pixels."""
        return patchgan_receptive_field(self.num_layers, self.kernel_size)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_layers": self.num_layers,
            "base_filters": self.base_filters,
            "max_filters": self.max_filters,
            "kernel_size": self.kernel_size,
            "normalization": self.normalization,
            "groups": self.groups,
            "negative_slope": self.negative_slope,
            "input_channels": self.input_channels,
            "target_channels": self.target_channels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
