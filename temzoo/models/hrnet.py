"""HRNet (HRNetV2 style) for dense prediction at full input resolution."""

import keras

from temzoo.models.layers import (
    SizeCheck,
    UpSampling2D,
    conv_norm_act,
    normalization_layer,
    output_head,
)


def _norm(x, normalization, groups, name):
    norm = normalization_layer(normalization, x.shape[-1], groups, name=name)
    return x if norm is None else norm(x)


def _shortcut(x, filters, normalization, groups, name):
    if x.shape[-1] == filters:
        return x
    x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=normalization == "none", name=f"{name}_proj")(x)
    return _norm(x, normalization, groups, f"{name}_proj_norm")


def _basic_block(x, filters, normalization, activation, groups, name):
    """Two 3x3 convolutions with an identity (or projected) shortcut."""
    shortcut = _shortcut(x, filters, normalization, groups, name)
    x = conv_norm_act(x, filters, 3, normalization, activation, groups, name=f"{name}_0")
    x = conv_norm_act(x, filters, 3, normalization, None, groups, name=f"{name}_1")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.Activation(activation, name=f"{name}_out")(x)


def _bottleneck(x, filters, normalization, activation, groups, name):
    """1x1 -> 3x3 -> 1x1 (4x wider) with a shortcut, as in HRNet's first stage."""
    shortcut = _shortcut(x, 4 * filters, normalization, groups, name)
    x = conv_norm_act(x, filters, 1, normalization, activation, groups, name=f"{name}_0")
    x = conv_norm_act(x, filters, 3, normalization, activation, groups, name=f"{name}_1")
    x = conv_norm_act(x, 4 * filters, 1, normalization, None, groups, name=f"{name}_2")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.Activation(activation, name=f"{name}_out")(x)


def _fuse(branches, widths, normalization, activation, groups, name):
    """Exchange unit: every output branch sums all input branches resampled to its resolution."""
    fused = []
    for i in range(len(branches)):
        terms = []
        for j, x in enumerate(branches):
            if j == i:
                terms.append(x)
            elif j > i:  # lower resolution: 1x1 conv to the target width, then upsample
                y = conv_norm_act(x, widths[i], 1, normalization, None, groups, name=f"{name}_{j}to{i}")
                factor = 2 ** (j - i)
                terms.append(UpSampling2D(factor, name=f"{name}_{j}to{i}_up")(y))
            else:  # higher resolution: (i - j) strided 3x3 convs
                y = x
                for step in range(i - j):
                    last = step == i - j - 1
                    y = conv_norm_act(
                        y,
                        widths[i] if last else widths[j],
                        3,
                        normalization,
                        None if last else activation,
                        groups,
                        name=f"{name}_{j}to{i}_down{step}",
                        strides=2,
                    )
                terms.append(y)
        x = keras.layers.Add(name=f"{name}_sum{i}")(terms)
        fused.append(keras.layers.Activation(activation, name=f"{name}_out{i}")(x))
    return fused


def _check_stages(widths, blocks, modules, input_skip_filters):
    """``widths``, ``blocks``, ``modules`` as lists of ints and ``input_skip_filters`` as an int, checked."""
    widths = [int(w) for w in widths]
    blocks = [int(b) for b in blocks]
    modules = [int(m) for m in modules]
    if not widths:
        raise ValueError("widths needs at least one value (one per branch).")
    if len(blocks) != len(widths) or len(modules) != len(widths):
        raise ValueError(
            f"blocks and modules need one value per stage ({len(widths)} stages from widths={widths}); "
            f"got blocks={blocks}, modules={modules}."
        )
    if modules[0] != 1:
        raise ValueError(f"modules[0] must be 1 (stage 1 has one branch and no fusion), got {modules[0]}.")
    if min(blocks) < 1 or min(modules) < 1:
        raise ValueError(f"blocks and modules must be at least 1, got blocks={blocks}, modules={modules}.")
    input_skip_filters = int(input_skip_filters)
    if input_skip_filters < 0:
        raise ValueError(f"input_skip_filters must be 0 (no skip) or positive, got {input_skip_filters}.")
    return widths, blocks, modules, input_skip_filters


def _stage(branches, stage, widths, blocks, modules, block):
    """Stage ``stage + 1``: a transition that adds a half-resolution branch, then ``modules`` modules."""
    # transition: adapt the existing branches' widths, add a half-resolution branch
    new = []
    for i, x in enumerate(branches):
        if x.shape[-1] != widths[i]:
            x = conv_norm_act(x, widths[i], 3, name=f"transition{stage}_{i}", **block)
        new.append(x)
    new.append(conv_norm_act(branches[-1], widths[stage], 3, name=f"transition{stage}_{stage}", strides=2, **block))
    branches = new
    for m in range(modules):
        prefix = f"stage{stage + 1}_module{m}"
        branches = [
            _repeat_blocks(x, widths[i], blocks, f"{prefix}_branch{i}", block) for i, x in enumerate(branches)
        ]
        branches = _fuse(branches, widths, name=f"{prefix}_fuse", **block)
    return branches


