"""Every single-layer case in ../shared/golden/caffe, against real Caffe.

Enumerated from the folder, so no case is forgotten: a case whose layer type
cyffe lacks fails here ("unknown layer type ...").
"""
import pytest

from helpers.golden import case_names, run_case

CASES = case_names()


@pytest.mark.skipif(not CASES, reason="../shared/golden/caffe is absent: set CYFFE_SHARED")
@pytest.mark.parametrize("case", CASES or ["none"])
def test_golden_case(case):
    run_case(case)


def test_the_golden_folder_has_the_expected_cases():
    if not CASES:
        pytest.skip("../shared/golden/caffe is absent: set CYFFE_SHARED")
    assert len(CASES) == 110
