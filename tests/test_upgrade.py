"""Old nets upgraded as Caffe's upgrade_proto does: V0, V1, old transformation fields, inputs."""
import warnings

import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe.net.analysis.drawing import to_dot
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import ProtoError
from cyffe.proto.io import read_binary_net, read_net, read_net_weights
from cyffe.proto.upgrade import UpgradeWarning, net_needs_upgrade, upgrade_net
from helpers.shared import shared_path


def parse(text):
    return text_format.Parse(text, pb.NetParameter())


def upgraded(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # a clean upgrade warns about nothing
        return upgrade_net(parse(text), "old.prototxt")


V1_NET = """
name: "old"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 stride: 1
                      weight_filler { type: "gaussian" std: 0.01 } }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "pool1" top: "ip"
         param: "shared_w" blob_share_mode: PERMISSIVE
         inner_product_param { num_output: 5 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss"
         loss_weight: 2 include { phase: TRAIN } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" exclude { phase: TRAIN } }
"""


def test_v1_layers_become_new_layers_field_by_field():
    net = upgraded(V1_NET)
    assert not net.layers and not net.input and not net.input_dim
    assert net.name == "old"
    assert [l.type for l in net.layer] == ["Input", "Convolution", "ReLU", "Pooling",
                                           "InnerProduct", "SoftmaxWithLoss", "Softmax"]
    inp, conv, relu, pool, ip, loss, prob = net.layer
    assert inp.name == "input" and list(inp.top) == ["data"]
    assert list(inp.input_param.shape[0].dim) == [2, 3, 8, 8]
    assert list(conv.bottom) == ["data"] and list(conv.top) == ["conv1"]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert conv.convolution_param.num_output == 4
    assert list(conv.convolution_param.kernel_size) == [3]
    assert conv.convolution_param.weight_filler.std == pytest.approx(0.01)
    assert list(relu.bottom) == list(relu.top) == ["conv1"]
    assert pool.pooling_param.pool == pb.PoolingParameter.MAX
    assert [(p.name, p.share_mode) for p in ip.param] == [("shared_w", pb.ParamSpec.PERMISSIVE)]
    assert ip.param[0].lr_mult == 1                       # unset V1 lists keep the defaults
    assert list(loss.loss_weight) == [2] and loss.include[0].phase == pb.TRAIN
    assert prob.exclude[0].phase == pb.TRAIN


def test_upgraded_v1_net_builds_like_its_new_twin():
    old = cyffe.Net(V1_NET, cyffe.TEST)
    assert old.blobs["prob"].data.shape == (2, 5)
    assert list(old.params) == ["conv1", "ip"]
    assert old.lr_mults == [1, 2, 1, 1]
    assert old.decay_mults == [1, 0, 1, 1]


def test_v1_data_layer_transformation_fields_move_into_transform_param():
    net = upgraded("""
        layers { name: "d" type: DATA top: "data" top: "label"
                 data_param { source: "db" batch_size: 7 scale: 0.5 mean_file: "m.binaryproto"
                              crop_size: 11 mirror: true } }
        layers { name: "i" type: IMAGE_DATA top: "x" top: "y"
                 image_data_param { source: "list.txt" scale: 2 } }
        layers { name: "w" type: WINDOW_DATA top: "z" top: "t"
                 window_data_param { source: "w.txt" mirror: true crop_size: 5 } }
    """)
    d, i, w = net.layer
    assert (d.type, i.type, w.type) == ("Data", "ImageData", "WindowData")
    assert d.data_param.source == "db" and d.data_param.batch_size == 7
    for holder in (d.data_param, i.image_data_param, w.window_data_param):
        for field in ("scale", "mean_file", "crop_size", "mirror"):
            assert not holder.HasField(field)
    t = d.transform_param
    assert (t.scale, t.mean_file, t.crop_size, t.mirror) == (0.5, "m.binaryproto", 11, True)
    assert i.transform_param.scale == 2 and not i.transform_param.HasField("mirror")
    assert w.transform_param.mirror and w.transform_param.crop_size == 5


V0_NET = """
name: "v0net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 10 input_dim: 10
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 6 kernelsize: 5 stride: 1 group: 1
                 biasterm: false blobs_lr: 1 weight_decay: 1
                 weight_filler { type: "xavier" } }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.25 } bottom: "norm1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 3
                 bias_filler { type: "constant" value: 0.5 } }
         bottom: "norm1" top: "fc" }
layers { layer { name: "cat" type: "concat" concat_dim: 1 } bottom: "fc" bottom: "fc" top: "cat" }
layers { layer { name: "prob" type: "softmax" } bottom: "cat" top: "prob" }
"""


def test_v0_layers_become_new_layers_and_padding_folds_into_the_conv():
    net = upgraded(V0_NET)
    assert net.name == "v0net"
    assert [l.name for l in net.layer] == ["input", "conv1", "relu1", "pool1", "norm1", "drop",
                                           "fc", "cat", "prob"]
    assert [l.type for l in net.layer[1:]] == ["Convolution", "ReLU", "Pooling", "LRN",
                                               "Dropout", "InnerProduct", "Concat", "Softmax"]
    conv, _, pool, lrn, drop, fc, cat, _ = net.layer[1:]
    assert list(conv.bottom) == ["data"]                       # the padding layer is gone
    c = conv.convolution_param
    assert (c.num_output, list(c.kernel_size), list(c.stride), c.group, c.bias_term) == (
        6, [5], [1], 1, False)
    assert list(c.pad) == [2] and c.weight_filler.type == "xavier"
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1)]
    p = pool.pooling_param
    assert (p.pool, p.kernel_size, p.stride) == (pb.PoolingParameter.AVE, 3, 2)
    l = lrn.lrn_param
    assert (l.local_size, l.beta, l.k) == (3, 0.75, 2) and l.alpha == pytest.approx(1e-4)
    assert drop.dropout_param.dropout_ratio == 0.25
    assert fc.inner_product_param.num_output == 3
    assert fc.inner_product_param.bias_filler.value == 0.5
    assert cat.concat_param.concat_dim == 1
    built = cyffe.Net(V0_NET, cyffe.TEST)
    assert built.blobs["conv1"].data.shape == (1, 6, 10, 10)     # 10 + 2*2 - 5 + 1
    assert built.blobs["prob"].data.shape == (1, 6)


