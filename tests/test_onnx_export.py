"""ONNX export, layer by layer: each mapping's model, run in ONNX Runtime, gives cyffe's outputs.

Every case is a one-layer net (or a few layers) on seeded random inputs and params, with
odd shapes where Caffe's rules bite (pooling's rounded-up output, its last window in the
padding, AVE's divisor at the border). Outputs agree within 1e-4 of their scale (the
largest |value| of cyffe's output). Also: the errors, the dynamic batch, the opsets, the
left-out loss layers and the export_onnx tool.
"""
import numpy as np
import pytest

import cyffe
from cyffe.proto.errors import NetError
from helpers.onnx_check import TOLERANCE, relative_error, run_onnx

onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx: pip install \"cyffe[onnx]\"")
ort = pytest.importorskip("onnxruntime",
                          reason="checking ONNX exports needs onnxruntime: pip install onnxruntime")


def fill_params(net, rng):
    """Seeded random params: normal weights, positive variances, a BatchNorm scale factor."""
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.standard_normal(blob.shape)
        if layer.type == "BatchNorm":
            layer.blobs[1].data[...] = rng.uniform(0.5, 2.0, layer.blobs[1].shape) * 2.5
            layer.blobs[2].data[...] = 2.5


def check(prototxt, shapes, seed=0, positive=False, opset=17, phase=cyffe.TEST,
          dynamic_batch=False, feed_shapes=None):
    """Export the net of prototxt (inputs of shapes {name: shape}), compare every output."""
    text = "".join(f'input: "{n}" input_shape {{ {" ".join(f"dim: {d}" for d in s)} }}\n'
                   for n, s in shapes.items()) + prototxt
    rng = np.random.default_rng(seed)
    net = cyffe.Net(text, phase)
    fill_params(net, rng)
    model = cyffe.export_onnx(net, opset=opset, dynamic_batch=dynamic_batch)
    feed = {n: rng.standard_normal((feed_shapes or shapes)[n]).astype(np.float32)
            for n in shapes}
    if positive:
        feed = {n: np.abs(x) for n, x in feed.items()}
    expected = {k: np.array(v) for k, v in net.forward(**feed).items()}
    got = run_onnx(model, feed)
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        assert relative_error(got[name], value) <= TOLERANCE, name
    return model


def layer(type_, params="", bottoms=("data",), tops=("y",)):
    """One layer's prototxt."""
    wiring = "".join(f' bottom: "{b}"' for b in bottoms) + "".join(f' top: "{t}"' for t in tops)
    return f'layer {{ name: "l" type: "{type_}"{wiring} {params} }}\n'


IMAGE = {"data": (2, 3, 9, 9)}


@pytest.mark.parametrize("params, shape", [
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2", (2, 3, 9, 9)),
    ("num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 2 pad_w: 0 group: 3 "
     "dilation: 2", (2, 3, 11, 8)),
    ("num_output: 4 kernel_size: 1 bias_term: false", (1, 5, 4, 6)),
    ("num_output: 3 kernel_size: 3 pad: 1 stride: 2", (2, 2, 5, 6, 7)),
    ("num_output: 4 kernel_size: 3 axis: 2", (2, 3, 2, 8, 7)),
    ("num_output: 4 kernel_size: 3 stride: 2 pad_scheme: SAME", (2, 3, 8, 9)),
    ("num_output: 4 kernel_size: 3 pad: 2 pad_fill: REFLECT", (2, 3, 7, 6)),
    ("num_output: 4 kernel_size: 3 pad: 1 pad_fill: REPLICATE", (2, 3, 7, 6)),
    ("num_output: 4 kernel_size: 3 pad: 1 pad_fill: CONSTANT pad_value: 0.5", (2, 3, 7, 6)),
])
def test_convolution(params, shape):
    check(layer("Convolution", f"convolution_param {{ {params} }}"), {"data": shape})


@pytest.mark.parametrize("params, shape", [
    ("kernel_size: 3 pad: 1 stride: 2", (2, 3, 7, 8)),
    ("kernel_h: 2 kernel_w: 3 dilation: 2 pad_fill: REPLICATE pad: 1", (1, 2, 6, 9)),
    ("kernel_size: 2 stride: 2", (2, 2, 4, 5, 6)),
])
def test_im2col(params, shape):
    check(layer("Im2col", f"convolution_param {{ {params} }}"), {"data": shape})


