"""Save a task model as ``.keras`` plus its card (atomically, with sha256)."""

from temzoo.zoo.cards import export_model, make_card


def save(model, path, *, name=None, **fields):
    """Export ``model`` to ``path`` with a card built from its draft card plus ``fields``.

    The card keeps the task, the normalisation and the backbone's provenance, so
    ``temzoo.predict`` on the reloaded model normalises as training did.
    Returns the written card.
    """
    from temzoo.inference.precision import float32_copy
    from temzoo.zoo.pretrained import attach_card, card

    draft = dict(card(model) or {})
    draft.update(fields)
    draft.pop("software", None)
    draft.pop("date", None)
    draft.pop("sha256", None)
    draft.pop("file", None)
    draft.pop("config", None)
    name = name or draft.pop("name", None) or model.name
    draft.pop("name", None)
    architecture = draft.pop("architecture", None)
    exported = float32_copy(model)  # a model trained in bfloat16 is exported in float32
    written = export_model(exported, path, make_card(exported, name=name, architecture=architecture, **draft))
    attach_card(model, written)
    return written
