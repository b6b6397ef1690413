import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def scale(axis=1, num_axes=1, bias_term=False, filler=None, bias_filler=None,
          dtype=np.float64):
    param = pb.LayerParameter(name="scale", type="Scale")
    p = param.scale_param
    p.axis, p.num_axes, p.bias_term = axis, num_axes, bias_term
    if filler is not None:
        p.filler.CopyFrom(filler)
    if bias_filler is not None:
        p.bias_filler.CopyFrom(bias_filler)
    return layer_class("Scale")(param, pb.TRAIN, dtype)


def broadcast(x, s, axis):
    axis = axis % x.ndim if s.ndim else 0
    return s.reshape((1,) * axis + s.shape + (1,) * (x.ndim - axis - s.ndim))


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


GAUSS = pb.FillerParameter(type="gaussian", std=1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,num_axes,sshape", [(1, 1, (3,)), (1, 2, (3, 4)), (0, -1, (2, 3, 4, 5)),
                                                  (-1, 1, (5,)), (2, 0, ())])
@pytest.mark.parametrize("bias_term", [False, True])
def test_forward_one_bottom_matches_numpy(dtype, axis, num_axes, sshape, bias_term):
    x = random(2, 3, 4, 5).astype(dtype)
    layer = scale(axis, num_axes, bias_term, dtype=dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    assert [p.shape for p in layer.blobs] == [sshape] * (2 if bias_term else 1)
    s = random(*sshape, seed=1).astype(dtype)
    layer.blobs[0].data[...] = s
    want = x * broadcast(x, s, axis)
    if bias_term:
        b = random(*sshape, seed=2).astype(dtype)
        layer.blobs[1].data[...] = b
        want = want + broadcast(x, b, axis)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,sshape", [(1, (3, 4)), (0, (2, 3)), (-1, (5,)), (1, ())])
def test_forward_two_bottoms_matches_numpy(dtype, axis, sshape):
    x, s = random(2, 3, 4, 5).astype(dtype), random(*sshape, seed=1).astype(dtype)
    layer = scale(axis, dtype=dtype)
    bottom = [Blob(x.shape, dtype), Blob(s.shape, dtype)]
    bottom[0].data[...], bottom[1].data[...] = x, s
    top = setup_layer(layer, bottom)
    assert layer.blobs == []
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x * broadcast(x, s, axis), rtol=1e-6)


def test_fillers():
    bottom = make_blobs(random(2, 3))
    layer = scale(bias_term=True)
    setup_layer(layer, bottom)
    np.testing.assert_array_equal(layer.blobs[0].data, 1)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)
    layer = scale(bias_term=True, filler=pb.FillerParameter(type="constant", value=3),
                  bias_filler=pb.FillerParameter(type="constant", value=-1))
    setup_layer(layer, bottom)
    np.testing.assert_array_equal(layer.blobs[0].data, 3)
    np.testing.assert_array_equal(layer.blobs[1].data, -1)


@pytest.mark.parametrize("axis,num_axes,bias_term", [(1, 1, False), (1, 2, True), (0, 0, True)])
def test_gradient_one_bottom(axis, num_axes, bias_term):
    layer = scale(axis, num_axes, bias_term, filler=GAUSS, bias_filler=GAUSS)
    bottom = make_blobs(random(2, 3, 4))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("axis,sshape,bias_term", [(1, (3,), False), (0, (2, 3), True)])
def test_gradient_two_bottoms(axis, sshape, bias_term):
    layer = scale(axis, bias_term=bias_term, bias_filler=GAUSS)
    bottom = make_blobs(random(2, 3, 4), random(*sshape, seed=1))
    top = setup_layer(layer, bottom)
    assert len(layer.blobs) == int(bias_term)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("bias_term", [False, True])
def test_in_place_equals_separate_top(bias_term):
    x, dy = random(2, 3, 4), random(2, 3, 4, seed=2)
    separate = scale(bias_term=bias_term, filler=GAUSS, bias_filler=GAUSS)
    inplace = scale(bias_term=bias_term, filler=GAUSS, bias_filler=GAUSS)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1 = setup_layer(separate, b1)
    setup_layer(inplace, b2, top=b2)
    for p, q in zip(separate.blobs, inplace.blobs):
        q.data[...] = p.data
    separate.forward(b1, t1)
    inplace.forward(b2, b2)
    np.testing.assert_allclose(b2[0].data, t1[0].data)
    t1[0].diff[...] = b2[0].diff[...] = dy
    separate.backward(t1, [True], b1)
    inplace.backward(b2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff)
    for p, q in zip(separate.blobs, inplace.blobs):
        np.testing.assert_allclose(q.diff, p.diff)


@pytest.mark.parametrize("two,bias_term,in_place", [(False, True, False), (True, True, False),
                                                    (False, False, True)])
def test_gpu_path_on_numpy_equals_cpu_path(two, bias_term, in_place):
    arrays = [random(2, 3, 4)] + ([random(3, seed=1)] if two else [])
    cpu, gpu = scale(bias_term=bias_term), scale(bias_term=bias_term)
    b1, b2 = make_blobs(*arrays), make_blobs(*arrays)
    t1 = setup_layer(cpu, b1, top=b1[:1] if in_place else None)
    t2 = setup_layer(gpu, b2, top=b2[:1] if in_place else None)
    for layer in (cpu, gpu):
        for i, p in enumerate(layer.blobs):
            p.data[...] = random(*p.shape, seed=3 + i)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = random(2, 3, 4, seed=9)
    for p in cpu.blobs + gpu.blobs:
        p.diff[...] = 1.0
    cpu.backward_cpu(t1, [True] * len(b1), b1)
    gpu.backward_gpu(t2, [True] * len(b2), b2)
    for x, y in zip(b1, b2):
        np.testing.assert_allclose(y.diff, x.diff)
    for p, q in zip(cpu.blobs, gpu.blobs):
        np.testing.assert_allclose(q.diff, p.diff)


def test_errors_name_the_layer():
    with pytest.raises(ShapeError, match="'scale'"):
        setup_layer(scale(1), make_blobs(random(2, 3, 4), random(4, seed=1)))
    with pytest.raises(ShapeError, match="'scale'.*num_axes 3"):
        setup_layer(scale(1, 3), make_blobs(random(2, 3, 4)))
    with pytest.raises(NetError, match="'scale'.*num_axes"):
        setup_layer(scale(1, -2), make_blobs(random(2, 3, 4)))
    param = pb.LayerParameter(name="scale", type="Scale")
    param.blobs.add().shape.dim.extend([4])
    param.blobs[0].data.extend([1, 2, 3, 4])
    with pytest.raises(ShapeError, match="'scale'.*param blobs"):
        setup_layer(layer_class("Scale")(param, pb.TRAIN, np.float64), make_blobs(random(2, 3)))


@pytest.mark.parametrize("case", ["scale_bias", "scale_two_bottoms", "scale_axis0_2bottoms"])
def test_caffe_golden(case):
    run_case(case)
