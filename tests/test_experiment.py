"""temzoo.training.experiment: grid, convergence, aggregation, the results page, and one tiny run end to end."""

import json
import logging
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

import temzoo
from temzoo.errors import BadInputError
from temzoo.training import experiment as ex
from temzoo.zoo.cards import export_model, sha256_file

TINY_AU_NP = {"name": "au_np_exptest", "image_size": 64, "num_train": 8, "num_validation": 2, "num_test": 2,
              "diameter_range_nm": [1.0, 2.5]}


# ----------------------------------------------------------------------------- aggregation and convergence


def test_mean_std_is_sample_std_over_seeds_and_skips_missing():
    assert ex.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    mean, std, n = ex.mean_std([0.5, None, 0.7, float("nan")])
    assert (round(mean, 6), round(std, 6), n) == (0.6, round(math.sqrt(0.02), 6), 2)
    assert ex.mean_std([0.4]) == (0.4, None, 1)
    assert ex.mean_std([]) == (None, None, 0)


def test_epochs_to_90_percent_of_final():
    assert ex.epochs_to_fraction([0.1, 0.5, 0.85, 0.95, 1.0]) == 4  # 0.95 >= 0.9 x 1.0, 0.85 is not
    assert ex.epochs_to_fraction([0.2, 0.95, 0.5, 1.0]) == 2  # the first time, even if it drops again
    assert ex.epochs_to_fraction([0.5, 0.6], fraction=0.5) == 1
    assert ex.epochs_to_fraction([0.3, 0.0]) is None  # "90 % of 0" says nothing
    assert ex.epochs_to_fraction([]) is None
    assert ex.seconds_to_fraction([0.1, 0.5, 0.95, 1.0], [12.0, 15.0, 18.5, 21.0]) == 18.5


def _record(task, model, init, fraction, seed, iou, epochs=3, status=ex.OK, study="pretraining", field=None,
            dataset="synthetic_tem/au_np"):
    record = {"key": f"{study}|{task}|{dataset}|{model}|{init}|{fraction}|{seed}", "study": study, "task": task,
              "dataset": dataset, "model": model, "init": init, "weights": None if init == "random" else f"{model}_w",
              "fraction": fraction, "seed": seed, "status": status, "reason": "" if status == ex.OK else "no weights"}
    if status != ex.OK:
        return record
    metric = ex.CONVERGENCE_METRIC[task]
    curve = [iou * f for f in (0.5, 0.8, 0.95, 1.0)]
    record.update(
        test={"iou": iou, "dice": 2 * iou / (1 + iou), "psnr": 20 + 10 * iou, "ssim": iou},
        history={f"val_{metric}": curve, "seconds": [10.0, 12.0, 14.0, 16.0]},
        convergence={"epochs": epochs, "seconds": 10.0 + 2 * (epochs - 1)},
        train_seconds=16.0, receptive_field=field, parameters=1000, setup_seconds=2.0, test_seconds=1.0,
        test_examples=4, budget={"steps_per_epoch": 5, "patch_size": 64, "batch_size": 4},
    )
    return record


def test_aggregate_gives_mean_std_per_cell_and_keeps_unavailable_cells():
    records = [_record("segmentation", "unet_b3_p222", "pix2pix", 0.1, s, v) for s, v in enumerate([0.6, 0.7, 0.8])]
    records += [_record("segmentation", "unet_b3_p222", "random", 0.1, s, v, epochs=e)
                for s, (v, e) in enumerate([(0.5, 3), (0.5, 4)])]
    records += [_record("segmentation", "unet_b4_p2222", "pix2pix", 0.1, 0, None, status=ex.NOT_AVAILABLE)]
    rows = {(r["model"], r["init"]): r for r in ex.aggregate(records)}
    pix = rows[("unet_b3_p222", "pix2pix")]
    assert pix["n"] == 3 and pix["seeds"] == [0, 1, 2]
    assert pix["test"]["iou"]["mean"] == pytest.approx(0.7) and pix["test"]["iou"]["std"] == pytest.approx(0.1)
    assert rows[("unet_b3_p222", "random")]["convergence_epochs"] == {"mean": 3.5, "std": pytest.approx(0.7071, 1e-3),
                                                                      "n": 2}
    assert rows[("unet_b4_p2222", "pix2pix")]["status"] == ex.NOT_AVAILABLE
    assert "test" not in rows[("unet_b4_p2222", "pix2pix")]
    assert pix["curve_mean"] == pytest.approx([0.7 * f for f in (0.5, 0.8, 0.95, 1.0)])


