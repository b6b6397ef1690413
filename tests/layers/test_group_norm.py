import numpy as np
import pytest

from cyffe.net.graph import Net
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def group_norm(num_groups, dtype=np.float64, blobs=(), **fields):
    return make_layer("GroupNorm", dtype, "group_norm_param", blobs=blobs,
                      num_groups=num_groups, **fields)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 2 + 1


def affine_params(channels, seed=5):
    r = np.random.default_rng(seed)
    return [r.uniform(0.5, 2.0, channels), r.standard_normal(channels)]


def reference(x, num_groups, eps=1e-5, scale=None, bias=None):
    n, c = x.shape[:2]
    rows = x.reshape(n, num_groups, -1)
    mean = rows.mean(axis=2, keepdims=True)
    var = ((rows - mean) ** 2).mean(axis=2, keepdims=True)
    y = ((rows - mean) / np.sqrt(var + eps)).reshape(x.shape)
    if scale is not None:
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        y = y * scale.reshape(per_channel) + bias.reshape(per_channel)
    return y


CASES = [((2, 6, 3, 4), 3), ((2, 6, 3, 4), 1), ((2, 6, 3, 4), 6), ((3, 4), 2), ((2, 4, 5), 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups", CASES)
def test_forward_matches_numpy(dtype, shape, groups):
    x = random(*shape)
    params = affine_params(shape[1])
    _, top = run_layer(group_norm(groups, dtype, blobs=params), x.astype(dtype))
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(top[0].data, reference(x, groups, 1e-5, *params),
                               rtol=tol, atol=tol)


def test_forward_without_affine_and_with_eps():
    x = random(2, 4, 3)
    layer = group_norm(2, affine=False, eps=0.25)
    _, top = run_layer(layer, x)
    assert layer.blobs == []
    np.testing.assert_allclose(top[0].data, reference(x, 2, 0.25), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    x = random(2, 6, 3, 4).astype(dtype)
    params = [p.astype(dtype) for p in affine_params(6)]
    _, top = run_layer(group_norm(3, dtype, blobs=params), x)
    want = torch.nn.functional.group_norm(torch.from_numpy(x), 3, torch.from_numpy(params[0]),
                                          torch.from_numpy(params[1]), eps=1e-5).numpy()
    np.testing.assert_allclose(top[0].data, want, rtol=1e-5, atol=1e-5)


def test_default_fillers_are_one_and_zero():
    layer = group_norm(2)
    setup_layer(layer, make_blobs(random(2, 4, 3)))
    assert [b.shape for b in layer.blobs] == [(4,), (4,)]
    np.testing.assert_array_equal(layer.blobs[0].data, 1)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)


def test_fillers_are_honoured():
    layer = group_norm(2)
    layer.param.group_norm_param.scale_filler.CopyFrom(pb.FillerParameter(type="constant",
                                                                          value=2.5))
    layer.param.group_norm_param.bias_filler.CopyFrom(pb.FillerParameter(type="constant",
                                                                         value=-1))
    setup_layer(layer, make_blobs(random(2, 4, 3)))
    np.testing.assert_array_equal(layer.blobs[0].data, 2.5)
    np.testing.assert_array_equal(layer.blobs[1].data, -1)


@pytest.mark.parametrize("shape,groups", [((2, 4, 2, 3), 2), ((3, 4), 4), ((2, 3, 5), 1)])
def test_gradient(shape, groups):
    layer = group_norm(groups, blobs=affine_params(shape[1]))
    bottom = make_blobs(random(*shape))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_without_affine_and_large_eps():
    layer = group_norm(2, affine=False, eps=0.5)
    bottom = make_blobs(random(2, 4, 3))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_param_diffs_accumulate():
    layer = group_norm(2, blobs=affine_params(4))
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
    check_in_place(lambda: group_norm(2, blobs=affine_params(4)), random(2, 4, 3))
    check_in_place(lambda: group_norm(2, blobs=affine_params(4)), random(2, 4, 3), gpu=True)


def test_gpu_path_on_numpy_equals_cpu_path():
    check_gpu_matches_cpu(lambda: group_norm(3, blobs=affine_params(6)), random(2, 6, 2, 3))
    check_gpu_matches_cpu(lambda: group_norm(2, affine=False), random(3, 4, 5))
    check_gpu_matches_cpu(lambda: group_norm(2, blobs=affine_params(4)), random(2, 4, 3),
                          in_place=True)


def test_float32_gpu_path_equals_cpu_path():
    x = random(2, 6, 4).astype(np.float32)
    outputs = []
    for gpu in (False, True):
        layer = group_norm(3, np.float32, blobs=affine_params(6))
        bottom, top = run_layer(layer, x)
        (layer.forward_gpu if gpu else layer.forward_cpu)(bottom, top)
        top[0].diff[...] = random(2, 6, 4, seed=2)
        (layer.backward_gpu if gpu else layer.backward_cpu)(top, [True], bottom)
        outputs.append([top[0].data, bottom[0].diff] + [b.diff for b in layer.blobs])
    for a, b in zip(*outputs):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


NET = """
name: "gn"
layer { name: "data" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 2 dim: 4 dim: 3 } shape { dim: 2 dim: 4 dim: 3 } } }
layer { name: "gn" type: "GroupNorm" bottom: "x" top: "x"
        group_norm_param { num_groups: 2 eps: 0.001 bias_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "t" top: "loss" }
"""


def test_net_from_prototxt():
    net = Net(NET, pb.TRAIN, dtype=np.float64)
    x = random(2, 4, 3)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = 0
    net.forward()
    eps = float(np.float32(1e-3))       # eps is a float field, as Caffe's
    np.testing.assert_allclose(net.blobs["x"].data, reference(x, 2, eps) + 0.5,
                               rtol=1e-10, atol=1e-12)
    net.backward()
    assert np.abs(net.params["gn"][0].diff).sum() > 0


def test_errors_name_the_layer():
    with pytest.raises(NetError, match=r"'groupnorm'.*6 channels.*num_groups 4"):
        setup_layer(group_norm(4), make_blobs(random(2, 6, 3)))
    with pytest.raises(NetError, match="'groupnorm'.*num_groups must be at least 1"):
        setup_layer(group_norm(0), make_blobs(random(2, 6, 3)))
    with pytest.raises(NetError, match="'groupnorm'.*eps"):
        setup_layer(group_norm(2, eps=-1.0), make_blobs(random(2, 6, 3)))
    with pytest.raises(ShapeError, match="'groupnorm'.*at least 2 axes"):
        setup_layer(group_norm(1), make_blobs(random(5)))
    with pytest.raises(NetError, match="'groupnorm'.*affine is false.*2 were given"):
        setup_layer(group_norm(2, affine=False, blobs=affine_params(4)),
                    make_blobs(random(2, 4)))
    with pytest.raises(NetError, match=r"'groupnorm'.*2 blobs.*\(4,\)"):
        setup_layer(group_norm(2, blobs=affine_params(6)), make_blobs(random(2, 4)))
    layer = group_norm(2)
    top = setup_layer(layer, make_blobs(random(2, 4, 3)))
    with pytest.raises(ShapeError, match=r"'groupnorm'.*\(6,\).*\(4,\)"):
        layer.reshape(make_blobs(random(2, 6, 3)), top)
