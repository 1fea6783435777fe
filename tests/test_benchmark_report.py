"""benchmarks/_report.py: the load is recorded, and docs are not updated from a busy machine."""

import importlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def report(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    module = importlib.import_module("_report")
    monkeypatch.setattr(module, "BENCHMARKS_MD", str(tmp_path / "benchmarks.md"))
    yield module
    sys.modules.pop("_report", None)


def _state(module, monkeypatch, load_before, others_cores):
    monkeypatch.setattr(module, "LOAD_BEFORE", load_before)
    monkeypatch.setattr(module.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    started = module.time.monotonic() - 10.0
    monkeypatch.setattr(module, "_OTHERS_BEFORE", (started, {1: 0.0}))
    monkeypatch.setattr(module, "_others_cpu_seconds", lambda: {1: others_cores * 10.0})


def test_an_idle_machine_updates_the_docs_with_its_load(report, monkeypatch, capsys):
    _state(report, monkeypatch, (0.4, 0.3, 0.2), others_cores=0.05)
    assert report.write_section("x", "## X\n\n| a |") is True
    text = open(report.BENCHMARKS_MD).read()
    assert "<!-- begin x -->" in text and "1-minute load average 0.4 before" in text and "not comparable" not in text


def test_a_busy_machine_does_not_update_the_docs_unless_forced(report, monkeypatch, capsys):
    _state(report, monkeypatch, (3.5, 3.0, 2.0), others_cores=0.0)  # load above the 2 cores at the start
    assert report.write_section("x", "## X") is False
    assert not os.path.exists(report.BENCHMARKS_MD) and "NOT updated" in capsys.readouterr().err
    _state(report, monkeypatch, (0.1, 0.1, 0.1), others_cores=1.2)  # another job ran meanwhile
    assert report.load_report()["busy"] and report.write_section("x", "## X") is False
    assert report.write_section("x", "## X", force=True) is True
    assert "taken under load, not comparable" in open(report.BENCHMARKS_MD).read()


def test_other_processes_cpu_excludes_this_process(report):
    import psutil

    seconds = report._others_cpu_seconds()
    assert os.getpid() not in seconds and all(v >= 0 for v in seconds.values())
    assert psutil.Process().parent().pid in seconds or len(seconds) > 0


def test_memory_touch_rows_per_pause_and_its_json(report, tmp_path, monkeypatch, capsys):
    """benchmarks/memory_touch.py: one row per pause, each waited for, and the JSON records the rows."""
    import json

    module = importlib.import_module("memory_touch")
    waited = []
    before = module.set_numpy_huge_pages(True)
    rows = module.measure(1.0, pauses=(0.0, 0.5), repeats=2, sleep=waited.append)
    assert [(r["numpy_huge_pages"], r["pause_s"]) for r in rows] == [(True, 0.0), (True, 0.5), (False, 0.0), (False, 0.5)]
    assert waited == [0.0, 0.0, 0.5, 0.5] * 2
    for r in rows:
        assert r["min"] <= r["first_write_s_per_gib"] <= r["max"] and r["rewrite_s_per_gib"] > 0
        assert r["first_write_cpu_s_per_gib"] >= 0
    if before is not None:  # the setting is restored after the rows without huge pages
        assert module.set_numpy_huge_pages(before) is True
    assert module.transparent_huge_pages() in (None, "always", "madvise", "never")
    out = tmp_path / "touch.json"
    monkeypatch.setattr(module, "machine", lambda: {"platform": "p", "cpus": 2, "date": "d"})
    assert module.main(["--mib", "1", "--pauses", "0", "--repeats", "1", "--json", str(out), "--no-docs"]) == 0
    saved = json.loads(out.read_text())
    assert [r["pause_s"] for r in saved["rows"]] == [0.0, 0.0] and saved["rows"][0]["mib"] == 1.0
    assert isinstance(saved["machine"]["free_page_reporting"], bool)
    with pytest.raises(SystemExit):
        module.main(["--mib", "0", "--json", str(out), "--no-docs"])
    sys.modules.pop("memory_touch", None)


def test_predict_benchmark_rows_and_the_buffer_comparison(report, tmp_path, monkeypatch):
    """benchmarks/predict.py on a tiny image: a row per case with its untiled calls, and --compare-buffers' pairs."""
    import json

    module = importlib.import_module("predict")
    out = tmp_path / "predict.json"
    monkeypatch.setattr(module, "machine", lambda: {"platform": "p", "cpus": 2, "date": "d", "gpus": []})
    assert module.main(["--models", "unet_pretrained", "--sizes", "256", "--json", str(out), "--no-docs"]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["tiles"] == 1 and row["untiled_calls"] == min(row["tiles"], module.UNTILED_CALLS_MAX)
    assert len(row["overhead_rounds"]) == module.ROUNDS and row["overhead"] > -1 and row["peak_rss_gb"] > 0
    pairs = tmp_path / "buffers.json"
    assert module.main(["--compare-buffers", "--models", "unet_pretrained", "--sizes", "256", "--rounds", "2",
                        "--pause", "0", "--json", str(pairs)]) == 0
    (pair,) = json.loads(pairs.read_text())["rows"]
    assert [len(pair["times_s"][k]) for k in ("buffers", "np.zeros")] == [2, 2]
    assert pair["speedup"] > 0 and pair["rounds_faster"].endswith("/2")
    sys.modules.pop("predict", None)