# ----------------------------------------------------------------------------- grid


def _settings(**changes):
    budget = ex.Budget(epochs=2, steps_per_epoch=3, batch_size=2, patch_size=32)
    base = dict(name="test", models=("unet_b3_p222", "unet_b4_p2222"), inits=ex.INITS, fractions=(0.02, 1.0),
                seeds=(0, 1), task_data={"segmentation": ex.DataSpec("synthetic_tem/au_np"),
                                         "denoising": ex.DataSpec("synthetic_tem/atomic")},
                budget=budget, rf_models=("unet_b2_p22", "unet_b3_p224"),
                rf_data=(ex.rf_data_spec(0.25), ex.rf_data_spec(0.6)), rf_seeds=(0,), rf_budget=budget)
    base.update(changes)
    return ex.Settings(**base)


def test_grid_has_every_cell_identical_budgets_and_marks_missing_weights():
    weights = {("unet_b3_p222", "pix2pix"): "unet_pretrained"}
    cells = ex.experiment_grid(_settings(), weights=weights)
    pre = [c for c in cells if c.study == "pretraining"]
    assert len(pre) == 2 * 2 * 2 * 3 * 2  # tasks x fractions x models x inits x seeds
    assert len(cells) - len(pre) == 2 * 2 * 1  # rf: pixel sizes x models x seeds
    assert len({c.key for c in cells}) == len(cells)
    for group in {c.group for c in cells}:
        assert len({c.budget for c in cells if c.group == group}) == 1
    available = {(c.model, c.init) for c in pre if c.available}
    assert available == {("unet_b3_p222", "pix2pix"), ("unet_b3_p222", "random"), ("unet_b4_p2222", "random")}
    missing = next(c for c in pre if c.model == "unet_b3_p222" and c.init == "autoencoder")
    assert not missing.available and missing.reason == "no shipped autoencoder weights for unet_b3_p222"
    assert all(c.weights == "unet_pretrained" for c in pre if c.init == "pix2pix" and c.available)
    record = ex.cell_record(missing)
    assert record["status"] == ex.NOT_AVAILABLE and ex.run_cell(missing) == record  # never run, never faked


def test_check_budgets_refuses_unequal_budgets_in_a_group():
    cells = ex.experiment_grid(_settings(), weights={})
    other = ex.Cell(**{**cells[0].__dict__, "seed": 7, "budget": ex.Budget(3, 3, 2, 32)})
    with pytest.raises(BadInputError, match="different budgets"):
        ex.check_budgets(cells + [other])


def test_shipped_weights_reads_the_method_from_the_card_or_name():
    entries = {
        "a": {"name": "a", "architecture": "unet_b3_p222", "card": {"method": {"name": "pix2pix"}}},
        "b": {"name": "b", "architecture": "unet_b3_p222", "aliases": ["unet_b3_p222_autoencoder"]},
        "c": {"name": "c", "architecture": "hrnet_w18_small", "card": {"method": "pix2pix"}},
        "d": {"name": "d", "architecture": "unet_b2_p22"},  # no method known: not used
    }
    assert ex.shipped_weights(entries) == {("unet_b3_p222", "pix2pix"): "a", ("unet_b3_p222", "autoencoder"): "b",
                                           ("hrnet_w18_small", "pix2pix"): "c"}


def test_customize_and_task_datasets():
    settings = ex.customize(_settings(), tasks=["segmentation"], seeds=3,
                            task_data=ex.parse_task_data(["segmentation=au_np"], _settings().task_data))
    assert list(settings.task_data) == ["segmentation"] and settings.task_data["segmentation"].name == "au_np"
    assert settings.seeds == (0, 1, 2)
    with pytest.raises(BadInputError, match="TASK=DATASET"):
        ex.parse_task_data(["segmentation"])
    with pytest.raises(BadInputError, match="unknown task"):
        ex.parse_task_data(["segmentaton=au_np"])


# ----------------------------------------------------------------------------- the results page


def _payload(records, settings=None):
    return {"title": "t", "command": "python benchmarks/pretraining_effect.py --quick",
            "settings": (settings or _settings()).to_json(), "records": records, "wall_seconds": 600.0,
            "machine": {"date": "2026-01-01", "cpus": 2, "gpus": [], "tensorflow": "2.x"}, "json_name": "runs.json"}


