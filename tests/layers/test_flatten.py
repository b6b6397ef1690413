import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def flatten(axis=None, end_axis=None, dtype=np.float64):
    param = pb.LayerParameter(name="flat", type="Flatten")
    if axis is not None:
        param.flatten_param.axis = axis
    if end_axis is not None:
        param.flatten_param.end_axis = end_axis
    return layer_class("Flatten")(param, pb.TRAIN, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,end_axis,expected", [
    (None, None, (2, 60)), (0, None, (120,)), (2, None, (2, 3, 20)), (1, 2, (2, 12, 5)),
    (-3, -2, (2, 12, 5)), (-1, None, (2, 3, 4, 5)), (0, 0, (2, 3, 4, 5))])
def test_forward_matches_numpy(dtype, axis, end_axis, expected):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    layer = flatten(axis, end_axis, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].shape == expected
    np.testing.assert_array_equal(top[0].data, x.reshape(expected))


def test_top_is_a_view_of_the_bottom():
    layer = flatten()
    bottom = make_blobs(np.zeros((2, 3, 4)))
    top = setup_layer(layer, bottom)
    bottom[0].data[1, 2, 3] = 9
    top[0].diff[0, 5] = 4
    assert top[0].data[1, 11] == 9
    assert bottom[0].diff[0, 1, 1] == 4


def test_reshape_follows_a_new_bottom_array():
    layer = flatten()
    bottom = make_blobs(np.zeros((2, 3, 4)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(5, 2, 2)
    bottom[0].data[...] = 3
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (5, 4)
    np.testing.assert_array_equal(top[0].data, 3)


def test_gradient():
    layer = flatten(1, 2)
    bottom = make_blobs(np.random.default_rng(1).standard_normal((2, 3, 2, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_backward_copies_when_the_top_diff_is_its_own_array():
    layer = flatten()
    bottom = make_blobs(np.zeros((2, 3, 4)))
    top = setup_layer(layer, bottom)
    dy = np.arange(24.0).reshape(2, 12)
    top[0].diff = dy.copy()              # someone rebound it: no longer a view
    top[0].data = np.zeros((2, 12))
    bottom[0].data[...] = 1
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 1)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy.reshape(2, 3, 4))


def test_gpu_path_on_numpy_equals_cpu_path():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    cpu, gpu = flatten(), flatten()
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = rng.standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


@pytest.mark.parametrize("axis,end_axis", [(4, None), (None, -5), (2, 1)])
def test_bad_axes_name_the_layer(axis, end_axis):
    with pytest.raises(ShapeError, match="'flat'"):
        setup_layer(flatten(axis, end_axis), make_blobs(np.zeros((2, 3, 4, 5))))


def test_in_place_is_refused_naming_the_layer():
    bottom = make_blobs(np.zeros((2, 3)))
    with pytest.raises(NetError, match="'flat'"):
        setup_layer(flatten(), bottom, top=bottom)


def test_caffe_golden():
    run_case("flatten")
