import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place


def relu(slope=0.0, dtype=np.float64):
    param = pb.LayerParameter(name="relu", type="ReLU")
    param.relu_param.negative_slope = slope
    return layer_class("ReLU")(param, pb.TRAIN, dtype)


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_forward_matches_numpy(dtype, slope):
    x = away_from_zero((2, 3, 4, 5)).astype(dtype)
    layer = relu(slope, dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, np.where(x > 0, x, slope * x), rtol=1e-6)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_gradient(slope):
    layer = relu(slope)
    bottom = make_blobs(away_from_zero((2, 3, 4, 5)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_in_place_equals_separate_top(slope):
    check_in_place(lambda: relu(slope), away_from_zero((3, 7)))


def test_gpu_path_on_numpy_equals_cpu_path():
    check_gpu_matches_cpu(lambda: relu(0.2), away_from_zero((4, 6)))


@pytest.mark.parametrize("case", ["relu", "relu_slope0.1"])
def test_caffe_golden(case):
    run_case(case)
