"""Convolution's cyffe-only padding: pad_scheme SAME and pad_fill CONSTANT/REFLECT/REPLICATE."""
import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.conv_reference import make_conv, reference_conv, same_pads
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

FILLS = {"constant": pb.CONSTANT, "reflect": pb.REFLECT, "replicate": pb.REPLICATE}


@pytest.mark.parametrize("in_shape, kernel, stride, dilation", [
    ((7, 6), 3, 1, 1), ((7, 6), 3, 2, 1), ((8, 5), 2, 2, 1), ((9, 9), 4, 3, 1),
    ((6, 7), 3, 2, 2), ((5, 5), 1, 2, 1), ((3, 4), 5, 1, 1), ((10,), 4, 3, 1),
    ((5, 4, 3), 3, 2, 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_output_is_ceil_input_over_stride(in_shape, kernel, stride, dilation, dtype):
    x = np.random.default_rng(0).standard_normal((2, 3) + in_shape)
    layer = make_conv(dtype=dtype, num_output=2, kernel_size=[kernel], stride=[stride],
                      dilation=[dilation], pad_scheme=pb.SAME)
    _, top = run_layer(layer, x.astype(dtype))
    assert top[0].shape[2:] == tuple(-(-i // stride) for i in in_shape)
    dims = len(in_shape)
    before, after = same_pads(in_shape, (kernel,) * dims, (stride,) * dims, (dilation,) * dims)
    expected = reference_conv(x, layer.blobs[0].data.astype(np.float64), layer.blobs[1].data,
                              (stride,) * dims, (dilation,) * dims, before, after)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


def test_same_puts_the_odd_pixel_after():
    layer = make_conv(num_output=1, kernel_size=[2], pad_scheme=pb.SAME, bias_term=False)
    _, top = run_layer(layer, np.ones((1, 1, 3, 3)))
    assert layer.geometry.pad_before == (0, 0) and layer.geometry.pad_after == (1, 1)
    w = layer.blobs[0].data[0, 0]
    np.testing.assert_allclose(top[0].data[0, 0, 2, 2], w[0, 0])
    np.testing.assert_allclose(top[0].data[0, 0, 0, 0], w.sum())


# (fields, input shape, stride, dilation, explicit pad or None for SAME)
CONFIGS = {
    "2d_p1": (dict(num_output=3, kernel_size=[3], pad=[1]), (2, 2, 5, 4), (1, 1), (1, 1),
              (1, 1)),
    "2d_p2_s2_group": (dict(num_output=4, kernel_size=[3], pad=[2, 1], stride=[2], group=2),
                       (1, 4, 5, 6), (2, 2), (1, 1), (2, 1)),
    "2d_same_dilated": (dict(num_output=2, kernel_size=[3], dilation=[2],
                             pad_scheme=pb.SAME), (1, 2, 6, 5), (1, 1), (2, 2), None),
    "2d_same_s2": (dict(num_output=2, kernel_h=4, kernel_w=3, stride_h=2, stride_w=3,
                        pad_scheme=pb.SAME), (2, 2, 6, 7), (2, 3), (1, 1), None),
    "1d_p2": (dict(num_output=2, kernel_size=[3], pad=[2]), (2, 3, 6), (1,), (1,), (2,)),
    "3d_same": (dict(num_output=2, kernel_size=[2, 3, 2], pad_scheme=pb.SAME),
                (1, 2, 3, 4, 3), (1, 1, 1), (1, 1, 1), None),
    # 1x1 over a filled copy: the copy's pixels are the columns (the identity path)
    "2d_k1_p1": (dict(num_output=3, kernel_size=[1], pad=[1]), (2, 2, 4, 3), (1, 1), (1, 1),
                 (1, 1)),
}


def fill_case(name, fill, dtype=np.float64):
    fields, shape, stride, dilation, pad = CONFIGS[name]
    layer = make_conv(dtype=dtype, pad_fill=FILLS[fill], pad_value=0.75, **fields)
    kernel = layer.param.convolution_param.kernel_size or [
        layer.param.convolution_param.kernel_h, layer.param.convolution_param.kernel_w]
    kernel = tuple(kernel) * (len(shape) - 2) if len(kernel) == 1 else tuple(kernel)
    if pad is None:
        before, after = same_pads(shape[2:], kernel, stride, dilation)
    else:
        before = after = pad
    return layer, shape, stride, dilation, before, after


@pytest.mark.parametrize("fill", sorted(FILLS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fill_forward_matches_np_pad(name, fill, dtype):
    layer, shape, stride, dilation, before, after = fill_case(name, fill, dtype)
    x = np.random.default_rng(1).standard_normal(shape)
    _, top = run_layer(layer, x.astype(dtype))
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = reference_conv(x, layer.blobs[0].data.astype(np.float64), bias, stride,
                              dilation, before, after, layer.group, fill, 0.75)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("fill", sorted(FILLS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fill_gradient(name, fill):
    layer, shape, *_ = fill_case(name, fill)
    bottom = make_blobs(np.random.default_rng(2).standard_normal((1,) + shape[1:]))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


@pytest.mark.parametrize("fill", sorted(FILLS))
def test_fill_gradient_with_chunks_and_two_bottoms(fill, monkeypatch):
    from cyffe.layers.kernels import convolution
    monkeypatch.setattr(convolution, "CHUNK_ELEMENTS", 1)
    layer = make_conv(num_output=2, kernel_size=[3], pad=[1, 2], pad_fill=FILLS[fill],
                      pad_value=-0.5)
    rng = np.random.default_rng(3)
    bottom = make_blobs(rng.standard_normal((2, 2, 4, 3)), rng.standard_normal((2, 2, 4, 3)))
    top = setup_layer(layer, bottom, num_top=2)
    assert layer.pipeline.chunk == 1
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("fill", ["zero"] + sorted(FILLS))
@pytest.mark.parametrize("name", ["2d_p2_s2_group", "2d_same_s2", "3d_same"])
def test_gpu_path_on_numpy_equals_cpu_path(name, fill):
    fields, shape, *_ = CONFIGS[name]
    x = np.random.default_rng(4).standard_normal(shape)
    runs = []
    for path in ("cpu", "gpu"):
        set_random_seed(5)
        layer = make_conv(pad_fill=FILLS.get(fill, pb.ZERO), pad_value=0.25, **fields)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom)
        getattr(layer, f"forward_{path}")(bottom, top)
        top[0].diff[...] = np.random.default_rng(6).standard_normal(top[0].shape)
        for p in layer.blobs:
            p.diff[...] = 0.5
        getattr(layer, f"backward_{path}")(top, [True], bottom)
        runs.append([top[0].data.copy(), bottom[0].diff.copy()] +
                    [p.diff.copy() for p in layer.blobs])
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("type_name, name, fields, shape, error, text", [
    ("Convolution", "conv", dict(num_output=2, kernel_size=[3], pad=[1], pad_scheme=pb.SAME),
     (1, 2, 5, 5), NetError, "SAME computes the padding"),
    ("Convolution", "conv", dict(num_output=2, kernel_size=[3], pad_h=1, pad_w=1,
                                 pad_scheme=pb.SAME), (1, 2, 5, 5), NetError, "SAME"),
    ("Convolution", "conv", dict(num_output=2, kernel_size=[3], pad=[3],
                                 pad_fill=pb.REFLECT), (1, 2, 3, 5), ShapeError,
     r"REFLECT needs every pad smaller than the input.*\(3, 5\)"),
    ("Convolution", "conv", dict(num_output=2, kernel_size=[5], pad_scheme=pb.SAME,
                                 pad_fill=pb.REFLECT), (1, 2, 2, 6), ShapeError, "REFLECT"),
    ("Deconvolution", "up", dict(num_output=2, kernel_size=[3], pad_scheme=pb.SAME),
     (1, 2, 5, 5), NetError, "only pad_scheme EXPLICIT with pad_fill ZERO.*SAME"),
    ("Deconvolution", "up", dict(num_output=2, kernel_size=[3], pad=[1],
                                 pad_fill=pb.REPLICATE), (1, 2, 5, 5), NetError,
     "only pad_scheme EXPLICIT with pad_fill ZERO.*REPLICATE"),
])
def test_bad_padding(type_name, name, fields, shape, error, text):
    layer = make_conv(type_name, name, filled=False, **fields)
    with pytest.raises(error, match=text) as info:
        setup_layer(layer, [Blob(shape)])
    assert f"'{name}'" in str(info.value)
