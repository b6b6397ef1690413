import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def reshaper(dims, axis=None, num_axes=None, dtype=np.float64):
    param = pb.LayerParameter(name="rs", type="Reshape")
    param.reshape_param.shape.dim.extend(dims)
    if axis is not None:
        param.reshape_param.axis = axis
    if num_axes is not None:
        param.reshape_param.num_axes = num_axes
    return layer_class("Reshape")(param, pb.TRAIN, dtype)


def numpy_reshape(shape, dims, axis=0, num_axes=-1):
    """An independent statement of Caffe's rule, for the shapes in the tests."""
    start = axis if axis >= 0 else len(shape) + axis + 1
    end = len(shape) if num_axes == -1 else start + num_axes
    new = [shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    return tuple(np.empty(shape).reshape(shape[:start] + tuple(new) + shape[end:]).shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims,axis,num_axes,expected", [
    ((0, -1, 5), 0, -1, (2, 12, 5)),
    ((6, 20), 0, -1, (6, 20)),
    ((-1,), 0, -1, (120,)),
    ((0, 0, -1), 0, -1, (2, 3, 20)),
    ((2, 2), 2, 1, (2, 3, 2, 2, 5)),
    ((1,), 1, 0, (2, 1, 3, 4, 5)),
    ((1, 1), -1, 0, (2, 3, 4, 5, 1, 1)),
    ((-1,), -3, -1, (2, 3, 20)),
    ((0, -1), 1, 2, (2, 3, 4, 5)),
    ((), 0, 0, (2, 3, 4, 5)),
])
def test_forward_matches_numpy(dtype, dims, axis, num_axes, expected):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    layer = reshaper(dims, axis, num_axes, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].shape == expected == numpy_reshape(x.shape, dims, axis, num_axes)
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, x.reshape(expected))


def test_top_is_a_view_of_the_bottom():
    layer = reshaper((0, -1))
    bottom = make_blobs(np.zeros((2, 3, 4)))
    top = setup_layer(layer, bottom)
    bottom[0].data[1, 2, 3] = 9
    top[0].diff[0, 5] = 4
    assert top[0].data[1, 11] == 9
    assert bottom[0].diff[0, 1, 1] == 4


def test_reshape_follows_a_new_bottom_array():
    layer = reshaper((0, -1))
    bottom = make_blobs(np.zeros((2, 3, 4)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(5, 2, 2)
    bottom[0].data[...] = 3
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (5, 4)
    np.testing.assert_array_equal(top[0].data, 3)


def test_backward_copies_when_the_top_arrays_are_their_own():
    layer = reshaper((-1, 6))
    bottom = make_blobs(np.ones((2, 3, 4)))
    top = setup_layer(layer, bottom)
    dy = np.arange(24.0).reshape(4, 6)
    top[0].diff = dy.copy()
    top[0].data = np.zeros((4, 6))
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 1)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy.reshape(2, 3, 4))


def test_gradient():
    layer = reshaper((0, -1), axis=1, num_axes=2)
    bottom = make_blobs(np.random.default_rng(1).standard_normal((2, 3, 2, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    cpu, gpu = reshaper((-1, 2)), reshaper((-1, 2))
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = rng.standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


def test_count_mismatch_names_the_layer_and_both_shapes():
    with pytest.raises(ShapeError, match=r"'rs'.*\(5, 5\).*\(2, 3, 4\)"):
        setup_layer(reshaper((5, 5)), make_blobs(np.zeros((2, 3, 4))))


def test_uninferable_dim_names_the_layer():
    with pytest.raises(ShapeError, match=r"'rs'.*\(2, 3, 4\)"):
        setup_layer(reshaper((5, -1)), make_blobs(np.zeros((2, 3, 4))))


@pytest.mark.parametrize("dims,axis,num_axes", [
    ((1,), 4, -1), ((1,), -5, -1), ((1,), 1, 3), ((0, 0), 2, 1)])
def test_bad_axes_name_the_layer(dims, axis, num_axes):
    with pytest.raises(ShapeError, match="'rs'"):
        setup_layer(reshaper(dims, axis, num_axes), make_blobs(np.zeros((2, 3, 4))))


@pytest.mark.parametrize("dims,num_axes", [((-1, -1), -1), ((2, -2), -1), ((-1,), -2)])
def test_bad_params_name_the_layer(dims, num_axes):
    with pytest.raises(NetError, match="'rs'"):
        setup_layer(reshaper(dims, num_axes=num_axes), make_blobs(np.zeros((2, 3, 4))))


def test_in_place_is_refused_naming_the_layer():
    bottom = make_blobs(np.zeros((2, 3)))
    with pytest.raises(NetError, match="'rs'"):
        setup_layer(reshaper((-1,)), bottom, top=bottom)


def test_caffe_golden():
    run_case("reshape")
