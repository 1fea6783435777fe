"""Wall time of ``temzoo-cli --help`` and of every sub-command's ``--help`` (goal: < 1 s).

Each page runs in a fresh process, ``--repeats`` times; the median is reported.
The commands are discovered by walking the click group.

    python benchmarks/cli_help.py [--repeats 3] [--json PATH]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from _report import add_docs_option, machine, markdown_table, write_json, write_section

GOAL_S = 1.0


def commands():
    import click
    from temzoo_cli.main import cli

    def walk(command, path):
        yield path
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), path + [name])

    return list(walk(cli, []))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    exe = shutil.which("temzoo-cli")
    prefix = [exe] if exe else [sys.executable, "-m", "temzoo_cli.main"]
    rows = []
    for path in commands():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(prefix + path + ["--help"], check=True, capture_output=True, env=dict(os.environ))
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append({"command": "temzoo-cli " + " ".join(path + ["--help"]), "median_s": round(median, 3),
                     "max_s": round(max(times), 3), "under_1s": "yes" if median < GOAL_S else "NO"})
    columns = ["command", "median_s", "max_s", "under_1s"]
    table = markdown_table(rows, columns)
    print(table)
    info = machine()
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    write_section(
        "cli_help",
        f"## CLI help pages\n\n`python benchmarks/cli_help.py --repeats {args.repeats}`: wall time of each "
        f"`--help` in a fresh process (goal < {GOAL_S:.0f} s). Measured {info['date']} on {info['platform']}, "
        f"{info['cpus']} CPUs, 1-min load average {loadavg:.1f} (shared machine).\n\n{table}\n",
        force=args.force_docs,
    )
    if args.json:
        write_json(args.json, {"machine": info, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
