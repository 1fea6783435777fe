"""``temzoo-cli``: entry point and command registration."""

import click

from temzoo._version import __version__

from .adapt_cmd import adapt
from .analyze_cmd import analyze
from .data_cmd import data
from .evaluate_cmd import evaluate
from .experiment_cmd import experiment
from .finetune_cmd import finetune
from .models_cmd import models
from .predict_cmd import predict
from .pretrain_cmd import pretrain


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="temzoo")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and results (no progress).")
@click.option("--verbose", "-v", is_flag=True,
              help="Everything, TensorFlow's start-up and C++ logs and TFDS warnings included.")
@click.pass_context
def cli(ctx, quiet, verbose):
    """temzoo: pretrained models for transmission electron microscopy images.

    Pretrain self-supervised, fine-tune on a few labelled images, and predict on
    micrographs of any size.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other.")
    from temzoo.logs import configure

    level = "quiet" if quiet else "verbose" if verbose else "normal"
    configure(level)
    ctx.obj = {**(ctx.obj or {}), "quiet": quiet, "verbose": verbose, "log_level": level}


cli.add_command(models)
cli.add_command(data)
cli.add_command(finetune)
cli.add_command(evaluate)
cli.add_command(predict)
cli.add_command(pretrain)
cli.add_command(experiment)
cli.add_command(adapt)
cli.add_command(analyze)


if __name__ == "__main__":
    cli()
