"""``temzoo-cli finetune``: fine-tune a model on a labelled dataset (thin shell over ``temzoo.finetune``)."""

import click

TASKS = ("segmentation", "denoising", "background_removal", "super_resolution")
FREEZE = ("none", "encoder", "all_but_head")


@click.command()
@click.option("--model", "model_name", required=True,
              help="Pretrained name (e.g. hrnet_pretrained), architecture name (random weights) or .keras file.")
@click.option("--dataset", default="synthetic_tem/au_np", show_default=True,
              help="Labelled dataset with train and validation splits (see `temzoo-cli data list`).")
@click.option("--task", type=click.Choice(TASKS), default="segmentation", show_default=True)
@click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="Share of the training split to use (a seeded subset; smaller fractions nest in larger ones).")
@click.option("--epochs", type=click.IntRange(1), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--patch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Training crop size in pixels; a multiple of the model's total stride.")
@click.option("--freeze", type=click.Choice(FREEZE), default="none", show_default=True,
              help="Freeze the encoder, or everything but the new head.")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--num-classes", type=click.IntRange(2), default=2, show_default=True, help="Segmentation classes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help="Training steps per epoch (default: one pass over the training fraction).")
@click.option("--validation-images", type=click.IntRange(0), default=16, show_default=True,
              help="Validate on the first N validation images (0: the whole split).")
@click.option("--validation-steps", type=click.IntRange(1), default=None,
              help="At most this many validation batches per epoch.")
@click.option("--overlays", type=click.IntRange(0), default=4, show_default=True,
              help="Validation images to draw prediction overlays for.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace the results of a previous run in --out.")
def finetune(model_name, dataset, task, train_fraction, epochs, batch_size, patch_size, freeze, learning_rate,
             num_classes, seed, data_dir, steps_per_epoch, validation_images, validation_steps, overlays, out,
             overwrite):
    """Fine-tune a model on a labelled dataset and save the best one.

    Writes OUT/model.keras with its card OUT/model.json (the epoch with the
    lowest validation loss), OUT/metrics.json, OUT/learning_curves.png and
    prediction overlays OUT/overlays/*.png, then prints the validation metrics.
    The defaults need no download (the synthetic dataset is generated locally).
    """
    from temzoo.errors import TemzooError
    from temzoo.evaluate import format_metrics
    from temzoo.finetune import finetune as run

    try:
        result = run(
            model_name, dataset, task, out=out, train_fraction=train_fraction, epochs=epochs,
            batch_size=batch_size, patch_size=patch_size, freeze=freeze, learning_rate=learning_rate,
            num_classes=num_classes, seed=seed, data_dir=data_dir, steps_per_epoch=steps_per_epoch,
            validation_images=validation_images or None, validation_steps=validation_steps,
            overlays=overlays, overwrite=overwrite, echo=click.echo,
        )
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"\nValidation metrics on {result['validation_examples']} images "
               f"(best epoch {result['best_epoch']} of {epochs}, {result['seconds']:.0f} s):")
    click.echo(format_metrics(result["validation"]))
    click.echo(f"\nSaved {result['paths']['model']} (+ card), {result['paths']['metrics']}, "
               f"{result['paths']['curves']} and {len(result['paths']['overlay_files'])} overlay(s).")
