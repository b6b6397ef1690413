import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place


def sigmoid(dtype=np.float64):
    return layer_class("Sigmoid")(pb.LayerParameter(name="sig", type="Sigmoid"), pb.TRAIN, dtype)


def inputs(shape=(2, 3, 4, 5), seed=0):
    return 2 * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(dtype):
    x = inputs().astype(dtype)
    layer = sigmoid(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_extreme_inputs_saturate_without_nan():
    layer = sigmoid()
    bottom = make_blobs(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert np.isfinite(top[0].data).all()
    np.testing.assert_allclose(top[0].data, [0, 0, 0.5, 1, 1], atol=1e-15)


def test_gradient():
    layer = sigmoid()
    bottom = make_blobs(inputs((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_in_place_equals_separate_top():
    check_in_place(lambda: sigmoid(), inputs((3, 7)))


def test_gpu_path_on_numpy_equals_cpu_path():
    check_gpu_matches_cpu(lambda: sigmoid(), inputs((4, 6)))


def test_caffe_golden():
    run_case("sigmoid")


def test_two_bottoms_is_an_error():
    with pytest.raises(NetError, match="'sig'.*1 bottom"):
        setup_layer(sigmoid(), make_blobs(np.ones(3), np.ones(3)))
