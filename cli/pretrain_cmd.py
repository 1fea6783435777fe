"""``temzoo-cli pretrain``: self-supervised pretraining (thin shell over ``temzoo.pretraining.pretrain``).

The options are generated from the fields of :class:`temzoo.pretraining.config.PretrainConfig`
(name, type, range, default, help): an option is written once, there.
"""

import click

from temzoo.pretraining.config import cli_fields

from .options import config_options


@click.command()
@config_options(cli_fields())
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
