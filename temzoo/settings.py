"""Settings written once: dataclass fields that carry their default, type, rules and help.

A run configuration (:class:`temzoo.pretraining.PretrainConfig`,
:class:`temzoo.training.config.FinetuneConfig`) is a frozen dataclass whose fields are
made by :func:`setting`; from them come the checks (:func:`check`), the close-match
error for an unknown name (:func:`replace`), the docstring (:func:`field_docs`) and the
command-line options (``cli/options.py`` generates click options from :func:`cli_fields`).
No TensorFlow import.

Field metadata:

* ``help``: the option's help text (CLI and docstring); ``python``: a note for Python
  callers only;
* ``kind``: ``int``, ``float``, ``choice``, ``flag``, ``pair`` (two floats), ``json`` (a
  dict, given as a JSON object on the command line), ``path`` (a folder), ``str`` or
  ``any`` (Python only: arrays, objects);
* ``low``/``high`` (with ``low_open``/``high_open``) and ``choices``: what is valid;
  ``none``: ``None`` is valid too (the field's "not set" meaning, as its help says);
* ``resumable``: may change when a run is continued;
* ``manifest``: part of the run's definition (default True);
* ``cli``: a command-line option ``--field-name`` (``"required"``: one the command
  requires although Python has a default; False: Python only).
"""

import dataclasses
import numbers
import os


def setting(default, help, kind, *, cli=True, resumable=False, manifest=True, **rules):
    """A dataclass field with the metadata above."""
    meta = {"help": help, "kind": kind, "cli": cli, "resumable": resumable, "manifest": manifest, **rules}
    return dataclasses.field(default=default, metadata=meta)


def check(instance):
    """Convert and check every field of a frozen ``instance`` in place (call from ``__post_init__``)."""
    for field in dataclasses.fields(instance):
        object.__setattr__(instance, field.name, checked(field, getattr(instance, field.name)))


def names(cls):
    return [f.name for f in dataclasses.fields(cls)]


def replace(instance, what, **changes):
    """A copy of ``instance`` with ``changes``; an unknown name fails naming the close ones."""
    from difflib import get_close_matches

    known = names(type(instance))
    unknown = sorted(set(changes) - set(known))
    if unknown:
        described = []
        for name in unknown:
            close = get_close_matches(name, known, 2)
            described.append(f"{name!r} (did you mean {', '.join(close)}?)" if close else repr(name))
        raise TypeError(f"unknown {what} setting {', '.join(described)}; the settings are the fields of "
                        f"{type(instance).__module__}.{type(instance).__name__}.")
    return dataclasses.replace(instance, **changes)


def checked(field, value):
    """``value`` as the field stores it (floats as float, pairs as a tuple), or a ValueError saying why not."""
    name, meta = field.name, field.metadata
    kind = meta["kind"]
    if (value is None and (field.default is None or meta.get("none"))) or kind == "any":
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or ("low" in meta and value < meta["low"]):
            bound = f" >= {meta['low']}" if "low" in meta else ""
            raise ValueError(f"{name} must be an integer{bound}, got {value!r}.")
    elif kind == "float":
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not in_range(float(value), meta):
            raise ValueError(f"{name} must be a number {range_text(meta)}, got {value!r}.")
        return float(value)
    elif kind == "choice" and value not in meta["choices"]:
        raise ValueError(f"{name}={value!r} is not supported; choose one of: {', '.join(meta['choices'])}.")
    elif kind == "pair":
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be two numbers (low, high), got {value!r}.") from exc
        return (low, high)
    elif kind == "json" and not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of config changes, got {value!r}.")
    elif kind in ("str", "path") and not isinstance(value, str | os.PathLike):
        raise ValueError(f"{name} must be a string, got {value!r}.")
    elif kind == "flag":
        return bool(value)
    return value


def in_range(value, meta):
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        return False
    return high is None or (value < high if meta.get("high_open") else value <= high)


def range_text(meta):
    parts = []
    if "low" in meta:
        parts.append(f"{'>' if meta.get('low_open') else '>='} {meta['low']}")
    if "high" in meta:
        parts.append(f"{'<' if meta.get('high_open') else '<='} {meta['high']}")
    return " and ".join(parts)


def cli_fields(cls):
    """The fields of ``cls`` that are command-line options, in order."""
    return [f for f in dataclasses.fields(cls) if f.metadata["cli"]]


def resumable(cls):
    """Names of the fields that may change when a run is continued."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata["resumable"])


def field_docs(cls, command):
    """Docstring lines listing every field, its default, its ``--option`` (for ``command``) and help."""
    lines = ["", f"    Fields (``temzoo-cli {command}`` options where marked ``--``):", ""]
    for f in dataclasses.fields(cls):
        flag = f" (``--{f.name.replace('_', '-')}``)" if f.metadata["cli"] else ""
        resume = " May change on resume." if f.metadata["resumable"] else ""
        note = f" {f.metadata['python']}" if "python" in f.metadata else ""
        lines.append(f"    ``{f.name}`` = ``{f.default!r}``{flag}: {f.metadata['help']}{note}{resume}")
    return "\n".join(lines) + "\n"
