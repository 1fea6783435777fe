"""Resolve what a user passes as a model: a registry name, a ``.keras`` path or a Keras model.

* a **pretrained name** (``temzoo.list_models()``) loads the verified weights;
* an **architecture name** builds it with random weights (``source == "architecture"``,
  callers say so to the user);
* a **path ending in ``.keras``** loads the file (its card's sha256 is checked);
* a **Keras model** is used as is, with its card if it has one;
* a :class:`ResolvedModel` (what this returns) passes through.

An unknown name raises :class:`temzoo.errors.UnknownNameError` listing the close
matches among pretrained and architecture names.

This is the zoo layer (it uses :mod:`temzoo.zoo.pretrained`, :mod:`temzoo.zoo.cards` and
:mod:`temzoo.models.registry`, nothing above them), so inference
(:func:`temzoo.predict`, :func:`temzoo.inference.predict_files.predict_files`) resolves models
without importing the task layer; ``temzoo.tasks.backbone`` re-exports it.
"""

import dataclasses
import os

from temzoo.errors import BadInputError, UnknownNameError
from temzoo.zoo.normalization import normalizer_of  # noqa: F401  (re-exported: the one definition)


@dataclasses.dataclass
class ResolvedModel:
    model: object
    card: dict | None
    source: str  # "pretrained", "architecture", "file" or "object"
    name: str
    sha256: str | None = None

    @property
    def random_init(self):
        return self.source == "architecture"


def resolve_model(spec, *, allow_architecture=True):
    """Return a :class:`ResolvedModel` for ``spec`` (name, ``.keras`` path or model)."""
    import keras

    import temzoo.zoo.pretrained as pretrained

    if isinstance(spec, ResolvedModel):
        return spec
    if isinstance(spec, keras.Model):
        card = pretrained.card(spec)
        return ResolvedModel(spec, card, "object", (card or {}).get("name") or spec.name, (card or {}).get("sha256"))
    path = os.fspath(spec)
    if path.endswith(".keras") or os.path.sep in path or os.path.exists(path):
        if not path.endswith(".keras"):
            raise BadInputError(f"{path}: temzoo models are .keras files; give a .keras path or a registered name.")
        model = pretrained.load(path)
        card = pretrained.card(model) or {}
        from temzoo.zoo.cards import sha256_file

        return ResolvedModel(model, card, "file", card.get("name") or os.path.basename(path), sha256_file(path))
    entries = pretrained.pretrained_entries()
    aliases = {a for e in entries.values() for a in e.get("aliases", ())}
    if path in entries or path in aliases:
        entry = pretrained.resolve(path)
        model = pretrained.load(path)
        return ResolvedModel(model, pretrained.card(model), "pretrained", entry["name"], entry.get("sha256"))
    from temzoo.models import registry

    architectures = registry.list_architectures()
    if allow_architecture and path in architectures:
        model = registry.build(path)
        return ResolvedModel(model, None, "architecture", path, None)
    known = set(entries) | aliases | (set(architectures) if allow_architecture else set())
    hint = "Run `temzoo-cli models list` for the table of models, or give a path to a .keras file."
    if not allow_architecture and path in architectures:
        hint = f"{path!r} is an architecture without trained weights; fine-tune it first (`temzoo-cli finetune`)."
    raise UnknownNameError("model", path, known, hint=hint)
