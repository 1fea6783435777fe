"""``temzoo-cli models``: list, inspect and verify architectures and pretrained models."""

import json
import sys

import click


@click.group()
def models():
    """List, inspect and verify models."""


@models.command("list")
def list_cmd():
    """Print every architecture and pretrained model with its parameters and receptive field."""
    import temzoo
    from temzoo.zoo.table import format_table

    click.echo(format_table(temzoo.list_models()))


@models.command("info")
@click.argument("name")
def info_cmd(name):
    """Print the card of pretrained model NAME (a registry name or a .keras path)."""
    import temzoo
    from temzoo.errors import TemzooError

    try:
        card = temzoo.card(name)
    except TemzooError as exc:
        raise click.ClickException(str(exc)) from exc
    if card is None:
        raise click.ClickException(f"{name}: no model card found beside the file.")
    click.echo(json.dumps(card, indent=2))


@models.command("verify")
@click.argument("name", required=False)
def verify_cmd(name):
    """Check the sha256 of each shipped model (or NAME) and that it reproduces its recorded output."""
    from temzoo.errors import TemzooError
    from temzoo.zoo.pretrained import verify
    from temzoo.zoo.table import format_table

    try:
        rows = verify(name)
    except TemzooError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_table(rows, columns=("name", "sha256", "reproduces", "ok")))
    if not all(r["ok"] for r in rows):
        sys.exit(1)
