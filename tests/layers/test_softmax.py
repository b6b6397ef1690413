import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer
from helpers.neuron import check_in_place


def softmax(axis=1, dtype=np.float64):
    param = pb.LayerParameter(name="prob", type="Softmax")
    param.softmax_param.axis = axis
    return layer_class("Softmax")(param, pb.TRAIN, dtype)


def reference(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def inputs(shape, seed=0):
    return 2 * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), 1), ((4, 5), 1), ((2, 3, 4), 0),
                                        ((2, 3, 4), -1), ((2, 3, 4, 5), 2), ((7,), 0)])
def test_forward_matches_numpy(dtype, shape, axis):
    x = inputs(shape).astype(dtype)
    layer = softmax(axis, dtype)
    bottom = [Blob(shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].shape == shape
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(top[0].data, reference(x, axis), rtol=tol, atol=tol)


def test_large_inputs_are_stable():
    layer = softmax()
    bottom = make_blobs([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(bottom[0].data, 1))
    np.testing.assert_allclose(top[0].data[1], [1 / 3] * 3)


@pytest.mark.parametrize("shape,axis", [((2, 3, 2, 2), 1), ((3, 4), 1), ((2, 3, 4), -1),
                                        ((3, 2, 2), 0)])
def test_gradient(shape, axis):
    layer = softmax(axis)
    bottom = make_blobs(inputs(shape))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_in_place_equals_separate_top():
    check_in_place(lambda: softmax(), inputs((2, 3, 4)))


def test_reshape_follows_a_new_bottom_shape():
    layer = softmax()
    bottom = make_blobs(inputs((2, 3)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(4, 5, 2)
    bottom[0].data[...] = inputs((4, 5, 2))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(bottom[0].data, 1))


@pytest.mark.parametrize("axis", [1, 0, -1])
def test_gpu_path_on_numpy_equals_cpu_path(axis):
    x = inputs((3, 4, 5))
    cpu, gpu = softmax(axis), softmax(axis)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12, atol=1e-15)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(2).standard_normal(x.shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", ["softmax_axis1", "softmax_2d"])
def test_caffe_golden(case):
    run_case(case)


def test_axis_out_of_range_is_an_error():
    with pytest.raises(ShapeError, match="'prob'.*axis 2"):
        setup_layer(softmax(axis=2), make_blobs(np.ones((2, 3))))


def test_two_bottoms_is_an_error():
    with pytest.raises(NetError, match="'prob'.*1 bottom"):
        setup_layer(softmax(), make_blobs(np.ones((2, 3)), np.ones((2, 3))))
