"""The paper's experiment: pretrained vs random init, labelled fractions, receptive field.

    python benchmarks/pretraining_effect.py --quick   # < 15 min on 2 CPU cores: fewer cells, 64-px patches
    python benchmarks/pretraining_effect.py           # the full grid (hours; a GPU helps)
    python benchmarks/pretraining_effect.py --resume  # go on after an interruption

Writes benchmarks/results/pretraining_effect[_quick].json (every run, updated after each),
docs/results.md (tables, convergence, findings, settings) and docs/img/pretraining_effect*.png.
All logic is in temzoo.training.experiment; the same grid runs as `temzoo-cli experiment`.
"""

import argparse
import os

from _report import ROOT


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the quick preset (fewer cells, small patches)")
    parser.add_argument("--resume", action="store_true", help="keep finished cells of the JSON and run the rest")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default $TEMZOO_DATA_DIR or ~/tensorflow_datasets)")
    parser.add_argument("--study", action="append", choices=("pretraining", "receptive_field"),
                        help="run only this study (repeatable)")
    parser.add_argument("--dataset", action="append", default=[], metavar="TASK=NAME",
                        help="another dataset for a task, e.g. segmentation=au_np")
    parser.add_argument("--render-only", action="store_true",
                        help="only re-write docs/results.md and docs/img/ from the existing JSON (no runs)")
    opts = parser.parse_args(argv)

    from temzoo.logs import configure
    from temzoo.training import experiment as ex

    configure("normal")  # the library's progress lines (logging) on stderr

    preset = "quick" if opts.quick else "full"
    settings = ex.PRESETS[preset]
    if opts.dataset:
        settings = ex.customize(settings, task_data=ex.parse_task_data(opts.dataset, settings.task_data))
    suffix = "" if preset == "full" else "_quick"
    command = "python benchmarks/pretraining_effect.py" + (" --quick" if opts.quick else "")
    json_path = os.path.join(ROOT, "benchmarks", "results", f"pretraining_effect{suffix}.json")
    page_path, img_dir = os.path.join(ROOT, "docs", "results.md"), os.path.join(ROOT, "docs", "img")
    if opts.render_only:
        ex.write_results(ex.load_runs(json_path), page_path, img_dir)
        print(f"wrote {page_path} from {json_path}")
        return
    payload = ex.run_experiment(
        settings, json_path=json_path, page_path=page_path, img_dir=img_dir,
        data_dir=opts.data_dir, studies=tuple(opts.study or ex.STUDIES), resume=opts.resume, command=command,
    )
    print(f"{sum(r['status'] == ex.OK for r in payload['records'])} runs, {payload['wall_seconds'] / 60:.1f} min; "
          "wrote docs/results.md")


if __name__ == "__main__":
    main()
