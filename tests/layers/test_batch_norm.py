import numpy as np
import pytest

from cyffe import Net
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def batch_norm(global_stats=None, phase=pb.TRAIN, maf=0.999, eps=1e-5, dtype=np.float64,
               name="bn"):
    param = pb.LayerParameter(name=name, type="BatchNorm")
    if global_stats is not None:
        param.batch_norm_param.use_global_stats = global_stats
    param.batch_norm_param.moving_average_fraction = maf
    param.batch_norm_param.eps = eps
    return layer_class("BatchNorm")(param, phase, dtype)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def reference_train(x, stats, maf, eps):
    """(y, new stats) with batch statistics, written independently of the layer."""
    axes = (0,) + tuple(range(2, x.ndim)) if x.ndim > 1 else (0,)
    keep = x.ndim > 1
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    m = x.size / (x.shape[1] if keep else 1)
    y = (x - mean) / np.sqrt(var + eps)
    new = [maf * stats[0] + mean.reshape(-1), maf * stats[1] + m / (m - 1) * var.reshape(-1),
           maf * stats[2] + 1]
    return y, new


def reference_global(x, stats, eps):
    s = stats[2][0]
    factor = 0 if s == 0 else 1 / s
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = stats[0] * factor, stats[1] * factor
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


def stats_for(channels, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(channels) * 4, rng.uniform(1, 5, channels) * 4, np.array([4.0])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 2, 5), (6, 3), (7,)])
def test_training_forward_matches_numpy(dtype, shape):
    x = random(*shape).astype(dtype)
    layer = batch_norm(dtype=dtype, maf=0.9)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    channels = shape[1] if len(shape) > 1 else 1
    stats = stats_for(channels)
    for blob, value in zip(layer.blobs, stats):
        blob.data[...] = value
    layer.forward(bottom, top)
    # moving_average_fraction is a float field: 0.9 is stored as float32.
    want, new = reference_train(x.astype(np.float64), stats, float(np.float32(0.9)), 1e-5)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(top[0].data, want, rtol=tol, atol=tol)
    for blob, value in zip(layer.blobs, new):
        np.testing.assert_allclose(blob.data, value, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("s", [4.0, 0.0])
def test_global_forward_matches_numpy(dtype, s):
    x = random(3, 4, 2, 2).astype(dtype)
    layer = batch_norm(True, dtype=dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    stats = stats_for(4)
    stats[2][0] = s
    for blob, value in zip(layer.blobs, stats):
        blob.data[...] = value
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference_global(x.astype(np.float64), stats, 1e-5),
                               rtol=1e-5, atol=1e-5)
    for blob, value in zip(layer.blobs, stats):
        np.testing.assert_array_equal(blob.data, value.astype(dtype))


def test_phase_decides_the_default():
    train, test = batch_norm(phase=pb.TRAIN), batch_norm(phase=pb.TEST)
    forced = batch_norm(False, phase=pb.TEST)
    for layer in (train, test, forced):
        setup_layer(layer, make_blobs(random(2, 3)))
    assert not train.use_global_stats and test.use_global_stats and not forced.use_global_stats


def test_gradient_training_mode_through_batch_statistics():
    layer = batch_norm(False, eps=1e-3)
    bottom = make_blobs(random(3, 2, 2, 3))
    top = setup_layer(layer, bottom)
    # Params are statistics (never learned): check the input only. Every forward of the
    # check updates the running blobs, which feeds nothing back into the output.
    check_gradient(layer, bottom, top, check_params=False)


def test_gradient_global_mode():
    layer = batch_norm(True)
    bottom = make_blobs(random(2, 3, 2, 2))
    top = setup_layer(layer, bottom)
    for blob, value in zip(layer.blobs, stats_for(3)):
        blob.data[...] = value
    check_gradient(layer, bottom, top, check_params=False)


@pytest.mark.parametrize("global_stats", [False, True])
def test_param_diffs_stay_zero(global_stats):
    layer = batch_norm(global_stats)
    bottom = make_blobs(random(2, 3, 2))
    top = setup_layer(layer, bottom)
    layer.blobs[2].data[...] = 1
    layer.forward(bottom, top)
    top[0].diff[...] = random(2, 3, 2, seed=1)
    layer.backward(top, [True], bottom)
    for blob in layer.blobs:
        np.testing.assert_array_equal(blob.diff, 0)


@pytest.mark.parametrize("global_stats", [False, True])
def test_in_place_equals_separate_top(global_stats):
    x, dy = random(3, 2, 4), random(3, 2, 4, seed=2)
    separate, inplace = batch_norm(global_stats), batch_norm(global_stats)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1 = setup_layer(separate, b1)
    setup_layer(inplace, b2, top=b2)
    for layer in (separate, inplace):
        for blob, value in zip(layer.blobs, stats_for(2)):
            blob.data[...] = value
    separate.forward(b1, t1)
    inplace.forward(b2, b2)
    np.testing.assert_allclose(b2[0].data, t1[0].data)
    b2[0].data[...] = 7.0     # a later in-place layer changes the top; backward must not care
    t1[0].diff[...] = b2[0].diff[...] = dy
    separate.backward(t1, [True], b1)
    inplace.backward(b2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff)


@pytest.mark.parametrize("global_stats", [False, True])
def test_gpu_path_on_numpy_equals_cpu_path(global_stats):
    x = random(3, 4, 5)
    cpu, gpu = batch_norm(global_stats), batch_norm(global_stats)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    for layer in (cpu, gpu):
        for blob, value in zip(layer.blobs, stats_for(4)):
            blob.data[...] = value
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12, atol=1e-12)
    for p, q in zip(cpu.blobs, gpu.blobs):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12)
    t1[0].diff[...] = t2[0].diff[...] = random(3, 4, 5, seed=3)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-10, atol=1e-12)


