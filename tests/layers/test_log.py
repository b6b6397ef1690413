import math

import numpy as np
import pytest

from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer

SETTINGS = [(-1.0, 1.0, 0.0), (10.0, 2.0, 0.5), (2.0, -0.5, 3.0), (0.5, 1.0, 0.1)]


def log(base=-1.0, scale=1.0, shift=0.0, dtype=np.float64):
    return make_layer("Log", dtype, "log_param", base=base, scale=scale, shift=shift)


def positive_argument(shape, scale, shift, seed=0):
    """Inputs whose shift + scale * x lies in [0.2, 3]."""
    return (np.random.default_rng(seed).uniform(0.2, 3.0, shape) - shift) / scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("base, scale, shift", SETTINGS)
def test_forward_matches_numpy(dtype, base, scale, shift):
    x = positive_argument((2, 3, 4), scale, shift).astype(dtype)
    _, top = run_layer(log(base, scale, shift, dtype), x)
    b = math.e if base == -1 else base
    expected = np.log(shift + scale * x.astype(np.float64)) / math.log(b)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("base, scale, shift", SETTINGS)
def test_gradient(base, scale, shift):
    layer = log(base, scale, shift)
    bottom = make_blobs(positive_argument((2, 3, 2), scale, shift))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("gpu", [False, True])
def test_in_place_equals_separate_top(gpu):
    check_in_place(lambda: log(10.0, 2.0, 0.5), positive_argument((3, 5), 2.0, 0.5), gpu=gpu)


@pytest.mark.parametrize("base, scale, shift", SETTINGS)
def test_gpu_path_on_numpy_equals_cpu_path(base, scale, shift):
    check_gpu_matches_cpu(lambda: log(base, scale, shift),
                          positive_argument((4, 6), scale, shift))


@pytest.mark.parametrize("case", ["log", "log_base10_s2_sh0.5"])
def test_caffe_golden(case):
    run_case(case)


@pytest.mark.parametrize("base", [0.0, -2.0, 1.0])
def test_base_must_be_positive_not_one_or_minus_one(base):
    with pytest.raises(NetError, match=rf"'log'.*base.*{base}"):
        setup_layer(log(base), make_blobs(np.ones(3)))
