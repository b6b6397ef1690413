"""The benchmark nets as NetParameters: Caffe's LeNet and cifar10_quick, and a small ResNet.

Caffe's train/test prototxts are read from the shared folder (../shared beside the
checkout, or $CYFFE_SHARED); their data layers become one Input layer of the benchmark's
batch, so data loading is never timed. `train_param` keeps the loss; `deploy_param` ends at
the last InnerProduct (inference).
"""
import os
from pathlib import Path

from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import read_net

ROOT = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CYFFE_SHARED", ROOT.parent.parent / "shared"))
INPUT_NETS = SHARED / "data" / "caffe-prototxt-input" / "examples"

# name -> (prototxt, batch size, image shape (C, H, W))
NETS = {
    "lenet": (INPUT_NETS / "mnist" / "lenet_train_test.prototxt", 64, (1, 28, 28)),
    "cifar10_quick": (INPUT_NETS / "cifar10" / "cifar10_quick_train_test.prototxt", 100,
                      (3, 32, 32)),
    "resnet8": (ROOT / "resnet8_cifar.prototxt", 64, (3, 32, 32)),
}

DATA_TYPES = {"Data", "ImageData", "HDF5Data", "Input", "MemoryData", "DummyData"}
TEST_ONLY_TYPES = {"Accuracy"}
LOSS_TYPES = {"SoftmaxWithLoss"}


def source(name):
    """The prototxt path of a benchmark net; FileNotFoundError naming it when absent."""
    path = NETS[name][0]
    if not path.exists():
        raise FileNotFoundError(f"{path} is absent: put the team's shared/ folder beside the "
                                "checkout or set CYFFE_SHARED")
    return path


def _input_layer(batch, image_shape, with_label):
    layer = pb.LayerParameter(name="data", type="Input")
    layer.top.append("data")
    layer.input_param.shape.add().dim.extend((batch,) + tuple(image_shape))
    if with_label:
        layer.top.append("label")
        layer.input_param.shape.add().dim.append(batch)
    return layer


def train_param(name):
    """The net for training: one Input layer (data, label), no Accuracy, no phase rules."""
    _, batch, image_shape = NETS[name]
    param, _ = read_net(source(name))
    net = pb.NetParameter(name=param.name)
    net.layer.append(_input_layer(batch, image_shape, True))
    for layer in param.layer:
        if layer.type in DATA_TYPES or layer.type in TEST_ONLY_TYPES:
            continue
        copy = net.layer.add()
        copy.CopyFrom(layer)
        del copy.include[:]
        del copy.exclude[:]
    return net


def deploy_param(name):
    """The net for inference: train_param without the label and the loss."""
    net = train_param(name)
    deploy = pb.NetParameter(name=net.name)
    _, batch, image_shape = NETS[name]
    deploy.layer.append(_input_layer(batch, image_shape, False))
    for layer in net.layer[1:]:
        if layer.type not in LOSS_TYPES:
            deploy.layer.add().CopyFrom(layer)
    return deploy


def batch_size(name):
    """Images per iteration of a benchmark net."""
    return NETS[name][1]


def image_shape(name):
    """(C, H, W) of one input image of a benchmark net."""
    return NETS[name][2]


def train_gflop(name):
    """GFLOP of one training iteration in the GEMMs (convolutions and InnerProducts):
    2*M*N*K forward, as much again for the weight gradient, and again for the bottom's
    gradient where one is needed (not into the data)."""
    from cyffe.net.graph import Net
    net = Net(train_param(name))
    total = 0
    for li, layer in enumerate(net.layers):
        if layer.type not in ("Convolution", "InnerProduct"):
            continue
        p = (layer.param.convolution_param if layer.type == "Convolution"
             else layer.param.inner_product_param)
        # Each output value is a dot product over the weights of one output channel.
        per_output = layer.blobs[0].count // p.num_output
        flop = 2 * per_output * sum(t.count for t in net._top[li])
        total += flop * (2 + any(net._bottom_needs_backward[li]))
    return total / 1e9

