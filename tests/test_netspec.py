"""NetSpec, cyffe.layers as L and cyffe.params as P, as pycaffe's net_spec."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe import layers as L, params as P
from cyffe.proto import caffe_pb2

def lenet(batch=8):
    n = cyffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[batch, 1, 8, 8]), dict(dim=[batch])], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, pad=1, num_output=4,
                            weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool1, num_output=16, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.accuracy = L.Accuracy(n.ip2, n.label, include=dict(phase=cyffe.TEST))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n


def test_lenet_layers_names_tops_and_params():
    proto = lenet().to_proto()
    assert isinstance(proto, caffe_pb2.NetParameter)
    layers = {l.name: l for l in proto.layer}
    assert [l.name for l in proto.layer] == ["data", "conv1", "pool1", "ip1", "relu1", "ip2",
                                             "accuracy", "loss"]
    assert list(layers["data"].top) == ["data", "label"]
    assert [list(s.dim) for s in layers["data"].input_param.shape] == [[8, 1, 8, 8], [8]]
    conv = layers["conv1"]
    assert (conv.type, list(conv.bottom), list(conv.top)) == ("Convolution", ["data"], ["conv1"])
    assert list(conv.convolution_param.kernel_size) == [3]
    assert list(conv.convolution_param.pad) == [1]
    assert conv.convolution_param.num_output == 4
    assert conv.convolution_param.weight_filler.type == "xavier"
    assert [p.lr_mult for p in conv.param] == [1, 2]
    assert layers["pool1"].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    relu = layers["relu1"]
    assert list(relu.bottom) == ["ip1"] and list(relu.top) == ["ip1"]
    assert list(layers["ip2"].bottom) == ["ip1"]
    assert layers["accuracy"].include[0].phase == cyffe.TEST
    assert list(layers["loss"].bottom) == ["ip2", "label"]


def test_text_format_round_trip():
    proto = lenet().to_proto()
    again = text_format.Parse(str(proto), caffe_pb2.NetParameter())
    assert again == proto


def test_the_net_builds_and_trains_a_step():
    n = lenet()
    net = cyffe.Net(n.to_proto(), cyffe.TRAIN)
    assert "accuracy" not in net.layer_dict
    rng = np.random.default_rng(0)
    out = net.forward(data=rng.random((8, 1, 8, 8)), label=rng.integers(0, 10, 8))
    assert np.isfinite(out["loss"]) and float(out["loss"]) > 0
    test_net = cyffe.Net(n.to_proto(), cyffe.TEST)
    assert "accuracy" in test_net.outputs


def test_type_parameter_fields_and_layer_fields():
    n = cyffe.NetSpec()
    n.x = L.Input(shape=dict(dim=[2, 3, 4, 4]))
    n.y = L.Input(shape=dict(dim=[2]))
    n.up = L.Deconvolution(n.x, num_output=3, kernel_size=2, stride=2, bias_term=False,
                           name="upsample", propagate_down=[True])
    n.prob = L.Softmax(n.up, axis=1, loss_weight=0)
    n.loss = L.SoftmaxWithLoss(n.up, n.y, axis=1, ignore_label=255,
                               normalization=P.Loss.VALID, loss_weight=2.0)
    n.mean = L.Reduction(n.x, operation="MEAN", axis=1)
    n.bn = L.BatchNorm(n.x, batch_norm_param=dict(use_global_stats=True),
                       exclude=[dict(phase=cyffe.TRAIN), dict(stage=["deploy"])])
    layers = {l.name: l for l in n.to_proto().layer}
    up = layers["upsample"]
    assert up.convolution_param.num_output == 3 and not up.convolution_param.bias_term
    assert list(up.propagate_down) == [True]
    assert layers["prob"].softmax_param.axis == 1 and list(layers["prob"].loss_weight) == [0]
    loss = layers["loss"]
    assert loss.softmax_param.axis == 1 and loss.loss_param.ignore_label == 255
    assert loss.loss_param.normalization == caffe_pb2.LossParameter.VALID
    assert list(loss.loss_weight) == [2.0]
    assert layers["mean"].reduction_param.operation == caffe_pb2.ReductionParameter.MEAN
    bn = layers["bn"]
    assert bn.batch_norm_param.use_global_stats
    assert bn.exclude[0].phase == cyffe.TRAIN and list(bn.exclude[1].stage) == ["deploy"]
    assert list(up.top) == ["up"] and list(layers["loss"].bottom) == ["up", "y"]


def test_unnamed_tops_get_type_names_and_ntop_zero_returns_the_layer():
    n = cyffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    hidden = L.TanH(L.InnerProduct(n.data, num_output=4))
    a, b = L.Slice(hidden, slice_point=[1], ntop=2)
    n.out = L.Eltwise(a, a)
    n.silence = L.Silence(b, ntop=0)
    proto = n.to_proto()
    names = [l.name for l in proto.layer]
    assert names == ["data", "InnerProduct1", "TanH1", "Slice1", "out", "silence"]
    assert list(proto.layer[3].top) == ["Slice1", "Slice2"]
    assert list(proto.layer[5].bottom) == ["Slice2"] and not proto.layer[5].top
    cyffe.Net(proto, cyffe.TRAIN)


def test_top_to_proto_and_module_to_proto():
    data = L.Input(shape=dict(dim=[1, 2]))
    ip = L.InnerProduct(data, num_output=3)
    for proto in (ip.to_proto(), cyffe.to_proto(ip)):
        assert [l.type for l in proto.layer] == ["Input", "InnerProduct"]
        assert list(proto.layer[1].bottom) == list(proto.layer[0].top) == ["Input1"]


def test_item_access_keys_and_explicit_param_messages():
    n = cyffe.NetSpec()
    n["data"] = L.Input(input_param=dict(shape=[dict(dim=[1, 3, 4, 4])]))
    n.conv = L.Convolution(n["data"], convolution_param=dict(num_output=2, kernel_size=[3]),
                           param=caffe_pb2.ParamSpec(lr_mult=0))
    n.pool = L.Pooling(n.conv, pool="AVE", global_pooling=True)
    assert n.keys() == ["data", "conv", "pool"] and n.vals()[1] is n.conv
    del n["pool"]
    proto = n.to_proto()
    assert [l.name for l in proto.layer] == ["data", "conv"]
    assert proto.layer[1].convolution_param.num_output == 2
    assert proto.layer[1].param[0].lr_mult == 0


def test_params_expose_enums():
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Pooling.STOCHASTIC == caffe_pb2.PoolingParameter.STOCHASTIC
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    assert P.Deconvolution is caffe_pb2.ConvolutionParameter
    assert P.Loss.VALID == caffe_pb2.LossParameter.VALID
    with pytest.raises(AttributeError, match="NoSuch"):
        P.NoSuch


@pytest.mark.parametrize("make, match", [
    (lambda d: L.Convolution(d, kernel_sise=3), "layer 'bad' .*unknown parameter 'kernel_sise'"),
    (lambda d: L.Pooling(d, pool="MAXIMUM"), "layer 'bad'.*'MAXIMUM' is not a value"),
    (lambda d: L.Convolution(d, num_output="four"), "layer 'bad'.*num_output"),
    (lambda d: L.Convolution(d, weight_filler="xavier"), "layer 'bad'.*takes a dict"),
    (lambda d: L.Convolution(d, weight_filler=dict(typ="xavier")), "no field 'typ'"),
])
def test_bad_parameters_name_the_layer(make, match):
    n = cyffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.bad = make(n.data)
    with pytest.raises(cyffe.NetError, match=match):
        n.to_proto()


def test_bad_bottoms_and_attributes():
    with pytest.raises(cyffe.NetError, match="^ReLU input 0 is not a Top "
                                             r"\(type is <class 'str'>\)$"):
        L.ReLU("data")
    with pytest.raises(TypeError):                  # what pycaffe raises, and its tests catch
        L.ReLU(L.Input(shape=dict(dim=[2]), ntop=2))
    with pytest.raises(cyffe.NetError, match="ntop must be a non-negative integer"):
        L.Slice(L.Input(shape=dict(dim=[2])), ntop=-1)
    with pytest.raises(cyffe.NetError, match="in_place=True needs a bottom"):
        L.ReLU(in_place=True)
    n = cyffe.NetSpec()
    n.data = np.zeros(3)
    with pytest.raises(cyffe.NetError, match="attribute 'data'"):
        n.to_proto()
    with pytest.raises(AttributeError, match="no top 'nothing'"):
        cyffe.NetSpec().nothing


def test_layers_is_still_the_package():
    assert cyffe.layers is L
    assert callable(L.AnyTypeAtAll)
    with pytest.raises(AttributeError):
        L.not_a_module
    assert not hasattr(L, "__wrapped__")
    code = textwrap.dedent("""
        from cyffe import layers as L
        assert L.Convolution.__name__ == "Convolution"
        import cyffe.layers.conv
        from cyffe.layers import fillers, relu
        from cyffe.layers.base import Layer
        import cyffe
        assert "Convolution" in cyffe.layer_type_list() and "ReLU" in cyffe.layer_type_list()
        import cyffe.params, cyffe.io
        from cyffe.io import Transformer
        print("ok")
    """)
    # A fresh interpreter with the caller's environment: the cyffe under test, installed or not.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
