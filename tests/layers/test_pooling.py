import math

import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

MAX, AVE = pb.PoolingParameter.MAX, pb.PoolingParameter.AVE


def pooling(dtype=np.float64, **fields):
    param = pb.LayerParameter(name="pool", type="Pooling")
    for key, value in fields.items():
        setattr(param.pooling_param, key, value)
    return layer_class("Pooling")(param, pb.TRAIN, dtype)


def reference_pool(x, method, kernel, stride, pad, ceil_mode=True):
    """Caffe's pooling written out plainly: (top, flat argmax or None)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    rounding = math.ceil if ceil_mode else math.floor
    ho = rounding((h + 2 * ph - kh) / sh) + 1
    wo = rounding((w + 2 * pw - kw) / sw) + 1
    if ph or pw:
        ho -= (ho - 1) * sh >= h + ph
        wo -= (wo - 1) * sw >= w + pw
    y = np.zeros((n, c, ho, wo))
    arg = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            top, left = i * sh - ph, j * sw - pw
            rows = range(max(top, 0), min(top + kh, h))
            cols = range(max(left, 0), min(left + kw, w))
            window = x[:, :, rows.start:rows.stop, cols.start:cols.stop]
            if method == MAX:
                flat = window.reshape(n, c, -1)
                k = flat.argmax(axis=2)
                y[:, :, i, j] = flat.max(axis=2)
                arg[:, :, i, j] = (rows.start + k // len(cols)) * w + cols.start + k % len(cols)
            else:
                divisor = (min(top + kh, h + ph) - top) * (min(left + kw, w + pw) - left)
                y[:, :, i, j] = window.sum(axis=(2, 3)) / divisor
    return y, (arg if method == MAX else None)


# fields, kernel, stride, pad, ceil_mode, input (H, W)
CONFIGS = {
    "k3_s2_p1": (dict(kernel_size=3, stride=2, pad=1), (3, 3), (2, 2), (1, 1), True, (7, 7)),
    "k2_s2": (dict(kernel_size=2, stride=2), (2, 2), (2, 2), (0, 0), True, (6, 7)),
    "k3_s2_overhang": (dict(kernel_size=3, stride=2), (3, 3), (2, 2), (0, 0), True, (8, 8)),
    "k2_s2_p1_clip": (dict(kernel_size=2, stride=2, pad=1), (2, 2), (2, 2), (1, 1), True, (5, 5)),
    "rect": (dict(kernel_h=3, kernel_w=2, stride_h=2, stride_w=1, pad_h=1, pad_w=0),
             (3, 2), (2, 1), (1, 0), True, (7, 6)),
    "floor": (dict(kernel_size=3, stride=2, pad=1, round_mode=pb.PoolingParameter.FLOOR),
              (3, 3), (2, 2), (1, 1), False, (8, 8)),
    "floor_no_pad": (dict(kernel_size=3, stride=2, round_mode=pb.PoolingParameter.FLOOR),
                     (3, 3), (2, 2), (0, 0), False, (8, 7)),
    # rows of more than 16 outputs (the AVX-512 kernel takes 16 at a time, stride 1 or 2)
    "wide_s1_p1": (dict(kernel_size=3, stride=1, pad=1), (3, 3), (1, 1), (1, 1), True, (4, 37)),
    "wide_s2": (dict(kernel_size=3, stride=2), (3, 3), (2, 2), (0, 0), True, (5, 70)),
    "wide_s3_p1": (dict(kernel_size=4, stride=3, pad=1), (4, 4), (3, 3), (1, 1), True, (5, 52)),
    # windows up to 16 columns wide take the values-only kernel's shuffles; wider, the mask's
    "k7_s2_p3": (dict(kernel_size=7, stride=2, pad=3), (7, 7), (2, 2), (3, 3), True, (9, 50)),
    "k16_s1": (dict(kernel_h=2, kernel_w=16, stride=1), (2, 16), (1, 1), (0, 0), True, (3, 40)),
    "k17_s2": (dict(kernel_h=1, kernel_w=17, stride_h=1, stride_w=2), (1, 17), (1, 2), (0, 0),
               True, (2, 60)),
}


def distinct_values(shape, seed=0):
    """Values spaced 0.1 apart in random order: no max ties, even under a small nudge."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(np.prod(shape)) * 0.1).reshape(shape) - 1.0


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("method", [MAX, AVE])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(name, method, dtype):
    fields, kernel, stride, pad, ceil_mode, hw = CONFIGS[name]
    x = distinct_values((2, 3) + hw)
    expected, arg = reference_pool(x, method, kernel, stride, pad, ceil_mode)
    layer = pooling(dtype, pool=method, **fields)
    _, top = run_layer(layer, x.astype(dtype), num_top=2 if method == MAX else 1)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)
    if method == MAX:
        np.testing.assert_array_equal(top[1].data, arg)


