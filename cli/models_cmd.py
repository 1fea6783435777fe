"""``temzoo-cli models``: list and inspect architectures and pretrained models."""

import click


@click.group()
def models():
    """List, inspect and verify models."""


@models.command("list")
def list_cmd():
    """Print every architecture and pretrained model with its parameters and receptive field."""
    import temzoo

    temzoo.list_models(print_table=True)
