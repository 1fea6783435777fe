"""Shared output for benchmark scripts: a JSON file and a section of docs/benchmarks.md.

Each script owns one section, delimited by HTML comments, and replaces only
that section, so the benchmarks can run in any order.
"""

import json
import os
import platform
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from temzoo.atomic import write_text  # noqa: E402

BENCHMARKS_MD = os.path.join(ROOT, "docs", "benchmarks.md")


def machine():
    """A short description of where the numbers were taken."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "gpus": [g.name for g in gpus],
        "tensorflow": tf.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown_table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else str(v)


def write_json(path, payload):
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_section(name, markdown):
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = open(BENCHMARKS_MD, encoding="utf-8").read() if os.path.exists(BENCHMARKS_MD) else "# Benchmarks\n\nNumbers measured by the scripts in `benchmarks/`; each section says where and when.\n"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    write_text(BENCHMARKS_MD, text)
