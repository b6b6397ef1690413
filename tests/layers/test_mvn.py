import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def mvn(normalize_variance=True, across_channels=False, eps=None, dtype=np.float64):
    param = pb.LayerParameter(name="mvn", type="MVN")
    param.mvn_param.normalize_variance = normalize_variance
    param.mvn_param.across_channels = across_channels
    if eps is not None:
        param.mvn_param.eps = eps
    return layer_class("MVN")(param, pb.TRAIN, dtype)


def reference(x, normalize_variance, across_channels, eps=1e-9):
    axes = tuple(range(1 if across_channels else 2, x.ndim))
    centered = x - x.mean(axis=axes, keepdims=True)
    if not normalize_variance:
        return centered
    std = np.sqrt((centered ** 2).mean(axis=axes, keepdims=True))
    return centered / (std + eps)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 2 + 1


MODES = [(True, False), (True, True), (False, False), (False, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalize_variance,across_channels", MODES)
def test_forward_matches_numpy(dtype, normalize_variance, across_channels):
    x = random(2, 3, 4, 5).astype(dtype)
    layer = mvn(normalize_variance, across_channels, dtype=dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    want = reference(x.astype(np.float64), normalize_variance, across_channels)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-5)


def test_eps_is_added_to_the_standard_deviation():
    x = random(1, 2, 3, 3)
    layer = mvn(eps=0.5)
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, True, False, eps=0.5))


@pytest.mark.parametrize("normalize_variance,across_channels", MODES)
@pytest.mark.parametrize("eps", [1e-9, 0.3])
def test_gradient(normalize_variance, across_channels, eps):
    layer = mvn(normalize_variance, across_channels, eps)
    bottom = make_blobs(random(2, 3, 2, 3))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_constant_row_is_finite():
    x = random(2, 2, 3)
    x[0, 1] = 4.0
    layer = mvn()
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(top[0].data[0, 1], 0)
    assert np.isfinite(bottom[0].diff).all()


@pytest.mark.parametrize("normalize_variance,across_channels", MODES)
def test_gpu_path_on_numpy_equals_cpu_path(normalize_variance, across_channels):
    x = random(3, 4, 5)
    x[1, 2] = -1.0     # a constant row
    cpu, gpu = mvn(normalize_variance, across_channels), mvn(normalize_variance, across_channels)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12, atol=1e-12)
    t1[0].diff[...] = t2[0].diff[...] = random(3, 4, 5, seed=3)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-10, atol=1e-10)


def test_errors_name_the_layer():
    blobs = make_blobs(random(2, 3))
    with pytest.raises(NetError, match="'mvn'.*in place"):
        setup_layer(mvn(), blobs, top=blobs)
    with pytest.raises(ShapeError, match="'mvn'"):
        setup_layer(mvn(), make_blobs(np.array(1.0)))


@pytest.mark.parametrize("case", ["mvn", "mvn_across_channels", "mvn_no_variance"])
def test_caffe_golden(case):
    run_case(case)
