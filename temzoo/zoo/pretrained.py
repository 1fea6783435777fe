"""Pretrained models: one verified registry, ``load``, ``register`` and ``card``.

A pretrained entry is a config plus a verified file plus a card:

* ``name`` and ``aliases``;
* ``architecture``: the registered architecture it instantiates;
* ``file`` (shipped in ``temzoo/weights/``) or ``url`` (downloaded once into
  ``$TEMZOO_HOME/weights``, default ``~/.temzoo/weights``);
* ``sha256`` of the ``.keras`` file, checked before anything is deserialised;
* ``card``: the JSON card beside the file.

Built-in entries are listed in ``temzoo/weights/registry.json``; users add
their own with :func:`register`.
"""

import json
import logging
import os
import weakref

from temzoo.errors import BadInputError, TemzooError, UnknownNameError
from temzoo.zoo.cards import card_path, read_card, sha256_file

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
REGISTRY_FILE = os.path.join(WEIGHTS_DIR, "registry.json")

logger = logging.getLogger(__name__)
_user_entries = {}
_cards = weakref.WeakKeyDictionary()


class IntegrityError(TemzooError):
    """A weights file whose sha256 differs from the registry's."""


def temzoo_home():
    return os.path.expanduser(os.environ.get("TEMZOO_HOME", os.path.join("~", ".temzoo")))


def _builtin_entries():
    if not os.path.exists(REGISTRY_FILE):
        return {}
    with open(REGISTRY_FILE, encoding="utf-8") as f:
        entries = json.load(f)
    return {e["name"]: {**e, "builtin": True} for e in entries}


def pretrained_entries():
    """name -> entry for every pretrained model (built-in first, then user-registered)."""
    return {**_builtin_entries(), **_user_entries}


def resolve(name):
    """The entry for ``name`` or one of its aliases."""
    entries = pretrained_entries()
    if name in entries:
        return entries[name]
    for entry in entries.values():
        if name in entry.get("aliases", ()):
            return entry
    from temzoo.models.registry import list_architectures

    hint = None
    if name in list_architectures():
        hint = f"{name!r} is an architecture without pretrained weights: temzoo.build({name!r}) builds it with random weights."
    names = set(entries) | {a for e in entries.values() for a in e.get("aliases", ())}
    raise UnknownNameError("pretrained model", name, names, hint=hint)


def weights_path(entry):
    """Local path of an entry's ``.keras`` file, downloading a ``url`` entry once."""
    if entry.get("path"):
        return entry["path"]
    if entry.get("file"):
        return os.path.join(WEIGHTS_DIR, entry["file"])
    return _download(entry)


def _download(entry):
    import keras

    fname = entry.get("filename") or f"{entry['name']}.keras"
    cache_dir = temzoo_home()
    target = os.path.join(cache_dir, "weights", fname)
    if os.path.exists(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)  # else Keras silently falls back to /tmp/.keras
    try:
        return keras.utils.get_file(
            fname, origin=entry["url"], file_hash=entry["sha256"], hash_algorithm="sha256",
            cache_dir=cache_dir, cache_subdir="weights",
        )
    except Exception as exc:
        raise TemzooError(
            f"Could not download the weights of {entry['name']!r} from {entry['url']} ({exc}). "
            f"Download the file by hand and place it at {target} (sha256 {entry['sha256']}), "
            "or set TEMZOO_HOME to a folder that holds weights/" + fname + "."
        ) from exc


def verify_file(path, expected_sha256, name=None):
    """Raise :class:`IntegrityError` unless ``path`` hashes to ``expected_sha256``."""
    label = f"{name!r} ({path})" if name else path
    if not os.path.exists(path):
        raise BadInputError(f"The weights file of {label} is missing. Reinstall temzoo or re-download the file.")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise IntegrityError(
            f"The weights file of {label} does not match its registered sha256 "
            f"(expected {expected_sha256}, found {actual}): it was changed or corrupted, so it is "
            "refused before loading. Reinstall temzoo or re-download the file."
        )
    return actual


def load(name_or_path, compile=False):
    """Load a pretrained model by registry name (or alias) or from a ``.keras`` path.

    Registry entries are verified against their sha256 before deserialising;
    loading always uses ``safe_mode=True``. The model's card is available as
    ``temzoo.card(model)`` and as ``model.temzoo_card``. ``compile=True`` restores
    the training configuration too (it needs the task losses, see
    :func:`temzoo.zoo.serialization.register_custom_objects`).
    """
    import keras

    from temzoo.zoo.serialization import register_custom_objects

    register_custom_objects(compile=compile)
    if isinstance(name_or_path, os.PathLike) or str(name_or_path).endswith(".keras"):
        path = os.fspath(name_or_path)
        check_keras_archive(path)
        card = read_card(card_path(path))
        if card and card.get("sha256"):
            actual = sha256_file(path)
            if actual != card["sha256"]:
                raise IntegrityError(
                    f"{path}: the file does not match the sha256 in its card {card_path(path)} (card "
                    f"{card['sha256'][:12]}..., file {actual[:12]}...): the file was changed, or an export was "
                    "interrupted before the new model replaced the old one. It is refused before loading; "
                    "re-export the model (or restore the matching file and card)."
                )
        else:
            logger.warning("%s: no model card beside it (%s), so its sha256 is not checked; models exported by "
                           "temzoo always have one.", path, card_path(path))
    else:
        entry = resolve(name_or_path)
        path = weights_path(entry)
        verify_file(path, entry["sha256"], entry["name"])
        card = read_card(card_path(path)) or entry.get("card")
    try:
        from temzoo.models.layers import batch_norm_for_backend

        model = keras.saving.load_model(path, compile=compile, safe_mode=True, custom_objects=batch_norm_for_backend())
    except Exception as exc:
        raise BadInputError(f"{path}: could not load the model ({type(exc).__name__}: {exc}).") from exc
    attach_card(model, card)
    return model


