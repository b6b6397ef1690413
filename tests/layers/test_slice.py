import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def slicer(axis=None, points=(), slice_dim=None, dtype=np.float64):
    param = pb.LayerParameter(name="cut", type="Slice")
    if axis is not None:
        param.slice_param.axis = axis
    if slice_dim is not None:
        param.slice_param.slice_dim = slice_dim
    param.slice_param.slice_point.extend(points)
    return layer_class("Slice")(param, pb.TRAIN, dtype)


def blob(shape, dtype=np.float64, seed=0):
    b = Blob(shape, dtype)
    b.data[...] = np.random.default_rng(seed).standard_normal(shape)
    return b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,points,tops,shape", [
    (None, (1, 3), 3, (2, 5, 3)), (None, (), 2, (2, 4, 3)), (0, (2,), 2, (5, 3)),
    (-1, (), 3, (2, 2, 6)), (2, (1, 2, 4), 4, (1, 2, 5, 2)), (1, (), 1, (2, 3))])
def test_forward_matches_numpy(dtype, axis, points, tops, shape):
    bottom = [blob(shape, dtype)]
    layer = slicer(axis, points, dtype=dtype)
    top = setup_layer(layer, bottom, num_top=tops)
    layer.forward(bottom, top)
    ax = 1 if axis is None else axis
    cuts = list(points) if points else tops
    expected = np.split(bottom[0].data, cuts, axis=ax)
    for t, e in zip(top, expected):
        assert t.data.dtype == dtype
        np.testing.assert_array_equal(t.data, e)


def test_legacy_slice_dim():
    bottom = [blob((4, 3))]
    layer = slicer(slice_dim=0, points=(1,))
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data[:1])
    np.testing.assert_array_equal(top[1].data, bottom[0].data[1:])


def test_backward_joins_the_diffs():
    bottom = [blob((2, 5, 3))]
    layer = slicer(1, (2,))
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    rng = np.random.default_rng(1)
    for t in top:
        t.diff[...] = rng.standard_normal(t.shape)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, np.concatenate([t.diff for t in top], 1))


@pytest.mark.parametrize("axis,points,tops", [(0, (1,), 2), (1, (), 3), (2, (1, 3), 3)])
def test_gradient(axis, points, tops):
    bottom = make_blobs(np.random.default_rng(2).standard_normal((2, 3, 4)))
    layer = slicer(axis, points)
    top = setup_layer(layer, bottom, num_top=tops)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = slicer(1, (1, 4)), slicer(1, (1, 4))
    b1, b2 = [blob((2, 6, 3))], [blob((2, 6, 3))]
    t1, t2 = setup_layer(cpu, b1, 3), setup_layer(gpu, b2, 3)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    rng = np.random.default_rng(3)
    for a, b in zip(t1, t2):
        np.testing.assert_array_equal(b.data, a.data)
        a.diff[...] = b.diff[...] = rng.standard_normal(a.shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


def test_uneven_equal_parts_name_the_layer():
    with pytest.raises(ShapeError, match=r"'cut'.*3 tops.*length 4"):
        setup_layer(slicer(1), [blob((2, 4))], num_top=3)


@pytest.mark.parametrize("points", [(2, 2), (3, 1), (1, 5), (0, 2)])
def test_bad_slice_points_name_the_layer(points):
    with pytest.raises(ShapeError, match="'cut'"):
        setup_layer(slicer(1, points), [blob((2, 5))], num_top=3)


def test_wrong_number_of_slice_points_names_the_layer():
    with pytest.raises(NetError, match="'cut'"):
        setup_layer(slicer(1, (1, 2)), [blob((2, 5))], num_top=2)


def test_axis_and_slice_dim_together_are_refused():
    with pytest.raises(NetError, match="'cut'"):
        setup_layer(slicer(1, slice_dim=1), [blob((2, 4))], num_top=2)


@pytest.mark.parametrize("kw", [dict(axis=3), dict(slice_dim=2)])
def test_axis_out_of_range_names_the_layer(kw):
    with pytest.raises(ShapeError, match="'cut'"):
        setup_layer(slicer(**kw), [blob((2, 4))], num_top=2)


@pytest.mark.parametrize("case", ["slice_axis1", "slice_axis2_even"])
def test_caffe_golden(case):
    run_case(case)