@pytest.mark.parametrize("params", [
    "num_output: 4 kernel_size: 4 stride: 2 pad: 1",
    "num_output: 6 kernel_size: 3 group: 3 dilation: 2",
    "num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3 bias_term: false",
])
def test_deconvolution(params):
    check(layer("Deconvolution", f"convolution_param {{ {params} }}"), {"data": (2, 3, 5, 6)})


# (method, kernel, stride, pad, H, W): odd sizes where Caffe's ceil rounding adds a window
# that hangs past the padding, and AVE divides by the window clipped to the padded input.
POOLS = [(m, k, s, p, h, w) for m in ("MAX", "AVE") for k, s, p, h, w in [
    (3, 2, 0, 8, 9),          # last window overhangs the input: ceil gives one more
    (3, 2, 1, 7, 8),          # pad 1: last window overhangs the padding
    (2, 2, 1, 5, 6),
    (3, 3, 2, 10, 9),
    (4, 3, 3, 11, 7),         # pad 3 with kernel 4: the overhang past the padding is 3
    (3, 1, 1, 6, 5),
    (5, 4, 0, 6, 6),          # ceil: two windows, the second mostly past the input
]]


@pytest.mark.parametrize("method, kernel, stride, pad, height, width", POOLS)
def test_pooling_rounds_and_averages_as_caffe(method, kernel, stride, pad, height, width):
    check(layer("Pooling", f"pooling_param {{ pool: {method} kernel_size: {kernel} "
                           f"stride: {stride} pad: {pad} }}"),
          {"data": (2, 3, height, width)})


@pytest.mark.parametrize("params, shape, positive", [
    ("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1",
     (1, 2, 9, 10), False),
    ("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1",
     (1, 2, 9, 10), False),
    ("pool: AVE kernel_size: 3 stride: 2 round_mode: FLOOR", (2, 2, 8, 8), False),
    ("pool: AVE kernel_size: 4 stride: 3 pad: 1 round_mode: FLOOR", (2, 2, 9, 8), False),
    ("pool: MAX global_pooling: true", (2, 3, 5, 7), False),
    ("pool: AVE global_pooling: true", (2, 3, 5, 7), False),
    ("pool: L2 global_pooling: true", (2, 3, 5, 7), False),
    ("pool: AVE kernel_size: 3 stride: 2 pad_scheme: SAME", (2, 2, 8, 9), False),
    ("pool: MAX kernel_size: 3 stride: 2 pad_scheme: SAME", (2, 2, 8, 9), False),
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1 pad_fill: REPLICATE", (2, 2, 7, 8), False),
    ("pool: MAX kernel_size: 3 stride: 2 pad: 1 pad_fill: CONSTANT pad_value: 3",
     (2, 2, 7, 8), False),
    ("pool: L2 kernel_size: 3 stride: 2 pad: 1", (2, 2, 7, 8), False),
    ("pool: STOCHASTIC kernel_size: 3 stride: 2", (2, 2, 7, 8), True),
])
def test_pooling_variants(params, shape, positive):
    check(layer("Pooling", f"pooling_param {{ {params} }}"), {"data": shape},
          positive=positive)


@pytest.mark.parametrize("params", [
    "local_size: 5 alpha: 0.5 beta: 0.75 k: 2",
    "local_size: 3 alpha: 2 beta: 0.6 norm_region: WITHIN_CHANNEL",
])
def test_lrn(params):
    check(layer("LRN", f"lrn_param {{ {params} }}"), {"data": (2, 7, 6, 5)})


@pytest.mark.parametrize("params, shape", [
    ("num_output: 5", (2, 3, 4, 4)),
    ("num_output: 5 axis: 2", (2, 3, 4, 4)),
    ("num_output: 5 transpose: true bias_term: false", (3, 7)),
    ("num_output: 4 axis: 0", (2, 3)),
])
def test_inner_product(params, shape):
    check(layer("InnerProduct", f"inner_product_param {{ {params} }}"), {"data": shape})


