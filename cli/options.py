"""Click options generated from a run configuration's fields (:mod:`temzoo.settings`): written once, there."""

import json

import click


def _json_object(ctx, param, text):
    """``None`` or the JSON object given to the option; anything else is a usage error."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not valid JSON ({err.msg}): {text!r}") from err
    if not isinstance(value, dict):
        raise click.BadParameter(f"must be a JSON object such as '{{\"key\": value}}', got {text!r}")
    return value


def _number_type(meta, integer):
    if "low" not in meta and "high" not in meta:
        return int if integer else float
    if integer:
        return click.IntRange(meta.get("low"), meta.get("high"))
    return click.FloatRange(meta.get("low"), meta.get("high"), min_open=meta.get("low_open", False),
                            max_open=meta.get("high_open", False))


def option(field):
    """The click option of a config field: ``--field-name``, its type, default and help."""
    meta = field.metadata
    kind = meta["kind"]
    text = meta["help"] + (" May change with --resume." if meta["resumable"] else "")
    kwargs = {"help": text, "default": field.default, "show_default": field.default is not None}
    if kind == "flag":
        kwargs.update(is_flag=True, show_default=False)
    elif kind in ("int", "float"):
        kwargs["type"] = _number_type(meta, kind == "int")
    elif kind == "choice":
        kwargs["type"] = click.Choice(meta["choices"])
    elif kind == "pair":
        kwargs["type"] = (float, float)
    elif kind == "json":
        kwargs.update(metavar="JSON", callback=_json_object)
    elif kind == "path":
        kwargs["type"] = click.Path(file_okay=False)
    if meta["cli"] == "required":
        kwargs.update(required=True, default=None, show_default=False)
    return click.option(f"--{field.name.replace('_', '-')}", field.name, **kwargs)


def config_options(fields):
    """A decorator adding one option per field of ``fields`` (in order) to a click command."""

    def decorate(command):
        for field in reversed(list(fields)):
            command = option(field)(command)
        return command

    return decorate


def tile_size_option():
    """``--tile-size``, the same for every command that predicts."""
    from temzoo.inference.tile_layout import PREDICT_MEMORY_ENV, PROCESS_MEMORY_TARGET

    return click.option("--tile-size", type=click.IntRange(1), default=None,
                        help=f"Tile size in pixels (default: the largest that keeps this process under "
                             f"{PROCESS_MEMORY_TARGET / 2**30:g} GiB, or ${PREDICT_MEMORY_ENV}, e.g. 8G).")
