"""What the first write to new memory costs on this machine, and how soon freed memory costs it again.

Some virtual machines hand memory that a process frees back to their host after a few seconds
(virtio-balloon *free page reporting*, as in Firecracker). The next array written there pays the host's
page faults again, which can be far slower than the guest kernel zeroing a page. Every timing that
allocates large arrays after a pause carries that cost on such a machine: ``temzoo.predict``'s output
(one float32 plane per output channel, 256 MiB per channel at 8192 x 8192) is allocated anew on each call,
where the untiled call it is compared with in ``benchmarks/predict.py`` writes nothing that large outside
TensorFlow. This script measures the cost, so the wall-clock overheads there can be read against it:

    python benchmarks/memory_touch.py                 # 256 MiB, pauses 0 1 2 4 8 s, 3 repeats
    python benchmarks/memory_touch.py --quick         # 32 MiB, pauses 0 and 4 s, 1 repeat

Each row: write ``--mib`` MiB once (so the memory has been used), free it, wait ``pause_s``, then time
allocating and writing ``--mib`` MiB again (``first_write_s_per_gib``, and its process CPU seconds
``first_write_cpu_s_per_gib``) and writing the same array a second time (``rewrite_s_per_gib``: memory the process
holds). Medians, with min and max, over ``--repeats``. Each pause is measured with NumPy's huge-page advice on and off
(``numpy_huge_pages``: NumPy asks Linux for 2 MiB transparent huge pages for arrays of 4 MiB or more unless
``NUMPY_MADVISE_HUGEPAGE=0``; it matters where the kernel's setting is ``madvise``, recorded as ``thp``).
"""

import argparse
import os
import sys
import time

import numpy as np
from _report import add_docs_option, machine, markdown_table, write_json, write_section

PAUSES = (0.0, 1.0, 2.0, 4.0, 8.0)
RESULTS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "memory_touch.json")


def free_page_reporting():
    """True where the kernel reports freed pages to a hypervisor (its ``page_reporting`` module is loaded)."""
    return os.path.isdir("/sys/module/page_reporting")


def transparent_huge_pages():
    """The kernel's transparent huge page mode (``always``, ``madvise`` or ``never``), or None where unknown."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return None
    chosen = [word[1:-1] for word in text.split() if word.startswith("[")]
    return chosen[0] if chosen else None


def set_numpy_huge_pages(on):
    """Turn NumPy's huge-page advice for new arrays on or off; returns the previous setting (None: no such switch)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    return None if setter is None else bool(setter(bool(on)))


def write_seconds(nbytes):
    """``(first, first_cpu, again)``: seconds (wall, then process CPU) to allocate and write ``nbytes`` bytes, then
    wall seconds to write them once more."""
    start, cpu = time.perf_counter(), time.process_time()
    block = np.empty(nbytes, np.uint8)
    block.fill(1)
    first, first_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    block.fill(2)
    return first, first_cpu, time.perf_counter() - start


def measure(mib, pauses=PAUSES, repeats=3, sleep=time.sleep, huge_pages=(True, False)):
    """One row per pause and huge-page setting: the first write's and a rewrite's seconds per GiB after the memory
    was freed that long."""
    nbytes = int(mib * 2**20)
    rows = []
    for huge in huge_pages:
        before = set_numpy_huge_pages(huge)
        try:
            for pause in pauses:
                rows.append(_row(nbytes, mib, pause, repeats, sleep, huge))
        finally:
            if before is not None:
                set_numpy_huge_pages(before)
    return rows


def _row(nbytes, mib, pause, repeats, sleep, huge):
    firsts, cpus, agains = [], [], []
    for _ in range(repeats):
        write_seconds(nbytes)  # the process has used this much memory and freed it again
        sleep(pause)
        first, first_cpu, again = write_seconds(nbytes)
        firsts.append(first * 2**30 / nbytes)
        cpus.append(first_cpu * 2**30 / nbytes)
        agains.append(again * 2**30 / nbytes)
    return {"numpy_huge_pages": huge, "pause_s": pause, "mib": mib, "repeats": repeats,
            "first_write_s_per_gib": round(float(np.median(firsts)), 3),
            "min": round(min(firsts), 3), "max": round(max(firsts), 3),
            "first_write_cpu_s_per_gib": round(float(np.median(cpus)), 3),
            "rewrite_s_per_gib": round(float(np.median(agains)), 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_docs_option(parser)
    parser.add_argument("--mib", type=float, default=256.0, help="array size in MiB")
    parser.add_argument("--pauses", default=",".join(f"{p:g}" for p in PAUSES), help="comma-separated seconds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="32 MiB, pauses 0 and 4 s, 1 repeat: a smoke run")
    parser.add_argument("--json", default=RESULTS_JSON)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.mib <= 0 or args.repeats < 1:
        parser.error("--mib must be positive and --repeats at least 1")
    mib, repeats = (32.0, 1) if args.quick else (args.mib, args.repeats)
    pauses = (0.0, 4.0) if args.quick else tuple(float(p) for p in args.pauses.split(","))
    rows = measure(mib, pauses, repeats)
    columns = ["numpy_huge_pages", "pause_s", "mib", "repeats", "first_write_s_per_gib", "min", "max",
               "first_write_cpu_s_per_gib", "rewrite_s_per_gib"]
    table = markdown_table(rows, columns)
    print(table)
    info = {**machine(), "free_page_reporting": free_page_reporting(), "thp": transparent_huge_pages()}
    write_json(args.json, {"machine": info, "args": vars(args), "rows": rows})
    if not args.no_docs:
        command = "python benchmarks/memory_touch.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_section(
            "memory_touch",
            "## First writes to memory (`benchmarks/memory_touch.py`)\n\n"
            f"`{command.strip()}` on {info['platform']}, {info['cpus']} CPUs, {info['date']}; the kernel's free "
            f"page reporting is {'on' if info['free_page_reporting'] else 'off'}, transparent huge pages "
            f"`{info['thp']}`. Each row: {mib:g} MiB written "
            "and freed, a pause, then the seconds per GiB to allocate and write that much again "
            "(`first_write_s_per_gib`, median, min, max of the repeats; `first_write_cpu_s_per_gib`: the process's "
            "CPU seconds for it) and to write it once more (`rewrite_s_per_gib`), with NumPy's huge-page advice "
            "on and off (`numpy_huge_pages`; `NUMPY_MADVISE_HUGEPAGE=0` turns it off).\n\n" + table + "\n",
            force=args.force_docs,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