@pytest.mark.parametrize("type_, params, positive", [
    ("ReLU", "", False),
    ("ReLU", "relu_param { negative_slope: 0.1 }", False),
    ("PReLU", "", False),
    ("PReLU", "prelu_param { channel_shared: true }", False),
    ("ELU", "elu_param { alpha: 0.7 }", False),
    ("Sigmoid", "", False),
    ("TanH", "", False),
    ("AbsVal", "", False),
    ("BNLL", "", False),
    ("Power", "power_param { power: 2 scale: 0.5 shift: 1 }", False),
    ("Power", "power_param { power: 0.5 scale: 2 }", True),
    ("Power", "power_param { power: 1 scale: -3 shift: 0.25 }", False),
    ("Power", "power_param { power: 0 scale: 2 shift: 1 }", False),
    ("Power", "power_param { power: 3 scale: 0 shift: 2 }", False),
    ("Power", "", False),
    ("Exp", "", False),
    ("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }", False),
    ("Log", "", True),
    ("Log", "log_param { base: 10 scale: 2 shift: 1 }", True),
    ("Threshold", "threshold_param { threshold: 0.3 }", False),
    ("Clip", "clip_param { min: -0.5 max: 0.8 }", False),
    ("Swish", "", False),
    ("Swish", "swish_param { beta: 1.5 }", False),
    ("Dropout", "dropout_param { dropout_ratio: 0.3 }", False),
])
def test_neuron(type_, params, positive):
    check(layer(type_, params), {"data": (2, 3, 4, 5)}, positive=positive)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 3), (2, 3, 2, 3, 2)])
def test_batch_norm_reads_caffe_scale_factor(shape):
    check(layer("BatchNorm", "batch_norm_param { eps: 0.001 }"), {"data": shape})


def test_batch_norm_scale_factor_zero_means_zero_statistics():
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 4 dim: 4 }\n' +
                    layer("BatchNorm"), cyffe.TEST)
    for blob in net.layers[1].blobs:
        blob.data[...] = 5
    net.layers[1].blobs[2].data[...] = 0
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    expected = np.array(net.forward(data=x)["y"])
    got = run_onnx(cyffe.export_onnx(net), {"data": x})["y"]
    np.testing.assert_allclose(expected, x / np.sqrt(1e-5), rtol=1e-5)
    assert relative_error(got, expected) <= TOLERANCE


@pytest.mark.parametrize("net, shapes", [
    (layer("Scale", "scale_param { bias_term: true }"), IMAGE),
    (layer("Scale", "scale_param { axis: 1 num_axes: 2 }"), IMAGE),
    (layer("Scale", "scale_param { num_axes: 0 bias_term: true }"), IMAGE),
    (layer("Scale", "scale_param { axis: 0 num_axes: -1 }"), {"data": (2, 3)}),
    (layer("Scale", "scale_param { axis: 1 bias_term: true }", ("data", "s")),
     {"data": (2, 3, 4, 5), "s": (3, 4)}),
    (layer("Scale", "scale_param { axis: 0 }", ("data", "s")),
     {"data": (2, 3, 4, 5), "s": (2, 3)}),
    (layer("Bias"), IMAGE),
    (layer("Bias", "bias_param { axis: 2 num_axes: 2 }"), IMAGE),
    (layer("Bias", "", ("data", "b")), {"data": (2, 3, 4, 5), "b": (3,)}),
])
def test_scale_and_bias_broadcast(net, shapes):
    check(net, shapes)


@pytest.mark.parametrize("params, shape", [
    ("", (2, 3, 4, 5)), ("mvn_param { across_channels: true }", (2, 3, 4, 5)),
    ("mvn_param { normalize_variance: false }", (2, 3, 4, 5)),
    ("mvn_param { eps: 0.01 across_channels: true }", (2, 3, 4)),
    ("mvn_param { across_channels: true }", (3, 5)),
    ("", (3, 5)),                         # each (item, channel) is one value: all zeros
])
def test_mvn(params, shape):
    check(layer("MVN", params), {"data": shape})


@pytest.mark.parametrize("params", ["", "softmax_param { axis: 2 }",
                                    "softmax_param { axis: -1 }"])
