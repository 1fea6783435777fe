"""The quick subset of ``benchmarks/bad_inputs.py``: every bad input handled cleanly.

Run the whole set (CLI, pretraining; 240 cases, a few minutes) with
``python benchmarks/bad_inputs.py``.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import bad_inputs  # noqa: E402

FAST = [case for case in bad_inputs.all_cases() if case.fast]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return bad_inputs.Context(tmp_path_factory.mktemp("bad_inputs"))


def test_the_full_set_has_at_least_150_cases():
    assert len(bad_inputs.all_cases()) >= 150 and len(FAST) >= 60


@pytest.mark.parametrize("case", FAST, ids=[case.name for case in FAST])
def test_bad_input_is_handled_cleanly(context, case):
    context.fresh(case.name)
    clean, detail = case.run(context)
    assert clean, detail