def test_setup_adds_frozen_param_specs():
    layer = batch_norm()
    setup_layer(layer, make_blobs(random(2, 3)))
    assert [(p.lr_mult, p.decay_mult) for p in layer.param.param] == [(0, 0)] * 3
    param = pb.LayerParameter(name="bn", type="BatchNorm")
    param.param.add(lr_mult=0)
    layer = layer_class("BatchNorm")(param, pb.TRAIN, np.float64)
    setup_layer(layer, make_blobs(random(2, 3)))
    assert [p.lr_mult for p in layer.param.param] == [0, 0, 0]


NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 dim: 3 dim: 2 dim: 2 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "t" top: "loss" }
"""


def test_net_gives_the_statistics_lr_mult_zero():
    net = Net(NET, pb.TRAIN, dtype=np.float64)
    bn_blobs = [id(b) for b in net.params["bn"]]
    mults = {id(b): (lr, decay) for b, lr, decay in
             zip(net.learnable_params, net.lr_mults, net.decay_mults)}
    assert [mults[i] for i in bn_blobs] == [(0, 0)] * 3
    assert [mults[id(b)] for b in net.params["sc"]] == [(1, 1)] * 2
    net.blobs["x"].data[...] = random(4, 3, 2, 2)
    net.blobs["t"].data[...] = random(4, 3, 2, 2, seed=1)
    net.forward()
    net.backward()
    np.testing.assert_allclose(net.params["bn"][2].data, [1.0])
    assert np.abs(net.params["sc"][0].diff).sum() > 0


def test_errors_name_the_layer():
    param = pb.LayerParameter(name="bn", type="BatchNorm")
    param.param.add(lr_mult=1)
    with pytest.raises(NetError, match="'bn'.*lr_mult"):
        setup_layer(layer_class("BatchNorm")(param, pb.TRAIN, np.float64),
                    make_blobs(random(2, 3)))
    layer = batch_norm()
    top = setup_layer(layer, make_blobs(random(2, 3)))
    with pytest.raises(ShapeError, match="'bn'.*4 channels"):
        layer.reshape(make_blobs(random(2, 4)), top)
    with pytest.raises(ShapeError, match="'bn'"):
        setup_layer(batch_norm(), make_blobs(np.array(1.0)))


@pytest.mark.parametrize("case", ["batchnorm_train", "batchnorm_global", "batchnorm_default_test"])
def test_caffe_golden(case):
    run_case(case)
