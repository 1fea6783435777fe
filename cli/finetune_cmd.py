"""``temzoo-cli finetune``: fine-tune a model on a labelled dataset (thin shell over ``temzoo.finetune``)."""

import click

from temzoo.evaluate import SEGMENTATION_METRICS
from temzoo.names import FINETUNE_DEFAULTS as DEFAULTS
from temzoo.names import FREEZE_MODES as FREEZE
from temzoo.names import CLI_PRECISIONS, SCHEDULES, TASKS

METRICS_EPILOG = "\b\nSegmentation metrics (one definition each, the same in training, metrics.json and evaluate):\n" + \
    "\n".join(f"  {name}: {meaning}" for name, meaning in SEGMENTATION_METRICS.items())


@click.command(epilog=METRICS_EPILOG)
@click.option("--model", "model_name", required=True,
              help="Pretrained name (e.g. hrnet_pretrained), architecture name (random weights) or .keras file.")
@click.option("--dataset", default="synthetic_tem/au_np", show_default=True,
              help="Labelled dataset with train and validation splits (see `temzoo-cli data list`).")
@click.option("--task", type=click.Choice(TASKS), default="segmentation", show_default=True)
@click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True), default=DEFAULTS["train_fraction"],
              show_default=True,
              help="Share of the training split to use (a seeded subset; smaller fractions nest in larger ones).")
@click.option("--epochs", type=click.IntRange(1), default=DEFAULTS["epochs"], show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(0), default=DEFAULTS["steps_per_epoch"], show_default=True,
              help="Training steps per epoch (0: one pass over the training fraction).")
@click.option("--batch-size", type=click.IntRange(1), default=DEFAULTS["batch_size"], show_default=True)
@click.option("--patch-size", type=click.IntRange(1), default=DEFAULTS["patch_size"], show_default=True,
              help="Training crop size in pixels; a multiple of the model's total stride.")
@click.option("--freeze", type=click.Choice(FREEZE), default=DEFAULTS["freeze"], show_default=True,
              help="Freeze the encoder, or everything but the new head.")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=DEFAULTS["learning_rate"],
              show_default=True, help="Adam's (peak) learning rate.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=DEFAULTS["schedule"], show_default=True,
              help="cosine: decay the rate to 0 over the run; constant: keep it.")
@click.option("--num-classes", type=click.IntRange(2), default=2, show_default=True, help="Segmentation classes.")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).")
@click.option("--validation-images", type=click.IntRange(0), default=DEFAULTS["validation_images"], show_default=True,
              help="Validate on the first N validation images (0: the whole split).")
@click.option("--validation-steps", type=click.IntRange(1), default=None,
              help="At most this many validation batches per epoch.")
@click.option("--test-split", default=DEFAULTS["test_split"], show_default=True,
              help="Evaluate the best model on this split at the end ('' to skip).")
@click.option("--overlays", type=click.IntRange(0), default=DEFAULTS["overlays"], show_default=True,
              help="Validation images to draw prediction overlays for.")
@click.option("--batch-norm-batches", type=click.IntRange(0), default=DEFAULTS["batch_norm_batches"],
              show_default=True,
              help="Before each validation, re-estimate BatchNorm statistics from this many training batches "
                   "(precise BN; 0: keep the moving averages).")
@click.option("--precision", type=click.Choice(CLI_PRECISIONS), default=DEFAULTS["precision"], show_default=True,
              help="Train in float32 or mixed_bfloat16; auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or "
                   "GPU computes bfloat16 natively, else float32. The model is exported in float32.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run in --out (only once the new run is complete).")
@click.pass_context
def finetune(ctx, model_name, dataset, task, train_fraction, epochs, steps_per_epoch, batch_size, patch_size, freeze,
             learning_rate, schedule, num_classes, seed, data_dir, validation_images, validation_steps, test_split,
             overlays, batch_norm_batches, precision, out, overwrite):
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
        result = run(
            model_name, dataset, task, out=out, train_fraction=train_fraction, epochs=epochs,
            batch_size=batch_size, patch_size=patch_size, freeze=freeze, learning_rate=learning_rate,
            schedule=schedule, num_classes=num_classes, seed=seed, data_dir=data_dir,
            steps_per_epoch=steps_per_epoch or None, validation_images=validation_images or None,
            validation_steps=validation_steps, test_split=test_split or None, overlays=overlays,
            batch_norm_batches=batch_norm_batches, precision=precision,
            overwrite=overwrite, progress=None if quiet else "auto",
        )
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"\nValidation metrics on {result['validation_examples']} images "
               f"(best epoch {result['best_epoch']} of {epochs}):")
    click.echo(format_metrics(result["validation"]))
    if result["test"] is not None:
        click.echo(f"\nTest metrics on {result['test_examples']} {result['test_split']} images "
                   f"(whole images, as temzoo.predict sees them):")
        click.echo(format_metrics(result["test"]))
    click.echo(f"\nSaved {result['paths']['model']} (+ card), {result['paths']['metrics']}, "
               f"{result['paths']['curves']} and {len(result['paths']['overlay_files'])} overlay(s) "
               f"in {result['seconds']:.0f} s.")
