"""The Caffe zoo nets of the inference benchmark: their files, inputs and weights.

LeNet, cifar10_quick and MTCNN det1-4 run with their real Caffe-trained weights. The
ImageNet deploy files (SqueezeNet 1.0/1.1, GoogLeNet, ResNet-50, AlexNet, CaffeNet,
VGG-16) get seeded random weights that cyffe writes once per run (`write_weights`), so
every framework reads the same prototxt and .caffemodel. Files are read from the shared
folder (../shared beside the checkout, or $CYFFE_SHARED), never copied.
"""
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from cyffe.proto.io import read_net
from cyffe.proto.upgrade import upgrade_net

from .nets import SHARED

MODELS = SHARED / "data" / "caffe-models"
PROTOTXT = SHARED / "data" / "caffe-prototxt"

# Pixel ranges, as each net's own preprocessing leaves them: MNIST scaled by 1/256, MTCNN's
# (x - 127.5) / 128, cifar10_quick's training mean (its README) and the ImageNet BGR mean
# subtracted from pixels in [0, 255).
CIFAR_MEAN = (125.3, 123.0, 113.9)
IMAGENET_MEAN = (104.0, 117.0, 123.0)


class ZooNet(NamedTuple):
    """One benchmark net: its deploy prototxt, its weights (None: seeded random ones),
    the batches it runs at, how its input is drawn, and whether PyTorch has a twin."""
    prototxt: Path
    weights: Optional[Path]
    batches: tuple
    pixels: str
    torch_twin: bool = False


NETS = {
    "lenet": ZooNet(MODELS / "lenet" / "lenet.prototxt",
                    MODELS / "lenet" / "lenet_iter_10000.caffemodel", (1, 16), "unit", True),
    "cifar10_quick": ZooNet(MODELS / "cifar10_quick" / "cifar10_quick.prototxt",
                            MODELS / "cifar10_quick" / "cifar10_quick_iter_5000.caffemodel",
                            (1, 16), "cifar", True),
    **{f"mtcnn_det{i}": ZooNet(MODELS / "mtcnn" / f"det{i}.prototxt",
                               MODELS / "mtcnn" / f"det{i}.caffemodel", (1, 16), "mtcnn")
       for i in range(1, 5)},
    "squeezenet1.0": ZooNet(PROTOTXT / "extra" / "SqueezeNet_v1.0-deploy.prototxt", None,
                            (1, 16), "imagenet"),
    "squeezenet1.1": ZooNet(PROTOTXT / "extra" / "SqueezeNet_v1.1-deploy.prototxt", None,
                            (1, 16), "imagenet"),
    "googlenet": ZooNet(PROTOTXT / "models" / "bvlc_googlenet" / "deploy.prototxt", None,
                        (1, 16), "imagenet"),
    "resnet50": ZooNet(PROTOTXT / "extra" / "ResNet-50-deploy.prototxt", None, (1, 8),
                       "imagenet"),
    "alexnet": ZooNet(PROTOTXT / "models" / "bvlc_alexnet" / "deploy.prototxt", None,
                      (1, 16), "imagenet"),
    "caffenet": ZooNet(PROTOTXT / "models" / "bvlc_reference_caffenet" / "deploy.prototxt",
                       None, (1, 16), "imagenet"),
    "vgg16": ZooNet(PROTOTXT / "extra" / "VGG_ILSVRC_16_layers_deploy.prototxt", None,
                    (1, 8), "imagenet"),
}


def missing(name):
    """Why a net cannot run here (its files are absent), or None when it can."""
    zoo = NETS[name]
    for path in (zoo.prototxt, zoo.weights):
        if path is not None and not path.exists():
            return (f"{path} is absent: put the team's shared/ folder beside the checkout "
                    "or set CYFFE_SHARED")
    return None


def param_at_batch(prototxt, batch):
    """The deploy NetParameter (upgraded) with every Input layer's first axis set to batch.

    Building at the batch, rather than at the file's own and reshaping after, keeps the
    file's batch (64 for LeNet, 16 for VGG-16) out of the peak RSS.
    """
    param = upgrade_net(read_net(prototxt)[0], str(prototxt))
    for layer in param.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch
    return param


def image_shape(param):
    """(C, H, W) of the first Input layer's first top."""
    layer = next(layer for layer in param.layer if layer.type == "Input")
    return tuple(layer.input_param.shape[0].dim[1:])