def test_softmax(params):
    check(layer("Softmax", params), {"data": (2, 3, 4, 5)})


@pytest.mark.parametrize("params", ["", "concat_param { axis: 2 }",
                                    "concat_param { concat_dim: 1 }"])
def test_concat(params):
    shapes = {"a": (2, 3, 4, 5), "b": (2, 3, 4, 5)} if params.endswith("2 }") else {
        "a": (2, 3, 4, 5), "b": (2, 2, 4, 5)}
    check(layer("Concat", params, ("a", "b")), shapes)


@pytest.mark.parametrize("params, tops", [
    ("slice_param { slice_point: 1 slice_point: 4 }", ("p", "q", "r")),
    ("slice_param { axis: 2 }", ("p", "q")),
    ("slice_param { slice_dim: 1 slice_point: 2 }", ("p", "q")),
])
def test_slice(params, tops):
    check(layer("Slice", params, tops=tops), {"data": (2, 6, 4, 5)})


def test_split_feeds_one_blob_to_two_layers():
    net = (layer("ReLU", tops=("r",)) +
           'layer { name: "a" type: "TanH" bottom: "r" top: "a" }\n'
           'layer { name: "b" type: "Sigmoid" bottom: "r" top: "b" }\n'
           'layer { name: "c" type: "Eltwise" bottom: "a" bottom: "b" top: "c" }\n')
    check(net, IMAGE)


def test_in_place_layers_keep_the_blob_names():
    net = (layer("Convolution", "convolution_param { num_output: 2 kernel_size: 3 }",
                 tops=("conv",)) +
           'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
           'layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" }\n')
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 9 dim: 9 }\n' + net,
                    cyffe.TEST)
    fill_params(net, np.random.default_rng(0))
    model = cyffe.export_onnx(net)
    # Caffe's rule: the last in-place write of a blob nobody reads is an output.
    assert [o.name for o in model.graph.output] == ["conv"]
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9)).astype(np.float32)
    expected = net.forward(data=x, blobs=["conv"])["conv"]
    assert relative_error(run_onnx(model, {"data": x})["conv"], expected) <= TOLERANCE
    assert [n.output[0] for n in model.graph.node] == ["conv@l", "conv@relu", "conv"]
    assert {"l.weight", "l.bias", "scale.scale"} <= {i.name for i in model.graph.initializer}


@pytest.mark.parametrize("type_, params", [
    ("Flatten", ""), ("Flatten", "flatten_param { axis: 2 }"),
    ("Flatten", "flatten_param { axis: 1 end_axis: 2 }"),
    ("Reshape", "reshape_param { shape { dim: 0 dim: -1 dim: 4 } }"),
    ("Reshape", "reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 1 }"),
    ("Tile", "tile_param { axis: 2 tiles: 3 }"),
    ("Tile", "tile_param { axis: -1 tiles: 2 }"),
])
def test_shape_layers(type_, params):
    check(layer(type_, params), {"data": (2, 3, 4, 5)})


@pytest.mark.parametrize("params", ["", "crop_param { axis: 1 offset: 1 }",
                                    "crop_param { axis: 2 offset: 1 offset: 2 }"])
def test_crop(params):
    check(layer("Crop", params, ("data", "ref")),
          {"data": (2, 4, 7, 8), "ref": (2, 3, 5, 5)})


@pytest.mark.parametrize("params", [
    "", "eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }",
    "eltwise_param { operation: PROD }", "eltwise_param { operation: MAX }",
])
def test_eltwise(params):
    check(layer("Eltwise", params, ("a", "b", "c")), {n: (2, 3, 4, 5) for n in "abc"})


@pytest.mark.parametrize("params", [
    "", "reduction_param { operation: ASUM axis: 1 }",
    "reduction_param { operation: SUMSQ axis: 2 coeff: 0.5 }",
    "reduction_param { operation: MEAN axis: -1 coeff: 2 }",
])
def test_reduction(params):
    check(layer("Reduction", params), {"data": (2, 3, 4, 5)})


