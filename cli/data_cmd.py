"""``temzoo-cli data``: list and build the TFDS datasets (thin shell over ``temzoo.datasets``)."""

import click

DATA_DIR_HELP = "Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets)."


@click.group()
def data():
    """List and build datasets (synthetic TEM, CEM500K, Au nanoparticles, TEMImageNet)."""


@data.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help=DATA_DIR_HELP)
def list_cmd(data_dir):
    """Print every dataset, whether it needs a manual download and whether it is prepared."""
    from temzoo import datasets

    click.echo(datasets.format_datasets(datasets.list_datasets(data_dir=data_dir), data_dir))


@data.command("build")
@click.argument("name")
@click.option(
    "--manual-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the files you downloaded by hand (datasets that need them; see `data list`).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help=DATA_DIR_HELP)
@click.option("--quiet", is_flag=True, help="No progress bars (as temzoo-cli --quiet).")
@click.pass_context
def build_cmd(ctx, name, manual_dir, data_dir, quiet):
    """Prepare dataset NAME (builder or builder/config, e.g. synthetic_tem/au_np).

    Synthetic datasets are generated locally; the others read the files given
    with --manual-dir and fail with instructions when they are missing.
    """
    from temzoo import datasets
    from temzoo.errors import TemzooError

    quiet = quiet or (ctx.find_root().obj or {}).get("quiet", False)
    try:
        builder = datasets.build_dataset(name, data_dir=data_dir, manual_dir=manual_dir, progress=not quiet)
    except TemzooError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Prepared {name} in {builder.data_dir}")
