import numpy as np
import pytest

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def swish(beta=1.0, dtype=np.float64):
    return make_layer("Swish", dtype, "swish_param", beta=beta)


def inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [1.0, 0.5, -2.0])
def test_forward_matches_numpy(dtype, beta):
    x = inputs((2, 3, 4, 5)).astype(dtype)
    _, top = run_layer(swish(beta, dtype), x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(top[0].data, x64 / (1 + np.exp(-beta * x64)), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("beta", [1.0, 0.5, -2.0])
def test_gradient(beta):
    layer = swish(beta)
    bottom = make_blobs(inputs((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("gpu", [False, True])
def test_in_place_equals_separate_top(gpu):
    check_in_place(lambda: swish(1.5), inputs((3, 7)), gpu=gpu)


def test_gpu_path_on_numpy_equals_cpu_path():
    check_gpu_matches_cpu(lambda: swish(0.7), inputs((4, 6)))


def test_reshape_follows_the_bottom():
    layer = swish()
    bottom, top = run_layer(layer, inputs((2, 3)))
    bottom[0].reshape((4, 5))
    bottom[0].data[...] = inputs((4, 5))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    x = bottom[0].data
    np.testing.assert_allclose(top[0].data, x / (1 + np.exp(-x)), rtol=1e-12)


def test_caffe_golden():
    run_case("swish")