@pytest.mark.parametrize("params", [
    "", "argmax_param { top_k: 3 }", "argmax_param { top_k: 2 out_max_val: true }",
    "argmax_param { axis: 1 }", "argmax_param { axis: 2 top_k: 2 out_max_val: true }",
    "argmax_param { axis: -1 top_k: 3 }",
])
def test_argmax(params):
    check(layer("ArgMax", params), {"data": (2, 3, 4, 5)})


@pytest.mark.parametrize("params, shape", [
    ("spp_param { pyramid_height: 3 }", (2, 3, 9, 7)),
    ("spp_param { pyramid_height: 2 pool: AVE }", (2, 3, 7, 10)),
    ("spp_param { pyramid_height: 1 }", (2, 3, 5, 5)),
])
def test_spp(params, shape):
    check(layer("SPP", params), {"data": shape})


@pytest.mark.parametrize("type_, params, shape", [
    ("LayerNorm", "", (2, 3, 4, 5)),
    ("LayerNorm", "layer_norm_param { axis: -1 eps: 0.01 affine: false }", (2, 3, 4)),
    ("GroupNorm", "group_norm_param { num_groups: 2 }", (2, 4, 3, 5)),
    ("GroupNorm", "group_norm_param { num_groups: 3 affine: false }", (2, 6, 5)),
    ("Maxout", "maxout_param { num_pieces: 3 }", (2, 6, 4, 5)),
])
def test_cyffe_own_layers(type_, params, shape):
    check(layer(type_, params), {"data": shape})


