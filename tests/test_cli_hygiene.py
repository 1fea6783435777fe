"""The CLI avoids click APIs the issue tracker flagged as deprecated (issue 15, item 17)."""

import ast
import pathlib

CLI = pathlib.Path(__file__).resolve().parents[1] / "cli"
DEPRECATED = {"get_text_stream", "get_binary_stream"}


def test_cli_does_not_call_deprecated_click_stream_helpers():
    calls = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in DEPRECATED:
                calls.append(f"{path.name}:{node.lineno} click.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "click":
                calls += [f"{path.name}:{node.lineno} from click import {a.name}" for a in node.names if a.name in DEPRECATED]
    assert calls == [], "use sys.stdout/sys.stderr (click.echo(err=True)) instead: " + ", ".join(calls)
    assert len(list(CLI.glob("*.py"))) >= 5  # the scan saw the commands
