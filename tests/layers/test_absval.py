import numpy as np
import pytest

from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, make_layer


def absval(dtype=np.float64):
    return make_layer("AbsVal", dtype)


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, -0.5, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(dtype):
    x = away_from_zero((2, 3, 4, 5)).astype(dtype)
    _, top = run_layer(absval(dtype), x)
    np.testing.assert_array_equal(top[0].data, np.abs(x))


def test_gradient():
    layer = absval()
    bottom = make_blobs(away_from_zero((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_at_zero_is_zero():
    layer = absval()
    bottom = make_blobs(np.array([-2.0, 0.0, 3.0]))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 5.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [-5.0, 0.0, 5.0])


def test_gpu_path_on_numpy_equals_cpu_path():
    x = away_from_zero((4, 6))
    x[0, 0] = 0.0
    check_gpu_matches_cpu(absval, x)


def test_caffe_golden():
    run_case("absval")


def test_in_place_is_an_error_as_in_caffe():
    bottom = make_blobs(np.ones((2, 3)))
    with pytest.raises(NetError, match=r"'absval'.*in place"):
        setup_layer(absval(), bottom, top=bottom)