def test_embed_and_batch_reindex_take_float_indices():
    text = ('input: "ids" input_shape { dim: 2 dim: 3 }\n'
            'input: "data" input_shape { dim: 4 dim: 5 }\n'
            'input: "pick" input_shape { dim: 3 }\n'
            'layer { name: "embed" type: "Embed" bottom: "ids" top: "vectors" '
            'embed_param { num_output: 6 input_dim: 7 } }\n'
            'layer { name: "reindex" type: "BatchReindex" bottom: "data" bottom: "pick" '
            'top: "picked" }\n'
            'layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 2 '
            'dim: 3 } } }\n')
    net = cyffe.Net(text, cyffe.TEST)
    fill_params(net, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    feed = {"ids": rng.integers(0, 7, (2, 3)).astype(np.float32),
            "data": rng.standard_normal((4, 5)).astype(np.float32),
            "pick": np.array([3, 0, 3], np.float32)}
    expected = {k: np.array(v) for k, v in net.forward(**feed).items()}
    got = run_onnx(cyffe.export_onnx(net), feed)
    assert sorted(got) == sorted(expected) == ["picked", "vectors", "w"]
    for name in got:
        assert relative_error(got[name], expected[name]) <= TOLERANCE, name


@pytest.mark.parametrize("type_, static, expose", [
    ("LSTM", False, False), ("LSTM", True, False), ("LSTM", False, True),
    ("RNN", False, False), ("RNN", True, True),
])
def test_recurrent_layers_unrolled_with_cont(type_, static, expose):
    steps, num, hidden = 4, 3, 5
    states = ("h", "c") if type_ == "LSTM" else ("h",)
    bottoms = ["x", "cont"] + ["static"] * static + [f"{s}0" for s in states] * expose
    tops = ["y"] + [f"{s}T" for s in states] * expose
    shapes = {"x": (steps, num, 2, 3), "cont": (steps, num), "static": (num, 4),
              **{f"{s}0": (1, num, hidden) for s in states}}
    text = "".join(f'input: "{b}" input_shape {{ {" ".join(f"dim: {d}" for d in shapes[b])} }}\n'
                   for b in bottoms)
    text += layer(type_, f"recurrent_param {{ num_output: {hidden} "
                         f"expose_hidden: {str(expose).lower()} }}", bottoms, tops)
    net = cyffe.Net(text, cyffe.TEST)
    rng = np.random.default_rng(4)
    for blob in net.layers[-1].blobs:
        blob.data[...] = rng.standard_normal(blob.shape) * 0.5
    feed = {b: rng.standard_normal(shapes[b]).astype(np.float32) for b in bottoms}
    # Item 0 starts a sequence at step 0, item 1 another at step 2; the others carry on
    # from the state before the sequence (h_0, c_0 with expose_hidden, else zero).
    feed["cont"] = np.ones((steps, num), np.float32)
    feed["cont"][0, 0] = feed["cont"][2, 1] = 0
    expected = {k: np.array(v) for k, v in net.forward(**feed).items()}
    got = run_onnx(cyffe.export_onnx(net), feed)
    assert sorted(got) == sorted(expected) == sorted(tops)
    for name in tops:
        assert relative_error(got[name], expected[name]) <= TOLERANCE, name


def test_lstm_unit():
    text = ('input: "c_prev" input_shape { dim: 1 dim: 3 dim: 4 }\n'
            'input: "gates" input_shape { dim: 1 dim: 3 dim: 16 }\n'
            'input: "cont" input_shape { dim: 1 dim: 3 }\n' +
            layer("LSTMUnit", bottoms=("c_prev", "gates", "cont"), tops=("c", "h")))
    net = cyffe.Net(text, cyffe.TEST)
    rng = np.random.default_rng(5)
    feed = {"c_prev": rng.standard_normal((1, 3, 4)).astype(np.float32),
            "gates": rng.standard_normal((1, 3, 16)).astype(np.float32),
            "cont": np.array([[1, 0, 1]], np.float32)}
    expected = {k: np.array(v) for k, v in net.forward(**feed).items()}
    got = run_onnx(cyffe.export_onnx(net), feed)
    assert sorted(got) == sorted(expected) == ["c", "h"]
    for name in got:
        assert relative_error(got[name], expected[name]) <= TOLERANCE, name


SMALL_NET = """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "flat" type: "Flatten" bottom: "pool" top: "flat" }
layer { name: "mvn" type: "MVN" bottom: "flat" top: "mvn"
        mvn_param { across_channels: true } }
layer { name: "fc" type: "InnerProduct" bottom: "mvn" top: "fc"
        inner_product_param { num_output: 6 } }
layer { name: "slice" type: "Slice" bottom: "fc" top: "s1" top: "s2"
        slice_param { slice_point: 2 } }
layer { name: "sum" type: "Reduction" bottom: "s2" top: "sum" reduction_param { axis: 1 } }
layer { name: "prob" type: "Softmax" bottom: "s1" top: "prob" }
"""


@pytest.mark.parametrize("opset", [13, 17, 18, onnx.defs.onnx_opset_version()])
def test_every_opset_from_13(opset):
    model = check(SMALL_NET, {"data": (2, 3, 9, 9)}, opset=opset)
    assert model.opset_import[0].version == opset


def test_dynamic_batch_runs_other_batches():
    model = check(SMALL_NET, {"data": (1, 3, 9, 9)}, dynamic_batch=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    net = cyffe.Net('input: "data" input_shape { dim: 1 dim: 3 dim: 9 dim: 9 }\n' + SMALL_NET,
                    cyffe.TEST)
    fill_params(net, np.random.default_rng(0))
    model = cyffe.export_onnx(net, dynamic_batch=True)
    x = np.random.default_rng(2).standard_normal((5, 3, 9, 9)).astype(np.float32)
    got = run_onnx(model, {"data": x})
    expected = net.forward(data=x)
    for name in ("prob", "sum"):
        assert relative_error(got[name], expected[name]) <= TOLERANCE


def test_outputs_can_name_inner_blobs():
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 9 dim: 9 }\n' + SMALL_NET,
                    cyffe.TEST)
    fill_params(net, np.random.default_rng(0))
    model = cyffe.export_onnx(net, outputs=["conv", "pool", "prob"])
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 9)).astype(np.float32)
    expected = net.forward(data=x, blobs=["conv", "pool"])
    got = run_onnx(model, {"data": x})
    assert list(got) == ["conv", "pool", "prob"]
    for name in got:
        assert relative_error(got[name], expected[name]) <= TOLERANCE
    with pytest.raises(NetError, match="no blob named 'nope'"):
        cyffe.export_onnx(net, outputs=["nope"])


def test_an_unmapped_layer_is_an_error_naming_it():
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }\n'
                    'input: "keep" input_shape { dim: 2 }\n' +
                    layer("Filter", bottoms=("data", "keep")), cyffe.TEST)
    with pytest.raises(NetError, match=r"layer 'l' \(Filter\) cannot be exported to ONNX: no "
                                       r"ONNX mapping for type Filter; the types that map are .*"
                                       r"Convolution"):
        cyffe.export_onnx(net)


