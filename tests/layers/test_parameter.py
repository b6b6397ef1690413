import numpy as np
import pytest

from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, setup_layer


def parameter(shape, dtype=np.float64, weights=None):
    param = pb.LayerParameter(name="w", type="Parameter")
    param.parameter_param.shape.dim.extend(shape)
    if weights is not None:
        blob = param.blobs.add()
        blob.shape.dim.extend(weights.shape)
        blob.data.extend(weights.reshape(-1).tolist())
    return layer_class("Parameter")(param, pb.TRAIN, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3), (4,), (1, 2, 3, 2)])
def test_forward_is_the_blob(dtype, shape):
    layer = parameter(shape, dtype)
    top = setup_layer(layer, [])
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == shape
    np.testing.assert_array_equal(layer.blobs[0].data, 0)
    w = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    layer.blobs[0].data[...] = w
    layer.reshape([], top)
    layer.forward([], top)
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, w)


def test_given_weights_are_kept():
    w = np.arange(6.0).reshape(2, 3)
    layer = parameter((2, 3), weights=w)
    top = setup_layer(layer, [])
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, w)


def test_gradient_accumulates():
    layer = parameter((2, 3))
    top = setup_layer(layer, [])
    layer.forward([], top)
    dy = np.random.default_rng(1).standard_normal((2, 3))
    top[0].diff[...] = dy
    layer.backward(top, [], [])
    layer.backward(top, [], [])
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * dy)


def test_gradient():
    layer = parameter((2, 3))
    top = setup_layer(layer, [])
    layer.blobs[0].data[...] = np.random.default_rng(2).standard_normal((2, 3))
    check_gradient(layer, [], top)


def test_top_follows_a_new_blob_array():
    layer = parameter((2,))
    top = setup_layer(layer, [])
    layer.blobs[0].data = np.array([3.0, 4.0])
    layer.reshape([], top)
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, [3, 4])


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = parameter((3, 2)), parameter((3, 2))
    t1, t2 = setup_layer(cpu, []), setup_layer(gpu, [])
    w = np.random.default_rng(3).standard_normal((3, 2))
    cpu.blobs[0].data[...] = gpu.blobs[0].data[...] = w
    cpu.forward_cpu([], t1)
    gpu.forward_gpu([], t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = w * 2
    cpu.blobs[0].diff[...] = gpu.blobs[0].diff[...] = 1
    cpu.backward_cpu(t1, [], [])
    gpu.backward_gpu(t2, [], [])
    np.testing.assert_array_equal(gpu.blobs[0].diff, cpu.blobs[0].diff)


def test_weights_of_another_shape_name_the_layer():
    with pytest.raises(ShapeError, match=r"'w'.*\(3, 2\).*\(2, 3\)"):
        setup_layer(parameter((2, 3), weights=np.zeros((3, 2))), [])


def test_a_bottom_is_refused_naming_the_layer():
    from helpers.gradcheck import make_blobs
    with pytest.raises(NetError, match="'w'"):
        setup_layer(parameter((2,)), make_blobs(np.zeros(2)))
