import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.gradcheck import setup_layer


def input_layer(*shapes, dtype=np.float32):
    param = pb.LayerParameter(name="data", type="Input")
    for s in shapes:
        param.input_param.shape.add().dim.extend(s)
    return layer_class("Input")(param, pb.TRAIN, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_shape_per_top(dtype):
    top = setup_layer(input_layer((2, 3, 4, 5), (2,), dtype=dtype), [], num_top=2)
    assert [t.shape for t in top] == [(2, 3, 4, 5), (2,)]
    assert all(t.data.dtype == dtype for t in top)


def test_one_shape_for_all_tops():
    top = setup_layer(input_layer((4, 1, 8, 8)), [], num_top=3)
    assert [t.shape for t in top] == [(4, 1, 8, 8)] * 3


def test_forward_never_overwrites_the_users_values():
    layer = input_layer((2, 3))
    top = setup_layer(layer, [], num_top=1)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    top[0].data[...] = x
    for _ in range(2):
        layer.reshape([], top)
        layer.forward([], top)
        layer.backward(top, [], [])
    np.testing.assert_array_equal(top[0].data, x)


def test_reshape_keeps_the_arrays():
    layer = input_layer((2, 3))
    top = setup_layer(layer, [], num_top=1)
    data, diff = top[0].data, top[0].diff
    layer.reshape([], top)
    assert top[0].data is data and top[0].diff is diff


def test_a_users_reshape_sticks():
    # pycaffe: net.blobs['data'].reshape(...); net.reshape()
    layer = input_layer((2, 3))
    top = setup_layer(layer, [], num_top=1)
    top[0].reshape(5, 3)
    layer.reshape([], top)
    assert top[0].shape == (5, 3)


def test_no_shape_leaves_tops_as_given():
    top = [Blob((3, 4))]
    setup_layer(input_layer(), [], top=top)
    assert top[0].shape == (3, 4)


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = input_layer((2, 2)), input_layer((2, 2))
    t1, t2 = setup_layer(cpu, [], num_top=1), setup_layer(gpu, [], num_top=1)
    t1[0].data[...] = t2[0].data[...] = 3
    cpu.forward_cpu([], t1)
    gpu.forward_gpu([], t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)


def test_shape_count_must_fit_the_tops():
    with pytest.raises(NetError, match="'data'.*2 shapes.*3 tops"):
        setup_layer(input_layer((1,), (2,)), [], num_top=3)


def test_takes_no_bottom():
    with pytest.raises(NetError, match="'data'"):
        setup_layer(input_layer((1,)), [Blob((1,))])


def test_negative_dimension_is_refused():
    with pytest.raises(NetError, match="'data'"):
        setup_layer(input_layer((2, -1)), [], num_top=1)
