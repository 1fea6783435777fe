"""benchmarks/pretraining.py's verdict: rows in another precision are named apart, never counted for the goal."""

import importlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    module = importlib.import_module("pretraining")
    yield module
    sys.modules.pop("pretraining", None)
    sys.modules.pop("_report", None)


def _payload(bf16_rate):
    rates = {
        "tutorial loop (tf.function)": [10.0, 10.0, 10.0],
        "Pix2Pix.fit": [11.0, 11.0, 11.0],
        "Pix2Pix.fit, precision mixed_bfloat16": [bf16_rate] * 3,
        "Autoencoder.fit": [30.0, 30.0, 30.0],
    }
    methods = {name: ("autoencoder" if name.startswith("Autoencoder") else "pix2pix") for name in rates}
    return {"rates": rates, "cpu_rates": rates, "methods": methods}


def test_a_faster_bfloat16_row_does_not_meet_the_float32_goal(bench):
    rows, summary, met = bench.summarize(_payload(bf16_rate=15.0))
    assert not met
    assert "Best Pix2Pix configuration: Pix2Pix.fit, median 1.10x" in summary
    assert "Pix2Pix.fit, precision mixed_bfloat16, what `pretrain --precision auto` runs" in summary
    assert "1.50x the float32 tutorial loop" in summary
    bf16 = next(r for r in rows if "bfloat16" in r["configuration"])
    assert bf16["vs_tutorial"] == 1.5 and bf16["rounds_faster"] == "3/3"


def test_the_goal_is_met_by_the_float32_rows_alone(bench):
    payload = _payload(bf16_rate=9.0)
    payload["rates"]["Pix2Pix.fit"] = [13.0, 13.0, 13.0]
    _, summary, met = bench.summarize(payload)
    assert met
    assert "Goal >= 1.2x: met" in summary
    assert "0.90x the float32 tutorial loop" in summary
