"""Folding BatchNorm, Scale, Bias and ReLU into the convolution before them (net/fold.py)."""
import numpy as np
import pytest

import cyffe

CHAIN = """
name: "chain" {force}
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 dim: 9 dim: 8 }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 6 kernel_size: 3 pad: 1 {bias} }} }}
layer {{ name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }}
layer {{ name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param {{ bias_term: true }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param {{ negative_slope: 0.1 }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param {{ num_output: 4 kernel_size: 1 }} }}
layer {{ name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" }}
layer {{ name: "bias2" type: "Bias" bottom: "conv2" top: "conv2" }}
layer {{ name: "pool" type: "Pooling" bottom: "conv2" top: "pool" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "bn3" type: "BatchNorm" bottom: "pool" top: "pool" }}
layer {{ name: "loss" type: "Reduction" bottom: "pool" top: "loss" loss_weight: 1 }}
"""


def chain(force="", bias="", seed=0):
    """The chain net in TEST with seeded parameters and statistics; force: force_backward."""
    net = cyffe.Net(CHAIN.format(force=force, bias=bias), cyffe.TEST)
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        for blob in blobs:
            blob.data[...] = rng.uniform(0.5, 1.5, blob.shape)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    return net


@pytest.mark.parametrize("bias", ["", "bias_term: false"])
def test_a_folded_forward_equals_the_layers_one_by_one(bias):
    folded, plain = chain(bias=bias), chain("force_backward: true", bias)
    assert sorted(folded._folds) == [1, 5] and not plain._folds
    folded.forward()
    plain.forward()
    for name in ("conv1", "conv2", "pool"):
        np.testing.assert_allclose(folded.blobs[name].data, plain.blobs[name].data,
                                   rtol=1e-5, atol=1e-6)


def test_params_stay_and_changes_to_them_are_seen():
    net, plain = chain(), chain("force_backward: true")
    before = {n: [b.data.copy() for b in blobs] for n, blobs in net.params.items()}
    net.forward()
    for name, blobs in net.params.items():
        for b, old in zip(blobs, before[name]):
            np.testing.assert_array_equal(b.data, old)
    for n in (net, plain):
        n.params["bn1"][1].data[...] *= 3          # the variance, as net surgery would
        n.params["conv2"][0].data[0] = 0
        n.forward()
    np.testing.assert_allclose(net.blobs["pool"].data, plain.blobs["pool"].data, rtol=1e-5,
                               atol=1e-6)


def test_backward_after_a_folded_forward_runs_the_layers_again():
    net, plain = chain(), chain("force_backward: true")
    for n in (net, plain):
        n.forward()
        n.backward()
    assert not net._folded
    np.testing.assert_allclose(net.params["conv1"][0].diff, plain.params["conv1"][0].diff,
                               rtol=1e-5, atol=1e-6)


def test_a_partial_forward_is_not_folded():
    net = chain()
    net.forward(end="scale1")
    assert not net._folded and net.layers[1].fold is None


PRELU = """
name: "prelu"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 10 kernel_size: 3 } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 16 kernel_size: 3 } }
layer { name: "prelu2" type: "PReLU" bottom: "conv2" top: "conv2" prelu_param { channel_shared: true } }
"""


def test_prelu_folds_with_a_slope_per_channel():
    """MTCNN's Convolution + PReLU: the same outputs, to the bit (the same products)."""
    nets = [cyffe.Net(PRELU, cyffe.TEST), cyffe.Net("force_backward: true " + PRELU, cyffe.TEST)]
    rng = np.random.default_rng(3)
    params = {n: [rng.standard_normal(b.shape) for b in blobs] for n, blobs in nets[0].params.items()}
    x = rng.standard_normal(nets[0].blobs["data"].shape)
    for net in nets:
        for name, blobs in net.params.items():
            for blob, value in zip(blobs, params[name]):
                blob.data[...] = value
        net.blobs["data"].data[...] = x
        net.forward()
    assert sorted(nets[0]._folds) == [1, 3] and not nets[1]._folds
    np.testing.assert_array_equal(nets[0].blobs["conv2"].data, nets[1].blobs["conv2"].data)


def test_a_folded_convolution_keeps_no_copy_of_its_weights():
    """The fold applies g, h and the ReLU after the convolution's own weights (epilogue):
    nothing of the weights' size is copied, so a change to them needs no fingerprint."""
    net = chain()
    net.forward()
    net.forward()
    for fold, _ in net._folds.values():
        assert fold._params is None
    net.params["conv1"][0].data[...] *= 2
    folded = {k: v.copy() for k, v in net.forward().items()}
    plain = chain("force_backward: true")
    plain.params["conv1"][0].data[...] *= 2
    for name, value in plain.forward().items():
        np.testing.assert_allclose(folded[name], value, rtol=1e-5, atol=1e-6)
