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
def cli():
    """temzoo: pretrained models for transmission electron microscopy images.

    Pretrain self-supervised, fine-tune on a few labelled images, and predict on
    micrographs of any size.
    """


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
