"""``temzoo-cli adapt``: adapt a denoiser to your own noisy micrographs (thin shell over ``temzoo.adapt``)."""

import sys

import click

from temzoo.adaptation.config import DEFAULTS, METHODS
from temzoo.names import CLI_PRECISIONS


class _StepBar:
    """A click progress bar fed by the library's per-step callback, showing the loss."""

    def __init__(self):
        self.bar = None

    def __call__(self, step, steps, loss):
        if self.bar is None:
            self.bar = click.progressbar(length=steps, label="adapting", show_pos=True, show_eta=True,
                                         file=sys.stderr,
                                         item_show_func=lambda item: item)
            self.bar.__enter__()
            self.bar.update(step - 1)
        self.bar.update(1, f"loss {loss:.4f}")

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.option("--model", "model_name", default="hrnet_pretrained", show_default=True,
              help="Pretrained name, .keras file (e.g. an earlier adaptation) or architecture name (random weights).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (OUT/model.keras).")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULTS.method, show_default=True,
              help="binomial: split each pixel's counts into two halves (needs counts); blind_spot: Noise2Void "
                   "masking with N2V2's median replacement; auto: binomial where the input holds counts.")
@click.option("--steps", type=click.IntRange(1), default=DEFAULTS.steps, show_default=True,
              help="Training steps (the default takes about 2 minutes on 2 idle CPU cores).")
@click.option("--batch-size", type=click.IntRange(1), default=DEFAULTS.batch_size, show_default=True)
@click.option("--patch-size", type=click.IntRange(8), default=DEFAULTS.patch_size, show_default=True,
              help="Training patch side in pixels (rounded down to the model's stride).")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=DEFAULTS.learning_rate,
              show_default=True, help="Initial Adam rate, decayed to 0 (cosine).")
@click.option("--gain", type=click.FloatRange(0, min_open=True), default=None,
              help="Data units per detected count, for files of scaled counts (binomial splitting).")
@click.option("--offset", type=float, default=DEFAULTS.offset, show_default=True,
              help="Data value of zero counts (dark level), for binomial splitting.")
@click.option("--new-head", is_flag=True,
              help="Attach a new, randomly initialised output layer instead of keeping the model's trained "
                   "denoising head (kept by default when the model was trained for denoising).")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(0), default=DEFAULTS.checkpoint_every, show_default=True,
              help="Steps between checkpoints (an interrupted run resumes when re-run with the same command).")
@click.option("--overwrite", is_flag=True, help="Replace a different or finished run in --out.")
@click.option("--precision", type=click.Choice(CLI_PRECISIONS),
              default=DEFAULTS.precision, show_default=True,
              help="auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or GPU computes bfloat16 natively, "
                   "else float32. The model is written in float32 either way.")
def adapt(model_name, inputs, out, method, steps, batch_size, patch_size, learning_rate, gain, offset, new_head,
          seed, checkpoint_every, overwrite, precision):
    """Adapt a denoiser to noisy micrographs INPUTS, without clean references.

    INPUTS are TIFF or PNG files (DM3/DM4/EMD/SER/MRC with temzoo[formats]);
    stacks give every frame. Writes OUT/model.keras with its card OUT/model.json
    (use it with `temzoo-cli predict --model OUT/model.keras`), OUT/log.csv and
    checkpoints; re-running the same command after an interruption resumes.
    """
    import logging

    from temzoo.adaptation import adapt as run
    from temzoo.errors import TemzooError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bar = _StepBar()
    try:
        result = run(
            model_name, list(inputs), out=out, overwrite=overwrite, progress=bar, method=method, steps=steps,
            batch_size=batch_size, patch_size=patch_size, learning_rate=learning_rate, gain=gain, offset=offset,
            head="new" if new_head else "auto", seed=seed, checkpoint_every=checkpoint_every, precision=precision,
        )
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    finally:
        bar.close()
    resumed = f", resumed at step {result.resumed_from_step}" if result.resumed_from_step else ""
    click.echo(f"Adapted with {result.method} for {result.step} steps ({result.seconds:.0f} s{resumed}); "
               f"final loss {result.final_loss:.4f}.")
    click.echo(result.model_path)
