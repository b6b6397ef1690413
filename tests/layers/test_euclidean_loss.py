import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def euclidean(dtype=np.float64):
    param = pb.LayerParameter(name="l2", type="EuclideanLoss")
    return layer_class("EuclideanLoss")(param, pb.TRAIN, dtype)


def pair(shape_a=(4, 5), shape_b=None, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_a), rng.standard_normal(shape_b or shape_a)


def run(layer, a, b, dtype=np.float64, loss_weight=1.0, propagate=(True, True)):
    bottom = [Blob(a.shape, dtype), Blob(b.shape, dtype)]
    bottom[0].data[...] = a
    bottom[1].data[...] = b
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, list(propagate), bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 4), (6,)])
def test_forward_and_backward_match_numpy(dtype, shape):
    a, b = pair(shape)
    bottom, top = run(euclidean(dtype), a.astype(dtype), b.astype(dtype), dtype, 0.5)
    a, b = a.astype(dtype).astype(np.float64), b.astype(dtype).astype(np.float64)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert top[0].shape == ()
    np.testing.assert_allclose(top[0].data, ((a - b) ** 2).sum() / (2 * shape[0]), rtol=tol)
    np.testing.assert_allclose(bottom[0].diff, 0.5 * (a - b) / shape[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(bottom[1].diff, -0.5 * (a - b) / shape[0], rtol=tol, atol=tol)


def test_by_hand():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 0.0], [0.0, 4.0]])
    bottom, top = run(euclidean(), a, b)
    assert top[0].data == (4 + 9) / 4
    np.testing.assert_array_equal(bottom[0].diff, [[0, 1], [1.5, 0]])
    np.testing.assert_array_equal(bottom[1].diff, [[0, -1], [-1.5, 0]])


def test_shapes_may_differ_when_counts_agree():
    a, b = pair((3, 4), (3, 2, 2))
    bottom, top = run(euclidean(), a, b)
    np.testing.assert_allclose(top[0].data, ((a - b.reshape(3, 4)) ** 2).sum() / 6)
    assert bottom[1].diff.shape == (3, 2, 2)


def test_only_the_asked_bottoms_get_diffs():
    a, b = pair()
    layer = euclidean()
    bottom = make_blobs(a, b)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[1].diff[...] = 9
    layer.backward(top, [True, False], bottom)
    assert (bottom[1].diff == 9).all() and bottom[0].diff.any()


def test_gradient():
    layer = euclidean()
    bottom = make_blobs(*pair((3, 2, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    a, b = pair((3, 4))
    cpu, gpu = euclidean(), euclidean()
    b1, b2 = make_blobs(a, b), make_blobs(a, b)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-13)
    t1[0].diff[...] = t2[0].diff[...] = 1.7
    cpu.backward_cpu(t1, [True, True], b1)
    gpu.backward_gpu(t2, [True, True], b2)
    for x, y in zip(b1, b2):
        np.testing.assert_allclose(y.diff, x.diff, rtol=1e-15)


@pytest.mark.parametrize("case", ["euclidean_loss", "euclidean_loss_4d"])
def test_caffe_golden(case):
    run_case(case)


def test_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'l2'.*same count.*\(3, 4\).*\(3, 5\)"):
        setup_layer(euclidean(), make_blobs(np.ones((3, 4)), np.ones((3, 5))))


def test_item_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match="'l2'.*same number of items"):
        setup_layer(euclidean(), make_blobs(np.ones((3, 4)), np.ones((4, 3))))


def test_one_bottom_is_an_error():
    with pytest.raises(NetError, match="'l2'.*2 bottom"):
        setup_layer(euclidean(), make_blobs(np.ones((3, 4))))
