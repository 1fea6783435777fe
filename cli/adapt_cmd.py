"""``temzoo-cli adapt``: adapt a denoiser to your own noisy micrographs (thin shell over ``temzoo.adapt``).

The settings' options (``--method``, ``--steps``, ...) are generated from the fields of
:class:`temzoo.adaptation.config.AdaptConfig`: their names, types, defaults, choices and help
are written once, there.
"""

import sys

import click

from temzoo.adaptation.config import cli_fields

from .options import config_options


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
@click.option("--overwrite", is_flag=True, help="Replace a different or finished run in --out.")
@config_options(cli_fields())
@click.option("--new-head", is_flag=True, hidden=True, help="Same as --head new (the earlier spelling).")
def adapt(model_name, inputs, out, overwrite, new_head, **settings):
    """Adapt a denoiser to noisy micrographs INPUTS, without clean references.

    INPUTS are TIFF or PNG files (DM3/DM4/EMD/SER/MRC with temzoo[formats]);
    stacks give every frame. Writes OUT/model.keras with its card OUT/model.json
    (use it with `temzoo-cli predict --model OUT/model.keras`), OUT/log.csv and
    checkpoints; re-running the same command after an interruption resumes.
    """
    if new_head:
        settings["head"] = "new"
    import logging

    from temzoo.adaptation import adapt as run
    from temzoo.errors import TemzooError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bar = _StepBar()
    try:
        result = run(model_name, list(inputs), out=out, overwrite=overwrite, progress=bar, **settings)
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    finally:
        bar.close()
    resumed = f", resumed at step {result.resumed_from_step}" if result.resumed_from_step else ""
    click.echo(f"Adapted with {result.method} for {result.step} steps ({result.seconds:.0f} s{resumed}); "
               f"final loss {result.final_loss:.4f}.")
    click.echo(result.model_path)
