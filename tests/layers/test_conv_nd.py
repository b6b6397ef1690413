"""N-D Convolution and Deconvolution: 1-D, 3-D, any axis, force_nd_im2col, 0 spatial axes."""
import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.proto.errors import NetError, ShapeError

from helpers.conv_reference import make_conv, reference_conv, reference_deconv
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

# (fields, input shape, stride, pad, dilation, group)
CONV_CONFIGS = {
    "1d_k3_p1": (dict(num_output=4, kernel_size=[3], pad=[1]), (2, 3, 9), (1,), (1,), (1,), 1),
    "1d_s2_d2_group": (dict(num_output=4, kernel_size=[3], stride=[2], dilation=[2], pad=[2],
                            group=2), (2, 4, 10), (2,), (2,), (2,), 2),
    "3d_k3_p1": (dict(num_output=3, kernel_size=[3], pad=[1]), (2, 2, 4, 5, 3),
                 (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    "3d_per_axis": (dict(num_output=4, kernel_size=[2, 3, 1], stride=[1, 2, 2],
                         pad=[0, 1, 1], dilation=[2, 1, 1], group=2, bias_term=False),
                    (2, 4, 5, 6, 4), (1, 2, 2), (0, 1, 1), (2, 1, 1), 2),
    "4d": (dict(num_output=2, kernel_size=[2], stride=[1, 2, 1, 1]), (1, 2, 3, 4, 3, 2),
           (1, 2, 1, 1), (0, 0, 0, 0), (1, 1, 1, 1), 1),
}


@pytest.mark.parametrize("name", sorted(CONV_CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_forward_matches_reference(name, dtype):
    fields, shape, stride, pad, dilation, group = CONV_CONFIGS[name]
    x = np.random.default_rng(0).standard_normal(shape)
    layer = make_conv(dtype=dtype, **fields)
    _, top = run_layer(layer, x.astype(dtype))
    assert layer.blobs[0].shape == (fields["num_output"], shape[1] // group) + (
        tuple(fields["kernel_size"]) * (len(shape) - 2) if len(fields["kernel_size"]) == 1
        else tuple(fields["kernel_size"]))
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = reference_conv(x, layer.blobs[0].data.astype(np.float64), bias, stride,
                              dilation, pad, pad, group)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["1d_k3_p1", "1d_s2_d2_group", "3d_per_axis"])
def test_conv_gradient(name):
    fields, shape, *_ = CONV_CONFIGS[name]
    small = {"1d_k3_p1": (2, 3, 6), "1d_s2_d2_group": (1, 4, 7),
             "3d_per_axis": (1, 4, 4, 4, 3)}[name]
    layer = make_conv(**fields)
    bottom = make_blobs(np.random.default_rng(1).standard_normal(small))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


def test_conv_gradient_3d_small():
    layer = make_conv(num_output=2, kernel_size=[2], pad=[1], stride=[2])
    bottom = make_blobs(np.random.default_rng(2).standard_normal((1, 2, 3, 3, 2)))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


def test_conv_axis2_treats_leading_axes_as_images():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 7))
    layer = make_conv(num_output=5, kernel_size=[3], pad=[1], axis=2)
    _, top = run_layer(layer, x)
    assert top[0].shape == (2, 3, 5, 7)
    expected = reference_conv(x.reshape(6, 4, 7), layer.blobs[0].data, layer.blobs[1].data,
                              (1,), (1,), (1,), (1,))
    np.testing.assert_allclose(top[0].data, expected.reshape(2, 3, 5, 7), rtol=1e-12,
                               atol=1e-12)
    bottom = make_blobs(np.random.default_rng(4).standard_normal((2, 1, 4, 5)))
    layer = make_conv(num_output=2, kernel_size=[2], axis=-2)
    check_gradient(layer, bottom, setup_layer(layer, bottom))


def test_conv_without_spatial_axes_is_a_channel_product():
    x = np.random.default_rng(5).standard_normal((3, 4))
    layer = make_conv(num_output=2, kernel_size=[1])
    _, top = run_layer(layer, x)
    assert layer.blobs[0].shape == (2, 4)
    np.testing.assert_allclose(top[0].data, x @ layer.blobs[0].data.T + layer.blobs[1].data,
                               rtol=1e-12)
    bottom = make_blobs(x)
    check_gradient(layer, bottom, setup_layer(layer, bottom))


def passes(layer, x, path="cpu", seed=8):
    """Forward and backward (a seeded random top diff) through one path; returns top data,
    bottom diff, param diffs."""
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom)
    getattr(layer, f"forward_{path}")(bottom, top)
    top[0].diff[...] = np.random.default_rng(seed).standard_normal(top[0].shape)
    for p in layer.blobs:
        p.diff[...] = 0.5
    getattr(layer, f"backward_{path}")(top, [True], bottom)
    return [top[0].data.copy(), bottom[0].diff.copy()] + [p.diff.copy() for p in layer.blobs]


def same_results(a, b, tol=1e-12):
    for u, v in zip(a, b):
        np.testing.assert_allclose(v, u, rtol=tol, atol=tol)