@pytest.mark.parametrize("method", [MAX, AVE])
def test_global_pooling(method):
    x = distinct_values((2, 3, 5, 4))
    _, top = run_layer(pooling(pool=method, global_pooling=True), x)
    expected = x.max(axis=(2, 3)) if method == MAX else x.mean(axis=(2, 3))
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], expected, rtol=1e-13)


@pytest.mark.parametrize("fields, hw, out", [
    (dict(kernel_size=3, stride=2), (8, 8), (4, 4)),                    # ceil overhang
    (dict(kernel_size=3, stride=2, round_mode=pb.PoolingParameter.FLOOR), (8, 8), (3, 3)),
    (dict(kernel_size=2, stride=2, pad=1), (5, 5), (3, 3)),             # clipped 4 -> 3
    (dict(kernel_size=2, stride=2, pad=1), (4, 4), (3, 3)),
    (dict(kernel_size=3, stride=1, pad=1), (5, 6), (5, 6)),
    (dict(kernel_size=5, stride=3), (3, 3), (1, 1)),                    # kernel past the image
])
def test_output_shape(fields, hw, out):
    _, top = run_layer(pooling(**fields), np.zeros((1, 1) + hw))
    assert top[0].shape == (1, 1) + out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_ties_take_the_first_pixel_of_the_window(dtype):
    layer = pooling(dtype, pool=MAX, kernel_size=3, stride=2, pad=1)
    _, top = run_layer(layer, np.ones((1, 1, 5, 5)), num_top=2)
    # Windows start at rows/cols -1, 1, 3: the first in-image pixel is 0, 1, 3.
    first = np.array([0, 1, 3])
    np.testing.assert_array_equal(top[1].data[0, 0], first[:, None] * 5 + first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_passes_over_nan(dtype):
    """A NaN never wins a window (x > best is false for it), as in Caffe's loop."""
    x = np.arange(20.0).reshape(1, 1, 1, 20)
    x[0, 0, 0, 7] = np.nan
    _, top = run_layer(pooling(dtype, pool=MAX, kernel_h=1, kernel_w=2, stride_h=1, stride_w=2),
                       x, num_top=2)
    # windows [0, 1], [2, 3], ...: the one of [6, nan] is 6
    expected = np.arange(1, 20, 2)
    expected[3] = 6
    np.testing.assert_array_equal(top[0].data[0, 0, 0], expected)
    np.testing.assert_array_equal(top[1].data[0, 0, 0], expected)
    x[0, 0, 0, 6] = np.nan
    _, top = run_layer(pooling(dtype, pool=MAX, kernel_h=1, kernel_w=2, stride_h=1, stride_w=2),
                       x, num_top=2)
    assert top[0].data[0, 0, 0, 3] == -np.finfo(np.float32).max and top[1].data[0, 0, 0, 3] == -1


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("method", [MAX, AVE])
def test_gradient(name, method):
    fields, hw = CONFIGS[name][0], CONFIGS[name][5]
    layer = pooling(pool=method, **fields)
    bottom = make_blobs(distinct_values((1, 2) + hw, seed=3))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("method", [MAX, AVE])
def test_global_gradient(method):
    layer = pooling(pool=method, global_pooling=True)
    bottom = make_blobs(distinct_values((2, 2, 3, 4), seed=4))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_bottom_diff_is_written_not_accumulated():
    layer = pooling(pool=MAX, kernel_size=2, stride=2)
    bottom, top = run_layer(layer, distinct_values((1, 1, 4, 4)))
    bottom[0].diff[...] = 5.0
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.sum() == 4.0 and set(np.unique(bottom[0].diff)) == {0.0, 1.0}


@pytest.mark.parametrize("name", ["k3_s2_p1", "k2_s2_p1_clip", "rect", "k3_s2_overhang"])
@pytest.mark.parametrize("method", [MAX, AVE])
def test_gpu_path_on_numpy_equals_cpu_path(name, method):
    fields, hw = CONFIGS[name][0], CONFIGS[name][5]
    x = distinct_values((2, 3) + hw, seed=5)
    num_top = 2 if method == MAX else 1
    runs = []
    for path in ("cpu", "gpu"):
        layer = pooling(pool=method, **fields)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom, num_top=num_top)
        getattr(layer, f"forward_{path}")(bottom, top)
        top[0].diff[...] = np.random.default_rng(6).standard_normal(top[0].shape)
        getattr(layer, f"backward_{path}")(top, [True], bottom)
        runs.append([t.data for t in top] + [bottom[0].diff])
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("case", [
    "pool_max_k3_s2_p1", "pool_ave_k3_s2_p1", "pool_max_k2_s2", "pool_ave_k2_s2",
    "pool_max_k3_s2_8x8", "pool_ave_k3_s2_8x8", "pool_ave_k3_s2_p1_8x8",
    "pool_max_k2_s2_p1_5x5", "pool_ave_k2_s2_p1_5x5", "pool_max_global", "pool_ave_global"])
def test_caffe_golden(case):
    run_case(case)


