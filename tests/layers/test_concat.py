import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, setup_layer


def concat(axis=None, concat_dim=None, dtype=np.float64):
    param = pb.LayerParameter(name="cat", type="Concat")
    if axis is not None:
        param.concat_param.axis = axis
    if concat_dim is not None:
        param.concat_param.concat_dim = concat_dim
    return layer_class("Concat")(param, pb.TRAIN, dtype)


def blobs(shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        b = Blob(s, dtype)
        b.data[...] = rng.standard_normal(s)
        out.append(b)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,shapes", [
    (None, [(2, 3, 4), (2, 1, 4), (2, 2, 4)]),
    (0, [(2, 3), (5, 3)]),
    (-1, [(2, 3, 1), (2, 3, 4)]),
    (2, [(1, 2, 3, 4), (1, 2, 5, 4)]),
    (1, [(2, 3)])])
def test_forward_matches_numpy(dtype, axis, shapes):
    bottom = blobs(shapes, dtype)
    layer = concat(axis, dtype=dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = np.concatenate([b.data for b in bottom], axis=1 if axis is None else axis)
    np.testing.assert_array_equal(top[0].data, expected)
    assert top[0].data.dtype == dtype


def test_legacy_concat_dim():
    bottom = blobs([(2, 3), (4, 3)])
    layer = concat(concat_dim=0)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, np.concatenate([b.data for b in bottom], 0))


def test_backward_splits_the_diff():
    bottom = blobs([(2, 2, 3), (2, 4, 3)])
    layer = concat()
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    bottom[1].diff[...] = 7
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy[:, :2])
    np.testing.assert_array_equal(bottom[1].diff, 7)
    layer.backward(top, [True, True], bottom)
    np.testing.assert_array_equal(bottom[1].diff, dy[:, 2:])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gradient(axis):
    shapes = [[2, 2, 3], [2, 2, 3], [2, 2, 3]]
    shapes[1][axis] = 1
    shapes[2][axis] = 3
    bottom = blobs([tuple(s) for s in shapes])
    layer = concat(axis)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    shapes = [(2, 3, 4), (2, 5, 4)]
    cpu, gpu = concat(), concat()
    b1, b2 = blobs(shapes), blobs(shapes)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(3).standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True, True], b1)
    gpu.backward_gpu(t2, [True, True], b2)
    for a, b in zip(b1, b2):
        np.testing.assert_array_equal(b.diff, a.diff)


@pytest.mark.parametrize("shapes", [[(2, 3, 4), (2, 3, 5)], [(2, 3, 4), (3, 3, 4)],
                                    [(2, 3, 4), (2, 3)]])
def test_mismatched_shapes_name_the_layer_and_shapes(shapes):
    with pytest.raises(ShapeError, match=r"'cat'.*\(2, 3, 4\)"):
        setup_layer(concat(1), blobs(shapes))


def test_axis_out_of_range_names_the_layer():
    with pytest.raises(ShapeError, match="'cat'"):
        setup_layer(concat(3), blobs([(2, 3), (2, 3)]))


def test_axis_and_concat_dim_together_are_refused():
    with pytest.raises(NetError, match="'cat'"):
        setup_layer(concat(1, 1), blobs([(2, 3), (2, 3)]))


@pytest.mark.parametrize("case", ["concat_axis1", "concat_axis0"])
def test_caffe_golden(case):
    run_case(case)