def test_v0_data_layer_settings_go_to_data_and_transform_params():
    net = upgraded("""
        layers { layer { name: "mnist" type: "data" source: "db" batchsize: 64 scale: 0.1
                         meanfile: "mean" cropsize: 24 mirror: true rand_skip: 3 } top: "d" }
        layers { layer { name: "img" type: "images" source: "list" batchsize: 2 new_height: 9
                         new_width: 8 shuffle_images: true } top: "x" }
        layers { layer { name: "win" type: "window_data" source: "w" det_fg_threshold: 0.6
                         det_crop_mode: "square" det_context_pad: 4 } top: "y" }
    """)
    data, img, win = net.layer
    assert (data.type, img.type, win.type) == ("Data", "ImageData", "WindowData")
    assert (data.data_param.source, data.data_param.batch_size, data.data_param.rand_skip) == (
        "db", 64, 3)
    t = data.transform_param
    assert (t.mean_file, t.crop_size, t.mirror) == ("mean", 24, True)
    assert t.scale == pytest.approx(0.1)
    i = img.image_data_param
    assert (i.source, i.batch_size, i.new_height, i.new_width, i.shuffle) == ("list", 2, 9, 8, True)
    w = win.window_data_param
    assert (w.source, w.crop_mode, w.context_pad) == ("w", "square", 4)
    assert w.fg_threshold == pytest.approx(0.6)


def test_v0_setting_without_meaning_for_its_type_warns_and_names_the_layer():
    with pytest.warns(UpgradeWarning, match=r"old.prototxt: layer 'r'.*'num_output'.*'relu'"):
        net = upgrade_net(parse('input: "x" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1 '
                                'layers { layer { name: "r" type: "relu" num_output: 3 } '
                                'bottom: "x" top: "y" }'), "old.prototxt")
    assert net.layer[1].type == "ReLU"


@pytest.mark.parametrize("text, match", [
    ('layers { layer { name: "a" type: "warp" } top: "x" }', r"layer 'a'.*unknown V0 layer type"),
    ('layers { layer { name: "a" type: "relu" } bottom: "nowhere" top: "x" }',
     r"layer 'a'.*unknown bottom blob 'nowhere'"),
    ('input: "x" layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "px" }'
     'layers { layer { name: "r" type: "relu" } bottom: "px" top: "y" }',
     r"padding layer 'p' feeds layer 'r' of type 'relu'"),
    ('input: "x" input_dim: 1 input_dim: 2', r"1 net inputs need 4 input_dim values, got 2"),
])
def test_what_caffe_refuses_to_upgrade_is_a_proto_error(text, match):
    with pytest.raises(ProtoError, match="old.prototxt: " + match):
        upgrade_net(parse(text), "old.prototxt")


