import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.kernels import convolution as pipeline_module
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.conv_reference import make_conv, reference_deconv
from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer


# (fields, stride, pad, dilation, group) of each configuration; input (2, 6, 4, 3)
CONFIGS = {
    "k2_s2": (dict(num_output=4, kernel_size=[2], stride=[2]), (2, 2), (0, 0), (1, 1), 1),
    "k3_s2_p1": (dict(num_output=3, kernel_size=[3], stride=[2], pad=[1]),
                 (2, 2), (1, 1), (1, 1), 1),
    "group3": (dict(num_output=6, kernel_size=[3], pad=[1], group=3), (1, 1), (1, 1), (1, 1), 3),
    "dilation2": (dict(num_output=2, kernel_size=[3], dilation=[2], stride=[2]),
                  (2, 2), (0, 0), (2, 2), 1),
    "nobias": (dict(num_output=3, kernel_size=[2], bias_term=False), (1, 1), (0, 0), (1, 1), 1),
    "rect_hw_fields": (dict(num_output=2, kernel_h=3, kernel_w=2, pad_h=1, pad_w=0,
                            stride_h=2, stride_w=1), (2, 1), (1, 0), (1, 1), 1),
    "rect_repeated": (dict(num_output=4, kernel_size=[2, 3], pad=[0, 1], stride=[1, 3],
                           dilation=[2, 1], group=2), (1, 3), (0, 1), (2, 1), 2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_direct_transposed_convolution(name, dtype):
    fields, stride, pad, dilation, group = CONFIGS[name]
    x = np.random.default_rng(0).standard_normal((2, 6, 4, 3))
    layer = make_conv("Deconvolution", "up", dtype, **fields)
    _, top = run_layer(layer, x.astype(dtype))
    assert layer.blobs[0].shape[:2] == (6, fields["num_output"] // group)
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = reference_deconv(x, layer.blobs[0].data.astype(np.float64), bias, stride, dilation,
                                pad, group)
    assert top[0].shape == expected.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


def test_output_size_and_weight_shape():
    layer = make_conv("Deconvolution", "up", num_output=4, kernel_size=[4], stride=[2], pad=[1],
                      group=2)
    _, top = run_layer(layer, np.ones((1, 6, 5, 3)))
    assert top[0].shape == (1, 4, 10, 6)
    assert layer.blobs[0].shape == (6, 2, 4, 4) and layer.blobs[1].shape == (4,)


def test_is_the_adjoint_of_convolution():
    """<deconv(x), y> == <x, conv(y)> for the same weights and no bias."""
    rng = np.random.default_rng(1)
    fields = dict(num_output=4, kernel_size=[3], stride=[2], pad=[1], group=2,
                  bias_term=False)
    up = make_conv("Deconvolution", "up", **fields)
    bottom, top = run_layer(up, rng.standard_normal((2, 6, 4, 4)))
    y = rng.standard_normal(top[0].shape)
    param = pb.LayerParameter(name="down", type="Convolution")
    param.convolution_param.CopyFrom(up.param.convolution_param)
    param.convolution_param.num_output = 6
    down = layer_class("Convolution")(param, pb.TRAIN, np.float64)
    conv_bottom = make_blobs(y)
    conv_top = setup_layer(down, conv_bottom)
    down.blobs[0].data[...] = up.blobs[0].data
    down.forward(conv_bottom, conv_top)
    np.testing.assert_allclose(np.sum(top[0].data * y),
                               np.sum(bottom[0].data * conv_top[0].data), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gradient(name):
    fields = CONFIGS[name][0]
    layer = make_conv("Deconvolution", "up", **fields)
    channels = 6 if fields.get("group", 1) == 3 else 4
    bottom = make_blobs(np.random.default_rng(2).standard_normal((2, channels, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_two_bottoms_share_weights():
    layer = make_conv("Deconvolution", "up", num_output=2, kernel_size=[2], stride=[2], pad=[1])
    rng = np.random.default_rng(3)
    bottom = make_blobs(rng.standard_normal((1, 2, 3, 2)), rng.standard_normal((1, 2, 3, 2)))
    top = setup_layer(layer, bottom, num_top=2)
    check_gradient(layer, bottom, top)


def test_param_diffs_accumulate_and_bottom_diff_is_written():
    layer = make_conv("Deconvolution", "up", num_output=3, kernel_size=[3], stride=[2])
    bottom, top = run_layer(layer, np.random.default_rng(4).standard_normal((2, 2, 3, 3)))
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    once = [p.diff.copy() for p in layer.blobs] + [bottom[0].diff.copy()]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0])
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * once[1])
    np.testing.assert_allclose(bottom[0].diff, once[2])


def test_no_propagate_down_leaves_bottom_diff_alone():
    layer = make_conv("Deconvolution", "up", num_output=3, kernel_size=[3])
    bottom, top = run_layer(layer, np.ones((1, 2, 4, 4)))
    bottom[0].diff[...] = 7.0
    top[0].diff[...] = 1.0
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 7.0)
    assert np.any(layer.blobs[0].diff != 0)


def test_any_chunk_size_and_thread_count_give_one_result(monkeypatch):
    """Deconvolution on Convolution's pipeline: chunks of all 5 images on one thread, or
    of one image and one channel on two or three, give one forward and one set of
    gradients."""
    x = np.random.default_rng(5).standard_normal((5, 3, 4, 4))
    dy = np.random.default_rng(6).standard_normal((5, 4, 9, 9))
    results = []
    for elements, threads in ((1 << 30, 1), (1, 2), (1, 3)):
        monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", elements)
        with threadpool_limits(threads, "openmp"):
            layer = make_conv("Deconvolution", "up", num_output=4, kernel_size=[3], stride=[2])
            set_random_seed(0)
            bottom, top = run_layer(layer, x)
            top[0].diff[...] = dy
            layer.backward(top, [True], bottom)
        results.append(((layer.pipeline.chunk, layer.pipeline.block), top[0].data.copy(),
                        bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
                        layer.blobs[1].diff.copy()))
    assert [r[0] for r in results] == [(5, 4), (1, 1), (1, 1)]
    for other in results[1:]:
        for a, b in zip(results[0][1:], other[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_reshape_to_a_new_size():
    layer = make_conv("Deconvolution", "up", num_output=2, kernel_size=[3], stride=[2], pad=[1])
    bottom, top = run_layer(layer, np.random.default_rng(7).standard_normal((2, 2, 3, 3)))
    bottom[0].reshape(3, 2, 2, 4)
    bottom[0].data[...] = np.random.default_rng(8).standard_normal((3, 2, 2, 4))
    layer.reshape(bottom, top)
    assert top[0].shape == (3, 2, 3, 7)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    fields = CONFIGS["rect_repeated"][0]
    x = np.random.default_rng(9).standard_normal((2, 4, 4, 3))
    dy = None
    runs = []
    for path in ("cpu", "gpu"):
        layer = make_conv("Deconvolution", "up", **fields)
        set_random_seed(11)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom)
        getattr(layer, f"forward_{path}")(bottom, top)
        if dy is None:
            dy = np.random.default_rng(10).standard_normal(top[0].shape)
        top[0].diff[...] = dy
        for p in layer.blobs:
            p.diff[...] = 0.5
        getattr(layer, f"backward_{path}")(top, [True], bottom)
        runs.append([top[0].data, bottom[0].diff] + [p.diff for p in layer.blobs])
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_given_weights_are_kept():
    param = pb.LayerParameter(name="up", type="Deconvolution")
    param.convolution_param.num_output = 2
    param.convolution_param.kernel_size.append(1)
    param.convolution_param.bias_term = False
    blob = param.blobs.add()
    blob.shape.dim.extend([1, 2, 1, 1])
    blob.data.extend([2.0, -1.0])
    layer = layer_class("Deconvolution")(param, pb.TRAIN, np.float64)
    _, top = run_layer(layer, np.arange(4.0).reshape(1, 1, 2, 2))
    np.testing.assert_allclose(top[0].data.reshape(2, 4), [2 * np.arange(4.0), -np.arange(4.0)])


@pytest.mark.parametrize("case", ["deconv_k2_s2", "deconv_k3_s2_p1", "deconv_group3"])
def test_caffe_golden(case):
    run_case(case)


@pytest.mark.parametrize("fields, shape, error, text", [
    (dict(num_output=4, kernel_size=[3], group=2), (1, 3, 5, 5), NetError, "group 2"),
    (dict(num_output=3, kernel_size=[3], group=2), (1, 4, 5, 5), NetError, "group 2"),
    (dict(kernel_size=[3]), (1, 3, 5, 5), NetError, "num_output"),
    (dict(num_output=2), (1, 3, 5, 5), NetError, "kernel_size"),
    (dict(num_output=2, kernel_size=[3], dilation=[0]), (1, 3, 5, 5), NetError, "dilation"),
    (dict(num_output=2, kernel_size=[1], pad=[1]), (1, 3, 1, 5), ShapeError,
     "pad .* too large"),
])
def test_bad_parameters(fields, shape, error, text):
    layer = make_conv("Deconvolution", "up", **fields)
    with pytest.raises(error, match=text) as info:
        setup_layer(layer, [Blob(shape)])
    assert "'up'" in str(info.value)


def test_given_weights_of_the_wrong_shape():
    param = pb.LayerParameter(name="up", type="Deconvolution")
    param.convolution_param.num_output = 2
    param.convolution_param.kernel_size.append(3)
    param.convolution_param.bias_term = False
    blob = param.blobs.add()
    blob.shape.dim.extend([2, 3, 3, 3])
    blob.data.extend([0.0] * 54)
    layer = layer_class("Deconvolution")(param, pb.TRAIN, np.float64)
    with pytest.raises(ShapeError, match=r"'up'.*\(2, 3, 3, 3\).*\(3, 2, 3, 3\)"):
        setup_layer(layer, [Blob((1, 3, 5, 5), np.float64)])


def test_bottoms_and_tops_must_pair_up():
    layer = make_conv("Deconvolution", "up", num_output=2, kernel_size=[3])
    with pytest.raises(NetError, match="'up'.*Deconvolution.*one top per bottom"):
        setup_layer(layer, [Blob((1, 1, 5, 5)), Blob((1, 1, 5, 5))], num_top=1)
