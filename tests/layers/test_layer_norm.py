import numpy as np
import pytest

from cyffe.net.graph import Net
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def layer_norm(dtype=np.float64, blobs=(), **fields):
    return make_layer("LayerNorm", dtype, "layer_norm_param", blobs=blobs, **fields)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 2 + 1


def affine_params(shape, seed=5):
    r = np.random.default_rng(seed)
    return [r.uniform(0.5, 2.0, shape), r.standard_normal(shape)]


def reference(x, axis=1, eps=1e-5, scale=None, bias=None):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y if scale is None else y * scale + bias


CASES = [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), -1), ((2, 3, 4), 0), ((5, 7), 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", CASES)
def test_forward_matches_numpy(dtype, shape, axis):
    x = random(*shape)
    params = affine_params(shape[axis % len(shape):])
    layer = layer_norm(dtype, blobs=params, axis=axis)
    _, top = run_layer(layer, x.astype(dtype))
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(top[0].data, reference(x, axis, 1e-5, *params),
                               rtol=tol, atol=tol)


def test_forward_without_affine_and_with_eps():
    x = random(3, 4, 2)
    layer = layer_norm(affine=False, eps=0.25, axis=2)
    _, top = run_layer(layer, x)
    assert layer.blobs == []
    np.testing.assert_allclose(top[0].data, reference(x, 2, 0.25), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [1, 2])
def test_forward_matches_torch(dtype, axis):
    torch = pytest.importorskip("torch")
    x = random(2, 3, 4, 5).astype(dtype)
    params = [p.astype(dtype) for p in affine_params(x.shape[axis:])]
    _, top = run_layer(layer_norm(dtype, blobs=params, axis=axis), x)
    want = torch.nn.functional.layer_norm(torch.from_numpy(x), x.shape[axis:],
                                          torch.from_numpy(params[0]),
                                          torch.from_numpy(params[1]), eps=1e-5).numpy()
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-5)


def test_default_fillers_and_normalized_shape():
    layer = layer_norm(axis=2)
    setup_layer(layer, make_blobs(random(2, 3, 4, 5)))
    assert [b.shape for b in layer.blobs] == [(4, 5), (4, 5)]
    np.testing.assert_array_equal(layer.blobs[0].data, 1)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)


def test_fillers_are_honoured():
    layer = layer_norm()
    layer.param.layer_norm_param.scale_filler.CopyFrom(pb.FillerParameter(type="constant",
                                                                          value=3))
    layer.param.layer_norm_param.bias_filler.CopyFrom(
        pb.FillerParameter(type="uniform", min=-1, max=1))
    setup_layer(layer, make_blobs(random(2, 4, 3)))
    np.testing.assert_array_equal(layer.blobs[0].data, 3)
    assert np.all(np.abs(layer.blobs[1].data) <= 1) and np.ptp(layer.blobs[1].data) > 0


@pytest.mark.parametrize("shape,axis", [((2, 3, 4), 1), ((2, 3, 4), 2), ((3, 2, 2), 0)])
def test_gradient(shape, axis):
    layer = layer_norm(blobs=affine_params(shape[axis:]), axis=axis)
    bottom = make_blobs(random(*shape))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_without_affine_and_large_eps():
    layer = layer_norm(affine=False, eps=0.5)
    bottom = make_blobs(random(3, 2, 3))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_param_diffs_accumulate():
    layer = layer_norm(blobs=affine_params((4, 3)))
    bottom = make_blobs(random(2, 4, 3))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = random(2, 4, 3, seed=3)
    layer.backward(top, [False], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    layer.backward(top, [True], bottom)
    for blob, first in zip(layer.blobs, once):
        np.testing.assert_allclose(blob.diff, 2 * first, rtol=1e-12)


def test_in_place_equals_separate_top():
    check_in_place(lambda: layer_norm(blobs=affine_params((4, 3))), random(2, 4, 3))
    check_in_place(lambda: layer_norm(blobs=affine_params((4, 3))), random(2, 4, 3), gpu=True)


def test_gpu_path_on_numpy_equals_cpu_path():
    check_gpu_matches_cpu(lambda: layer_norm(blobs=affine_params((6, 2))), random(3, 6, 2))
    check_gpu_matches_cpu(lambda: layer_norm(affine=False, axis=2), random(2, 3, 5))
    check_gpu_matches_cpu(lambda: layer_norm(blobs=affine_params((5,)), axis=-1),
                          random(2, 3, 5), in_place=True)


NET = """
name: "ln"
layer { name: "data" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 2 dim: 3 dim: 4 } shape { dim: 2 dim: 3 dim: 4 } } }
layer { name: "ln" type: "LayerNorm" bottom: "x" top: "y" layer_norm_param { axis: -1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def test_net_from_prototxt():
    net = Net(NET, pb.TRAIN, dtype=np.float64)
    assert [b.shape for b in net.params["ln"]] == [(4,), (4,)]
    x = random(2, 3, 4)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = 0
    net.forward()
    np.testing.assert_allclose(net.blobs["y"].data, reference(x, -1), rtol=1e-10, atol=1e-12)


def test_errors_name_the_layer():
    with pytest.raises(ShapeError, match="'layernorm'.*axis 3"):
        setup_layer(layer_norm(axis=3), make_blobs(random(2, 3, 4)))
    with pytest.raises(NetError, match="'layernorm'.*eps"):
        setup_layer(layer_norm(eps=-1e-3), make_blobs(random(2, 3)))
    with pytest.raises(NetError, match="'layernorm'.*affine is false.*2 were given"):
        setup_layer(layer_norm(affine=False, blobs=affine_params((3,))), make_blobs(random(2, 3)))
    with pytest.raises(NetError, match=r"'layernorm'.*2 blobs.*\(3, 4\)"):
        setup_layer(layer_norm(blobs=affine_params((5,))), make_blobs(random(2, 3, 4)))
    layer = layer_norm()
    top = setup_layer(layer, make_blobs(random(2, 3, 4)))
    with pytest.raises(ShapeError, match=r"'layernorm'.*\(4, 3\).*\(3, 4\)"):
        layer.reshape(make_blobs(random(2, 4, 3)), top)
