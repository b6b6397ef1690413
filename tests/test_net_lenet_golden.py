"""Caffe's LeNet end to end against BVLC Caffe (golden/caffe/net_lenet.npz).

From Caffe's own initial params: one forward/backward (every blob, every param
gradient, the loss), then 5 SGD steps (losses, learning rates, final params).
"""
import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from helpers.shared import shared_path

RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def golden():
    return np.load(shared_path("golden", "caffe", "net_lenet.npz"))


def load_init(net, z):
    for layer in z["param_layers"]:
        for i, blob in enumerate(net.params[str(layer)]):
            blob.data[...] = z[f"init/{layer}/{i}"]


def test_forward_backward_matches_caffe(golden):
    z = golden
    net = cyffe.Net(z["net_prototxt"].item(), cyffe.TRAIN)
    assert list(net.blobs) == [str(b) for b in z["blob_names"]]
    load_init(net, z)
    net.blobs["data"].data[...] = z["batch0/data"]
    net.blobs["label"].data[...] = z["batch0/label"]
    net.forward()
    assert net.loss == pytest.approx(float(z["fb/loss"]), rel=RTOL)
    net.backward()
    for name in z["blob_names"]:
        name = str(name)
        if name in ("data", "label"):
            continue
        np.testing.assert_allclose(net.blobs[name].data, z[f"fb/blob/{name}/data"], RTOL, ATOL,
                                   err_msg=f"blob {name} data")
        np.testing.assert_allclose(net.blobs[name].diff, z[f"fb/blob/{name}/diff"], RTOL, ATOL,
                                   err_msg=f"blob {name} diff")
    for layer in z["param_layers"]:
        for i, blob in enumerate(net.params[str(layer)]):
            np.testing.assert_allclose(blob.diff, z[f"fb/param_diff/{layer}/{i}"], RTOL, ATOL,
                                       err_msg=f"{layer} param {i} diff")


def test_five_sgd_steps_match_caffe(golden):
    z = golden
    param = text_format.Parse(z["solver_prototxt"].item(), pb.SolverParameter())
    param.ClearField("net")
    text_format.Parse(z["net_prototxt"].item(), param.net_param)
    solver = cyffe.SGDSolver(param, log=lambda line: None)
    load_init(solver.net, z)
    losses, rates = [], []
    for k in range(len(z["sgd/loss"])):
        solver.net.blobs["data"].data[...] = z[f"batch{k}/data"]
        solver.net.blobs["label"].data[...] = z[f"batch{k}/label"]
        rates.append(solver.learning_rate())
        solver.step(1)
        losses.append(solver.smoothed_loss)
    np.testing.assert_allclose(losses, z["sgd/loss"], rtol=RTOL)
    np.testing.assert_allclose(rates, z["sgd/lr"], rtol=1e-6)
    for layer in z["param_layers"]:
        for i, blob in enumerate(solver.net.params[str(layer)]):
            np.testing.assert_allclose(blob.data, z[f"sgd5/{layer}/{i}"], RTOL, ATOL,
                                       err_msg=f"{layer} param {i} after 5 steps")
