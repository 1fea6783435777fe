"""``temzoo-cli analyze``: particles, sizes and figures per micrograph (thin shell over ``temzoo.analysis.particles``)."""

import math

import click

from temzoo.inference.ensemble import ENSEMBLE_SIZES
from temzoo.names import PARTICLE_DEFAULTS as DEFAULTS

from .options import tile_size_option
from .predict_cmd import _TileBar


@click.command()
@click.option("--model", "model_name", default="nanoparticles", show_default=True,
              help="A segmentation model: pretrained name or fine-tuned .keras file.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--pixel-size", type=float, default=None,
              help="Pixel size in nm for every input (default: read from each TIFF; no _nm columns without one).")
@click.option("--threshold", type=float, default=None,
              help=f"Foreground probability threshold (default: the model card's, else {DEFAULTS['threshold']}).")
@click.option("--min-area", type=click.IntRange(0), default=None,
              help="Smallest particle area in the pixels the model sees, after the --scale resampling (default: the "
                   f"model card's, else {DEFAULTS['min_area']}).")
@click.option("--split-depth", type=float, default=None,
              help="Watershed split depth in pixels for touching particles (default: the model card's, else "
                   f"{DEFAULTS['split_depth']:g}; a three-class model's particle cores split them instead).")
@click.option("--no-split", is_flag=True, help="Do not split touching particles (connected components only).")
@click.option("--scale", default=None,
              help="'auto' (default, unless the model card sets another: the card says which particle size the model "
                   "learnt; the image is predicted at "
                   "1, 1/2, 1/4 (1/8) and resampled to the factor its particles' size asks for) or a resampling "
                   "factor such as 2 (half size) or 0.5 (double size).")
@click.option("--particle-size", type=float, default=None,
              help="Rough typical particle diameter in nm (needs a pixel size): sets the scale instead of --scale.")
@click.option("--contrast", type=click.Choice(["auto", "bright", "dark"]), default="auto", show_default=True,
              help="Particles brighter than their support (HAADF, dark field) or darker (bright-field TEM); 'auto' "
                   "decides from each image. Used by models trained on bright particles only, such as the shipped "
                   "nanoparticles, which see dark-particle images inverted.")
@click.option("--ensemble", type=click.Choice([str(n) for n in ENSEMBLE_SIZES]), default=None,
              help="Average the probabilities at the chosen scale over this many flips/quarter turns (test-time "
                   "self-ensemble; 8 took 1.3-3.1x the time for +0.01-0.02 F1: docs/benchmarks.md). Default: the "
                   f"model card's, else {DEFAULTS['ensemble']}.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="Drop particles whose highest core (or foreground) probability is below this (default: the model "
                   f"card's, else {DEFAULTS['min_confidence']:g}).")
@click.option("--finer-scale/--no-finer-scale", default=None,
              help="Also look half an octave finer and add the particles found there that overlap none found at the "
                   "chosen scale (small and faint ones; with --scale auto the scale search has made that prediction, a "
                   "forced scale costs one more). Default: the model card's, else "
                   f"{'on' if DEFAULTS['finer_scale'] else 'off'}.")
@click.option("--finer-confidence", type=click.FloatRange(0, 1), default=None,
              help="The confidence a particle found half an octave finer needs to be added (default: the model "
                   f"card's, else {DEFAULTS['finer_confidence']:g}).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@tile_size_option()
def analyze(model_name, inputs, out, pixel_size, threshold, min_area, split_depth, no_split, scale, particle_size,
            contrast, ensemble, min_confidence, finer_scale, finer_confidence, overwrite, tile_size):
    """Find the particles of INPUT micrographs (TIFF, PNG; DM3/DM4/EMD/SER/MRC with temzoo[formats]).

    Writes per input NAME: OUT/NAME_particles.csv (one row per particle: centroid,
    bounding box [x0, x1) x [y0, y1) with x = column, area, equivalent diameter,
    touches_border; _nm columns when the pixel size is known), NAME_histogram.png
    and NAME_overlay.png; and OUT/particles_summary.csv over all inputs.
    """
    from temzoo.analysis.files import analyze_files
    from temzoo.errors import TemzooError

    if no_split and split_depth is not None:
        raise click.UsageError("--no-split and --split-depth exclude each other.")
    if scale is not None and scale != "auto":
        try:
            scale = float(scale)
        except ValueError:
            raise click.BadParameter(f"{scale!r}: give 'auto' or a factor such as 2.", param_hint="--scale") from None
        if not scale > 0:
            raise click.BadParameter(f"{scale!r}: the factor must be positive.", param_hint="--scale")
    bar = _TileBar()

    def on_file(index, total, path):
        bar.close()
        click.echo(f"[{index + 1}/{total}] {path}", err=True)

    try:
        written = analyze_files(
            model_name, list(inputs), out, pixel_size_nm=pixel_size,
            threshold=threshold, min_area=min_area, split_depth=math.inf if no_split else split_depth, scale=scale,
            particle_size_nm=particle_size, tile_size=tile_size, overwrite=overwrite, on_file=on_file, on_tiles=bar,
            dark={"auto": None, "bright": False, "dark": True}[contrast],
            ensemble=None if ensemble is None else int(ensemble), min_confidence=min_confidence,
            finer_scale=finer_scale, finer_confidence=finer_confidence,
        )
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    finally:
        bar.close()
    for path in written:
        click.echo(path)