def _synthetic_records():
    rng = np.random.default_rng(0)
    records = []
    for task in ("segmentation", "denoising"):
        for fraction in (0.02, 1.0):
            for model, init in (("unet_b3_p222", "pix2pix"), ("unet_b3_p222", "random"), ("unet_b4_p2222", "random")):
                for seed in (0, 1):
                    records.append(_record(task, model, init, fraction, seed, float(rng.uniform(0.3, 0.9)),
                                           epochs=int(rng.integers(1, 5))))
            records.append(_record(task, "unet_b4_p2222", "pix2pix", fraction, 0, None, status=ex.NOT_AVAILABLE))
    for dataset in ("au_np at 0.25 Å/px", "au_np at 0.6 Å/px"):
        for model, field in (("unet_b2_p22", 30), ("unet_b3_p224", 120)):
            records.append(_record("segmentation", model, "random", 1.0, 0, float(rng.uniform(0.3, 0.9)),
                                   study="receptive_field", field=field, dataset=dataset))
    return records


def test_results_page_numbers_all_come_from_the_runs(tmp_path):
    records = _synthetic_records()
    payload = _payload(records)
    page, paths = ex.write_results(payload, str(tmp_path / "results.md"), str(tmp_path / "img"))
    for path in paths.values():
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(paths) == {"fraction_segmentation", "curves_segmentation", "fraction_denoising", "curves_denoising",
                          "receptive_field"}
    # every "mean ± std (n=k)" in the page is the mean and sample std of the runs' numbers
    expected = {}
    for r in records:
        if r["status"] == ex.OK:
            for metric, value in r["test"].items():
                key = (r["study"], r["task"], r["dataset"], r["model"], r["init"], r["fraction"], metric)
                expected.setdefault(key, []).append(value)
    allowed = set()
    for (*_, metric), values in expected.items():
        decimals = ex.METRIC_DECIMALS[metric]
        text = f"{np.mean(values):.{decimals}f}"
        if len(values) > 1:
            text += f" ± {np.std(values, ddof=1):.{decimals}f}"
        allowed.add(f"{text} (n={len(values)})")
    found = re.findall(r"\d+\.\d+(?: ± \d+\.\d+)? \(n=\d+\)", page)
    assert len(found) == 2 * 2 * 3 * 2 + 2 * 2  # tasks x metrics x rows x fractions + rf table
    assert set(found) <= allowed
    assert page.count("not available: no weights") == 2 * 2 * 2  # tasks x metrics x fractions
    # the findings quote only table means
    means = {f"{np.mean(v):.{ex.METRIC_DECIMALS[k[-1]]}f}" for k, v in expected.items()}
    section = page.split("## What the numbers say")[1]
    for line in section.splitlines():
        if "gives test" in line or "highest mean" in line:
            numbers = re.findall(r"\d+\.\d{2,3}\b", line.split(": ", 1)[1])  # after the dataset name
            assert numbers and set(numbers) <= means, line
    assert "Seeds: 0, 1" in page and "2 epochs x 3 steps, batch 2, 32 px" in page


def test_findings_say_when_pretraining_does_not_help():
    records = [_record("segmentation", "unet_b3_p222", "pix2pix", 0.1, s, v) for s, v in enumerate([0.50, 0.52])]
    records += [_record("segmentation", "unet_b3_p222", "random", 0.1, s, v) for s, v in enumerate([0.70, 0.72])]
    text = "\n".join(ex.findings(ex.aggregate(records)))
    assert "pix2pix init gives test iou lower than random init (0.510 vs 0.710)" in text
    records = [_record("segmentation", "unet_b3_p222", "pix2pix", 0.1, s, v) for s, v in enumerate([0.5, 0.7])]
    records += [_record("segmentation", "unet_b3_p222", "random", 0.1, s, v) for s, v in enumerate([0.55, 0.6])]
    assert "within the seed spread of random init" in "\n".join(ex.findings(ex.aggregate(records)))


