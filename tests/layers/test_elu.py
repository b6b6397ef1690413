import numpy as np
import pytest

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def elu(alpha=1.0, dtype=np.float64):
    return make_layer("ELU", dtype, "elu_param", alpha=alpha)


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    return np.where(np.abs(x) < 0.05, -0.5, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0, -0.7])
def test_forward_matches_numpy(dtype, alpha):
    x = away_from_zero((2, 3, 4, 5)).astype(dtype)
    _, top = run_layer(elu(alpha, dtype), x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(top[0].data, np.where(x64 > 0, x64, alpha * (np.exp(x64) - 1)),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("alpha", [1.0, 0.5, -0.7])
def test_gradient(alpha):
    layer = elu(alpha)
    bottom = make_blobs(away_from_zero((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("alpha", [1.0, 0.0, -0.7])
def test_in_place_equals_separate_top(alpha, gpu):
    check_in_place(lambda: elu(alpha), away_from_zero((3, 7)), gpu=gpu)


@pytest.mark.parametrize("alpha", [1.0, -0.7])
def test_gpu_path_on_numpy_equals_cpu_path(alpha):
    check_gpu_matches_cpu(lambda: elu(alpha), away_from_zero((4, 6)))


@pytest.mark.parametrize("case", ["elu", "elu_alpha0.5"])
def test_caffe_golden(case):
    run_case(case)