@pytest.mark.parametrize("fields", [
    dict(num_output=4, kernel_size=[3], pad=[1], stride=[2], group=2),
    dict(num_output=3, kernel_h=3, kernel_w=2, pad_h=1, stride_h=1, stride_w=2),
    dict(num_output=2, kernel_size=[2, 3], dilation=[2, 1], pad=[1, 0]),
])
def test_force_nd_im2col_equals_the_2d_kernels(fields):
    x = np.random.default_rng(6).standard_normal((2, 4, 7, 6))
    runs = []
    for force in (False, True):
        set_random_seed(7)
        runs.append(passes(make_conv(force_nd_im2col=force, **fields), x))
    same_results(*runs)


@pytest.mark.parametrize("type_name", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("shape, fields", [
    ((2, 4, 5, 3, 4), dict(num_output=4, kernel_size=[2, 3, 2], stride=[2, 1, 1],
                           pad=[1, 1, 0], group=2)),
    ((2, 3, 8), dict(num_output=2, kernel_size=[3], stride=[2], dilation=[2])),
])
def test_gpu_path_on_numpy_equals_cpu_path(type_name, shape, fields):
    x = np.random.default_rng(9).standard_normal(shape)
    runs = []
    for path in ("cpu", "gpu"):
        set_random_seed(10)
        runs.append(passes(make_conv(type_name, **fields), x, path))
    same_results(*runs)


# (fields, input shape, stride, pad, dilation, group)
DECONV_CONFIGS = {
    "1d_k3_s2_p1": (dict(num_output=3, kernel_size=[3], stride=[2], pad=[1]), (2, 2, 5),
                    (2,), (1,), (1,), 1),
    "1d_group_dilation": (dict(num_output=4, kernel_size=[2], dilation=[2], group=2),
                          (1, 4, 4), (1,), (0,), (2,), 2),
    "3d_k2_s2": (dict(num_output=2, kernel_size=[2], stride=[2]), (2, 3, 2, 3, 2),
                 (2, 2, 2), (0, 0, 0), (1, 1, 1), 1),
    "3d_per_axis": (dict(num_output=2, kernel_size=[3, 2, 2], stride=[1, 2, 1],
                         pad=[1, 0, 1], bias_term=False), (1, 2, 3, 2, 3),
                    (1, 2, 1), (1, 0, 1), (1, 1, 1), 1),
}


@pytest.mark.parametrize("name", sorted(DECONV_CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_deconv_forward_matches_reference(name, dtype):
    fields, shape, stride, pad, dilation, group = DECONV_CONFIGS[name]
    x = np.random.default_rng(12).standard_normal(shape)
    layer = make_conv("Deconvolution", "up", dtype, **fields)
    _, top = run_layer(layer, x.astype(dtype))
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = reference_deconv(x, layer.blobs[0].data.astype(np.float64), bias, stride,
                                dilation, pad, group)
    assert top[0].shape == expected.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(DECONV_CONFIGS))
def test_deconv_gradient(name):
    fields, shape, *_ = DECONV_CONFIGS[name]
    layer = make_conv("Deconvolution", "up", **fields)
    bottom = make_blobs(np.random.default_rng(13).standard_normal((1,) + shape[1:]))
    check_gradient(layer, bottom, setup_layer(layer, bottom))


@pytest.mark.parametrize("type_name, name", [("Convolution", "conv"),
                                             ("Deconvolution", "up")])
@pytest.mark.parametrize("fields, shape, error, text", [
    (dict(num_output=2, kernel_h=3, kernel_w=3), (1, 2, 5, 5, 5), NetError, "2-D only"),
    (dict(num_output=2, kernel_size=[3], stride_h=2, stride_w=2), (1, 2, 5), NetError,
     "2-D only"),
    (dict(num_output=2, kernel_size=[3, 3]), (1, 2, 5, 5, 5), NetError,
     r"given 2 times.*\(3\)"),
    (dict(num_output=2, kernel_size=[3], pad=[1, 1, 1, 1]), (1, 2, 5, 5, 5), NetError,
     "pad is given 4 times"),
    (dict(num_output=2, kernel_size=[3], dilation=[1, 0, 1]), (1, 2, 5, 5, 5), NetError,
     "dilation"),
    (dict(num_output=2, kernel_size=[3], axis=4), (1, 2, 5, 5), ShapeError, "axis 4"),
])
def test_bad_parameters(type_name, name, fields, shape, error, text):
    layer = make_conv(type_name, name, **fields)
    with pytest.raises(error, match=text) as info:
        setup_layer(layer, [Blob(shape)])
    assert f"'{name}'" in str(info.value)


def test_bottom_that_changes_its_number_of_axes_is_an_error():
    layer = make_conv(num_output=2, kernel_size=[3])
    bottom, top = run_layer(layer, np.ones((1, 2, 5, 5, 5)))
    bottom[0].reshape(1, 2, 5, 5)
    with pytest.raises(ShapeError, match=r"'conv'.*expected \(N, 2, D1, D2, D3\)"):
        layer.reshape(bottom, top)
    layer = make_conv(num_output=2, kernel_size=[3], axis=2)
    bottom, top = run_layer(layer, np.ones((2, 3, 2, 5)))
    bottom[0].reshape(2, 3, 4, 5)
    with pytest.raises(ShapeError, match=r"'conv'.*expected \(N1, N2, 2, D1\)"):
        layer.reshape(bottom, top)
