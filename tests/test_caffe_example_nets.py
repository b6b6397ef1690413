"""Caffe's own example nets build and learn: the MNIST autoencoder and the siamese net.

Their LMDB Data layers are swapped for an Input layer in every phase, and the
test writes MNIST batches (scaled as their transform_param says) into it, the
way a pycaffe user trains a net with Input layers.
"""
import numpy as np
from google.protobuf import text_format

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from helpers import mnist
from helpers.shared import shared_path


def with_input_layer(path, tops, shapes):
    """The net of `path` with its Data layers replaced by one Input layer."""
    net = text_format.Parse(path.read_text(), pb.NetParameter())
    layers = [l for l in net.layer if l.type != "Data"]
    del net.layer[:]
    feed = net.layer.add(name="feed", type="Input", top=tops)
    for shape in shapes:
        feed.input_param.shape.add(dim=shape)
    net.layer.extend(layers)
    return net


def train(net_param, feed, iters, **solver_fields):
    param = pb.SolverParameter(lr_policy="fixed", momentum=0.9, weight_decay=5e-4,
                               max_iter=iters, random_seed=1701, **solver_fields)
    param.net_param.CopyFrom(net_param)
    solver = cyffe.SGDSolver(param, log=lambda line: None)
    losses = []
    for it in range(iters):
        for name, value in feed(it).items():
            solver.net.blobs[name].data[...] = value
        solver.step(1)
        losses.append(solver.smoothed_loss)
    return solver, losses


def test_mnist_autoencoder_learns():
    images, _ = mnist.load("t10k", 6400)
    batch = 32
    net = with_input_layer(
        shared_path("data", "caffe-prototxt", "examples", "mnist", "mnist_autoencoder.prototxt"),
        ["data"], [[batch, 1, 28, 28]])
    data = images.astype(np.float32) * np.float32(0.0039215684)

    def feed(it):
        start = (it * batch) % len(data)
        return {"data": data[start:start + batch]}

    solver, losses = train(net, feed, 120, base_lr=0.01)
    assert set(solver.net.outputs) == {"cross_entropy_loss", "l2_error"}
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])


def test_mnist_siamese_learns_with_shared_weights():
    images, labels = mnist.load("t10k", 4000)
    batch = 32
    net = with_input_layer(
        shared_path("data", "caffe-prototxt", "examples", "siamese",
                    "mnist_siamese_train_test.prototxt"),
        ["pair_data", "sim"], [[batch, 2, 28, 28], [batch]])
    rng = np.random.default_rng(0)
    data = images.astype(np.float32) * np.float32(0.00390625)

    def feed(it):
        a = rng.integers(0, len(data), batch)
        b = np.where(rng.random(batch) < 0.5, rng.integers(0, len(data), batch), a)
        b = np.where(b == a, _same_label(labels, a, rng), b)
        return {"pair_data": np.concatenate([data[a], data[b]], axis=1),
                "sim": (labels[a] == labels[b]).astype(np.float32)}

    solver, losses = train(net, feed, 120, base_lr=0.01)
    net = solver.net
    assert net.params["conv1"][0] is net.params["conv1_p"][0]
    assert len(net.learnable_params) == 10         # the two towers share every param
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])


def _same_label(labels, a, rng):
    """For each index in a, another index with the same label."""
    out = np.empty_like(a)
    for k, i in enumerate(a):
        candidates = np.flatnonzero(labels == labels[i])
        out[k] = rng.choice(candidates)
    return out
