"""The Im2col layer: patches as channels (Caffe's Im2col), forward, col2im backward."""
import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.conv_reference import make_conv, reference_im2col, same_pads
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

# (fields, input shape, kernel, stride, dilation, pad)
CONFIGS = {
    "k3_p1": (dict(kernel_size=[3], pad=[1]), (2, 3, 5, 4), (3, 3), (1, 1), (1, 1), (1, 1)),
    "rect_s2_d2": (dict(kernel_h=2, kernel_w=3, stride_h=2, stride_w=1, pad_h=1,
                        dilation=[2]), (2, 2, 6, 7), (2, 3), (2, 1), (2, 2), (1, 0)),
    "1d": (dict(kernel_size=[2], stride=[2], pad=[1]), (2, 3, 7), (2,), (2,), (1,), (1,)),
    "3d": (dict(kernel_size=[2, 2, 1], pad=[1, 0, 0]), (1, 2, 3, 3, 2), (2, 2, 1),
           (1, 1, 1), (1, 1, 1), (1, 0, 0)),
    "2d_force_nd": (dict(kernel_size=[3], stride=[2], pad=[1], force_nd_im2col=True),
                    (2, 2, 5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(name, dtype):
    fields, shape, kernel, stride, dilation, pad = CONFIGS[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    layer = make_conv("Im2col", "cols", dtype, filled=False, **fields)
    _, top = run_layer(layer, x)
    expected = reference_im2col(x, kernel, stride, dilation, pad, pad)
    assert top[0].shape == expected.shape
    np.testing.assert_array_equal(top[0].data, expected.astype(dtype))


def test_same_padding_and_fill():
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 4))
    layer = make_conv("Im2col", "cols", filled=False, kernel_size=[2], stride=[2],
                      pad_scheme=pb.SAME, pad_fill=pb.CONSTANT, pad_value=3.0)
    _, top = run_layer(layer, x)
    before, after = same_pads((5, 4), (2, 2), (2, 2), (1, 1))
    expected = reference_im2col(x, (2, 2), (2, 2), (1, 1), before, after, "constant", 3.0)
    assert top[0].shape == (2, 8, 3, 2)
    np.testing.assert_array_equal(top[0].data, expected)


def test_reflect_and_replicate_fill_the_corners_as_np_pad():
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    for fill, field in (("reflect", pb.REFLECT), ("replicate", pb.REPLICATE)):
        layer = make_conv("Im2col", "cols", filled=False, pad=[2], kernel_size=[1],
                          pad_fill=field)
        _, top = run_layer(layer, x)
        expected = reference_im2col(x, (1, 1), (1, 1), (1, 1), (2, 2), (2, 2), fill)
        np.testing.assert_array_equal(top[0].data, expected)


def test_axis2():
    x = np.random.default_rng(2).standard_normal((2, 3, 2, 6))
    layer = make_conv("Im2col", "cols", filled=False, kernel_size=[3], axis=2)
    _, top = run_layer(layer, x)
    expected = reference_im2col(x.reshape(6, 2, 6), (3,), (1,), (1,), (0,), (0,))
    np.testing.assert_array_equal(top[0].data, expected.reshape(2, 3, 6, 4))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gradient(name):
    fields, shape, *_ = CONFIGS[name]
    layer = make_conv("Im2col", "cols", filled=False, **fields)
    bottom = make_blobs(np.random.default_rng(3).standard_normal(shape))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


@pytest.mark.parametrize("fill", [pb.REFLECT, pb.REPLICATE, pb.CONSTANT])
def test_gradient_with_fill(fill):
    layer = make_conv("Im2col", "cols", filled=False, kernel_size=[3], pad=[2, 1],
                      pad_fill=fill, pad_value=1.5)
    bottom = make_blobs(np.random.default_rng(4).standard_normal((2, 2, 4, 3)))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gpu_path_on_numpy_equals_cpu_path(name):
    fields, shape, *_ = CONFIGS[name]
    x = np.random.default_rng(5).standard_normal(shape)
    runs = []
    for path in ("cpu", "gpu"):
        layer = make_conv("Im2col", "cols", filled=False, pad_fill=pb.REFLECT, **fields)
        bottom, top = run_layer(layer, x, path=path)
        top[0].diff[...] = np.random.default_rng(6).standard_normal(top[0].shape)
        getattr(layer, f"backward_{path}")(top, [True], bottom)
        runs.append((top[0].data.copy(), bottom[0].diff.copy()))
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_no_propagate_down_leaves_bottom_diff_alone():
    layer = make_conv("Im2col", "cols", filled=False, kernel_size=[2])
    bottom, top = run_layer(layer, np.ones((1, 2, 3, 3)))
    bottom[0].diff[...] = 7.0
    top[0].diff[...] = 1.0
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 7.0)


@pytest.mark.parametrize("fields, shape, error, text", [
    (dict(), (1, 2, 5, 5), NetError, "kernel_size"),
    (dict(kernel_size=[3], stride=[0]), (1, 2, 5, 5), NetError, "stride"),
    (dict(kernel_size=[3, 3]), (1, 2, 5), NetError, "given 2 times"),
    (dict(kernel_size=[7]), (1, 2, 5, 5), ShapeError, "larger than the input"),
    (dict(kernel_size=[3], pad=[1], pad_scheme=pb.SAME), (1, 2, 5, 5), NetError, "SAME"),
    (dict(kernel_size=[3], pad=[2], pad_fill=pb.REFLECT), (1, 2, 2, 5), ShapeError, "REFLECT"),
])
def test_bad_parameters(fields, shape, error, text):
    layer = make_conv("Im2col", "cols", filled=False, **fields)
    with pytest.raises(error, match=text) as info:
        setup_layer(layer, [Blob(shape)])
    assert "'cols'" in str(info.value)


def test_reshape_to_other_channels_is_an_error():
    layer = make_conv("Im2col", "cols", filled=False, kernel_size=[2])
    bottom, top = run_layer(layer, np.ones((1, 2, 3, 3)))
    bottom[0].reshape(1, 3, 3, 3)
    with pytest.raises(ShapeError, match=r"'cols'.*expected \(N, 2, H, W\)"):
        layer.reshape(bottom, top)