def test_a_net_with_both_layer_and_layers_keeps_the_v1_ones_and_warns():
    with pytest.warns(UpgradeWarning, match="both V1 'layers' and new 'layer'"):
        net = upgrade_net(parse('layer { name: "new" type: "ReLU" } '
                                'layers { name: "old" type: RELU }'), "n")
    assert [l.name for l in net.layer] == ["old"]


def test_net_inputs_with_input_shape_and_without_any_shape():
    net = upgraded('input: "a" input_shape { dim: 2 dim: 3 } input: "b" input_shape { dim: 2 } '
                   'layer { name: "s" type: "Silence" bottom: "a" bottom: "b" }')
    assert [l.type for l in net.layer] == ["Input", "Silence"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[2, 3], [2]]
    bare = upgraded('input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "r" }')
    assert not bare.input and [l.name for l in bare.layer] == ["r"]   # old caffemodels: stripped


def test_old_batch_norm_param_specs_are_zeroed():
    net = upgraded('layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" '
                   'param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 2 } param { lr_mult: 1 } }')
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3


def test_a_current_net_is_returned_as_it_is():
    param = parse('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }')
    assert not net_needs_upgrade(param)
    assert upgrade_net(param) is param
    old = parse(V1_NET)
    upgrade_net(old)
    assert len(old.layers) == 6 and not old.layer                  # the argument is left alone


def test_caffes_consolidated_v1_solver_nets_build_in_each_stage():
    path = shared_path("data", "caffe-prototxt", "examples", "mnist",
                       "lenet_consolidated_solver.prototxt")
    solver, _ = cyffe.proto.read_solver(str(path))
    net = upgrade_net(solver.net_param)
    assert [l.type for l in net.layer].count("Data") == 3
    assert net.layer[0].transform_param.scale == pytest.approx(0.00390625)
    conv1 = next(l for l in net.layer if l.name == "conv1")
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 1)]
    # Without the databases, the Data layers become Input layers of their batch shapes.
    for layer in net.layer:
        if layer.type == "Data":
            batch = layer.data_param.batch_size
            layer.type = "Input"
            layer.input_param.shape.add(dim=[batch, 1, 28, 28])
            layer.input_param.shape.add(dim=[batch])
            layer.ClearField("data_param")
            layer.ClearField("transform_param")
    for phase, stage, batch in [(cyffe.TRAIN, (), 64), (cyffe.TEST, ("test-on-test-set",), 100),
                                (cyffe.TEST, ("test-on-train-set",), 100)]:
        built = cyffe.Net(net, phase, stages=stage)
        assert built.blobs["ip2"].data.shape == (batch, 10)
        assert sum(l.type == "Input" for l in built.layers) == 1


def test_caffes_v1_caffemodel_upgrades_with_its_blobs():
    path = str(shared_path("data", "caffe-models", "cifar10_quick",
                           "cifar10_quick_iter_5000.caffemodel"))
    raw = read_binary_net(path)
    assert raw.layers and not raw.layer
    net = read_net_weights(path)
    assert not net.layers
    by_name = {l.name: l for l in net.layer}
    assert {"conv1", "conv2", "conv3", "ip1", "ip2"} <= set(by_name)
    assert by_name["conv1"].type == "Convolution" and by_name["ip1"].type == "InnerProduct"
    old_ip1 = next(l for l in raw.layers if l.name == "ip1")
    new_ip1 = by_name["ip1"]
    assert [(b.num, b.channels, b.height, b.width) for b in new_ip1.blobs] == [
        (1, 1, 64, 1024), (1, 1, 1, 64)]
    np.testing.assert_array_equal(np.asarray(new_ip1.blobs[0].data),
                                  np.asarray(old_ip1.blobs[0].data))


def test_read_net_keeps_the_old_format_and_net_upgrades_it():
    param, _ = read_net(V1_NET)
    assert param.layers and net_needs_upgrade(param)
    assert cyffe.Net(param, cyffe.TEST).param.layer[0].type == "Input"


def test_draw_net_draws_an_old_net():
    dot = to_dot(V1_NET, cyffe.TEST)
    assert "Convolution" in dot and "Input" in dot and "CONVOLUTION" not in dot
