"""``temzoo-cli finetune``: fine-tune a model on a labelled dataset (thin shell over ``temzoo.finetune``)."""

import click

from temzoo.names import SEGMENTATION_METRICS
from temzoo.training.config import cli_fields

from .options import config_options

METRICS_EPILOG = "\b\nSegmentation metrics (one definition each, the same in training, metrics.json and evaluate):\n" + \
    "\n".join(f"  {name}: {meaning}" for name, meaning in SEGMENTATION_METRICS.items())


@click.command(epilog=METRICS_EPILOG)
@config_options(cli_fields())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in --out (only once the new run is complete).")
@click.pass_context
def finetune(ctx, out, overwrite, **settings):
    """Fine-tune a model on a labelled dataset and save the best one.

    Writes OUT/model.keras with its card OUT/model.json (the epoch with the
    lowest validation loss), OUT/metrics.json, OUT/learning_curves.png and
    prediction overlays OUT/overlays/*.png, then prints the validation and
    test metrics. The run is written into a hidden folder beside OUT that
    replaces OUT only when complete; a diverging run (NaN loss) stops with an
    error and leaves OUT as it was. The defaults need no download (the
    synthetic dataset is generated locally).
    """
    from temzoo.errors import TemzooError
    from temzoo.evaluate import format_metrics
    from temzoo.finetune import finetune as run

    quiet = (ctx.find_root().obj or {}).get("quiet", False)
    try:
        result = run(out=out, overwrite=overwrite, progress=None if quiet else "auto", **settings)
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"\nValidation metrics on {result['validation_examples']} images "
               f"(best epoch {result['best_epoch']} of {settings['epochs']}):")
    click.echo(format_metrics(result["validation"]))
    if result["test"] is not None:
        click.echo(f"\nTest metrics on {result['test_examples']} {result['test_split']} images "
                   f"(whole images, as temzoo.predict sees them):")
        click.echo(format_metrics(result["test"]))
    click.echo(f"\nSaved {result['paths']['model']} (+ card), {result['paths']['metrics']}, "
               f"{result['paths']['curves']} and {len(result['paths']['overlay_files'])} overlay(s) "
               f"in {result['seconds']:.0f} s.")
