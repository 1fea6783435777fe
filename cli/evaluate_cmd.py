"""``temzoo-cli evaluate``: metrics of a model on a dataset split (thin shell over ``temzoo.evaluate``)."""

import click

from .options import tile_size_option


@click.command()
@click.option("--model", "model_name", required=True, help="A fine-tuned .keras file or a pretrained model name.")
@click.option("--dataset", required=True, help="Labelled dataset, e.g. synthetic_tem/au_np.")
@click.option("--split", default="test", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics here (a new file; see --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).")
@click.option("--max-examples", type=click.IntRange(1), default=None, help="Evaluate only the first N examples.")
@tile_size_option()
def evaluate(model_name, dataset, split, json_path, overwrite, data_dir, max_examples, tile_size):
    """Predict every image of a split whole (tiled) and print the metrics table.

    Segmentation: IoU per class, mean IoU, foreground IoU, Dice, pixel accuracy.
    Restoration: PSNR, SSIM, MAE, MSE.
    """
    from temzoo.errors import TemzooError
    from temzoo.evaluate import evaluate as run
    from temzoo.evaluate import format_metrics

    try:
        result = run(model_name, dataset, split, data_dir=data_dir, max_examples=max_examples,
                     tile_size=tile_size, json_path=json_path, overwrite=overwrite)
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{result['model']} on {dataset}/{split} ({result['task']}, {result['examples']} images):")
    click.echo(format_metrics(result["metrics"]))
    if json_path:
        click.echo(f"Wrote {json_path}")
