"""Every single-layer case in ../shared/golden/caffe, against real Caffe.

Enumerated from the folder, so no case is forgotten: a case whose layer type
cyffe does not have yet is a strict xfail, which turns into a failure (XPASS)
the moment the layer lands, so its marker is removed with it.
"""
import pytest

from cyffe.layers.registry import layer_types
from helpers.golden import case_names, load_case, run_case

CASES = case_names()


def params():
    known = set(layer_types())
    for name in CASES:
        _, meta, _ = load_case(name)
        if meta["layer_type"] in known:
            yield pytest.param(name, id=name)
        else:
            yield pytest.param(name, id=name, marks=pytest.mark.xfail(
                strict=True, reason=f"layer type {meta['layer_type']} is not in cyffe yet"))


@pytest.mark.skipif(not CASES, reason="../shared/golden/caffe is absent: set CYFFE_SHARED")
@pytest.mark.parametrize("case", list(params()) if CASES else ["none"])
def test_golden_case(case):
    run_case(case)


def test_the_golden_folder_has_the_expected_cases():
    if not CASES:
        pytest.skip("../shared/golden/caffe is absent: set CYFFE_SHARED")
    assert len(CASES) == 110
