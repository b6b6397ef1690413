"""Every Caffe prototxt in ../shared/data/caffe-prototxt builds in TEST with the shapes Caffe gives.

The expected shapes are the published architectures (AlexNet, CaffeNet,
GoogLeNet, VGG-16, ResNet-50, SqueezeNet 1.0/1.1, CIFAR-10, LeNet, ...), worked
out from their layers as Caffe computes them (conv floor, pooling ceil), not read
back from cyffe. Nets with LMDB Data layers are built from their twins in
caffe-prototxt-input (Data -> Input of the same shapes). Inputs are cut to a
batch of 2 so the big nets build quickly; the file's own batch is checked on its
Input layer. A prototxt in the folder that no table here covers fails.
"""
import pytest

import cyffe
from cyffe.net.graph import layer_included
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import read_net, read_solver
from cyffe.proto.upgrade import upgrade_net
from helpers.shared import shared_path

BATCH = 2
SCALAR = None                  # a loss or accuracy: a scalar blob, not per image

LENET = {"conv1": (20, 24, 24), "pool1": (20, 12, 12), "conv2": (50, 8, 8),
         "pool2": (50, 4, 4), "ip1": (500,), "ip2": (10,)}
CIFAR_QUICK = {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (32, 16, 16),
               "pool2": (32, 8, 8), "conv3": (64, 8, 8), "pool3": (64, 4, 4), "ip1": (64,),
               "ip2": (10,)}
CIFAR_FULL = {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "norm1": (32, 16, 16),
              "conv2": (32, 16, 16), "pool2": (32, 8, 8), "norm2": (32, 8, 8),
              "conv3": (64, 8, 8), "pool3": (64, 4, 4), "ip1": (10,)}
CIFAR_SIGMOID_BN = {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "bn1": (32, 16, 16),
                    "conv2": (32, 16, 16), "bn2": (32, 16, 16), "pool2": (32, 8, 8),
                    "conv3": (64, 8, 8), "bn3": (64, 8, 8), "pool3": (64, 4, 4), "ip1": (10,)}
ALEXNET_TAIL = {"conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13),
                "pool5": (256, 6, 6), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)}
ALEXNET = {"conv1": (96, 55, 55), "norm1": (96, 55, 55), "pool1": (96, 27, 27),
           "conv2": (256, 27, 27), "norm2": (256, 27, 27), "pool2": (256, 13, 13),
           **ALEXNET_TAIL}
CAFFENET = {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "norm1": (96, 27, 27),
            "conv2": (256, 27, 27), "pool2": (256, 13, 13), "norm2": (256, 13, 13),
            **ALEXNET_TAIL}
GOOGLENET = {"conv1/7x7_s2": (64, 112, 112), "pool1/3x3_s2": (64, 56, 56),
             "conv2/3x3": (192, 56, 56), "pool2/3x3_s2": (192, 28, 28),
             "inception_3a/output": (256, 28, 28), "inception_3b/output": (480, 28, 28),
             "pool3/3x3_s2": (480, 14, 14), "inception_4a/output": (512, 14, 14),
             "inception_4b/output": (512, 14, 14), "inception_4c/output": (512, 14, 14),
             "inception_4d/output": (528, 14, 14), "inception_4e/output": (832, 14, 14),
             "pool4/3x3_s2": (832, 7, 7), "inception_5a/output": (832, 7, 7),
             "inception_5b/output": (1024, 7, 7), "pool5/7x7_s1": (1024, 1, 1),
             "loss3/classifier": (1000,)}
GOOGLENET_HEADS = {"loss1/ave_pool": (512, 4, 4), "loss1/conv": (128, 4, 4),
                   "loss1/fc": (1024,), "loss1/classifier": (1000,),
                   "loss2/ave_pool": (528, 4, 4), "loss2/conv": (128, 4, 4),
                   "loss2/fc": (1024,), "loss2/classifier": (1000,),
                   "loss1/loss1": SCALAR, "loss2/loss2": SCALAR, "loss3/loss3": SCALAR,
                   "loss1/top-1": SCALAR, "loss3/top-1": SCALAR, "loss3/top-5": SCALAR}
RESNET50 = {"conv1": (64, 112, 112), "pool1": (64, 56, 56), "res2a": (256, 56, 56),
            "res2c": (256, 56, 56), "res3a": (512, 28, 28), "res3d": (512, 28, 28),
            "res4a": (1024, 14, 14), "res4f": (1024, 14, 14), "res5a": (2048, 7, 7),
            "res5c": (2048, 7, 7), "pool5": (2048, 1, 1), "fc1000": (1000,), "prob": (1000,)}