def _head(branches, image, widths, head, input_skip_filters, block):
    """HRNetV2's head (every branch upsampled and concatenated, mixed, back to full resolution), refined."""
    if len(branches) == 1 and branches[0].shape[-1] != widths[0]:
        branches = [conv_norm_act(branches[0], widths[0], 1, name="transition_out", **block)]
    upsampled = [branches[0]] + [
        UpSampling2D(2**i, interpolation="bilinear", name=f"head_up{i}")(x)
        for i, x in enumerate(branches[1:], start=1)
    ]
    x = upsampled[0] if len(upsampled) == 1 else keras.layers.Concatenate(name="head_concat")(upsampled)
    x = conv_norm_act(x, sum(widths), 1, name="head_mix", **block)
    x = UpSampling2D(4, interpolation="bilinear", name="head_full_resolution")(x)
    if input_skip_filters:
        skip = conv_norm_act(image, input_skip_filters, 3, name="head_input_skip", **block)
        x = keras.layers.Concatenate(name="head_skip_concat")([x, skip])
    return conv_norm_act(x, head, 3, name="head_refine", **block)


@keras.saving.register_keras_serializable(package="temzoo")
class HRNet(keras.Model):
    """HRNet (Wang et al. 2019, HRNetV2 head) for dense prediction on 1-channel images.

    A stem of two stride-2 3x3 convolutions brings the image to 1/4 resolution.
    Stage 1 is a stack of bottleneck blocks at that resolution. Each later stage
    adds a branch at half the resolution of the previous lowest one and runs
    ``modules[s]`` modules; a module applies ``blocks[s]`` basic residual
    blocks to every branch and then fuses all branches into each other
    (exchange unit). The head upsamples every branch to 1/4 resolution,
    concatenates them (HRNetV2), mixes them with a 1x1 convolution, upsamples
    bilinearly by 4 back to full resolution, refines with a 3x3 convolution and
    ends with the 1x1 ``head``. The output has the input's height and width.

    With ``input_skip_filters > 0`` the head also sees the image itself: a 3x3
    convolution of the input at full resolution is concatenated with the
    upsampled features before the refinement convolution. HRNetV2's head has
    no full-resolution path (everything passes through the 1/4-resolution
    stem), which suits segmentation but caps pixel-level restoration
    (denoising, background removal): the skip restores that path.

    Args:
        widths: channels of each branch, highest resolution first; the number
            of values is the number of stages and branches (at least 1).
        blocks: blocks per stage (same length as ``widths``): ``blocks[0]``
            bottleneck blocks in stage 1, ``blocks[s]`` basic blocks per branch
            in every module of stage ``s + 1``.
        modules: modules (each ending in a fusion) per stage; ``modules[0]``
            must be 1 (stage 1 has a single branch and no fusion).
        stem_filters: channels of the two stem convolutions.
        stage1_filters: inner width of the stage-1 bottlenecks (output 4x).
        head_filters: channels of the full-resolution refinement convolution
            (default ``widths[0]``).
        input_skip_filters: channels of the full-resolution convolution of the
            input concatenated into the head; 0 (default) = HRNetV2's head.
        normalization: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        groups: groups for ``"group"`` normalisation.
        activation: hidden activation.
        input_channels, output_channels, output_activation: as in ``UNet``.

    The total stride is ``4 * 2 ** (len(widths) - 1)``: input height and width
    must be multiples of it.
    """

    family = "hrnet"

    def __init__(
        self,
        widths=(18, 36, 72, 144),
        blocks=(4, 4, 4, 4),
        modules=(1, 1, 4, 3),
        stem_filters=64,
        stage1_filters=64,
        head_filters=None,
        input_skip_filters=0,
        normalization="batch",
        groups=8,
        activation="relu",
        input_channels=1,
        output_channels=1,
        output_activation=None,
        **kwargs,
    ):
        widths, blocks, modules, input_skip_filters = _check_stages(widths, blocks, modules, input_skip_filters)
        name = kwargs.pop("name", "hrnet")
        stride = 4 * 2 ** (len(widths) - 1)
        head = int(head_filters or widths[0])
        block = dict(normalization=normalization, activation=activation, groups=groups)

        inputs = keras.Input((None, None, input_channels), name="image")
        image = x = SizeCheck(stride, model_name=name, name="size_check")(inputs)
        x = conv_norm_act(x, stem_filters, 3, name="stem0", strides=2, **block)
        x = conv_norm_act(x, stem_filters, 3, name="stem1", strides=2, **block)
        for b in range(blocks[0]):
            x = _bottleneck(x, stage1_filters, name=f"stage1_block{b}", **block)
        branches = [x]
        for stage in range(1, len(widths)):
            branches = _stage(branches, stage, widths, blocks[stage], modules[stage], block)
        x = _head(branches, image, widths, head, input_skip_filters, block)
        outputs = output_head(x, output_channels, output_activation)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.widths = widths
        self.blocks = blocks
        self.modules_per_stage = modules
        self.stem_filters = stem_filters
        self.stage1_filters = stage1_filters
        self.head_filters = head_filters
        self.input_skip_filters = input_skip_filters
        self.normalization = normalization
        self.groups = groups
        self.activation = activation
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.output_activation = output_activation
        self.total_stride = stride

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "widths": list(self.widths),
            "blocks": list(self.blocks),
            "modules": list(self.modules_per_stage),
            "stem_filters": self.stem_filters,
            "stage1_filters": self.stage1_filters,
            "head_filters": self.head_filters,
            "input_skip_filters": self.input_skip_filters,
            "normalization": self.normalization,
            "groups": self.groups,
            "activation": self.activation,
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _repeat_blocks(x, filters, count, name, block):
    for b in range(count):
        x = _basic_block(x, filters, name=f"{name}_block{b}", **block)
    return x
