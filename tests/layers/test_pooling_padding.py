"""Pooling's padding schemes (EXPLICIT, SAME) and fills (ZERO, CONSTANT, REFLECT, REPLICATE)."""
import math

import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

MAX, AVE = pb.PoolingParameter.MAX, pb.PoolingParameter.AVE
STOCHASTIC, L2 = pb.PoolingParameter.STOCHASTIC, pb.PoolingParameter.L2
FILLS = {"zero": pb.ZERO, "constant": pb.CONSTANT, "reflect": pb.REFLECT,
         "replicate": pb.REPLICATE}
LOWEST = -float(np.finfo(np.float32).max)
FLT_MIN = float(np.finfo(np.float32).tiny)


def pooling(method, fill, phase=pb.TRAIN, dtype=np.float64, **fields):
    param = pb.LayerParameter(name="pool", type="Pooling")
    param.pooling_param.pool = method
    param.pooling_param.pad_fill = fill
    for key, value in fields.items():
        setattr(param.pooling_param, key, value)
    return layer_class("Pooling")(param, phase, dtype)


def same_geometry(size, kernel, stride):
    """TensorFlow's SAME: (output, pad before, pad after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def reference(x, method, fill, kernel, stride, before, after, out, pad_value=0.0):
    """Pool x with its padding spelled out by np.pad (ZERO: Caffe's in-image windows)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out
    if fill == pb.ZERO:
        canvas, valid = x, None
        top, left, bottom_edge, right_edge = before[0], before[1], h + after[0], w + after[1]
    else:
        widths = ((0, 0), (0, 0), (before[0], after[0]), (before[1], after[1]))
        mode = {pb.CONSTANT: "constant", pb.REFLECT: "reflect", pb.REPLICATE: "edge"}[fill]
        extra = dict(constant_values=pad_value) if fill == pb.CONSTANT else {}
        canvas = np.pad(x, widths, mode=mode, **extra)
        top = left = 0
        bottom_edge, right_edge = canvas.shape[2:]
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * sh - top, j * sw - left
            window = canvas[:, :, max(r0, 0):min(r0 + kh, canvas.shape[2]),
                            max(c0, 0):min(c0 + kw, canvas.shape[3])].reshape(n, c, -1)
            if method == MAX:
                y[:, :, i, j] = window.max(axis=2) if window.size else LOWEST
            elif method == AVE:
                size = (min(r0 + kh, bottom_edge) - r0) * (min(c0 + kw, right_edge) - c0)
                y[:, :, i, j] = window.sum(axis=2) / size
            elif method == L2:
                y[:, :, i, j] = np.sqrt((window ** 2).sum(axis=2))
            else:
                y[:, :, i, j] = (window ** 2).sum(axis=2) / (FLT_MIN + window.sum(axis=2))
    return y


def values(shape, seed=0, low=0.5):
    """Distinct values spaced at least 0.05 apart, in [low, low + spread)."""
    count = np.prod(shape)
    return low + np.random.default_rng(seed).permutation(count).reshape(shape) * 0.05


@pytest.mark.parametrize("size, kernel, stride", [
    (7, 3, 2), (8, 3, 2), (6, 2, 2), (5, 2, 2), (7, 3, 1), (5, 4, 1), (4, 1, 3), (9, 5, 3)])
def test_same_output_is_ceil_of_input_over_stride(size, kernel, stride):
    layer = pooling(MAX, pb.ZERO, kernel_h=kernel, kernel_w=2, stride_h=stride, stride_w=1,
                    pad_scheme=pb.SAME)
    _, top = run_layer(layer, np.zeros((1, 1, size, 5)))
    assert top[0].shape == (1, 1, math.ceil(size / stride), 5)
    out, before, after = same_geometry(size, kernel, stride)
    assert layer.pad == (before, 0) and layer.pad_end == (after, 1)


# scheme fields, kernel, stride, input (H, W)
GEOMETRIES = {
    "explicit_k3_s2_p1": (dict(kernel_size=3, stride=2, pad=1), (3, 3), (2, 2), (7, 6)),
    "explicit_rect": (dict(kernel_h=3, kernel_w=2, stride_h=1, stride_w=2, pad_h=2, pad_w=1),
                      (3, 2), (1, 2), (5, 6)),
    "same_k3_s2": (dict(kernel_size=3, stride=2, pad_scheme=pb.SAME), (3, 3), (2, 2), (6, 7)),
    "same_k2_s1": (dict(kernel_size=2, stride=1, pad_scheme=pb.SAME), (2, 2), (1, 1), (5, 4)),
    "same_k4_s3": (dict(kernel_h=4, kernel_w=3, stride=3, pad_scheme=pb.SAME), (4, 3), (3, 3),
                   (7, 5)),
}


def geometry(name, hw):
    """(before, after, out) of a GEOMETRIES entry."""
    fields, kernel, stride = GEOMETRIES[name][:3]
    if fields.get("pad_scheme") == pb.SAME:
        axes = [same_geometry(s, k, t) for s, k, t in zip(hw, kernel, stride)]
        return ((axes[0][1], axes[1][1]), (axes[0][2], axes[1][2]),
                (axes[0][0], axes[1][0]))
    pad = (fields.get("pad_h", fields.get("pad", 0)), fields.get("pad_w", fields.get("pad", 0)))
    out = []
    for s, k, t, p in zip(hw, kernel, stride, pad):
        o = math.ceil((s + 2 * p - k) / t) + 1
        out.append(o - ((o - 1) * t >= s + p) if p else o)
    return pad, pad, tuple(out)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("fill", sorted(FILLS))
@pytest.mark.parametrize("method, phase", [(MAX, pb.TRAIN), (AVE, pb.TRAIN), (L2, pb.TRAIN),
                                           (STOCHASTIC, pb.TEST)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(name, fill, method, phase, dtype):
    fields, kernel, stride, hw = GEOMETRIES[name]
    extra = dict(pad_value=2.5) if fill == "constant" else {}
    x = values((2, 3) + hw, seed=1)
    layer = pooling(method, FILLS[fill], phase, dtype, **fields, **extra)
    _, top = run_layer(layer, x.astype(dtype))
    before, after, out = geometry(name, hw)
    expected = reference(x, method, FILLS[fill], kernel, stride, before, after, out,
                         extra.get("pad_value", 0.0))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


def test_constant_padding_takes_part_in_max_and_average():
    x = values((1, 1, 4, 4))
    _, top = run_layer(pooling(MAX, pb.CONSTANT, kernel_size=3, stride=1, pad=1, pad_value=9.0),
                       x, num_top=2)
    border = np.ones((4, 4), bool)
    border[1:3, 1:3] = False
    assert np.all(top[0].data[0, 0][border] == 9.0)
    assert np.all(top[1].data[0, 0][border] == -1)  # the winner is padding: no image pixel
    np.testing.assert_array_equal(top[0].data[0, 0, 1:3, 1:3],
                                  [[x[0, 0, :3, :3].max(), x[0, 0, :3, 1:].max()],
                                   [x[0, 0, 1:, :3].max(), x[0, 0, 1:, 1:].max()]])
    _, top = run_layer(pooling(AVE, pb.CONSTANT, kernel_size=2, stride=2, pad=1, pad_value=-4.0), x)
    assert top[0].data[0, 0, 0, 0] == (3 * -4.0 + x[0, 0, 0, 0]) / 4


def test_zero_fill_is_caffes_rule_not_a_constant_zero():
    # A negative image: with ZERO (Caffe) padding never wins a max; a CONSTANT 0 pad does.
    # AVE counts padded positions in the divisor either way, so the two agree there.
    x = -values((2, 2, 7, 7))
    zero = run_layer(pooling(MAX, pb.ZERO, kernel_size=3, stride=2, pad=1), x)[1][0].data
    constant = run_layer(pooling(MAX, pb.CONSTANT, kernel_size=3, stride=2, pad=1), x)[1][0].data
    assert np.all(zero[:, :, 0, 0] == x[:, :, :2, :2].max(axis=(2, 3)))
    assert np.all(constant[:, :, 0, 0] == 0)
    zero = run_layer(pooling(AVE, pb.ZERO, kernel_size=3, stride=2, pad=1), x)[1][0].data
    constant = run_layer(pooling(AVE, pb.CONSTANT, kernel_size=3, stride=2, pad=1), x)[1][0].data
    np.testing.assert_allclose(constant, zero, rtol=1e-14)
    assert zero[0, 0, 0, 0] == pytest.approx(x[0, 0, :2, :2].sum() / 9)


@pytest.mark.parametrize("fill, pixel", [("reflect", (1, 1)), ("replicate", (0, 0))])
def test_mask_top_names_the_source_pixel(fill, pixel):
    # Window (0, 0) starts at padded position (-1, -1), a copy of `pixel`; the first of
    # equal values wins, so the copy does, and the mask names the pixel it copies.
    x = np.zeros((1, 1, 3, 3))
    x[(0, 0) + pixel] = 5.0
    layer = pooling(MAX, FILLS[fill], kernel_size=2, stride=2, pad=1)
    _, top = run_layer(layer, x, num_top=2)
    assert top[0].data[0, 0, 0, 0] == 5.0
    assert top[1].data[0, 0, 0, 0] == pixel[0] * 3 + pixel[1]


@pytest.mark.parametrize("name", ["explicit_k3_s2_p1", "same_k2_s1", "same_k4_s3",
                                  "explicit_rect"])
@pytest.mark.parametrize("fill", sorted(FILLS))
@pytest.mark.parametrize("method", [MAX, AVE, L2, STOCHASTIC])
def test_gradient(name, fill, method):
    fields, hw = GEOMETRIES[name][0], GEOMETRIES[name][3]
    extra = dict(pad_value=1.23) if fill == "constant" else {}
    layer = pooling(method, FILLS[fill], **fields, **extra)
    bottom = make_blobs(values((1, 2) + hw, seed=3))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("fill", sorted(FILLS))
@pytest.mark.parametrize("method, phase", [(MAX, pb.TRAIN), (AVE, pb.TRAIN), (L2, pb.TRAIN),
                                           (STOCHASTIC, pb.TRAIN), (STOCHASTIC, pb.TEST)])
def test_gpu_path_on_numpy_equals_cpu_path(name, fill, method, phase):
    fields, hw = GEOMETRIES[name][0], GEOMETRIES[name][3]
    extra = dict(pad_value=1.7) if fill == "constant" else {}
    x = values((2, 3) + hw, seed=5)
    num_top = 2 if method == MAX else 1
    runs = []
    for path in ("cpu", "gpu"):
        layer = pooling(method, FILLS[fill], phase, **fields, **extra)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom, num_top=num_top)
        set_random_seed(4)
        getattr(layer, f"forward_{path}")(bottom, top)
        result = [t.data.copy() for t in top]
        if phase == pb.TRAIN:
            top[0].diff[...] = np.random.default_rng(6).standard_normal(top[0].shape)
            getattr(layer, f"backward_{path}")(top, [True], bottom)
            result.append(bottom[0].diff.copy())
        runs.append(result)
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("fields, text", [
    (dict(kernel_size=3, pad=1, pad_scheme=pb.SAME), "SAME .* remove pad"),
    (dict(kernel_size=3, pad_h=1, pad_w=0, pad_scheme=pb.SAME), "remove pad_h, pad_w"),
    (dict(kernel_size=3, round_mode=pb.PoolingParameter.FLOOR, pad_scheme=pb.SAME),
     "remove round_mode"),
    (dict(global_pooling=True, pad_scheme=pb.SAME), "global_pooling cannot use .*SAME"),
    (dict(kernel_size=3, pad=1, pad_value=1.0), "pad_value applies only to pad_fill CONSTANT"),
])
def test_bad_parameters(fields, text):
    with pytest.raises(NetError, match=f"'pool'.*{text}"):
        setup_layer(pooling(MAX, pb.ZERO, **fields), [Blob((1, 1, 6, 6))])


@pytest.mark.parametrize("fields, hw", [
    (dict(kernel_size=3, pad=2), (2, 6)),
    (dict(kernel_h=5, kernel_w=1, pad_scheme=pb.SAME), (2, 6)),   # SAME pads H by 2 each side
])
def test_reflect_needs_padding_smaller_than_the_input(fields, hw):
    with pytest.raises(ShapeError, match="'pool'.*REFLECT padding"):
        setup_layer(pooling(MAX, pb.REFLECT, **fields), [Blob((1, 1) + hw)])
    setup_layer(pooling(MAX, pb.REPLICATE, **fields), [Blob((1, 1) + hw)])
