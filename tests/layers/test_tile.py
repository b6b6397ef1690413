import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def tile(tiles, axis=None, dtype=np.float64):
    param = pb.LayerParameter(name="tl", type="Tile")
    param.tile_param.tiles = tiles
    if axis is not None:
        param.tile_param.axis = axis
    return layer_class("Tile")(param, pb.TRAIN, dtype)


def numpy_tile(x, axis, tiles):
    reps = [1] * x.ndim
    reps[axis] = tiles
    return np.tile(x, reps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,tiles", [(None, 2), (0, 3), (2, 2), (-1, 4), (1, 1)])
def test_forward_matches_numpy(dtype, axis, tiles):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    layer = tile(tiles, axis, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, numpy_tile(x, 1 if axis is None else axis, tiles))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_sums_the_tiles(dtype):
    rng = np.random.default_rng(1)
    bottom = [Blob((2, 3, 4), dtype)]
    layer = tile(3, 1, dtype)
    top = setup_layer(layer, bottom)
    dy = rng.standard_normal(top[0].shape).astype(dtype)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    expected = dy.astype(np.float64).reshape(2, 3, 3, 4).sum(axis=1)
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis,tiles", [(0, 2), (1, 3), (2, 2)])
def test_gradient(axis, tiles):
    layer = tile(tiles, axis)
    bottom = make_blobs(np.random.default_rng(2).standard_normal((2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4))
    cpu, gpu = tile(3, 2), tile(3, 2)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = rng.standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12)


@pytest.mark.parametrize("tiles", [0, -2])
def test_bad_tiles_name_the_layer(tiles):
    with pytest.raises(NetError, match="'tl'"):
        setup_layer(tile(tiles), make_blobs(np.zeros((2, 3))))


def test_axis_out_of_range_names_the_layer():
    with pytest.raises(ShapeError, match="'tl'"):
        setup_layer(tile(2, 2), make_blobs(np.zeros((2, 3))))


@pytest.mark.parametrize("case", ["tile_axis1", "tile_axis3"])
def test_caffe_golden(case):
    run_case(case)
