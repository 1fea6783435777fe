"""benchmarks/adapt.py's report: issue 17's clauses counted from synthetic records (no TensorFlow, no micrographs)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import adapt as bench  # noqa: E402


def record(image, dose, run, psnr, curve=()):
    return {"image": image, "dose": dose, "run": run, "psnr": psnr, "psnr_noisy": 10.0, "crop": 256,
            "curve": [{"step": s, "psnr": p} for s, p in curve]}


def test_goal_check_counts_each_clause_over_the_pairs_that_have_its_runs():
    records = [
        # a: +1.5 over shipped, +2 over the peer, passes the peer's final (21) at step 25 <= 250 / 5
        record("a", 2.0, "shipped", 21.5), record("a", 2.0, "peer_n2v", 21.0, [(125, 20.0), (250, 21.0)]),
        record("a", 2.0, "adapt_pretrained", 23.0, [(25, 21.2), (50, 22.0), (250, 23.0)]),
        # b: +0.5 over shipped, +0.8 over the peer, passes the peer's final only at step 100 (> 50)
        record("b", 2.0, "shipped", 22.0), record("b", 2.0, "peer_n2v", 21.7, [(250, 21.7)]),
        record("b", 2.0, "adapt_pretrained", 22.5, [(25, 21.0), (50, 21.5), (100, 22.0), (250, 22.5)]),
        # c: no peer; d: adapted without a shipped record (counted nowhere for clause 1)
        record("c", 2.0, "shipped", 20.0), record("c", 2.0, "adapt_pretrained", 21.0, [(50, 20.9), (250, 21.0)]),
        record("d", 2.0, "adapt_pretrained", 30.0, [(250, 30.0)]),
        record("a", 5.0, "shipped", 25.0), record("a", 5.0, "adapt_pretrained", 25.9, [(50, 25.5), (250, 25.9)]),
    ]
    dose2, dose5 = bench.goal_check({"records": records})
    assert dose2["pairs"] == 3 and dose2["pairs >= +1 dB vs shipped"] == "2 of 3"
    assert dose2["gain vs shipped, mean (min..max)"] == "+1.00 (+0.50..+1.50)"
    assert dose2["pairs with the peer"] == 2 and dose2["pairs >= +1 dB vs peer"] == "1 of 2"
    assert dose2["pairs reaching the peer's final PSNR within 1/5 of its steps"] == "1 of 2"
    assert dose5["pairs"] == 1 and dose5["pairs >= +1 dB vs shipped"] == "0 of 1" and dose5["pairs with the peer"] == 0


def test_per_image_rows_give_the_psnr_at_a_fifth_of_the_budget():
    records = [record("a.tif", 2.0, "shipped", 21.5),
               record("a.tif", 2.0, "adapt_pretrained", 23.0, [(25, 21.2), (50, 22.0), (250, 23.0)]),
               record("b.tif", 2.0, "shipped", 21.5),
               record("b.tif", 2.0, "adapt_pretrained", 22.0, [(25, 21.2), (250, 22.0)])]  # no row at step 50
    rows = bench.per_image({"records": records})
    assert rows[0][bench.AT_FIFTH] == 22.0 and bench.AT_FIFTH not in rows[1]
    assert bench.means(rows)[0][bench.AT_FIFTH] == "22.00 (1)"
