import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def filt(dtype=np.float64):
    return layer_class("Filter")(pb.LayerParameter(name="pick", type="Filter"), pb.TRAIN, dtype)


def blobs(shapes, selector, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        b = Blob(s, dtype)
        b.data[...] = rng.standard_normal(s)
        out.append(b)
    sel = np.asarray(selector, dtype)
    b = Blob(sel.shape, dtype)
    b.data[...] = sel
    return out + [b]


def run(layer, bottom):
    top = setup_layer(layer, bottom, num_top=len(bottom) - 1)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("selector", [[1, 0, 2, 0], [0, 0, 0, 0], [1, 1, 1, 1],
                                      [[[0.5]], [[0]], [[-1]], [[0]]]])
def test_forward_matches_numpy(dtype, selector):
    bottom = blobs([(4, 3), (4, 2, 2)], selector, dtype)
    top = run(filt(dtype), bottom)
    keep = np.asarray(selector).reshape(-1) != 0
    for t, b in zip(top, bottom):
        assert t.data.dtype == dtype
        np.testing.assert_array_equal(t.data, b.data[keep])


def test_first_reshape_keeps_every_item_as_caffe():
    bottom = blobs([(4, 3)], [1, 0, 0, 0])
    layer = filt()
    top = setup_layer(layer, bottom)
    assert top[0].shape == (4, 3)
    layer.reshape(bottom, top)
    assert top[0].shape == (1, 3)


def test_backward_scatters_with_zeros_elsewhere():
    layer = filt()
    bottom = blobs([(4, 3), (4, 2)], [0, 1, 0, 1])
    top = run(layer, bottom)
    for t in top:
        t.diff[...] = np.arange(t.diff.size).reshape(t.shape) + 1
    for b in bottom:
        b.diff[...] = 9
    layer.backward(top, [True, False, False], bottom)
    expected = np.zeros((4, 3))
    expected[[1, 3]] = top[0].diff
    np.testing.assert_array_equal(bottom[0].diff, expected)
    np.testing.assert_array_equal(bottom[1].diff, 9)


def test_gradient():
    layer = filt()
    bottom = blobs([(4, 2), (4, 3)], [1, 0, 3, 1], seed=1)
    top = run(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0, 1])


def test_selector_takes_no_gradient():
    layer = filt()
    bottom = blobs([(3, 2)], [1, 0, 1])
    top = run(layer, bottom)
    assert layer.allow_backward(0) and not layer.allow_backward(1)
    with pytest.raises(NetError, match="'pick'.*selector"):
        layer.backward(top, [True, True], bottom)


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = filt(), filt()
    b1, b2 = blobs([(5, 3)], [1, 0, 1, 1, 0]), blobs([(5, 3)], [1, 0, 1, 1, 0])
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.reshape(b1, t1)
    gpu.reshape(b2, t2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(3).standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


@pytest.mark.parametrize("shapes,selector", [
    ([(4, 3)], [[1, 0], [1, 1], [0, 0], [1, 0]]), ([(3, 3)], [1, 0, 1, 1]),
    ([(4, 3), (5, 3)], [1, 0, 1, 1])])
def test_bad_shapes_name_the_layer(shapes, selector):
    with pytest.raises(ShapeError, match="'pick'"):
        setup_layer(filt(), blobs(shapes, selector), num_top=len(shapes))


def test_top_count_names_the_layer():
    with pytest.raises(NetError, match="'pick'"):
        setup_layer(filt(), blobs([(4, 3), (4, 2)], [1, 0, 1, 1]), num_top=1)


def test_forward_without_reshape_names_the_layer():
    layer = filt()
    bottom = blobs([(4, 3)], [1, 0, 1, 1])
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match="'pick'"):
        layer.forward(bottom, top)
