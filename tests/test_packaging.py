"""The wheel holds what an install needs: every package, the CLI as temzoo_cli, data files.

The wheel is built with ``python -m build --wheel --no-isolation`` from a copy
of the checkout (tracked and untracked-but-not-ignored files), so the test
writes nothing into the repository and needs no network.
"""

import configparser
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _checkout_files():
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, check=True, capture_output=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is needed to list the checkout's files")
    return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]


def _package_dirs(top):
    """Dotted names of every folder under ``top`` with an __init__.py."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
        if "__init__.py" in filenames:
            found.append(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    return sorted(found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for rel in _checkout_files():
        os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(src, rel))
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = dist.glob("temzoo-*.whl")
    with zipfile.ZipFile(path) as zf:
        return zf.namelist(), {n: zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")}


def test_cli_is_installed_as_temzoo_cli(wheel):
    names, _ = wheel
    cli_modules = sorted(f for f in os.listdir(os.path.join(ROOT, "cli")) if f.endswith(".py"))
    assert cli_modules, "cli/ has no modules"
    for module in cli_modules:
        assert f"temzoo_cli/{module}" in names
    assert not any(n.startswith("cli/") for n in names), "a top-level cli/ package would clash with other projects"


def test_every_package_folder_is_listed_and_shipped(wheel):
    names, _ = wheel
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    listed = set(config["options"]["packages"].split())
    for top, installed_as in (("temzoo", "temzoo"), ("datasets_tfds", "temzoo_datasets")):
        for folder in _package_dirs(top):
            package = installed_as + folder[len(top):]
            assert package in listed, f"{folder} has an __init__.py but {package} is missing from setup.cfg's packages ="
            assert f"{package.replace('.', '/')}/__init__.py" in names, f"{package} is not in the wheel"


def test_no_generic_top_level_package_in_the_wheel(wheel):
    names, _ = wheel
    tops = {n.split("/")[0] for n in names if "/" in n and ".dist-info/" not in n}
    assert tops == {"temzoo", "temzoo_cli", "temzoo_datasets"}, tops
    assert "temzoo_datasets/synthetic_tem/synthetic_tem_dataset_builder.py" in names


def test_data_files_are_shipped(wheel):
    names, _ = wheel
    expected = []
    weights = os.path.join(ROOT, "temzoo", "weights")
    if os.path.isdir(weights):
        expected += [
            f"temzoo/weights/{f}" for f in os.listdir(weights)
            if os.path.isfile(os.path.join(weights, f)) and not f.startswith(".") and not f.endswith(".pyc")
        ]
    tracked = _checkout_files()
    expected += [
        f for f in tracked
        if f.startswith("datasets_tfds/")
        and ("/dummy_data/" in f or os.path.basename(f) in ("checksums.tsv", "CITATIONS.bib", "README.md"))
    ]
    expected = [f.replace("datasets_tfds/", "temzoo_datasets/", 1) for f in expected]
    expected.append("temzoo/models/architectures.json")
    missing = [f for f in expected if f.replace(os.sep, "/") not in names]
    assert not missing, f"data files missing from the wheel (setup.cfg [options.package_data]): {missing}"


def test_entry_point_is_declared(wheel):
    _, entry_points = wheel
    (text,) = entry_points.values()
    config = configparser.ConfigParser()
    config.read_string(text)
    assert config["console_scripts"]["temzoo-cli"] == "temzoo_cli.main:cli"
