"""``temzoo-cli --help`` and every sub-command's ``--help`` answer without TensorFlow.

The commands are discovered by walking the click group, so commands added
later are covered. The check runs in a fresh interpreter (this test process
has TensorFlow loaded already, see conftest.py). Its speed is measured by
benchmarks/cli_help.py, not asserted here.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "tensorflow_datasets")

SCRIPT = r"""
import json, sys
import click
from click.testing import CliRunner
from temzoo_cli.main import cli

def walk(command, path):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            yield from walk(command.get_command(ctx, name), path + [name])

runner = CliRunner()
results = []
for path, command in walk(cli, []):
    result = runner.invoke(cli, path + ["--help"])
    results.append({"path": path, "exit_code": result.exit_code, "output": result.output,
                    "help": command.help or command.short_help or "",
                    "exception": repr(result.exception) if result.exception else None})
print(json.dumps({"results": results, "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


@pytest.fixture(scope="module")
def help_pages():
    code = f"HEAVY = {HEAVY!r}\n" + SCRIPT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_help_page_answers(help_pages):
    results = help_pages["results"]
    paths = [" ".join(r["path"]) for r in results]
    assert "" in paths and "models" in paths and "models list" in paths, paths
    for r in results:
        name = "temzoo-cli " + " ".join(r["path"])
        assert r["exit_code"] == 0, f"{name} --help exited {r['exit_code']}: {r['exception']}\n{r['output']}"
        assert r["output"].startswith("Usage:"), name
        assert r["help"].strip(), f"{name} has no help text (docstring)"


def test_help_does_not_import_tensorflow_or_keras(help_pages):
    assert help_pages["loaded"] == [], f"--help imported {help_pages['loaded']}; import them inside commands"


def test_installed_entry_point_answers():
    exe = shutil.which("temzoo-cli")
    assert exe is not None, "the temzoo-cli entry point is not on PATH: install the project (pip install -e .)"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert "models" in out.stdout
