import math

import numpy as np
import pytest

from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer

SETTINGS = [(-1.0, 1.0, 0.0), (2.0, 0.5, 0.1), (10.0, -0.3, 1.0), (math.e, 1.0, -2.0)]


def exp(base=-1.0, scale=1.0, shift=0.0, dtype=np.float64):
    return make_layer("Exp", dtype, "exp_param", base=base, scale=scale, shift=shift)


def inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("base, scale, shift", SETTINGS)
def test_forward_matches_numpy(dtype, base, scale, shift):
    x = inputs((2, 3, 4)).astype(dtype)
    _, top = run_layer(exp(base, scale, shift, dtype), x)
    b = math.e if base == -1 else base
    np.testing.assert_allclose(top[0].data, b ** (shift + scale * x.astype(np.float64)),
                               rtol=1e-6)


@pytest.mark.parametrize("base, scale, shift", SETTINGS)
def test_gradient(base, scale, shift):
    layer = exp(base, scale, shift)
    bottom = make_blobs(inputs((2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("gpu", [False, True])
def test_in_place_equals_separate_top(gpu):
    check_in_place(lambda: exp(2.0, 0.5, 0.1), inputs((3, 5)), gpu=gpu)


@pytest.mark.parametrize("base, scale, shift", SETTINGS)
def test_gpu_path_on_numpy_equals_cpu_path(base, scale, shift):
    check_gpu_matches_cpu(lambda: exp(base, scale, shift), inputs((4, 6)))


@pytest.mark.parametrize("case", ["exp", "exp_base2_s0.5_sh0.1"])
def test_caffe_golden(case):
    run_case(case)


@pytest.mark.parametrize("base", [0.0, -2.0])
def test_base_must_be_positive_or_minus_one(base):
    with pytest.raises(NetError, match=rf"'exp'.*base.*{base}"):
        setup_layer(exp(base), make_blobs(np.ones(3)))
