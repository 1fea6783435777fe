"""``temzoo-cli pretrain``: self-supervised pretraining (thin shell over ``temzoo.pretraining.pretrain``).

The options are generated from the fields of :class:`temzoo.pretraining.config.PretrainConfig`
(name, type, range, default, help): an option is written once, there.
"""

import json

import click

from temzoo.pretraining.config import cli_fields


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


def _option(field):
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


def _config_options(command):
    for field in reversed(cli_fields()):
        command = _option(field)(command)
    return command


@click.command()
@_config_options
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory: manifest, checkpoints, log.csv, plots and the exported model.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out even if some options changed (e.g. more --epochs). "
                   "Re-running the identical command resumes without this flag.")
@click.option("--overwrite", is_flag=True, help="Delete the run in --out and start afresh.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pretrain(out, resume, overwrite, quiet, **settings):
    """Pretrain a model self-supervised: restore clean images from Poisson-noised ones.

    Uses all local GPUs (MirroredStrategy), or several machines when TF_CONFIG
    names several workers (run the same command on each). Writes OUT/run.json,
    OUT/checkpoints/, OUT/log.csv, OUT/loss_curves.png, OUT/samples/ and finally
    OUT/NAME.keras with its model card OUT/NAME.json. After a crash, run the
    same command again: it resumes from the last checkpoint.
    """
    from temzoo.errors import TemzooError
    from temzoo.pretraining import pretrain as run

    try:
        result = run(out=out, resume=resume, overwrite=overwrite, verbose=0 if quiet else 1, **settings)
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Model: {result.model_path}")
    click.echo(f"Card:  {result.card_path}")
    click.echo(f"Steps: {result.step} ({result.images_seen} images); log: {result.log_path}")
