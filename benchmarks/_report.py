"""Shared output for benchmark scripts: a JSON file and a section of docs/benchmarks.md.

Each script owns one section, delimited by HTML comments, and replaces only
that section, so the benchmarks can run in any order.

Timings taken while other jobs share the cores measure the load, not temzoo.
The machine's load average is read when a script imports this module (before
its work) and again when it writes (after), and the CPU time that *other*
processes used in between is summed (psutil; the benchmark's own process tree is
excluded, since its own threads raise the load average after it). All of it
goes into the JSON and the section, and :func:`write_section` refuses to update
the docs when the machine was busy: a 1-minute load average above the number of
cores at the start, or other processes using more than :data:`OTHERS_BUSY_CORES`
cores on average during the run (``--force-docs`` in the scripts overrides, and
the section then says the numbers were taken under load).
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


def _loadavg():
    return tuple(round(v, 2) for v in os.getloadavg()) if hasattr(os, "getloadavg") else None


#: other processes using more cores than this, on average during a run, make the machine busy
OTHERS_BUSY_CORES = 0.25


def _others_cpu_seconds():
    """CPU seconds used so far by every process outside this one's tree: {pid: seconds}."""
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    own = {me.pid, *(child.pid for child in me.children(recursive=True))}
    seconds = {}
    for process in psutil.process_iter(["pid", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["pid"] not in own and times is not None:
            seconds[process.info["pid"]] = times.user + times.system
    return seconds


LOAD_BEFORE = _loadavg()  # when the benchmark script started (it imports this module first)
_OTHERS_BEFORE = (time.monotonic(), _others_cpu_seconds())


def load_report():
    """Load averages at the start and now, other processes' average cores in between, and whether busy."""
    after, cores = _loadavg(), os.cpu_count() or 1
    others_cores = None
    started, before = _OTHERS_BEFORE
    now = _others_cpu_seconds()
    if before is not None and now is not None and time.monotonic() > started:
        # processes that exited are not counted; new ones count with all their time
        used = sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())
        others_cores = round(max(used, 0.0) / (time.monotonic() - started), 2)
    busy = bool(
        (LOAD_BEFORE is not None and LOAD_BEFORE[0] > cores)
        or (others_cores is not None and others_cores > OTHERS_BUSY_CORES)
    )
    return {"cores": cores, "load_before": LOAD_BEFORE, "load_after": after,
            "other_processes_cores": others_cores, "busy": busy}


def add_docs_option(parser):
    """``--force-docs``: update docs/benchmarks.md even when the machine was busy."""
    parser.add_argument("--force-docs", action="store_true",
                        help="update docs/benchmarks.md even if other jobs loaded the machine (marked as such)")


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


def _describe(load):
    parts = [f"{load['cores']} cores"]
    if load["load_before"]:
        parts.append(f"1-minute load average {load['load_before'][0]} before and {load['load_after'][0]} after")
    if load["other_processes_cores"] is not None:
        parts.append(f"other processes used {load['other_processes_cores']} cores on average meanwhile")
    return "; ".join(parts)


def write_json(path, payload):
    """Write ``payload`` (with the :func:`load_report` added as ``"load"``) as JSON."""
    payload = {**payload, "load": load_report()}
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_section(name, markdown, force=False):
    """Replace (or append) the section ``name`` of docs/benchmarks.md, with the load averages.

    Returns False, writes nothing and says why on stderr when the machine was
    busy (see the module docstring), unless ``force``.
    """
    load = load_report()
    if load["busy"] and not force:
        print(
            f"docs/benchmarks.md section {name!r} NOT updated: {_describe(load)}, so the timings measure "
            "other jobs too. Re-run on an idle machine (or pass --force-docs).",
            file=sys.stderr,
        )
        return False
    note = _describe(load) + (": **taken under load, not comparable**." if load["busy"] else ".")
    markdown = markdown.strip() + "\n\n" + note
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = open(BENCHMARKS_MD, encoding="utf-8").read() if os.path.exists(BENCHMARKS_MD) else "# Benchmarks\n\nNumbers measured by the scripts in `benchmarks/`; each section says where and when.\n"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    write_text(BENCHMARKS_MD, text)
    return True
