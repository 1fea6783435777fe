"""``temzoo-cli experiment``: the pretrained-vs-random benchmark (thin shell over ``temzoo.training.experiment``)."""

import click

PRESETS = ("quick", "full")
STUDIES = ("pretraining", "receptive_field")


@click.command()
@click.option("--preset", type=click.Choice(PRESETS), default="full", show_default=True,
              help="Grid size: 'full' (the paper's grid) or 'quick' (fewer cells, 64-px patches).")
@click.option("--quick", is_flag=True, help="Same as --preset quick.")
@click.option("--study", "studies", multiple=True, type=click.Choice(STUDIES),
              help="Run only this study (repeatable; default both).")
@click.option("--task", "tasks", multiple=True,
              help="Run only this task of the pretraining study (repeatable), e.g. segmentation.")
@click.option("--model", "models", multiple=True, help="Architectures of the pretraining study (repeatable).")
@click.option("--seeds", type=click.IntRange(1), default=None, help="Number of seeds (0..N-1) instead of the preset's.")
@click.option("--dataset", "datasets", multiple=True, metavar="TASK=NAME",
              help="Use dataset NAME for TASK, e.g. segmentation=au_np or denoising=temimagenet/denoise "
                   "(prepared with `temzoo-cli data build`).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where TFDS datasets live (default: $TEMZOO_DATA_DIR or ~/tensorflow_datasets).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder: runs.json, results.md and img/ (default: experiment_<preset>).")
@click.option("--resume", is_flag=True, help="Keep the finished cells of OUT/runs.json (same settings) and run the rest.")
def experiment(preset, quick, studies, tasks, models, seeds, datasets, data_dir, out, resume):
    """Pretrained vs random init over labelled fractions, and a receptive-field study.

    Fine-tunes every cell of the grid (models x init x labelled fraction x
    seed, same budget per cell), evaluates it on the test split, and writes
    OUT/runs.json (every run, updated after each), OUT/results.md (mean ± std
    tables, convergence, findings) and OUT/img/*.png. Cells whose pretrained
    weights are not shipped are reported as not available.
    """
    import os

    from temzoo.errors import TemzooError
    from temzoo.training import experiment as ex

    preset = "quick" if quick else preset
    out = out or f"experiment_{preset}"
    try:
        settings = ex.PRESETS[preset]
        settings = ex.customize(settings, tasks=tasks or None, models=models or None, seeds=seeds,
                                task_data=ex.parse_task_data(datasets, settings.task_data))
        payload = ex.run_experiment(
            settings, json_path=os.path.join(out, "runs.json"), page_path=os.path.join(out, "results.md"),
            img_dir=os.path.join(out, "img"), data_dir=data_dir, studies=studies or ex.STUDIES, resume=resume,
            command="temzoo-cli experiment --preset " + preset,
        )
    except (TemzooError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    done = sum(r["status"] == ex.OK for r in payload["records"])
    click.echo(f"\n{done} runs in {payload['wall_seconds'] / 60:.1f} min; wrote {out}/runs.json, {out}/results.md, "
               f"{out}/img/")
