"""``temzoo-cli predict``: predict micrographs to TIFF (thin shell over ``temzoo.inference.predict_files``)."""

import sys

import click

from temzoo.inference.ensemble import ENSEMBLE_SIZES
from temzoo.names import CLI_PRECISIONS

from .options import tile_size_option


class _TileBar:
    """One click progress bar per frame, fed by the library's tile callback."""

    def __init__(self):
        self.bar = None
        self.done = 0

    def __call__(self, done, total):
        if self.bar is None or done < self.done:
            self.close()
            self.bar = click.progressbar(length=total, label=f"  {total} tile{'' if total == 1 else 's'}", file=sys.stderr)
            self.bar.__enter__()
            self.done = 0
        self.bar.update(done - self.done)
        self.done = done
        if done >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.option("--model", "model_name", required=True, help="A fine-tuned .keras file or a pretrained model name.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--overlay", is_flag=True, help="Also write a PNG overlay (segmentation) or input|output panel.")
@tile_size_option()
@click.option("--max-pixels", type=click.IntRange(1), default=None,
              help="Refuse frames with more pixels than this, before decoding them "
                   "(default: $TEMZOO_MAX_PIXELS or 100000000, a 10000 x 10000 frame).")
@click.option("--precision", type=click.Choice(CLI_PRECISIONS), default="float32",
              show_default=True,
              help="auto: mixed_bfloat16 where the CPU (AVX512-BF16/AMX) or GPU computes bfloat16 natively, "
                   "else float32. bfloat16 outputs differ slightly from float32 ones (8-bit mantissa; measured on the shipped U-Nets: up to 0.1-0.16 of the output standard deviation at single pixels).")
@click.option("--ensemble", type=click.Choice([str(n) for n in ENSEMBLE_SIZES]), default="1", show_default=True,
              help="Average the prediction over this many flips/quarter turns of each frame (test-time "
                   "self-ensemble; costs as many predictions; measured gain on real micrographs: docs/adapt.md).")
def predict(model_name, inputs, out, overwrite, overlay, tile_size, max_pixels, precision, ensemble):
    """Predict INPUT files (TIFF, PNG; DM3/DM4/EMD/SER/MRC with temzoo[formats]) of any size.

    Writes OUT/NAME_<task>.tif: float32 intensities for restoration models, uint8
    class labels for segmentation; stacks are predicted frame by frame. The TIFF
    description holds the provenance (model, weights sha256, temzoo version).
    """
    from temzoo.errors import TemzooError
    from temzoo.inference.predict_files import predict_files

    bar = _TileBar()

    def on_file(index, total, path, frames):
        bar.close()
        click.echo(f"[{index + 1}/{total}] {path}" + (f" ({frames} frames)" if frames > 1 else ""), err=True)

    try:
        written = predict_files(model_name, list(inputs), out, overwrite=overwrite, overlay=overlay,
                                tile_size=tile_size, on_file=on_file, on_tiles=bar, max_pixels=max_pixels,
                                precision=precision, ensemble=int(ensemble))
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:  # e.g. the disk filled up while writing: the outputs written so far are complete
        raise click.ClickException(f"{err.filename or out}: {err.strerror or err}.") from err
    finally:
        bar.close()
    for path in written:
        click.echo(path)
