import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def bias(axis=1, num_axes=1, filler=None, dtype=np.float64):
    param = pb.LayerParameter(name="bias", type="Bias")
    param.bias_param.axis = axis
    param.bias_param.num_axes = num_axes
    if filler is not None:
        param.bias_param.filler.CopyFrom(filler)
    return layer_class("Bias")(param, pb.TRAIN, dtype)


def reference(x, b, axis):
    axis = axis % x.ndim if b.ndim else 0
    shape = (1,) * axis + b.shape + (1,) * (x.ndim - axis - b.ndim)
    return x + b.reshape(shape)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,num_axes,bshape", [(1, 1, (3,)), (1, 2, (3, 4)), (0, -1, (2, 3, 4, 5)),
                                                  (-1, 1, (5,)), (2, 0, ()), (1, -1, (3, 4, 5))])
def test_forward_one_bottom_matches_numpy(dtype, axis, num_axes, bshape):
    x = random(2, 3, 4, 5).astype(dtype)
    layer = bias(axis, num_axes, dtype=dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    assert layer.blobs[0].shape == bshape
    b = random(*bshape, seed=1).astype(dtype)
    layer.blobs[0].data[...] = b
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, b, axis), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,bshape", [(1, (3, 4)), (0, (2,)), (-2, (4, 5)), (1, ())])
def test_forward_two_bottoms_matches_numpy(dtype, axis, bshape):
    x, b = random(2, 3, 4, 5).astype(dtype), random(*bshape, seed=1).astype(dtype)
    layer = bias(axis, dtype=dtype)
    bottom = [Blob(x.shape, dtype), Blob(b.shape, dtype)]
    bottom[0].data[...], bottom[1].data[...] = x, b
    top = setup_layer(layer, bottom)
    assert layer.blobs == []
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, b, axis), rtol=1e-6)


def test_filler_default_is_zero_and_filler_is_honoured():
    bottom = make_blobs(random(2, 3))
    layer = bias()
    setup_layer(layer, bottom)
    np.testing.assert_array_equal(layer.blobs[0].data, 0)
    layer = bias(filler=pb.FillerParameter(type="constant", value=2.5))
    setup_layer(layer, bottom)
    np.testing.assert_array_equal(layer.blobs[0].data, 2.5)


@pytest.mark.parametrize("axis,num_axes", [(1, 1), (1, 2), (0, 0)])
def test_gradient_one_bottom(axis, num_axes):
    layer = bias(axis, num_axes, filler=pb.FillerParameter(type="gaussian", std=1.0))
    bottom = make_blobs(random(2, 3, 4))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_two_bottoms():
    layer = bias(1)
    bottom = make_blobs(random(2, 3, 4), random(3, seed=1))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_in_place():
    x, b, dy = random(2, 3, 4), random(3, seed=1), random(2, 3, 4, seed=2)
    layer = bias()
    blobs = make_blobs(x)
    setup_layer(layer, blobs, top=blobs)
    layer.blobs[0].data[...] = b
    layer.forward(blobs, blobs)
    np.testing.assert_allclose(blobs[0].data, x + b[:, None])
    blobs[0].diff[...] = dy
    layer.backward(blobs, [True], blobs)
    np.testing.assert_allclose(blobs[0].diff, dy)
    np.testing.assert_allclose(layer.blobs[0].diff, dy.sum(axis=(0, 2)))


@pytest.mark.parametrize("two", [False, True])
def test_gpu_path_on_numpy_equals_cpu_path(two):
    arrays = [random(2, 3, 4)] + ([random(3, 4, seed=1)] if two else [])
    cpu, gpu = bias(), bias()
    b1, b2 = make_blobs(*arrays), make_blobs(*arrays)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    for layer in (cpu, gpu):
        for p in layer.blobs:
            p.data[...] = random(*p.shape, seed=3)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = random(2, 3, 4, seed=4)
    for p in cpu.blobs + gpu.blobs:
        p.diff[...] = 1.0
    cpu.backward_cpu(t1, [True] * len(b1), b1)
    gpu.backward_gpu(t2, [True] * len(b2), b2)
    for x, y in zip(b1, b2):
        np.testing.assert_allclose(y.diff, x.diff)
    for p, q in zip(cpu.blobs, gpu.blobs):
        np.testing.assert_allclose(q.diff, p.diff)


def test_errors_name_the_layer():
    with pytest.raises(ShapeError, match="'bias'"):
        setup_layer(bias(1), make_blobs(random(2, 3, 4), random(4, seed=1)))
    with pytest.raises(ShapeError, match="'bias'.*num_axes 3"):
        setup_layer(bias(1, 3), make_blobs(random(2, 3, 4)))
    with pytest.raises(NetError, match="'bias'.*num_axes"):
        setup_layer(bias(1, -2), make_blobs(random(2, 3, 4)))
    with pytest.raises(ShapeError, match="'bias'.*axis 4"):
        setup_layer(bias(4), make_blobs(random(2, 3, 4)))
    layer = bias()
    bottom = make_blobs(random(2, 3, 4))
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match="'bias'"):
        layer.reshape(make_blobs(random(2, 5, 4)), top)


@pytest.mark.parametrize("case", ["bias", "bias_two_bottoms"])
def test_caffe_golden(case):
    run_case(case)
