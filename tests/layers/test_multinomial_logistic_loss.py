import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

THRESHOLD = float(np.float32(1e-20))


def mll(dtype=np.float64):
    param = pb.LayerParameter(name="mll", type="MultinomialLogisticLoss")
    return layer_class("MultinomialLogisticLoss")(param, pb.TRAIN, dtype)


def make_case(shape=(4, 5), seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 1, shape)
    p /= p.reshape(shape[0], -1).sum(axis=1).reshape((-1,) + (1,) * (len(shape) - 1))
    labels = rng.integers(0, int(np.prod(shape[1:])), shape[0]).astype(np.float64)
    return p, labels


def reference(p, labels):
    p = p.reshape(p.shape[0], -1).astype(np.float64)
    rows = np.arange(len(labels))
    picked = np.maximum(p[rows, labels.astype(int)], THRESHOLD)
    grad = np.zeros_like(p)
    grad[rows, labels.astype(int)] = -1 / picked / len(labels)
    return -np.log(picked).sum() / len(labels), grad


def run(layer, p, labels, dtype=np.float64, loss_weight=1.0):
    bottom = [Blob(p.shape, dtype), Blob(labels.shape, dtype)]
    bottom[0].data[...] = p
    bottom[1].data[...] = labels
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, [True, False], bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 5), (3, 2, 2, 2)])
def test_forward_and_backward_match_numpy(dtype, shape):
    p, labels = make_case(shape)
    bottom, top = run(mll(dtype), p.astype(dtype), labels, dtype, loss_weight=0.8)
    loss, grad = reference(p.astype(dtype), labels)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, loss, rtol=tol)
    np.testing.assert_allclose(bottom[0].diff, 0.8 * grad.reshape(shape), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_probability_is_clamped_at_caffe_threshold(dtype):
    p = np.array([[0.0, 1.0], [0.5, 0.5]])
    labels = np.array([0.0, 1.0])
    bottom, top = run(mll(dtype), p, labels, dtype)
    threshold = dtype(1e-20) if dtype == np.float32 else THRESHOLD
    np.testing.assert_allclose(top[0].data, (-np.log(threshold) + np.log(2)) / 2, rtol=1e-6)
    np.testing.assert_allclose(bottom[0].diff, [[-0.5 / threshold, 0], [0, -1]], rtol=1e-6)


def test_gradient():
    p, labels = make_case((3, 4))
    layer = mll()
    bottom = make_blobs(p, labels)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_gpu_path_on_numpy_equals_cpu_path():
    p, labels = make_case()
    p[0, int(labels[0])] = 0
    cpu, gpu = mll(), mll()
    b1, b2 = make_blobs(p, labels), make_blobs(p, labels)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-13)
    t1[0].diff[...] = t2[0].diff[...] = 1.3
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-13)


def test_caffe_golden():
    run_case("multinomial_logistic_loss")


def test_label_out_of_range_is_a_shape_error():
    layer = mll()
    bottom = make_blobs(np.full((2, 3), 1 / 3), [5.0, 0.0])
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match=r"'mll'.*label 5 at position 0.*\[0, 3\)"):
        layer.forward(bottom, top)


def test_label_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'mll'.*one label per item.*\(2, 3\)"):
        setup_layer(mll(), make_blobs(np.ones((2, 3)), np.ones((2, 3))))


def test_backward_to_labels_is_an_error():
    layer = mll()
    bottom = make_blobs(*make_case())
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    with pytest.raises(NetError, match="'mll'.*labels"):
        layer.backward(top, [True, True], bottom)
