"""LeNet in Python, the pycaffe way, on the 8x8 digits cyffe ships.

The classic pycaffe "learning LeNet" script, written against pycaffe's API
only: its import lines are the only place it names cyffe (`import cyffe as
caffe`, `from cyffe import layers as L, params as P`, `from cyffe.proto
import caffe_pb2`); with `caffe` there it is a pycaffe script. It defines
the net with NetSpec, writes it and a solver (caffe_pb2) to prototxt files,
feeds numpy batches of examples/digits/*.h5 into the nets' Input blobs, steps
the solver, tests on the held-out digits every --test-interval iterations and
saves the weights.

    python examples/lenet_pycaffe/lenet.py --iters 500 --out /tmp/lenet

Caffe's MNIST LeNet has 5x5 kernels for 28x28 images; for 8x8 digits the
kernels are 3x3 with padding 1, so each pooling halves the size (8 -> 4 -> 2).
"""
import argparse
import os
import sys

import h5py
import numpy as np

import cyffe as caffe
from cyffe import layers as L, params as P
from cyffe.proto import caffe_pb2

DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits")
TRAIN_BATCH, TEST_BATCH = 64, 120


def lenet(batch_size):
    """LeNet for 1 x 8 x 8 images, fed through Input blobs."""
    n = caffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[batch_size, 1, 8, 8]), dict(dim=[batch_size])],
                              ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, pad=1, num_output=20,
                            weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=3, pad=1, num_output=50,
                            weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


def solver_param(train_net_path, test_net_path, max_iter):
    """Caffe's LeNet solver settings (SGD, momentum 0.9, lr policy 'inv')."""
    s = caffe_pb2.SolverParameter()
    s.random_seed = 0xCAFFE
    s.train_net = train_net_path
    s.test_net.append(test_net_path)
    s.test_iter.append(1)           # the script tests itself; no test_interval
    s.max_iter = max_iter
    s.type = "SGD"
    s.base_lr = 0.01
    s.momentum = 0.9
    s.weight_decay = 5e-4
    s.lr_policy = "inv"
    s.gamma = 1e-4
    s.power = 0.75
    s.display = 100
    s.solver_mode = caffe_pb2.SolverParameter.CPU
    return s


def load(name):
    with h5py.File(os.path.join(DIGITS, name), "r") as f:
        return f["data"][...], f["label"][...]


def test_accuracy(net, images, labels):
    """The fraction of images whose highest score is their label."""
    correct = 0
    for start in range(0, len(images), TEST_BATCH):
        net.blobs["data"].data[...] = images[start:start + TEST_BATCH]
        net.blobs["label"].data[...] = labels[start:start + TEST_BATCH]
        net.forward()
        correct += np.sum(net.blobs["score"].data.argmax(1) == net.blobs["label"].data)
    return correct / len(images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iters", type=int, default=1000, help="training iterations")
    parser.add_argument("--test-interval", type=int, default=250, help="test every N iterations")
    parser.add_argument("--out", default="lenet_pycaffe_out", help="folder for the prototxt "
                        "files and the weights")
    args = parser.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    train_path = os.path.join(args.out, "lenet_auto_train.prototxt")
    test_path = os.path.join(args.out, "lenet_auto_test.prototxt")
    solver_path = os.path.join(args.out, "lenet_auto_solver.prototxt")
    with open(train_path, "w") as f:
        f.write(str(lenet(TRAIN_BATCH)))
    with open(test_path, "w") as f:
        f.write(str(lenet(TEST_BATCH)))
    with open(solver_path, "w") as f:
        f.write(str(solver_param(train_path, test_path, args.iters)))

    caffe.set_mode_cpu()
    solver = caffe.get_solver(solver_path)
    print([(k, v.data.shape) for k, v in solver.net.blobs.items()])
    print([(k, v[0].data.shape) for k, v in solver.net.params.items()])

    train_x, train_y = load("train.h5")
    test_x, test_y = load("test.h5")
    order = np.random.default_rng(0).permutation(len(train_x))
    train_loss = np.zeros(args.iters)
    accuracy = 0.0
    for it in range(args.iters):
        batch = np.take(order, np.arange(it * TRAIN_BATCH, (it + 1) * TRAIN_BATCH), mode="wrap")
        solver.net.blobs["data"].data[...] = train_x[batch]
        solver.net.blobs["label"].data[...] = train_y[batch]
        solver.step(1)
        train_loss[it] = solver.net.blobs["loss"].data
        if (it + 1) % args.test_interval == 0 or it + 1 == args.iters:
            accuracy = test_accuracy(solver.test_nets[0], test_x, test_y)
            print(f"Iteration {it + 1}: train loss {train_loss[it]:.4f}, "
                  f"test accuracy {accuracy:.4f}")

    weights = os.path.join(args.out, "lenet_digits.caffemodel")
    solver.net.save(weights)
    print(f"saved {weights}")
    print(f"final test accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
