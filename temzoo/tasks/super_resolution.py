"""Super-resolution: micrograph -> sharper micrograph, at the same size (scale 1) or twice the size (scale 2)."""

from temzoo.tasks.restoration import build_restoration


def super_resolution(backbone, scale=1, *, freeze="none", loss="l1", learning_rate=1e-3, normalizer=None,
                     head="auto", batch_norm="auto"):
    """A compiled super-resolution model from ``backbone`` (name, ``.keras`` path or Keras model).

    ``scale=2`` puts a nearest-neighbour 2x upsampling and a 3x3 convolution before the
    1x1 head, so the output has twice the input's height and width; targets
    must then be twice the size of the inputs.
    """
    return build_restoration(
        backbone, "super_resolution", scale=scale, freeze=freeze, loss=loss, learning_rate=learning_rate,
        normalizer=normalizer, head=head, batch_norm=batch_norm,
    )