@pytest.mark.parametrize("type_, params, phase, why", [
    ("Dropout", "", cyffe.TRAIN, "drops at random"),
    ("BatchNorm", "", cyffe.TRAIN, "batch's own statistics"),
    ("Pooling", "pooling_param { pool: STOCHASTIC kernel_size: 2 }", cyffe.TRAIN, "random"),
])
def test_train_only_behaviour_is_an_error(type_, params, phase, why):
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }\n' +
                    layer(type_, params), phase)
    with pytest.raises(NetError, match=f"layer 'l' \\({type_}\\) cannot be exported.*{why}"):
        cyffe.export_onnx(net)


@pytest.mark.parametrize("params, shape, relu", [
    ("kernel_size: 3 stride: 2", (2, 3, 8, 9), False),
    ("kernel_size: 3 stride: 2 pad: 1", (2, 3, 7, 8), True),     # ties among the zeros
    ("global_pooling: true", (2, 3, 5, 4), False),
])
def test_pooling_mask_top_holds_caffe_argmax(params, shape, relu):
    first = 'layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }\n' if relu else ""
    check(first + layer("Pooling", f"pooling_param {{ pool: MAX {params} }}",
                        ("r" if relu else "data",), ("y", "mask")), {"data": shape})


def test_pooling_mask_of_a_filled_padding_is_an_error():
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }\n' +
                    layer("Pooling", "pooling_param { kernel_size: 3 pad: 1 pad_fill: "
                                     "REPLICATE }", tops=("y", "mask")), cyffe.TEST)
    with pytest.raises(NetError, match="mask top"):
        cyffe.export_onnx(net)


def test_a_data_layer_is_an_error_pointing_at_the_deploy_net():
    net = cyffe.Net('layer { name: "d" type: "DummyData" top: "data" dummy_data_param { '
                    'shape { dim: 2 dim: 3 } } }\n' + layer("ReLU"), cyffe.TEST)
    with pytest.raises(NetError, match=r"layer 'd' \(DummyData\).*deploy net"):
        cyffe.export_onnx(net)


def test_loss_accuracy_and_silence_are_left_out_with_a_note():
    text = ('input: "data" input_shape { dim: 4 dim: 6 }\n'
            'input: "label" input_shape { dim: 4 }\n' +
            layer("InnerProduct", "inner_product_param { num_output: 3 }", tops=("ip",)) +
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" '
            'top: "loss" }\n'
            'layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }\n'
            'layer { name: "quiet" type: "Silence" bottom: "label" }\n')
    net = cyffe.Net(text, cyffe.TEST)
    model = cyffe.export_onnx(net)
    assert [o.name for o in model.graph.output] == ["ip"]
    assert "layer 'loss' (SoftmaxWithLoss) left out" in model.doc_string
    assert "layer 'acc' (Accuracy) left out" in model.doc_string
    assert "layer 'quiet' (Silence) left out" in model.doc_string
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    got = run_onnx(model, {"data": x, "label": np.zeros(4, np.float32)})
    assert relative_error(got["ip"], net.forward(data=x, blobs=["ip"])["ip"]) <= TOLERANCE


def test_written_file_passes_the_checker(tmp_path):
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 dim: 9 dim: 9 }\n' + SMALL_NET,
                    cyffe.TEST)
    path = tmp_path / "small.onnx"
    cyffe.export_onnx(net, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["sum", "prob"]


def test_opset_out_of_range_is_an_error():
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 }\n' + layer("ReLU"), cyffe.TEST)
    with pytest.raises(cyffe.CyffeError, match="opset 11"):
        cyffe.export_onnx(net, opset=11)


def test_without_onnx_the_error_says_what_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    net = cyffe.Net('input: "data" input_shape { dim: 2 dim: 3 }\n' + layer("ReLU"), cyffe.TEST)
    with pytest.raises(cyffe.CyffeError, match=r'pip install "cyffe\[onnx\]"'):
        cyffe.export_onnx(net)