def rng_for(name, seed):
    """A generator of its own for each net, the same on every run with the same seed."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def inputs(name, batch, shape, seed=0):
    """The seeded input of a net at a batch: float32 (batch,) + shape, scaled like an image."""
    rng = rng_for(name, seed)
    pixels = NETS[name].pixels
    if pixels == "unit":
        return rng.random((batch,) + shape, dtype=np.float32)
    x = rng.uniform(0, 255, (batch,) + shape).astype(np.float32)
    if pixels == "mtcnn":
        return (x - 127.5) * 0.0078125
    mean = CIFAR_MEAN if pixels == "cifar" else IMAGENET_MEAN
    return x - np.asarray(mean, np.float32)[:shape[0], None, None]


def output_layers(param, outputs):
    """The name of the layer that last writes each output blob (what OpenCV's forward takes)."""
    writer = {}
    for layer in param.layer:
        for top in layer.top:
            writer[top] = layer.name
    return [writer[o] for o in outputs]


def random_weights(net, data, rng):
    """Fill every param blob of a TEST net from rng, each layer's output near unit scale.

    Convolution and InnerProduct weights start He-scaled; a forward pass over `data`,
    layer by layer, then divides each one's weights by the spread of its output (the
    input's pixel range and max pooling would otherwise compound, and a Softmax over
    logits in the hundreds is one-hot: it would hide any error) and gives it a random
    bias. BatchNorm gets random means, positive variances and the scale factor 1;
    Scale random gammas near 1 and betas. So every layer changes the outputs.
    """
    for layer in net.layers:
        blobs = layer.blobs
        if layer.type in ("Convolution", "InnerProduct"):
            w = blobs[0].data
            fan_in = w.size // w.shape[0]
            w[...] = rng.standard_normal(w.shape, np.float32)
            w *= np.sqrt(2 / fan_in)
            if len(blobs) > 1:
                blobs[1].data[...] = 0
        elif layer.type == "BatchNorm":
            blobs[0].data[...] = rng.normal(0, 0.2, blobs[0].shape)
            blobs[1].data[...] = rng.uniform(0.5, 2.0, blobs[1].shape)
            blobs[2].data[...] = 1
        elif layer.type == "Scale":
            blobs[0].data[...] = rng.uniform(0.8, 1.2, blobs[0].shape)
            if len(blobs) > 1:
                blobs[1].data[...] = rng.normal(0, 0.1, blobs[1].shape)
        elif blobs:
            raise ValueError(f"layer '{layer.param.name}' ({layer.type}): no random fill "
                             "for its params")
    net.blobs[net.inputs[0]].data[...] = data
    for name, layer in net.layer_dict.items():
        tops = net.forward(start=name, end=name)
        if layer.type not in ("Convolution", "InnerProduct"):
            continue
        top = next(iter(tops.values()))
        spread = float(top.std()) or 1.0
        layer.blobs[0].data[...] /= spread
        bias = rng.normal(0, 0.1, top.shape[1]).astype(top.dtype)
        top /= spread
        if len(layer.blobs) > 1:
            layer.blobs[1].data[...] = bias
            top += bias.reshape((1, -1) + (1,) * (top.ndim - 2))


def prepare(name, folder, seed=0):
    """Make what a net's workers read, in folder; returns (weights path, output blob names).

    A net without trained weights gets seeded random ones, written there by cyffe. A net
    with a PyTorch twin also gets its blobs as NumPy arrays (`twin_blobs`), read by
    cyffe's own reader, so the twin computes with the same numbers without cyffe.
    """
    import cyffe
    zoo = NETS[name]
    param = param_at_batch(zoo.prototxt, 1)
    weights = zoo.weights
    net = cyffe.Net(param, cyffe.TEST, weights=None if weights is None else str(weights))
    if weights is None:
        random_weights(net, inputs(name, 1, image_shape(param), seed), rng_for(name, seed + 1))
        weights = Path(folder) / f"{name}.caffemodel"
        net.save(str(weights))
    if zoo.torch_twin:
        np.savez(twin_blobs(folder, name), **{f"{layer}.{i}": blob.data
                                              for layer, blobs in net.params.items()
                                              for i, blob in enumerate(blobs)})
    return weights, net.outputs


def twin_blobs(folder, name):
    """Where prepare() writes the learned blobs of a net for its PyTorch twin."""
    return Path(folder) / f"{name}-blobs.npz"
