import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def split(dtype=np.float64):
    return layer_class("Split")(pb.LayerParameter(name="split", type="Split"), pb.TRAIN, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_tops_share_bottom_data(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    layer = split(dtype)
    top = setup_layer(layer, bottom, num_top=3)
    layer.forward(bottom, top)
    for t in top:
        np.testing.assert_array_equal(t.data, x)
        assert t.data is bottom[0].data
        assert t.diff is not bottom[0].diff


def test_reshape_follows_a_new_bottom_array():
    layer = split()
    bottom = make_blobs(np.ones((2, 3)))
    top = setup_layer(layer, bottom, num_top=2)
    bottom[0].reshape(4, 5)
    bottom[0].data[...] = 7
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert all(t.shape == (4, 5) and t.data is bottom[0].data for t in top)
    np.testing.assert_array_equal(top[1].data, 7)


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_backward_writes_sum_of_top_diffs(num_top):
    rng = np.random.default_rng(2)
    layer = split()
    bottom = make_blobs(rng.standard_normal((3, 4)))
    bottom[0].diff[...] = 100   # must be overwritten, not accumulated
    top = setup_layer(layer, bottom, num_top=num_top)
    layer.forward(bottom, top)
    diffs = [rng.standard_normal((3, 4)) for _ in range(num_top)]
    for t, d in zip(top, diffs):
        t.diff[...] = d
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, sum(diffs), rtol=1e-12)


def test_gradient():
    layer = split()
    bottom = make_blobs(np.random.default_rng(3).standard_normal((2, 3, 2)))
    top = setup_layer(layer, bottom, num_top=3)
    check_gradient(layer, bottom, top)


def test_no_propagate_leaves_bottom_diff():
    layer = split()
    bottom = make_blobs(np.zeros((2, 2)))
    bottom[0].diff[...] = 5
    top = setup_layer(layer, bottom, num_top=2)
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 5)


def test_gpu_path_on_numpy_equals_cpu_path():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5))
    cpu, gpu = split(), split()
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1, num_top=3), setup_layer(gpu, b2, num_top=3)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    for a, b in zip(t1, t2):
        np.testing.assert_array_equal(a.data, b.data)
        a.diff[...] = b.diff[...] = rng.standard_normal(x.shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12)


def test_in_place_is_refused_naming_the_layer():
    layer = split()
    bottom = make_blobs(np.zeros(3))
    with pytest.raises(NetError, match="'split'"):
        setup_layer(layer, bottom, top=[bottom[0], Blob()])


def test_needs_one_bottom():
    with pytest.raises(NetError, match="'split'"):
        setup_layer(split(), make_blobs(np.zeros(2), np.zeros(2)))


def test_caffe_golden():
    run_case("split")
