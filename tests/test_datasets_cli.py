"""temzoo.datasets and ``temzoo-cli data``: list, build (tiny configs), load, manual-download errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from click.testing import CliRunner
from temzoo_cli.main import cli
from temzoo_datasets.synthetic_tem.synthetic_tem_dataset_builder import (
    SyntheticTem,
    SyntheticTemConfig,
)

from temzoo import data, datasets
from temzoo.errors import BadInputError, UnknownNameError

TINY = {"image_size": 32, "num_train": 4, "num_validation": 1, "num_test": 1}


class TinySyntheticTem(SyntheticTem, skip_registration=True):
    """synthetic_tem with tiny configs, so the CLI can build one in a test."""

    name = "tiny_synthetic"
    BUILDER_CONFIGS = [SyntheticTemConfig(name="au_np", **TINY), SyntheticTemConfig(name="atomic", **TINY)]


class NeedsFiles(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder that reads files downloaded by hand."""

    name = "needs_files"
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put scans/001.tif ... into <manual_dir>/scans/."

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"image": np.float32}))

    def _split_generators(self, dl_manager):
        scans = dl_manager.manual_dir / "scans"
        if not scans.exists():
            raise FileNotFoundError(f"{scans} is missing")
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield "0", {"image": np.float32(0)}


@pytest.fixture
def fake_registry(monkeypatch):
    real = datasets.builder_classes()
    monkeypatch.setattr(
        datasets, "builder_classes", lambda: {**real, "tiny_synthetic": TinySyntheticTem, "needs_files": NeedsFiles}
    )


def test_data_list_shows_every_builder(tmp_path):
    result = CliRunner().invoke(cli, ["data", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("synthetic_tem/au_np", "synthetic_tem/atomic", "synthetic_tem/unlabeled"):
        assert name in result.output
    rows = {r["name"]: r for r in datasets.list_datasets(data_dir=str(tmp_path))}
    assert rows["synthetic_tem/au_np"]["manual_download"] is False
    assert rows["synthetic_tem/au_np"]["prepared"] is False
    for other, cls in datasets.builder_classes().items():  # the real-data builders, where present
        if other != "synthetic_tem":
            assert any(n.partition("/")[0] == other for n in rows)
            assert any(r["manual_download"] for n, r in rows.items() if n.partition("/")[0] == other) == bool(
                cls.MANUAL_DOWNLOAD_INSTRUCTIONS)


def test_cli_build_tiny_synthetic_then_list_says_prepared(tmp_path, fake_registry):
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "build", "tiny_synthetic/au_np", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Prepared tiny_synthetic/au_np" in result.output
    listed = runner.invoke(cli, ["data", "list", "--data-dir", str(tmp_path)])
    line = next(row for row in listed.output.splitlines() if row.startswith("tiny_synthetic/au_np"))
    assert " yes " in line
    ds = datasets.load("tiny_synthetic/au_np", "train", data_dir=str(tmp_path))
    assert sum(1 for _ in ds) == 4
    assert ds.options().autotune.enabled is False  # see temzoo.datasets.without_autotune_thread


def test_cli_build_missing_manual_files_fails_with_instructions(tmp_path, fake_registry):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "README").write_text("not the scans")
    result = CliRunner().invoke(
        cli, ["data", "build", "needs_files", "--manual-dir", str(manual), "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code != 0
    assert "scans is missing" in result.output and "Put scans/001.tif" in result.output
    assert "temzoo-cli data build needs_files --manual-dir" in result.output
    assert not NeedsFiles(data_dir=str(tmp_path / "d")).is_prepared()
    # no manual dir at all: TFDS's own check, same clear error
    with pytest.raises(BadInputError, match="does not exist or is empty"):
        datasets.build_dataset("needs_files", data_dir=str(tmp_path / "d"), progress=False)


@pytest.mark.parametrize("name", ["temimagenet/denoise", "cem500k", "au_np"])
def test_real_builders_without_files_fail_clearly(tmp_path, name):
    assert name.partition("/")[0] in datasets.builder_classes(), f"{name} builder not registered in temzoo_datasets"
    result = CliRunner().invoke(cli, ["data", "build", name, "--data-dir", str(tmp_path), "--quiet"])
    assert result.exit_code != 0
    assert "What to do" in result.output
    with pytest.raises(BadInputError, match="temzoo-cli data build"):
        datasets.load(name, "train", data_dir=str(tmp_path))


def test_load_builds_generated_datasets_on_first_use(tmp_path):
    config = SyntheticTemConfig(name="atomic_loadtest", **TINY)
    ds = datasets.load("synthetic_tem/atomic", "train", data_dir=str(tmp_path), config=config)
    assert SyntheticTem(config=config, data_dir=str(tmp_path)).is_prepared()
    pairs = data.supervised_pairs(ds, task="atom_segmentation", patch_size=16, batch_size=2, repeat=False)
    image, mask = next(iter(pairs))
    assert image.shape == (2, 16, 16, 1) and mask.dtype.name == "int32"
    assert set(np.unique(mask.numpy())) <= {0, 1}
    with pytest.raises(BadInputError, match="no split 'tain'"):
        datasets.load("synthetic_tem/atomic", "tain", data_dir=str(tmp_path), config=config)


def test_unknown_dataset_names_suggest_close_matches(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean: synthetic_tem/au_np"):
        datasets.resolve("synthetic_tem/au_n")
    result = CliRunner().invoke(cli, ["data", "build", "synthetic_tem/atomc", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "synthetic_tem/atomic" in result.output


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMZOO_DATA_DIR", str(tmp_path))
    assert datasets.default_data_dir() == str(tmp_path)
    monkeypatch.delenv("TEMZOO_DATA_DIR")
    assert datasets.default_data_dir() == os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def test_data_help_does_not_import_tensorflow():
    code = (
        "import sys; from temzoo_cli.main import cli\n"
        "for args in (['data', '--help'], ['data', 'build', '--help'], ['data', 'list', '--help']):\n"
        "    try: cli(args)\n"
        "    except SystemExit: pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--manual-dir" in out.stdout
