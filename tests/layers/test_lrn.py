import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

ACROSS, WITHIN = pb.LRNParameter.ACROSS_CHANNELS, pb.LRNParameter.WITHIN_CHANNEL


def lrn(size=5, alpha=1.0, beta=0.75, k=1.0, region=ACROSS, dtype=np.float64):
    param = pb.LayerParameter(name="lrn", type="LRN")
    p = param.lrn_param
    p.local_size, p.alpha, p.beta, p.k, p.norm_region = size, alpha, beta, k, region
    return layer_class("LRN")(param, pb.TRAIN, dtype)


def reference(x, size, alpha, beta, k, region):
    """Loops straight from the definition (zero padding = clipped windows)."""
    n, c, h, w = x.shape
    half = (size - 1) // 2
    scale = np.empty_like(x)
    for i in range(c):
        for yy in range(h):
            for xx in range(w):
                if region == ACROSS:
                    window = x[:, max(0, i - half):i + half + 1, yy, xx]
                    scale[:, i, yy, xx] = k + alpha / size * (window ** 2).sum(axis=1)
                else:
                    window = x[:, i, max(0, yy - half):yy + half + 1,
                               max(0, xx - half):xx + half + 1]
                    # Caffe's AVE pooling divides by size^2 (padding counts); shift is 1.
                    scale[:, i, yy, xx] = 1 + alpha * (window ** 2).sum(axis=(1, 2)) / size ** 2
    return x * scale ** -beta


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


CONFIGS = [(5, 1.0, 0.75, 1.0, ACROSS), (3, 0.5, 0.6, 2.0, ACROSS), (1, 2.0, 0.75, 1.5, ACROSS),
           (3, 1.0, 0.75, 1.0, WITHIN), (5, 2.0, 0.5, 3.0, WITHIN)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS)
def test_forward_matches_numpy(dtype, config):
    x = random(2, 7, 5, 4).astype(dtype)
    layer = lrn(*config, dtype=dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x.astype(np.float64), *config),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("forward_only", [False, True])
def test_planes_wider_than_a_block(forward_only):
    """Across channels the pixels go in blocks: a plane of 667 crosses a block's edge, and a
    forward-only layer keeps no scale."""
    config = (5, 1.0, 0.75, 1.0, ACROSS)
    x = random(2, 9, 23, 29).astype(np.float32)
    layer = lrn(*config, dtype=np.float32)
    layer.forward_only = forward_only
    bottom = [Blob(x.shape, np.float32)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward_cpu(bottom, top)             # the kernel (a GPU backend runs array ops)
    np.testing.assert_allclose(top[0].data, reference(x.astype(np.float64), *config),
                               rtol=1e-5, atol=1e-6)
    assert (layer.scale is None) == forward_only


@pytest.mark.parametrize("config", CONFIGS)
def test_gradient(config):
    layer = lrn(*config)
    bottom = make_blobs(random(2, 5, 3, 4))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_backward_ignores_a_changed_top():
    x, dy = random(2, 5, 3, 3), random(2, 5, 3, 3, seed=1)
    layer = lrn(3, region=ACROSS)
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    want = bottom[0].diff.copy()
    top[0].data[...] = 0      # a later in-place layer overwrote it
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, want)


@pytest.mark.parametrize("config", CONFIGS)
def test_gpu_path_on_numpy_equals_cpu_path(config):
    x = random(2, 6, 4, 5)
    cpu, gpu = lrn(*config), lrn(*config)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12, atol=1e-12)
    t1[0].diff[...] = t2[0].diff[...] = random(2, 6, 4, 5, seed=3)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-10, atol=1e-12)


def test_errors_name_the_layer():
    with pytest.raises(NetError, match="'lrn'.*odd"):
        setup_layer(lrn(4), make_blobs(random(1, 3, 2, 2)))
    blobs = make_blobs(random(1, 3, 2, 2))
    with pytest.raises(NetError, match="'lrn'.*in place"):
        setup_layer(lrn(3), blobs, top=blobs)
    with pytest.raises(ShapeError, match="'lrn'.*4-D"):
        setup_layer(lrn(3), make_blobs(random(2, 3)))


@pytest.mark.parametrize("case", ["lrn_across_5", "lrn_across_3_alpha", "lrn_within_3"])
def test_caffe_golden(case):
    run_case(case)