SQUEEZENET_10 = {"conv1": (96, 111, 111), "pool1": (96, 55, 55),
                 "fire2/concat": (128, 55, 55), "fire3/concat": (128, 55, 55),
                 "fire4/concat": (256, 55, 55), "pool4": (256, 27, 27),
                 "fire5/concat": (256, 27, 27), "fire6/concat": (384, 27, 27),
                 "fire7/concat": (384, 27, 27), "fire8/concat": (512, 27, 27),
                 "pool8": (512, 13, 13), "fire9/concat": (512, 13, 13),
                 "conv10": (1000, 15, 15), "pool10": (1000, 1, 1), "prob": (1000, 1, 1)}
SQUEEZENET_11 = {"conv1": (64, 113, 113), "pool1": (64, 56, 56),
                 "fire2/concat": (128, 56, 56), "fire3/concat": (128, 56, 56),
                 "pool3": (128, 28, 28), "fire4/concat": (256, 28, 28),
                 "fire5/concat": (256, 28, 28), "pool5": (256, 14, 14),
                 "fire6/concat": (384, 14, 14), "fire7/concat": (384, 14, 14),
                 "fire8/concat": (512, 14, 14), "fire9/concat": (512, 14, 14),
                 "conv10": (1000, 14, 14), "pool10": (1000, 1, 1), "prob": (1000, 1, 1)}
VGG16 = {"conv1_2": (64, 224, 224), "pool1": (64, 112, 112), "conv2_2": (128, 112, 112),
         "pool2": (128, 56, 56), "conv3_3": (256, 56, 56), "pool3": (256, 28, 28),
         "conv4_3": (512, 28, 28), "pool4": (512, 14, 14), "conv5_3": (512, 14, 14),
         "pool5": (512, 7, 7), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,), "prob": (1000,)}
LOSS_AND_ACCURACY = {"loss": SCALAR, "accuracy": SCALAR}

# path under caffe-prototxt -> (use the caffe-prototxt-input twin, stages, the file's batch,
# expected {blob: per-image shape})
NETS = {
    "examples/mnist/lenet.prototxt": (False, (), 64, {**LENET, "prob": (10,)}),
    "examples/mnist/lenet_train_test.prototxt": (True, (), 100, {**LENET, **LOSS_AND_ACCURACY}),
    "examples/mnist/mnist_autoencoder.prototxt": (True, ("test-on-test",), 100, {
        "flatdata": (784,), "encode1": (1000,), "encode2": (500,), "encode3": (250,),
        "encode4": (30,), "decode4": (250,), "decode3": (500,), "decode2": (1000,),
        "decode1": (784,), "cross_entropy_loss": SCALAR, "l2_error": SCALAR}),
    "examples/siamese/mnist_siamese_train_test.prototxt": (True, (), 100, {
        "pair_data": (2, 28, 28), "sim": (), "data": (1, 28, 28), "data_p": (1, 28, 28),
        "conv1": (20, 24, 24), "pool2": (50, 4, 4), "conv2_p": (50, 8, 8), "ip1": (500,),
        "feat": (2,), "feat_p": (2,), "loss": SCALAR}),
    "examples/cifar10/cifar10_quick.prototxt": (False, (), 1, {**CIFAR_QUICK, "prob": (10,)}),
    "examples/cifar10/cifar10_quick_train_test.prototxt": (True, (), 100, {
        **CIFAR_QUICK, **LOSS_AND_ACCURACY}),
    "examples/cifar10/cifar10_full.prototxt": (False, (), 1, {**CIFAR_FULL, "prob": (10,)}),
    "examples/cifar10/cifar10_full_train_test.prototxt": (True, (), 100, {
        **CIFAR_FULL, **LOSS_AND_ACCURACY}),
    "examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt": (True, (), 1000, {
        **CIFAR_SIGMOID_BN, **LOSS_AND_ACCURACY}),
    "models/bvlc_alexnet/deploy.prototxt": (False, (), 10, {**ALEXNET, "prob": (1000,)}),
    "models/bvlc_reference_caffenet/deploy.prototxt": (False, (), 10, {
        **CAFFENET, "prob": (1000,)}),
    "models/bvlc_reference_caffenet/train_val.prototxt": (True, (), 50, {
        **CAFFENET, **LOSS_AND_ACCURACY}),
    "models/bvlc_googlenet/deploy.prototxt": (False, (), 10, {**GOOGLENET, "prob": (1000,)}),
    "models/bvlc_googlenet/train_val.prototxt": (True, (), 50, {**GOOGLENET, **GOOGLENET_HEADS}),
    "extra/ResNet-50-deploy.prototxt": (False, (), 1, RESNET50),
    "extra/SqueezeNet_v1.0-deploy.prototxt": (False, (), 10, SQUEEZENET_10),
    "extra/SqueezeNet_v1.1-deploy.prototxt": (False, (), 10, SQUEEZENET_11),
    "extra/VGG_ILSVRC_16_layers_deploy.prototxt": (False, (), 16, VGG16),
}

