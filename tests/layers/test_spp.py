import math

import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

MAX, AVE, STOCHASTIC = pb.SPPParameter.MAX, pb.SPPParameter.AVE, pb.SPPParameter.STOCHASTIC
FLT_MIN = float(np.finfo(np.float32).tiny)


def spp(pool=MAX, height=3, phase=pb.TRAIN, dtype=np.float64):
    param = pb.LayerParameter(name="spp", type="SPP")
    param.spp_param.pyramid_height = height
    param.spp_param.pool = pool
    return layer_class("SPP")(param, phase, dtype)


def reference_level(x, level, pool, phase):
    """One pyramid level as Caffe's SPP sets it up, pooled plainly: (N, C, bins, bins)."""
    n, c, h, w = x.shape
    bins = 2 ** level
    geometry = []
    for size in (h, w):
        kernel = math.ceil(size / bins)
        geometry.append((kernel, (kernel * bins - size + 1) // 2))
    (kh, ph), (kw, pw) = geometry
    y = np.zeros((n, c, bins, bins))
    for i in range(bins):
        for j in range(bins):
            top, left = i * kh - ph, j * kw - pw
            window = x[:, :, max(top, 0):min(top + kh, h), max(left, 0):min(left + kw, w)]
            if pool == MAX:
                y[:, :, i, j] = window.max(axis=(2, 3))
            elif pool == AVE:
                divisor = (min(top + kh, h + ph) - top) * (min(left + kw, w + pw) - left)
                y[:, :, i, j] = window.sum(axis=(2, 3)) / divisor
            else:
                y[:, :, i, j] = ((window ** 2).sum(axis=(2, 3)) /
                                 (FLT_MIN + window.sum(axis=(2, 3))))
    return y


def reference(x, height, pool, phase=pb.TRAIN):
    levels = [reference_level(x, level, pool, phase) for level in range(height)]
    return np.concatenate([y.reshape(x.shape[0], -1) for y in levels], axis=1)


def values(shape, seed=0):
    """Distinct positive values 0.05 apart (no max ties; stochastic-friendly)."""
    return 0.5 + np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape) * 0.05


@pytest.mark.parametrize("hw", [(8, 8), (7, 6), (13, 11), (4, 9)])
@pytest.mark.parametrize("pool", [MAX, AVE])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(hw, pool, dtype):
    x = values((2, 3) + hw)
    _, top = run_layer(spp(pool, 3, dtype=dtype), x.astype(dtype))
    assert top[0].shape == (2, 3 * (1 + 4 + 16))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, reference(x, 3, pool), rtol=tol, atol=tol)


def test_stochastic_test_phase_is_the_weighted_average_per_level():
    x = values((2, 2, 7, 6))
    _, top = run_layer(spp(STOCHASTIC, 3, pb.TEST), x)
    np.testing.assert_allclose(top[0].data, reference(x, 3, STOCHASTIC, pb.TEST), rtol=1e-13)


def test_stochastic_train_draws_a_pixel_of_each_bin():
    x = values((1, 1, 8, 8))
    set_random_seed(2)
    _, top = run_layer(spp(STOCHASTIC, 2), x)
    level0, level1 = top[0].data[0, 0], top[0].data[0, 1:].reshape(2, 2)
    assert level0 in x
    for i in range(2):
        for j in range(2):
            assert level1[i, j] in x[0, 0, 4 * i:4 * i + 4, 4 * j:4 * j + 4]


def test_pyramid_height_one_keeps_the_pooled_shape():
    # Caffe's SPP with one level is that level's Pooling: its top stays (N, C, 1, 1).
    x = values((2, 3, 5, 4))
    _, top = run_layer(spp(MAX, 1), x)
    assert top[0].shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(top[0].data[:, :, 0, 0], x.max(axis=(2, 3)))


def test_reshape_follows_a_new_input_size():
    layer = spp(AVE, 2)
    bottom, top = run_layer(layer, values((1, 2, 8, 8)))
    x = values((1, 2, 5, 7), seed=1)
    bottom[0].reshape(x.shape)
    bottom[0].data[...] = x
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, 2, AVE), rtol=1e-13)


@pytest.mark.parametrize("pool", [MAX, AVE, STOCHASTIC])
@pytest.mark.parametrize("height, hw", [(3, (7, 6)), (1, (3, 4)), (2, (5, 5))])
def test_gradient(pool, height, hw):
    layer = spp(pool, height)
    bottom = make_blobs(values((1, 2) + hw, seed=3))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("pool, phase", [(MAX, pb.TRAIN), (AVE, pb.TRAIN),
                                         (STOCHASTIC, pb.TRAIN), (STOCHASTIC, pb.TEST)])
@pytest.mark.parametrize("height", [1, 3])
def test_gpu_path_on_numpy_equals_cpu_path(pool, phase, height):
    x = values((2, 3, 7, 6), seed=4)
    runs = []
    for path in ("cpu", "gpu"):
        layer = spp(pool, height, phase)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom)
        set_random_seed(5)
        getattr(layer, f"forward_{path}")(bottom, top)
        result = [top[0].data.copy()]
        if phase == pb.TRAIN:
            top[0].diff[...] = np.random.default_rng(6).standard_normal(top[0].shape)
            getattr(layer, f"backward_{path}")(top, [True], bottom)
            result.append(bottom[0].diff.copy())
        runs.append(result)
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


def test_bottom_diff_is_written_not_accumulated():
    layer = spp(MAX, 2)
    bottom, top = run_layer(layer, values((1, 1, 4, 4)))
    bottom[0].diff[...] = 7.0
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.sum() == 5.0


def test_no_propagate_down_leaves_the_bottom_diff():
    layer = spp(AVE, 2)
    bottom, top = run_layer(layer, values((1, 1, 4, 4)))
    bottom[0].diff[...] = 7.0
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 7.0)


def test_stochastic_test_phase_has_no_backward():
    layer = spp(STOCHASTIC, 2, pb.TEST)
    bottom, top = run_layer(layer, values((1, 1, 4, 4)))
    with pytest.raises(NetError, match="'spp/level0'.*STOCHASTIC.*TEST"):
        layer.backward(top, [True], bottom)


def test_pyramid_height_is_required():
    param = pb.LayerParameter(name="spp", type="SPP")
    with pytest.raises(NetError, match="'spp'.*pyramid_height must be at least 1"):
        setup_layer(layer_class("SPP")(param, pb.TRAIN, np.float64), [Blob((1, 1, 4, 4))])


@pytest.mark.parametrize("hw", [(5, 8), (8, 3), (9, 16)])
def test_input_too_small_for_the_finest_level(hw):
    # 4 bins over 5 rows: kernel 2 and pad 2, which Caffe's Pooling rejects (pad >= kernel).
    with pytest.raises(ShapeError, match="'spp'.*too small for pyramid level"):
        setup_layer(spp(MAX, 3 if max(hw) <= 8 else 4), [Blob((1, 1) + hw)])


def test_bottom_must_be_4d():
    with pytest.raises(ShapeError, match="'spp'.*4-D"):
        setup_layer(spp(), [Blob((2, 3, 6))])