@pytest.mark.parametrize("fields, num_top, text", [
    (dict(kernel_size=2, pad=2), 1, "pad .* smaller than the kernel"),
    (dict(kernel_h=3, kernel_w=2, pad_h=1, pad_w=2), 1, "pad .* smaller than the kernel"),
    (dict(kernel_size=3, pool=pb.PoolingParameter.STOCHASTIC), 2, "mask"),
    (dict(kernel_size=3, pool=AVE), 2, "mask"),
    (dict(global_pooling=True, kernel_size=3), 1, "no kernel size"),
    (dict(global_pooling=True, pad=1), 1, "global_pooling allows only"),
    (dict(global_pooling=True, stride=2), 1, "global_pooling allows only"),
    (dict(), 1, "kernel_size"),
    (dict(kernel_h=3), 1, "kernel_size"),
    (dict(kernel_size=3, kernel_h=3, kernel_w=3), 1, "not both"),
    (dict(kernel_size=3, pad_h=1), 1, "pad_h and pad_w"),
    (dict(kernel_size=3, stride=2, stride_h=2, stride_w=2), 1, "stride_h and stride_w"),
    (dict(kernel_size=3, stride=0), 1, "stride must be positive"),
])
def test_bad_parameters(fields, num_top, text):
    layer = pooling(**fields)
    with pytest.raises(NetError, match=f"'pool'.*{text}"):
        setup_layer(layer, [Blob((1, 1, 6, 6))], num_top=num_top)


def test_bottom_must_be_4d():
    with pytest.raises(ShapeError, match="'pool'.*4-D"):
        setup_layer(pooling(kernel_size=2), [Blob((2, 3, 6))])


@pytest.mark.parametrize("method", [MAX, AVE])
def test_window_past_an_unpadded_edge(method):
    # kernel < stride without padding: Caffe keeps a last window that holds no pixel
    # (6 -> ceil(5/3) + 1 = 3 windows starting at 0, 3, 6). MAX gives -FLT_MAX and no
    # argmax (-1); AVE gives 0 here (Caffe divides an empty sum by a zero-size window).
    x = distinct_values((1, 2, 6, 6), seed=7)
    results = []
    for path in ("cpu", "gpu"):
        layer = pooling(pool=method, kernel_size=1, stride=3)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom, num_top=2 if method == MAX else 1)
        getattr(layer, f"forward_{path}")(bottom, top)
        top[0].diff[...] = 1.0
        getattr(layer, f"backward_{path}")(top, [True], bottom)
        results.append((top[0].data.copy(), bottom[0].diff.copy()))
        assert top[0].shape == (1, 2, 3, 3)
        np.testing.assert_array_equal(top[0].data[:, :, :2, :2], x[:, :, :4:3, :4:3])
        edge = -np.finfo(np.float32).max if method == MAX else 0.0
        assert np.all(top[0].data[:, :, 2, :] == edge) and np.all(top[0].data[:, :, :, 2] == edge)
        if method == MAX:
            assert np.all(top[1].data[:, :, 2, :] == -1)
        assert bottom[0].diff.sum() == 2 * 4
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def forward_only(layer):
    layer.forward_only = True
    return layer


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("method", [MAX, AVE])
def test_a_forward_without_backward_gives_the_same_values(name, method):
    """forward_only max pooling keeps no mask (AVX-512: column maxima first, then rows)."""
    fields, kernel, stride, pad, ceil_mode, hw = CONFIGS[name]
    x = distinct_values((2, 3) + hw)
    expected, _ = reference_pool(x, method, kernel, stride, pad, ceil_mode)
    _, top = run_layer(forward_only(pooling(np.float32, pool=method, **fields)),
                       x.astype(np.float32))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("width", [40, 9000])      # past the kernel's row buffer: masked
def test_max_without_a_mask_passes_over_nan(width):
    x = np.arange(float(width)).reshape(1, 1, 1, width)
    x[0, 0, 0, 6:8] = [5.0, np.nan]
    x[0, 0, 0, 10:12] = np.nan
    layer = forward_only(pooling(np.float32, pool=MAX, kernel_h=1, kernel_w=2, stride_h=1,
                                 stride_w=2))
    _, top = run_layer(layer, x.astype(np.float32))
    expected = np.arange(1, width, 2, dtype=np.float32)
    expected[3], expected[5] = 5, -np.finfo(np.float32).max
    np.testing.assert_array_equal(top[0].data[0, 0, 0], expected)


@pytest.mark.parametrize("hw", [(14, 14), (7, 7), (3, 40)])
def test_global_average_of_float32(hw):
    """Outputs of one column sum their windows 16 columns at a time (AVX-512)."""
    x = np.random.default_rng(3).standard_normal((2, 5) + hw).astype(np.float32)
    _, top = run_layer(pooling(np.float32, pool=AVE, global_pooling=True), x)
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], x.astype(np.float64).mean(axis=(2, 3)),
                               rtol=1e-5, atol=1e-6)
