"""``temzoo-cli pretrain``: self-supervised pretraining (thin shell over ``temzoo.pretraining.pretrain``)."""

import json

import click

from temzoo.names import PRECISIONS
from temzoo.names import PRETRAIN_METHODS as METHODS


@click.command()
@click.option("--model", "model_name", required=True,
              help="Dense architecture to pretrain (see `temzoo-cli models list`), e.g. unet_b3_p222.")
@click.option("--dataset", default="synthetic_tem/unlabeled", show_default=True,
              help="Unlabelled image dataset with an `image` feature (synthetic_tem/unlabeled, cem500k).")
@click.option("--method", type=click.Choice(METHODS), default="pix2pix", show_default=True,
              help="pix2pix: generator + conditional PatchGAN + L1; autoencoder: L1 (or --loss l2) only.")
@click.option("--patch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Training patch side in pixels; a multiple of the model's total stride.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="GLOBAL batch size (split across GPUs / workers).")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(1), default=100, show_default=True)
@click.option("--validation-steps", type=click.IntRange(0), default=4, show_default=True,
              help="Validation batches evaluated after every epoch (0: none).")
@click.option("--checkpoint-every", type=click.IntRange(0), default=None,
              help="Steps between checkpoints (default: once per epoch). Checkpoints are also written at every epoch end.")
@click.option("--keep-checkpoints", type=click.IntRange(1), default=3, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory: manifest, checkpoints, log.csv, plots and the exported model.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out even if some arguments changed (e.g. more --epochs). "
                   "Re-running the identical command resumes without this flag.")
@click.option("--overwrite", is_flag=True, help="Delete the run in --out and start afresh.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or GPU (compute capability >= 8.0) "
                   "computes bfloat16 natively, else float32; mixed_float16 for older NVIDIA GPUs (loss scaling).")
@click.option("--seed", type=int, default=0, show_default=True, help="Initial weights and data order.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).")
@click.option("--dose-range", type=(float, float), default=(5.0, 500.0), show_default=True,
              help="Poisson dose range (counts per pixel at the mean intensity), drawn log-uniformly.")
@click.option("--read-noise", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Gaussian read noise std in mean-intensity units.")
@click.option("--discriminator", default="patchgan_70", show_default=True,
              help="PatchGAN preset for pix2pix (patchgan_16, patchgan_34, patchgan_70, patchgan_142).")
@click.option("--l1-lambda", type=click.FloatRange(0), default=100.0, show_default=True,
              help="Weight of the L1 term of the pix2pix generator loss.")
@click.option("--loss", type=click.Choice(("l1", "l2")), default="l1", show_default=True, help="Autoencoder loss.")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True,
              help="Adam learning rate (generator and discriminator).")
@click.option("--learning-rate-schedule", type=click.Choice(("constant", "cosine")), default="constant",
              show_default=True, help="cosine: decay both learning rates to 0 over the run.")
@click.option("--beta-1", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="Adam beta_1 (0.5 as in pix2pix; 0.9 is Adam's usual value).")
@click.option("--batch-norm-recalibration-batches", type=click.IntRange(0), default=0, show_default=True,
              help="Before export, set the generator's BatchNorm moving statistics to the mean over this "
                   "many training batches (precise BN); 0 keeps them as trained.")
@click.option("--model-overrides", default=None, metavar="JSON",
              help='Changes to the architecture\'s preset config, e.g. \'{"upsampling": "bilinear"}\'.')
@click.option("--discriminator-overrides", default=None, metavar="JSON",
              help='Changes to the PatchGAN preset\'s config, e.g. \'{"base_filters": 32}\'.')
@click.option("--jit-compile", is_flag=True, help="XLA on a single device (ignored with several devices).")
@click.option("--name", default=None, help="Name of the exported model (default: MODEL_METHOD).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pretrain(model_name, dataset, method, patch_size, batch_size, epochs, steps_per_epoch, validation_steps,
             checkpoint_every, keep_checkpoints, out, resume, overwrite, precision, seed, data_dir, dose_range,
             read_noise, discriminator, l1_lambda, loss, learning_rate, learning_rate_schedule, beta_1,
             batch_norm_recalibration_batches, model_overrides, discriminator_overrides, jit_compile, name, quiet):
    """Pretrain a model self-supervised: restore clean images from Poisson-noised ones.

    Uses all local GPUs (MirroredStrategy), or several machines when TF_CONFIG
    names several workers (run the same command on each). Writes OUT/run.json,
    OUT/checkpoints/, OUT/log.csv, OUT/loss_curves.png, OUT/samples/ and finally
    OUT/NAME.keras with its model card OUT/NAME.json. After a crash, run the
    same command again: it resumes from the last checkpoint.
    """
    from temzoo.errors import TemzooError
    from temzoo.pretraining import pretrain as run

    model_overrides = _json_object("--model-overrides", model_overrides)
    discriminator_overrides = _json_object("--discriminator-overrides", discriminator_overrides)
    try:
        result = run(
            model_name, dataset, method, out=out, patch_size=patch_size, batch_size=batch_size, epochs=epochs,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, resume=resume,
            overwrite=overwrite, precision=precision, seed=seed, data_dir=data_dir, dose_range=dose_range,
            read_noise=read_noise, discriminator=discriminator, l1_lambda=l1_lambda, loss=loss,
            learning_rate=learning_rate, learning_rate_schedule=learning_rate_schedule, beta_1=beta_1,
            batch_norm_recalibration_batches=batch_norm_recalibration_batches,
            model_overrides=model_overrides, discriminator_overrides=discriminator_overrides,
            jit_compile=jit_compile, name=name, verbose=0 if quiet else 1,
        )
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Model: {result.model_path}")
    click.echo(f"Card:  {result.card_path}")
    click.echo(f"Steps: {result.step} ({result.images_seen} images); log: {result.log_path}")


def _json_object(flag, text):
    """``None`` or the JSON object given to ``flag``; anything else is a usage error."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not valid JSON ({err.msg}): {text!r}", param_hint=flag) from err
    if not isinstance(value, dict):
        raise click.BadParameter(f"must be a JSON object such as '{{\"key\": value}}', got {text!r}", param_hint=flag)
    return value