# solver -> the net it trains (under caffe-prototxt) and its TEST states' (stages, test_iter)
SOLVERS = {
    "examples/mnist/lenet_solver.prototxt": "examples/mnist/lenet_train_test.prototxt",
    "examples/cifar10/cifar10_quick_solver.prototxt":
        "examples/cifar10/cifar10_quick_train_test.prototxt",
    "examples/mnist/mnist_autoencoder_solver.prototxt":
        "examples/mnist/mnist_autoencoder.prototxt",
}

# Covered elsewhere, or not buildable from these files alone (and why).
ELSEWHERE = {
    "examples/mnist/lenet_consolidated_solver.prototxt":
        "V1 nets inline: tests/test_upgrade.py builds them in every stage",
    "examples/mnist/lenet_auto_solver.prototxt":
        "its nets are written by the pycaffe notebook (not in the folder): parsed only",
}


def zoo(*parts):
    return shared_path("data", "caffe-prototxt", *parts)


def build(path, stages=()):
    """The net of path in TEST, its Input batches cut to BATCH; returns (net, the file's batches)."""
    param, _ = read_net(str(path))
    param = upgrade_net(param, str(path))
    batches = set()
    for layer in param.layer:
        for shape in (layer.input_param.shape if layer.type == "Input" else ()):
            batches.add(shape.dim[0])
            shape.dim[0] = min(shape.dim[0], BATCH)
    return cyffe.Net(param, cyffe.TEST, stages=stages), batches


def test_every_prototxt_in_the_folder_is_covered():
    root = zoo()
    found = {str(p.relative_to(root)) for p in root.rglob("*.prototxt")}
    covered = set(NETS) | set(SOLVERS) | set(ELSEWHERE)
    assert found - covered == set(), "prototxts no test here builds"
    assert covered - found == set(), "the tables name files that are gone"


@pytest.mark.parametrize("name", sorted(NETS))
def test_net_builds_in_test_with_caffes_shapes(name):
    use_input_twin, stages, file_batch, expected = NETS[name]
    path = (shared_path("data", "caffe-prototxt-input", name) if use_input_twin else zoo(name))
    net, batches = build(path, stages)
    assert batches == {file_batch}
    shapes = {blob: tuple(net.blobs[blob].data.shape) for blob in expected if blob in net.blobs}
    assert set(shapes) == set(expected), "blobs missing from the net"
    batch = min(file_batch, BATCH)
    want = {blob: () if shape is SCALAR else (batch,) + shape for blob, shape in expected.items()}
    assert shapes == want


def test_vgg16_upgraded_from_v1_has_the_published_parameter_count():
    net, _ = build(zoo("extra", "VGG_ILSVRC_16_layers_deploy.prototxt"))
    assert sum(b.count for blobs in net.params.values() for b in blobs) == 138_357_544
    assert len(net.params) == 16


def test_resnet50_has_the_published_parameter_count():
    net, _ = build(zoo("extra", "ResNet-50-deploy.prototxt"))
    # Learned weights (conv, fc, Scale's gamma and beta; not BatchNorm's running statistics):
    # the published 25,557,032, plus conv1's bias, the one conv of this file with bias_term.
    learned = sum(b.count for name, blobs in net.params.items()
                  if net.layer_dict[name].type != "BatchNorm" for b in blobs)
    assert learned == 25_557_032 + 64


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_parses_and_its_test_nets_cover_the_test_set(name):
    solver, _ = read_solver(str(zoo(name)))
    assert solver.net == SOLVERS[name]
    states = [tuple(s.stage) for s in solver.test_state] or [()]
    assert len(states) == len(solver.test_iter)
    twin = shared_path("data", "caffe-prototxt-input", solver.net)
    param, _ = read_net(str(twin))
    built = 0
    for stages, test_iter in zip(states, solver.test_iter):
        state = pb.NetState(phase=pb.TEST, stage=stages)
        included = [l for l in param.layer if layer_included(l, state)]
        if any(l.type == "Data" for l in included):
            continue      # the autoencoder's test-on-train data layer has no Input twin
        batch = next(l.input_param.shape[0].dim[0] for l in included if l.type == "Input")
        assert test_iter * batch == 10_000                  # MNIST's and CIFAR-10's test sets
        net, _ = build(twin, stages)
        assert net.outputs
        built += 1
    assert built == 1


def test_the_notebook_solver_parses():
    solver, _ = read_solver(str(zoo("examples", "mnist", "lenet_auto_solver.prototxt")))
    assert solver.train_net == "mnist/lenet_auto_train.prototxt"
    assert list(solver.test_net) == ["mnist/lenet_auto_test.prototxt"]
