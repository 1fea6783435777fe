"""Model cards: a JSON file beside each exported ``.keras`` model.

A card says what a model is and how it was made: architecture and config,
parameters, receptive field, pretext, normalisation, data, steps, metrics,
software versions, date, and the sha256 of the ``.keras`` file it describes.
"""

import datetime
import hashlib
import json
import os
import platform

from temzoo.atomic import atomic_path, write_text

CARD_SUFFIX = ".json"


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(model_path):
    """``dir/name.keras`` -> ``dir/name.json``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + CARD_SUFFIX


def software_versions():
    """Versions the card records: temzoo, Keras, its backend (TensorFlow, or e.g. JAX on a GPU machine
    without TensorFlow), NumPy and Python."""
    import importlib

    import keras
    import numpy

    from temzoo._version import __version__

    backend = keras.backend.backend()
    versions = {"temzoo": __version__, "keras": keras.__version__}
    module = importlib.import_module(backend)
    versions[backend] = module.__version__
    if backend != "tensorflow":
        versions["keras_backend"] = backend
    return {**versions, "numpy": numpy.__version__, "python": platform.python_version()}


def make_card(model, *, name, architecture=None, **fields):
    """A card for ``model``; ``fields`` (pretext, normalization, data, method,
    steps, metrics, task, ...) are stored as given (JSON-serialisable values)."""
    from temzoo.receptive_field import receptive_field

    try:
        rf = receptive_field(model)
    except Exception as exc:  # a custom layer the analysis does not know
        rf = f"unknown ({type(exc).__name__})"
    card = {
        "name": name,
        "architecture": architecture,
        "family": getattr(model, "family", None),
        "config": model.get_config(),
        "parameters": int(model.count_params()),
        "receptive_field": rf,
    }
    card.update(fields)
    card["software"] = software_versions()
    card["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return card


def export_model(model, path, card):
    """Save ``model`` to ``path`` (``.keras``) and its card beside it, both atomically.

    The card's ``sha256`` is the hash of the written file. The card is committed
    first and the model file last, so a model is never visible without its card:
    an export interrupted between the two leaves the previous model (or none) beside
    a card whose hash it fails, which :func:`temzoo.load` refuses. Temporary files
    that interrupted exports left beside ``path`` are removed first. Returns the card.
    """
    from temzoo.atomic import remove_stale_partials

    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: models are exported as .keras files; give a path ending in .keras.")
    remove_stale_partials(path)
    remove_stale_partials(card_path(path))
    with atomic_path(path) as tmp:
        model.save(tmp)
        compress_keras_archive(tmp)
        card = {**card, "file": os.path.basename(path), "sha256": sha256_file(tmp)}
        write_card(card_path(path), card)
    return card


def compress_keras_archive(path):
    """Re-zip a ``.keras`` file with DEFLATE (Keras stores its members uncompressed).

    float32 weights shrink by about a tenth; ``keras.saving.load_model`` reads either.
    """
    import zipfile

    packed = path + ".deflate"
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info.filename))
        os.replace(packed, path)
    finally:
        if os.path.exists(packed):
            os.remove(packed)


def write_card(path, card):
    write_text(path, json.dumps(card, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_card(path):
    """Read a card; a missing card is ``None``, a corrupt one an error naming the file."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        from temzoo.errors import BadInputError

        raise BadInputError(f"{path}: the model card is not valid JSON ({exc}); re-export the model.") from exc


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "get_config"):
        return value.get_config()
    return str(value)
