import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.kernels import convolution as pipeline_module
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.conv_reference import make_conv, reference_conv
from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer


# (fields, stride, pad, dilation, group) of each configuration; input (2, 6, 7, 6)
CONFIGS = {
    "k3_p1": (dict(num_output=4, kernel_size=[3], pad=[1]), (1, 1), (1, 1), (1, 1), 1),
    "k3_s2": (dict(num_output=4, kernel_size=[3], stride=[2]), (2, 2), (0, 0), (1, 1), 1),
    "group3": (dict(num_output=6, kernel_size=[3], pad=[1], group=3), (1, 1), (1, 1), (1, 1), 3),
    "dilation2": (dict(num_output=3, kernel_size=[3], dilation=[2], pad=[2]),
                  (1, 1), (2, 2), (2, 2), 1),
    "nobias": (dict(num_output=3, kernel_size=[2], bias_term=False), (1, 1), (0, 0), (1, 1), 1),
    "rect_hw_fields": (dict(num_output=4, kernel_h=3, kernel_w=2, pad_h=1, pad_w=0,
                            stride_h=2, stride_w=1), (2, 1), (1, 0), (1, 1), 1),
    "rect_repeated": (dict(num_output=2, kernel_size=[2, 3], pad=[0, 2], stride=[1, 3],
                           dilation=[2, 1], group=2), (1, 3), (0, 2), (2, 1), 2),
    "k1": (dict(num_output=5, kernel_size=[1]), (1, 1), (0, 0), (1, 1), 1),
    "k1_group2": (dict(num_output=4, kernel_size=[1], group=2), (1, 1), (0, 0), (1, 1), 2),
    "k1_s2": (dict(num_output=3, kernel_size=[1], stride=[2]), (2, 2), (0, 0), (1, 1), 1),
    "k1_p1": (dict(num_output=3, kernel_size=[1], pad=[1]), (1, 1), (1, 1), (1, 1), 1),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_direct_convolution(name, dtype):
    fields, stride, pad, dilation, group = CONFIGS[name]
    x = np.random.default_rng(0).standard_normal((2, 6, 7, 6))
    layer = make_conv(dtype=dtype, **fields)
    _, top = run_layer(layer, x.astype(dtype))
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = reference_conv(x, layer.blobs[0].data.astype(np.float64), bias, stride, dilation,
                              pad, pad, group)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gradient(name):
    fields = CONFIGS[name][0]
    layer = make_conv(**fields)
    channels = 6 if fields.get("group", 1) == 3 else 4
    bottom = make_blobs(np.random.default_rng(2).standard_normal((2, channels, 5, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_two_bottoms_share_weights():
    layer = make_conv(num_output=2, kernel_size=[2], stride=[2], pad=[1])
    rng = np.random.default_rng(3)
    bottom = make_blobs(rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 2, 3, 4)))
    top = setup_layer(layer, bottom, num_top=2)
    check_gradient(layer, bottom, top)


def test_param_diffs_accumulate_and_bottom_diff_is_written():
    layer = make_conv(num_output=3, kernel_size=[3], pad=[1])
    bottom, top = run_layer(layer, np.random.default_rng(4).standard_normal((2, 2, 5, 5)))
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    once = [p.diff.copy() for p in layer.blobs] + [bottom[0].diff.copy()]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0])
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * once[1])
    np.testing.assert_allclose(bottom[0].diff, once[2])


def test_no_propagate_down_leaves_bottom_diff_alone():
    layer = make_conv(num_output=3, kernel_size=[3])
    bottom, top = run_layer(layer, np.ones((1, 2, 4, 4)))
    bottom[0].diff[...] = 7.0
    top[0].diff[...] = 1.0
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].diff == 7.0)
    assert np.any(layer.blobs[0].diff != 0)


@pytest.mark.parametrize("fields", [dict(kernel_size=[3], pad=[1], group=2),
                                    dict(kernel_size=[3], stride=[2]),
                                    dict(kernel_size=[1]), dict(kernel_size=[1], group=2)])