def test_full_grid_estimate_is_labelled_an_estimate():
    payload = _payload(_synthetic_records())
    payload["settings"]["name"] = "quick"
    text = ex.full_grid_text(payload)
    assert "ESTIMATE" in text and "python benchmarks/pretraining_effect.py" in text
    seconds, notes = ex.estimate_seconds(ex.FULL, payload["records"])
    assert seconds > 0 and any("hrnet_w18_small_skip: not measured" in n for n in notes)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    """A 'pix2pix-pretrained' unet_b2_p22 generator file (random weights, a card saying pix2pix)."""
    from temzoo.zoo.cards import make_card

    model = temzoo.build("unet_b2_p22")
    path = tmp_path_factory.mktemp("gen") / "generator.keras"
    export_model(model, path, make_card(model, name="tiny_pix2pix", architecture="unet_b2_p22",
                                        method={"name": "pix2pix"}))
    return str(path)


def test_tiny_experiment_end_to_end(tmp_path, tiny_generator):
    data = ex.DataSpec("synthetic_tem/au_np", TINY_AU_NP)
    budget = ex.Budget(epochs=2, steps_per_epoch=1, batch_size=2, patch_size=32, validation_images=1, test_images=2)
    settings = ex.Settings(name="tiny", models=("unet_b2_p22",), inits=("pix2pix", "autoencoder", "random"),
                           fractions=(0.25,), seeds=(0,), task_data={"segmentation": data}, budget=budget)
    weights = {("unet_b2_p22", "pix2pix"): tiny_generator}
    json_path = tmp_path / "runs.json"
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("temzoo")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        payload = ex.run_experiment(settings, json_path=str(json_path), page_path=str(tmp_path / "results.md"),
                                    img_dir=str(tmp_path / "img"), data_dir=str(tmp_path / "tfds"), weights=weights,
                                    keep_going=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
    # progress goes through logging (the CLI shows it unless --quiet)
    assert "3 cells (2 to run, 1 not available)" in messages[0] and any(m.startswith("[1/3]") for m in messages)
    by_init = {r["init"]: r for r in payload["records"]}
    assert by_init["autoencoder"]["status"] == ex.NOT_AVAILABLE
    for init in ("pix2pix", "random"):
        record = by_init[init]
        assert record["status"] == ex.OK
        assert record["train_examples"] == 2 and record["train_split_examples"] == 8  # 25 % of 8
        assert len(record["history"]["val_iou"]) == 2 and len(record["history"]["seconds"]) == 2
        assert 0 < record["history"]["seconds"][0] < record["history"]["seconds"][1]
        assert record["test_examples"] == 2 and 0 <= record["test"]["iou"] <= 1 and 0 <= record["test"]["dice"] <= 1
        assert record["receptive_field"] > 1 and record["parameters"] > 0
    assert by_init["pix2pix"]["weights"] == tiny_generator
    assert json.loads(json_path.read_text())["records"] == json.loads(json.dumps(payload["records"]))
    page = (tmp_path / "results.md").read_text()
    assert "not available: no shipped autoencoder weights for unet_b2_p22" in page
    assert (tmp_path / "img" / "pretraining_effect_tiny_fraction_segmentation.png").is_file()
    # resume: nothing re-runs, same records
    again = ex.run_experiment(settings, json_path=str(json_path), data_dir=str(tmp_path / "tfds"), weights=weights,
                              resume=True)
    assert again["records"] == json.loads(json.dumps(payload["records"]))
    # re-shipped weights (same path, new file): their cells re-run on resume, the others are reused
    model = temzoo.load(tiny_generator)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    export_model(model, tiny_generator, temzoo.card(model))
    third = ex.run_experiment(settings, json_path=str(json_path), data_dir=str(tmp_path / "tfds"), weights=weights,
                              resume=True)
    before = {r["init"]: r for r in again["records"]}
    after = {r["init"]: r for r in third["records"]}
    assert after["random"] == before["random"]
    assert after["pix2pix"]["weights_sha256"] != before["pix2pix"]["weights_sha256"]
    assert after["pix2pix"]["weights_sha256"] == sha256_file(tiny_generator)
    assert after["pix2pix"]["history"] != before["pix2pix"]["history"]


def test_cli_experiment_help_and_bad_dataset_option():
    from temzoo_cli.main import cli

    result = CliRunner().invoke(cli, ["experiment", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output and "TASK=NAME" in result.output
    result = CliRunner().invoke(cli, ["experiment", "--quick", "--dataset", "segmentation"])
    assert result.exit_code != 0 and "TASK=DATASET" in result.output
