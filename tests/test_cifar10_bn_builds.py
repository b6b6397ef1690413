"""Caffe's cifar10_full_sigmoid_train_test_bn.prototxt builds and runs in TRAIN and TEST.

The shared copy has its TEST data layer replaced by an Input layer; here the TRAIN Data
layer goes too, and the batch shrinks to 2 so one forward/backward stays fast.
"""
import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from helpers.shared import shared_path

BATCH = 2


def net_param():
    path = shared_path("data", "caffe-prototxt-input", "examples", "cifar10",
                       "cifar10_full_sigmoid_train_test_bn.prototxt")
    param = text_format.Parse(path.read_text(), pb.NetParameter())
    layers = [l for l in param.layer if l.type != "Data"]
    del param.layer[:]
    param.layer.extend(layers)
    data = next(l for l in param.layer if l.type == "Input")
    del data.include[:]
    data.input_param.shape[0].dim[0] = BATCH
    data.input_param.shape[1].dim[0] = BATCH
    return param


@pytest.mark.parametrize("phase", [cyffe.TRAIN, cyffe.TEST])
def test_builds_and_runs_forward_backward(phase):
    cyffe.set_random_seed(3)
    net = cyffe.Net(net_param(), phase)
    names = [l.name for l in net.layers]
    assert ("accuracy" in names) == (phase == cyffe.TEST)
    bns = [l for l in net.layers if l.type == "BatchNorm"]
    assert len(bns) == 3
    assert all(l.use_global_stats == (phase == cyffe.TEST) for l in bns)
    stats = {id(b) for l in bns for b in l.blobs}
    for blob, lr in zip(net.learnable_params, net.lr_mults):
        assert (lr == 0) == (id(blob) in stats)

    rng = np.random.default_rng(0)
    if phase == cyffe.TEST:
        for l in bns:         # running statistics as a trained net would have them
            l.blobs[0].data[...] = rng.standard_normal(l.blobs[0].shape) * 0.01
            l.blobs[1].data[...] = rng.uniform(0.5, 2, l.blobs[1].shape)
            l.blobs[2].data[...] = 1
    out = net.forward(data=rng.standard_normal((BATCH, 3, 32, 32)) * 50,
                      label=rng.integers(0, 10, BATCH).astype(float))
    assert np.isfinite(out["loss"]) and out["loss"] > 0
    net.backward()
    conv1 = net.params["conv1"][0]
    assert np.isfinite(conv1.diff).all() and np.abs(conv1.diff).sum() > 0
    if phase == cyffe.TRAIN:
        for l in bns:
            np.testing.assert_allclose(l.blobs[2].data, [1.0])
            assert np.abs(l.blobs[1].data).sum() > 0
    for l in bns:
        for b in l.blobs:
            np.testing.assert_array_equal(b.diff, 0)
