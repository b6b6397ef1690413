import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import make_blobs, setup_layer


def argmax(top_k=None, out_max_val=None, axis=None, dtype=np.float64):
    param = pb.LayerParameter(name="am", type="ArgMax")
    if top_k is not None:
        param.argmax_param.top_k = top_k
    if out_max_val is not None:
        param.argmax_param.out_max_val = out_max_val
    if axis is not None:
        param.argmax_param.axis = axis
    return layer_class("ArgMax")(param, pb.TRAIN, dtype)


def ranked(values, k):
    """The k (value, index) pairs of a 1-D array, largest first, ties to the larger index."""
    pairs = sorted(((float(v), j) for j, v in enumerate(values)), reverse=True)
    return pairs[:k]


def numpy_argmax(x, top_k, out_max_val, axis):
    if axis is None:
        flat = x.reshape(x.shape[0], -1)
        out = np.zeros((x.shape[0], 2 if out_max_val else 1, top_k) + (1,) * (x.ndim - 3))
        for n in range(x.shape[0]):
            pairs = ranked(flat[n], top_k)
            out[n, 0].reshape(-1)[:] = [j for _, j in pairs]
            if out_max_val:
                out[n, 1].reshape(-1)[:] = [v for v, _ in pairs]
        return out
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros(moved.shape[:-1] + (top_k,))
    for where in np.ndindex(moved.shape[:-1]):
        pairs = ranked(moved[where], top_k)
        out[where] = [v if out_max_val else j for v, j in pairs]
    return np.moveaxis(out, -1, axis)


def with_ties(shape, seed=0):
    """Small integers, so that many values tie."""
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("top_k,out_max_val,axis,shape", [
    (None, None, None, (2, 3, 4, 5)), (3, True, None, (2, 3, 4, 5)), (2, False, None, (3, 4)),
    (4, True, None, (2, 6)), (1, None, 1, (2, 3, 4, 5)), (2, True, 1, (2, 3, 4, 5)),
    (3, False, -1, (2, 3, 4, 5)), (2, True, 0, (3, 4)), (5, False, 2, (2, 3, 5)),
    (2, None, None, (2, 3, 2, 2, 2))])
@pytest.mark.parametrize("data", [with_ties, lambda s: np.random.default_rng(1).standard_normal(s)])
def test_forward_matches_numpy(dtype, top_k, out_max_val, axis, shape, data):
    x = data(shape).astype(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    layer = argmax(top_k, out_max_val, axis, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = numpy_argmax(x, top_k or 1, bool(out_max_val), axis)
    assert top[0].shape == expected.shape
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, expected)


def test_ties_go_to_the_larger_index():
    layer = argmax(top_k=3, out_max_val=True)
    bottom = make_blobs([[1.0, 5.0, 2.0, 5.0, 2.0]])
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[0, :, :], [[3, 1, 4], [5, 5, 2]])


@pytest.mark.parametrize("top_k,out_max_val,axis", [
    (1, False, None), (3, True, None), (2, True, 1), (2, False, 2), (1, False, 0)])
def test_gpu_path_on_numpy_equals_cpu_path(top_k, out_max_val, axis):
    x = with_ties((3, 4, 5), seed=2)
    cpu, gpu = argmax(top_k, out_max_val, axis), argmax(top_k, out_max_val, axis)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)


def test_takes_no_gradient():
    layer = argmax()
    bottom = make_blobs(np.zeros((2, 3)))
    top = setup_layer(layer, bottom)
    assert not layer.allow_backward(0)
    layer.backward(top, [False], bottom)
    with pytest.raises(NetError, match="'am'"):
        layer.backward(top, [True], bottom)


@pytest.mark.parametrize("top_k,axis", [(7, None), (4, 1), (3, 0)])
def test_top_k_too_large_names_the_layer(top_k, axis):
    with pytest.raises(ShapeError, match="'am'"):
        setup_layer(argmax(top_k, axis=axis), make_blobs(np.zeros((2, 3, 2))))


def test_top_k_zero_names_the_layer():
    with pytest.raises(NetError, match="'am'"):
        setup_layer(argmax(0), make_blobs(np.zeros((2, 3))))


def test_axis_out_of_range_names_the_layer():
    with pytest.raises(ShapeError, match="'am'"):
        setup_layer(argmax(axis=2), make_blobs(np.zeros((2, 3))))


@pytest.mark.parametrize("case", ["argmax", "argmax_top3_maxval", "argmax_axis1",
                                  "argmax_axis1_maxval"])
def test_caffe_golden(case):
    run_case(case)
