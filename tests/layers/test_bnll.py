import numpy as np
import pytest

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def bnll(dtype=np.float64):
    return make_layer("BNLL", dtype)


def inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(dtype):
    x = inputs((2, 3, 4, 5)).astype(dtype)
    _, top = run_layer(bnll(dtype), x)
    np.testing.assert_allclose(top[0].data, np.logaddexp(0, x.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_stay_finite(dtype):
    x = np.array([-1000.0, -60.0, 0.0, 60.0, 1000.0], dtype)
    layer = bnll(dtype)
    bottom, top = run_layer(layer, x)
    np.testing.assert_allclose(top[0].data, np.logaddexp(0, x.astype(np.float64)), rtol=1e-6)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.exp(-np.logaddexp(0, -x.astype(np.float64))),
                               rtol=1e-6, atol=1e-30)


def test_gradient():
    layer = bnll()
    bottom = make_blobs(inputs((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("gpu", [False, True])
def test_in_place_equals_separate_top(gpu):
    check_in_place(bnll, inputs((3, 7)), gpu=gpu)


def test_gpu_path_on_numpy_equals_cpu_path():
    check_gpu_matches_cpu(bnll, inputs((4, 6)))


def test_caffe_golden():
    run_case("bnll")
