"""Background removal: micrograph -> micrograph without its amorphous/support background."""

from temzoo.tasks.restoration import build_restoration


def background_removal(backbone, *, freeze="none", loss="l1", learning_rate=1e-3, normalizer=None, head="auto",
                       batch_norm="auto"):
    """A compiled background-removal model from ``backbone`` (name, ``.keras`` path or Keras model).

    Same head, loss and metrics as :func:`temzoo.tasks.denoising`; only the
    training target differs (e.g. ``clean_no_background`` of ``synthetic_tem/atomic``).
    """
    return build_restoration(
        backbone, "background_removal", freeze=freeze, loss=loss, learning_rate=learning_rate, normalizer=normalizer,
        head=head, batch_norm=batch_norm,
    )
