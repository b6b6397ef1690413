import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def hinge(norm="L1", dtype=np.float64):
    param = pb.LayerParameter(name="hinge", type="HingeLoss")
    param.hinge_loss_param.norm = getattr(pb.HingeLossParameter, norm)
    return layer_class("HingeLoss")(param, pb.TRAIN, dtype)


def make_case(shape=(5, 4), seed=0):
    """Scores whose margins stay at least 0.1 away from the hinge's kink."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, shape)
    x[np.abs(np.abs(x) - 1) < 0.1] += 0.3
    labels = rng.integers(0, int(np.prod(shape[1:])), shape[0]).astype(np.float64)
    return x, labels


def reference(x, labels, norm):
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    sign = np.ones_like(x)
    sign[np.arange(len(labels)), labels.astype(int)] = -1
    margin = np.maximum(0, 1 + sign * x)
    p = 1 if norm == "L1" else 2
    loss = (margin ** p).sum() / x.shape[0]
    grad = sign * (margin > 0) * (1 if p == 1 else 2 * margin) / x.shape[0]
    return loss, grad


def run(layer, x, labels, dtype=np.float64, loss_weight=1.0):
    bottom = [Blob(x.shape, dtype), Blob(labels.shape, dtype)]
    bottom[0].data[...] = x
    bottom[1].data[...] = labels
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, [True, False], bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", ["L1", "L2"])
@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 1)])
def test_forward_and_backward_match_numpy(dtype, norm, shape):
    x, labels = make_case(shape)
    bottom, top = run(hinge(norm, dtype), x.astype(dtype), labels, dtype, loss_weight=0.6)
    loss, grad = reference(x.astype(dtype), labels, norm)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, loss, rtol=tol)
    np.testing.assert_allclose(bottom[0].diff, 0.6 * grad.reshape(shape), rtol=tol, atol=tol)


def test_by_hand():
    x = np.array([[2.0, 0.5, -3.0], [0.0, -0.5, 1.5]])
    labels = np.array([0.0, 2.0])
    # margins: [0, 1.5, 0] and [1, 0.5, 0]
    bottom, top = run(hinge("L1"), x, labels)
    assert top[0].data == 3.0 / 2
    np.testing.assert_array_equal(bottom[0].diff, [[0, 0.5, 0], [0.5, 0.5, 0]])
    bottom, top = run(hinge("L2"), x, labels)
    assert top[0].data == (2.25 + 1 + 0.25) / 2
    np.testing.assert_array_equal(bottom[0].diff, [[0, 1.5, 0], [1, 0.5, 0]])


def test_default_norm_is_l1():
    param = pb.LayerParameter(name="hinge", type="HingeLoss")
    layer = layer_class("HingeLoss")(param, pb.TRAIN, np.float64)
    x, labels = make_case()
    _, top = run(layer, x, labels)
    np.testing.assert_allclose(top[0].data, reference(x, labels, "L1")[0], rtol=1e-14)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_gradient(norm):
    x, labels = make_case((3, 4))
    layer = hinge(norm)
    bottom = make_blobs(x, labels)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_gpu_path_on_numpy_equals_cpu_path(norm):
    x, labels = make_case()
    cpu, gpu = hinge(norm), hinge(norm)
    b1, b2 = make_blobs(x, labels), make_blobs(x, labels)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-13)
    t1[0].diff[...] = t2[0].diff[...] = 1.3
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-13)


@pytest.mark.parametrize("case", ["hinge_loss_l1", "hinge_loss_l2"])
def test_caffe_golden(case):
    run_case(case)


@pytest.mark.parametrize("bad", [4.0, -1.0])
def test_label_out_of_range_is_a_shape_error(bad):
    layer = hinge()
    bottom = make_blobs(np.ones((2, 4)), [0.0, bad])
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match=r"'hinge'.*label .* position 1.*\[0, 4\)"):
        layer.forward(bottom, top)


def test_label_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'hinge'.*one label per item.*\(2, 2\)"):
        setup_layer(hinge(), make_blobs(np.ones((2, 4)), np.ones((2, 2))))


def test_backward_to_labels_is_an_error():
    layer = hinge()
    bottom = make_blobs(*make_case())
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    with pytest.raises(NetError, match="'hinge'.*labels"):
        layer.backward(top, [True, True], bottom)
    assert not layer.allow_backward(1)
