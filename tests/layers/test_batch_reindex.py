import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, setup_layer


def reindex(dtype=np.float64):
    return layer_class("BatchReindex")(pb.LayerParameter(name="ri", type="BatchReindex"),
                                       pb.TRAIN, dtype)


def blobs(shape, index, dtype=np.float64, seed=0):
    x = Blob(shape, dtype)
    x.data[...] = np.random.default_rng(seed).standard_normal(shape)
    idx = np.asarray(index, dtype)
    i = Blob(idx.shape, dtype)
    i.data[...] = idx
    return [x, i]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,index", [
    ((4, 3), [3, 0, 0, 2, 3, 3]), ((3, 2, 2), [2.7, 1]), ((2,), [1, 1, 0]), ((3, 2), [])])
def test_forward_matches_numpy(dtype, shape, index):
    bottom = blobs(shape, index, dtype)
    layer = reindex(dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = bottom[0].data[np.asarray(index, int)]
    assert top[0].shape == expected.shape
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_accumulates_repeated_indices(dtype):
    index = [3, 0, 0, 2, 3, 3]
    bottom = blobs((5, 2, 3), index, dtype)
    layer = reindex(dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].shape).astype(dtype)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 9
    layer.backward(top, [True, False], bottom)
    expected = np.zeros((5, 2, 3))
    np.add.at(expected, index, dy.astype(np.float64))
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6)


def test_gradient():
    bottom = blobs((3, 2, 2), [2, 0, 2, 2])
    layer = reindex()
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_indices_take_no_gradient():
    bottom = blobs((3, 2), [1, 2])
    layer = reindex()
    top = setup_layer(layer, bottom)
    assert layer.allow_backward(0) and not layer.allow_backward(1)
    with pytest.raises(NetError, match="'ri'"):
        layer.backward(top, [True, True], bottom)


def test_gpu_path_on_numpy_equals_cpu_path():
    index = [1, 4, 1, 0, 1]
    cpu, gpu = reindex(), reindex()
    b1, b2 = blobs((5, 3, 2), index), blobs((5, 3, 2), index)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(3).standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12)


@pytest.mark.parametrize("index", [[0, 3], [-1, 0], [3.5]])
def test_index_out_of_range_names_the_layer(index):
    bottom = blobs((3, 2), index)
    layer = reindex()
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match=r"'ri'.*\[0, 3\)"):
        layer.forward(bottom, top)


def test_index_must_be_a_vector_naming_the_layer():
    with pytest.raises(ShapeError, match="'ri'"):
        setup_layer(reindex(), blobs((3, 2), [[0, 1]]))