def check_keras_archive(path):
    """Raise :class:`BadInputError` unless ``path`` is a file in the ``.keras`` format (a zip
    archive holding ``config.json``), saying what it is instead."""
    import zipfile

    hint = "Give a model exported with temzoo (or keras.Model.save) as NAME.keras, or a name from temzoo.list_models()."
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such model file. {hint}")
    if os.path.isdir(path):
        raise BadInputError(f"{path}: is a folder, not a .keras model archive. {hint}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        raise BadInputError(
            f"{path}: not a .keras model archive ({'an empty file' if size == 0 else 'not a zip archive'}: "
            f"{exc}); it may be truncated or a different kind of file. {hint}"
        ) from exc
    if "config.json" not in names:
        raise BadInputError(f"{path}: a zip archive without config.json, so not a .keras model archive. {hint}")


def attach_card(model, card):
    _cards[model] = card
    object.__setattr__(model, "temzoo_card", card)  # plain attribute, not tracked by Keras
    return model


def card(name_or_model):
    """The card of a loaded model, a registry name or a ``.keras`` path.

    A model's card is the one attached to it (:func:`load` attaches the JSON card beside
    its file), else, for a :class:`temzoo.zoo.task_model.TaskModel` (loaded with plain
    ``keras.saving.load_model``, say), the fields of its own Keras config: task,
    normalisation and scale, all that prediction needs.
    """
    if not isinstance(name_or_model, str | os.PathLike):
        attached = _cards.get(name_or_model) or getattr(name_or_model, "temzoo_card", None)
        if attached is None and callable(getattr(name_or_model, "own_card", None)):
            return name_or_model.own_card()
        return attached
    if str(name_or_model).endswith(".keras"):
        return read_card(card_path(name_or_model))
    entry = resolve(name_or_model)
    if entry.get("file") or entry.get("path"):
        return read_card(card_path(weights_path(entry))) or entry.get("card")
    return entry.get("card")


def register(name, path=None, card=None, *, url=None, sha256=None, architecture=None, aliases=()):
    """Register a user's own model under ``name`` (for this Python session).

    Give a local ``path`` (its sha256 is taken now, so later changes are
    refused) or a ``url`` with its ``sha256``. ``card`` defaults to the JSON
    card beside the file.
    """
    if (path is None) == (url is None):
        raise ValueError("register() needs exactly one of path= or url=.")
    if name in _builtin_entries():
        raise ValueError(f"{name!r} is a built-in pretrained model; choose another name.")
    if path is not None:
        path = os.path.abspath(os.fspath(path))
        if not os.path.exists(path):
            raise BadInputError(f"{path}: no such file to register as {name!r}.")
        digest = sha256_file(path)
        if sha256 is not None and sha256 != digest:
            raise IntegrityError(f"{path}: sha256 is {digest}, not the {sha256} you gave.")
        card = card if card is not None else read_card(card_path(path))
        entry = {"name": name, "path": path, "sha256": digest}
    else:
        if not sha256:
            raise ValueError("register(url=...) needs the file's sha256 so the download can be verified.")
        entry = {"name": name, "url": url, "sha256": sha256}
    entry.update(
        architecture=architecture or (card or {}).get("architecture"),
        aliases=list(aliases),
        card=card,
        builtin=False,
    )
    _user_entries[name] = entry
    return entry


def unregister(name):
    _user_entries.pop(name, None)


def reference_path(model_path):
    """``dir/name.keras`` -> ``dir/name.reference.npz``: a recorded input and output."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".reference.npz"


def record_reference(model, model_path, size=64, seed=0):
    """Store a small input and the model's output beside ``model_path`` (bioimage.io-style test data)."""
    import numpy as np

    from temzoo.atomic import atomic_path

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, size, size, model.input_shape[-1])).astype("float32")
    y = np.asarray(model(x, training=False))
    with atomic_path(reference_path(model_path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, input=x, output=y)
    return reference_path(model_path)


def verify(name=None, atol=1e-4):
    """Check registered models: sha256, and reproduction of the recorded output.

    Returns one dict per entry with ``name``, ``sha256`` ("ok" or the error),
    ``reproduces`` ("ok", "no reference", or the max abs difference) and ``ok``.
    """
    import numpy as np

    names = [resolve(name)["name"]] if name else sorted(pretrained_entries())
    rows = []
    for n in names:
        entry = resolve(n)
        row = {"name": n, "sha256": "ok", "reproduces": "", "ok": False}
        try:
            path = weights_path(entry)
            verify_file(path, entry["sha256"], n)
        except TemzooError as exc:
            row["sha256"] = str(exc)
            rows.append(row)
            continue
        ref = reference_path(path)
        if not os.path.exists(ref):
            row["reproduces"] = "no reference"
            row["ok"] = True
            rows.append(row)
            continue
        data = np.load(ref)
        model = load(n)
        diff = float(np.max(np.abs(np.asarray(model(data["input"], training=False)) - data["output"])))
        row["max_abs_diff"] = diff
        row["reproduces"] = "ok" if diff <= atol else f"differs by {diff:.3g} (> {atol})"
        row["ok"] = diff <= atol
        rows.append(row)
    return rows
