"""U-Net whose depth, widths and pooling sizes (hence receptive field) are parameters."""

import keras

from temzoo.models.layers import (
    BLOCK_TYPES,
    UPSAMPLINGS,
    SizeCheck,
    UpSampling2D,
    check_choice,
    conv_norm_act,
    normalization_layer,
    output_head,
)


def _conv_block(x, filters, kernel_size, convs, block_type, normalization, activation, groups, dropout, name):
    shortcut = x
    for i in range(convs):
        x = conv_norm_act(x, filters, kernel_size, normalization, activation, groups, name=f"{name}_{i}")
    if block_type == "residual":
        if shortcut.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}_proj")(shortcut)
            norm = normalization_layer(normalization, filters, groups, name=f"{name}_proj_norm")
            if norm is not None:
                shortcut = norm(shortcut)
        x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    if dropout:
        x = keras.layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(x)
    return x


def _check_levels(depth, base_filters, filters, max_filters, pool_sizes):
    """``(pool_sizes, widths, total stride)`` of a U-Net of ``depth`` pooling stages, checked."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}.")
    pool_sizes = [2] * depth if pool_sizes is None else [int(p) for p in pool_sizes]
    if len(pool_sizes) != depth:
        raise ValueError(f"pool_sizes needs {depth} values (one per pooling stage), got {pool_sizes}.")
    if filters is None:
        widths = [min(base_filters * 2**i, max_filters) for i in range(depth + 1)]
    else:
        widths = [int(f) for f in filters]
        if len(widths) != depth + 1:
            raise ValueError(f"filters needs depth + 1 = {depth + 1} values, got {widths}.")
    stride = 1
    for p in pool_sizes:
        stride *= p
    return pool_sizes, widths, stride


def _encoder_decoder(x, widths, pool_sizes, dropout, upsampling, block):
    """The U: encoder blocks and pooling, the bottleneck, then upsampling, skip concatenation and decoder blocks."""
    depth = len(pool_sizes)
    skips = []
    for level in range(depth):
        drop = dropout if level >= depth - 1 else 0.0
        x = _conv_block(x, widths[level], dropout=drop, name=f"enc{level}", **block)
        skips.append(x)
        p = pool_sizes[level]
        x = keras.layers.MaxPooling2D(p, strides=p, padding="same", name=f"pool{level}")(x)
    x = _conv_block(x, widths[depth], dropout=dropout, name="bottleneck", **block)
    for level in reversed(range(depth)):
        p = pool_sizes[level]
        if upsampling == "transpose":
            x = keras.layers.Conv2DTranspose(widths[level], p, strides=p, padding="same", name=f"up{level}")(x)
        else:
            x = UpSampling2D(p, interpolation="bilinear", name=f"up{level}_resize")(x)
            x = keras.layers.Conv2D(widths[level], 1, padding="same", name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, widths[level], dropout=0.0, name=f"dec{level}", **block)
    return x


@keras.saving.register_keras_serializable(package="temzoo")
class UNet(keras.Model):
    """U-Net (Ronneberger et al. 2015) for dense prediction on 1-channel images.

    Args:
        depth: number of pooling stages.
        base_filters: width of the first level; each level doubles it (capped at
            ``max_filters``). Ignored when ``filters`` is given.
        filters: explicit widths, one per level (``depth + 1`` values).
        pool_sizes: pooling size per stage (``depth`` values, default all 2). Larger
            pools enlarge the receptive field at the same depth, as in Sytwu et al. 2022.
        convs_per_block: convolutions in each encoder/decoder block.
        block_type: ``"plain"`` or ``"residual"``.
        kernel_size: convolution kernel size.
        normalization: ``"batch"`` (synchronized across replicas), ``"group"``,
            ``"instance"`` or ``"none"``.
        groups: groups for ``"group"`` normalisation.
        activation: hidden activation.
        dropout: spatial dropout rate after each block of the two deepest levels.
        upsampling: ``"transpose"`` (learned) or ``"bilinear"`` (resize, then conv).
        input_channels: channels of the input image.
        output_channels: channels of the output.
        output_activation: activation of the 1x1 head (``None`` = linear).
    """

    family = "unet"

    def __init__(
        self,
        depth=4,
        base_filters=32,
        filters=None,
        max_filters=512,
        pool_sizes=None,
        convs_per_block=2,
        block_type="plain",
        kernel_size=3,
        normalization="batch",
        groups=8,
        activation="relu",
        dropout=0.0,
        upsampling="transpose",
        input_channels=1,
        output_channels=1,
        output_activation=None,
        **kwargs,
    ):
        check_choice("block_type", block_type, BLOCK_TYPES)
        check_choice("upsampling", upsampling, UPSAMPLINGS)
        pool_sizes, widths, stride = _check_levels(depth, base_filters, filters, max_filters, pool_sizes)
        name = kwargs.pop("name", "unet")

        inputs = keras.Input((None, None, input_channels), name="image")
        x = SizeCheck(stride, model_name=name, name="size_check")(inputs)
        block = dict(
            kernel_size=kernel_size,
            convs=convs_per_block,
            block_type=block_type,
            normalization=normalization,
            activation=activation,
            groups=groups,
        )
        x = _encoder_decoder(x, widths, pool_sizes, dropout, upsampling, block)
        outputs = output_head(x, output_channels, output_activation)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.depth = depth
        self.base_filters = base_filters
        self.filters = filters if filters is None else list(widths)
        self.max_filters = max_filters
        self.pool_sizes = pool_sizes
        self.convs_per_block = convs_per_block
        self.block_type = block_type
        self.kernel_size = kernel_size
        self.normalization = normalization
        self.groups = groups
        self.activation = activation
        self.dropout = dropout
        self.upsampling = upsampling
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.output_activation = output_activation
        self.total_stride = stride

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "base_filters": self.base_filters,
            "filters": self.filters,
            "max_filters": self.max_filters,
            "pool_sizes": list(self.pool_sizes),
            "convs_per_block": self.convs_per_block,
            "block_type": self.block_type,
            "kernel_size": self.kernel_size,
            "normalization": self.normalization,
            "groups": self.groups,
            "activation": self.activation,
            "dropout": self.dropout,
            "upsampling": self.upsampling,
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