@pytest.mark.parametrize("elements, threads", [(1 << 30, 2), (1 << 30, 3), (2000, 1)])
def test_forward_in_bands_of_output_rows(monkeypatch, fields, elements, threads):
    """One image on several threads, or an image whose columns pass CHUNK_ELEMENTS, goes in
    bands of output rows (a 1x1 kernel: of each group's outputs): the same forward as the
    direct sum."""
    monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", elements)
    monkeypatch.setattr(pipeline_module, "PARALLEL_FLOPS", 0)
    x = np.random.default_rng(9).standard_normal((1, 4, 30, 27))
    with threadpool_limits(threads, "openmp"):
        layer = make_conv(num_output=6, **fields)
        _, top = run_layer(layer, x)
    # (a 1x1 kernel reads the image as its columns: bands only to busy the threads)
    assert layer.pipeline.bands > 1 or layer.geometry.identity and threads == 1
    stride = (2, 2) if "stride" in fields else (1, 1)
    pad = (1, 1) if "pad" in fields else (0, 0)
    expected = reference_conv(x, layer.blobs[0].data, layer.blobs[1].data, stride, (1, 1),
                              pad, pad, fields.get("group", 1))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("group, threads", [(1, 2), (2, 3)])
def test_a_tall_1x1_product_goes_in_bands_of_outputs(monkeypatch, dtype, group, threads):
    """A 1x1 kernel with more outputs per group than output positions (SqueezeNet's conv10
    at batch 1) splits each group's outputs between the threads: the direct sum, bias
    added as the products store."""
    monkeypatch.setattr(pipeline_module, "PARALLEL_FLOPS", 0)
    x = np.random.default_rng(13).standard_normal((1, 6, 3, 4)).astype(dtype)
    with threadpool_limits(threads, "openmp"):
        layer = make_conv(dtype=dtype, num_output=26, kernel_size=[1], group=group)
        _, top = run_layer(layer, x)
    assert layer.pipeline.bands > 1
    assert pipeline_module.outputs_in_bands(layer.geometry, 26 // group)
    expected = reference_conv(x.astype(np.float64), layer.blobs[0].data.astype(np.float64),
                              layer.blobs[1].data.astype(np.float64), (1, 1), (1, 1), (0, 0),
                              (0, 0), group)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("group", [1, 2])
def test_any_chunk_size_and_thread_count_give_one_result(monkeypatch, group):
    """Chunks of 1, 2 or all 6 images, whole groups or blocks of one channel, on 1, 2 or 3
    threads (threads that get no chunk too), give one forward and one set of gradients."""
    x = np.random.default_rng(5).standard_normal((6, 4, 6, 6))
    dy = np.random.default_rng(6).standard_normal((6, 4, 6, 6))
    results = []
    for elements, threads in ((1 << 30, 1), (1, 2), (2 * 36 * 36, 3), (1, 3)):
        monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", elements)
        with threadpool_limits(threads, "openmp"):
            layer = make_conv(num_output=4, kernel_size=[3], pad=[1], group=group)
            set_random_seed(0)
            bottom, top = run_layer(layer, x)
            top[0].diff[...] = dy
            for p in layer.blobs:
                p.diff[...] = 0.25
            layer.backward(top, [True], bottom)
        results.append(((layer.pipeline.chunk, layer.pipeline.block), top[0].data.copy(),
                        bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
                        layer.blobs[1].diff.copy()))
    whole = 4 // group
    assert [r[0] for r in results] == [(6, whole), (1, 1), (2, whole), (1, 1)]
    for other in results[1:]:
        for a, b in zip(results[0][1:], other[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uneven_channel_blocks(monkeypatch, dtype):
    """Blocks of 2, 2 and 1 of a group's 5 channels: the reference forward, and (float64)
    the gradients."""
    # one channel of one image has 9 * 36 columns: room for two
    monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", 2 * 9 * 36)
    layer = make_conv(dtype=dtype, num_output=3, kernel_size=[3], pad=[1])
    x = np.random.default_rng(11).standard_normal((2, 5, 6, 6))
    bottom, top = run_layer(layer, x.astype(dtype))
    assert (layer.pipeline.chunk, layer.pipeline.block) == (1, 2)
    w, b = (blob.data.astype(np.float64) for blob in layer.blobs)
    expected = reference_conv(bottom[0].data.astype(np.float64), w, b, (1, 1), (1, 1), (1, 1),
                              (1, 1))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)
    if dtype == np.float64:
        check_gradient(layer, bottom, top)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("elements, group", [(1 << 30, 1), (2 * 9 * 36, 1), (1 << 30, 2)])
def test_scales_bias_and_slopes_after_the_last_block(monkeypatch, dtype, elements, group):
    """A folded forward's y = scale (W col(x)) + bias, then a ReLU of a slope per output: the
    products apply it as they store the last block of channels (AVX-512), or a pass after.
    Whole images jointly (small outputs) or channel blocks of 2, 2 and 1, and two groups."""
    monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", elements)
    layer = make_conv(dtype=dtype, num_output=4, kernel_size=[3], pad=[1], group=group)
    x = np.random.default_rng(12).standard_normal((3, 10, 6, 6))
    bottom, top = run_layer(layer, x.astype(dtype))
    scales, slopes = np.array([0.5, 2.0, -1.0, 1.5]), np.array([0.0, 0.25, 1.0, -2.0])
    w, b = (blob.data for blob in layer.blobs)
    y = np.empty_like(top[0].data)
    layer.pipeline.run(w, bottom[0].data, y, b, slopes=slopes, scales=scales)
    z = reference_conv(bottom[0].data.astype(np.float64), w.astype(np.float64), None, (1, 1),
                       (1, 1), (1, 1), (1, 1), group)
    z = z * scales[:, None, None] + b.astype(np.float64)[:, None, None]
    expected = np.where(z > 0, z, z * slopes[:, None, None])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_backward_recomputes_columns_when_bottom_changed_shape():
    layer = make_conv(num_output=2, kernel_size=[3], pad=[1])
    bottom, top = run_layer(layer, np.random.default_rng(7).standard_normal((2, 2, 5, 5)))
    bottom[0].reshape(3, 2, 4, 6)
    bottom[0].data[...] = np.random.default_rng(8).standard_normal((3, 2, 4, 6))
    layer.reshape(bottom, top)
    assert top[0].shape == (3, 2, 4, 6)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("name, identity", [("k1", True), ("k1_group2", True),
                                            ("k1_s2", False), ("k1_p1", False),
                                            ("k3_p1", False)])
def test_only_a_plain_1x1_reads_the_image_as_its_columns(name, identity):
    layer = make_conv(**CONFIGS[name][0])
    run_layer(layer, np.zeros((3, 4, 5, 4)))
    assert layer.geometry.identity == identity
    assert layer.pipeline.chunk == 1 or not identity


@pytest.mark.parametrize("name", ["rect_repeated", "k1_group2"])
def test_gpu_path_on_numpy_equals_cpu_path(name):
    fields = CONFIGS[name][0]
    x = np.random.default_rng(9).standard_normal((2, 4, 7, 6))
    dy = None
    runs = []
    for path in ("cpu", "gpu"):
        layer = make_conv(**fields)
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


def test_default_fillers_are_constant_zero():
    layer = make_conv(filled=False, num_output=2, kernel_size=[3])
    run_layer(layer, np.ones((1, 1, 3, 3)))
    assert layer.blobs[0].shape == (2, 1, 3, 3) and layer.blobs[1].shape == (2,)
    assert not np.any(layer.blobs[0].data) and not np.any(layer.blobs[1].data)


def test_given_weights_are_kept():
    param = pb.LayerParameter(name="conv", type="Convolution")
    param.convolution_param.num_output = 1
    param.convolution_param.kernel_size.append(1)
    param.convolution_param.bias_term = False
    blob = param.blobs.add()
    blob.shape.dim.extend([1, 2, 1, 1])
    blob.data.extend([2.0, -1.0])
    layer = layer_class("Convolution")(param, pb.TRAIN, np.float64)
    _, top = run_layer(layer, np.arange(8.0).reshape(1, 2, 2, 2))
    np.testing.assert_allclose(top[0].data.ravel(), 2 * np.arange(4.0) - np.arange(4.0, 8.0))


@pytest.mark.parametrize("case", ["conv_k3_p1_s1", "conv_k3_s2_p0", "conv_group3",
                                  "conv_dilation2", "conv_nobias", "conv_kh3_kw2",
                                  "conv_rect_pad_stride", "conv_k1"])
def test_caffe_golden(case):
    run_case(case)


@pytest.mark.parametrize("fields, shape, error, text", [
    (dict(num_output=4, kernel_size=[3], group=2), (1, 3, 5, 5), NetError, "group 2"),
    (dict(num_output=3, kernel_size=[3], group=2), (1, 4, 5, 5), NetError, "group 2"),
    (dict(kernel_size=[3]), (1, 3, 5, 5), NetError, "num_output"),
    (dict(num_output=2), (1, 3, 5, 5), NetError, "kernel_size"),
    (dict(num_output=2, kernel_size=[3], kernel_h=3, kernel_w=3), (1, 3, 5, 5), NetError,
     "not both"),
    (dict(num_output=2, kernel_h=3), (1, 3, 5, 5), NetError, "kernel_h and kernel_w"),
    (dict(num_output=2, kernel_size=[3, 3, 3]), (1, 3, 5, 5), NetError, "3 times"),
    (dict(num_output=2, kernel_size=[3], stride=[0]), (1, 3, 5, 5), NetError, "stride"),
    (dict(num_output=2, kernel_size=[3], axis=2), (1, 3, 5, 2), ShapeError,
     "larger than the input"),
    (dict(num_output=2, kernel_h=3, kernel_w=3), (1, 3, 5, 5, 5), NetError, "2-D only"),
    (dict(num_output=2, kernel_size=[7]), (1, 3, 5, 5), ShapeError, "larger than the input"),
])
def test_bad_parameters(fields, shape, error, text):
    layer = make_conv(**fields)
    with pytest.raises(error, match=text) as info:
        setup_layer(layer, [Blob(shape)])
    assert "'conv'" in str(info.value)


def test_given_weights_of_the_wrong_shape():
    param = pb.LayerParameter(name="conv", type="Convolution")
    param.convolution_param.num_output = 2
    param.convolution_param.kernel_size.append(3)
    param.convolution_param.bias_term = False
    blob = param.blobs.add()
    blob.shape.dim.extend([2, 4, 3, 3])
    blob.data.extend([0.0] * 72)
    layer = layer_class("Convolution")(param, pb.TRAIN, np.float64)
    with pytest.raises(ShapeError, match=r"'conv'.*\(2, 4, 3, 3\).*\(2, 3, 3, 3\)"):
        setup_layer(layer, [Blob((1, 3, 5, 5), np.float64)])


def test_reshape_to_other_channels_is_an_error():
    layer = make_conv(num_output=2, kernel_size=[3])
    bottom, top = run_layer(layer, np.ones((1, 3, 5, 5)))
    bottom[0].reshape(1, 4, 5, 5)
    with pytest.raises(ShapeError, match="'conv'.*expected \\(N, 3, H, W\\)"):
        layer.reshape(bottom, top)


def test_bottoms_and_tops_must_pair_up():
    layer = make_conv(num_output=2, kernel_size=[3])
    with pytest.raises(NetError, match="'conv'.*one top per bottom"):
        setup_layer(layer, [Blob((1, 1, 5, 5)), Blob((1, 1, 5, 5))], num_top=1)


@pytest.mark.parametrize("fields", [dict(kernel_size=[3], pad=[1]),
                                    dict(kernel_size=[3], pad=[1], group=4),
                                    dict(kernel_size=[3], pad=[1], bias_term=False)])
@pytest.mark.parametrize("phase", [pb.TRAIN, pb.TEST])
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_a_fused_relu_equals_the_relu_layer(monkeypatch, fields, phase, slope):
    """A ReLU folded into the output pass (the im2col pipeline, Winograd in TEST, the
    depthwise kernels) gives what a ReLU layer after the convolution gives, to the bit."""
    from cyffe.layers.kernels import winograd
    from cyffe.net.fold import Fold
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 0)
    monkeypatch.setattr(winograd, "MIN_TILES", 0)
    slope = float(np.float32(slope))    # what a ReLU reads from its float negative_slope
    x = np.random.default_rng(12).standard_normal((2, 4, 9, 10)).astype(np.float32)
    outputs = []
    for fused in (False, True):
        set_random_seed(2)
        layer = make_conv(dtype=np.float32, num_output=8, **fields)
        layer.phase = phase
        if fused:
            layer.fold = Fold(layer, [], slope)
        _, top = run_layer(layer, x)
        y = top[0].data
        outputs.append(y if fused else np.where(y > 0, y, (y.astype(np.float64) * slope)
                                                .astype(np.float32)))
    np.testing.assert_array_equal(outputs[1], outputs[0])
