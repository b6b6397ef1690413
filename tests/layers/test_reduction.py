import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

OPS = ["SUM", "ASUM", "SUMSQ", "MEAN"]


def reduction(op, axis=None, coeff=None, dtype=np.float64):
    param = pb.LayerParameter(name="red", type="Reduction")
    param.reduction_param.operation = pb.ReductionParameter.ReductionOp.Value(op)
    if axis is not None:
        param.reduction_param.axis = axis
    if coeff is not None:
        param.reduction_param.coeff = coeff
    return layer_class("Reduction")(param, pb.TRAIN, dtype)


def numpy_reduction(x, op, axis, coeff):
    axis = axis % x.ndim
    rows = x.reshape(x.shape[:axis] + (-1,)).astype(np.float64)
    f = {"SUM": rows, "MEAN": rows, "ASUM": np.abs(rows), "SUMSQ": rows ** 2}[op]
    y = f.sum(axis=-1) if op != "MEAN" else f.mean(axis=-1)
    return coeff * y


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axis,coeff,shape", [
    (None, None, (2, 3, 4)), (1, 2.0, (2, 3, 4)), (-1, -0.5, (2, 3, 4)),
    (2, 1.5, (3, 2, 2, 2)), (1, 1.0, (40, 3)), (0, 1.0, (1000,))])
def test_forward_matches_numpy(dtype, op, axis, coeff, shape):
    x = away_from_zero(shape).astype(dtype)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    layer = reduction(op, axis, coeff, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    expected = numpy_reduction(x, op, axis or 0, 1.0 if coeff is None else coeff)
    assert top[0].shape == expected.shape
    assert top[0].data.dtype == dtype
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axis,coeff", [(0, 1.0), (1, 2.0), (-1, -0.5)])
def test_gradient(op, axis, coeff):
    layer = reduction(op, axis, coeff)
    bottom = make_blobs(away_from_zero((2, 3, 2), seed=1))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_asum_gradient_is_zero_at_zero():
    layer = reduction("ASUM")
    bottom = make_blobs([[0.0, 2.0, -3.0]])
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 2
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [[0, 2, -2]])


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axis,shape", [(0, (3, 4)), (1, (50, 3)), (2, (2, 3, 4, 5))])
def test_gpu_path_on_numpy_equals_cpu_path(op, axis, shape):
    rng = np.random.default_rng(2)
    x = away_from_zero(shape, seed=3)
    cpu, gpu = reduction(op, axis, 1.5), reduction(op, axis, 1.5)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12)
    t1[0].diff[...] = t2[0].diff[...] = rng.standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12)


@pytest.mark.parametrize("axis", [3, -4])
def test_axis_out_of_range_names_the_layer(axis):
    with pytest.raises(ShapeError, match="'red'"):
        setup_layer(reduction("SUM", axis), make_blobs(np.zeros((2, 3, 4))))


def test_scalar_bottom_names_the_layer():
    with pytest.raises(ShapeError, match="'red'"):
        setup_layer(reduction("SUM"), make_blobs(np.zeros(())))


def test_in_place_is_refused_naming_the_layer():
    bottom = make_blobs(np.zeros((2, 3)))
    with pytest.raises(NetError, match="'red'"):
        setup_layer(reduction("SUM"), bottom, top=bottom)


@pytest.mark.parametrize("case", ["reduction_sum", "reduction_mean", "reduction_asum",
                                  "reduction_sumsq", "reduction_sum_axis1_coeff",
                                  "reduction_mean_axis2", "reduction_asum_axism1"])
def test_caffe_golden(case):
    run_case(case)
