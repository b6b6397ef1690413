import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

OPS = {"SUM": pb.EltwiseParameter.SUM, "PROD": pb.EltwiseParameter.PROD,
       "MAX": pb.EltwiseParameter.MAX}


def eltwise(op="SUM", coeff=(), stable=True, dtype=np.float64):
    param = pb.LayerParameter(name="elt", type="Eltwise")
    param.eltwise_param.operation = OPS[op]
    param.eltwise_param.coeff.extend(coeff)
    param.eltwise_param.stable_prod_grad = stable
    return layer_class("Eltwise")(param, pb.TRAIN, dtype)


def inputs(n, shape=(2, 3, 4), dtype=np.float64, seed=0):
    """n arrays, kept away from 0 (for top/x) and from each other (for MAX)."""
    rng = np.random.default_rng(seed)
    base = rng.permutation(n * int(np.prod(shape))).reshape((n,) + shape)
    values = (base - base.size / 2 + 0.5) / base.size * 4
    return [values[k].astype(dtype) for k in range(n)]


def blobs(arrays, dtype):
    out = []
    for a in arrays:
        b = Blob(a.shape, dtype)
        b.data[...] = a
        out.append(b)
    return out


def reference(op, xs, coeff):
    if op == "SUM":
        return sum(c * x for c, x in zip(coeff or [1] * len(xs), xs))
    if op == "PROD":
        return np.prod(xs, axis=0)
    return np.max(xs, axis=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,n,coeff", [("SUM", 2, ()), ("SUM", 3, (0.5, -2.0, 3.0)),
                                        ("PROD", 2, ()), ("PROD", 4, ()),
                                        ("MAX", 2, ()), ("MAX", 3, ())])
def test_forward_matches_numpy(dtype, op, n, coeff):
    xs = inputs(n, dtype=dtype)
    layer = eltwise(op, coeff, dtype=dtype)
    bottom = blobs(xs, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(op, xs, list(coeff)), rtol=1e-6)


@pytest.mark.parametrize("op,coeff,stable", [("SUM", (), True), ("SUM", (0.5, -2.0, 1.5), True),
                                             ("PROD", (), True), ("PROD", (), False),
                                             ("MAX", (), True)])
def test_gradient(op, coeff, stable):
    layer = eltwise(op, coeff, stable)
    bottom = make_blobs(*inputs(3, shape=(2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_max_backward_routes_to_the_winner():
    x0 = np.array([3.0, 1.0, 2.0, 0.0])
    x1 = np.array([1.0, 4.0, 2.0, 0.0])
    x2 = np.array([2.0, 0.0, 2.0, 5.0])
    layer = eltwise("MAX")
    bottom = make_blobs(x0, x1, x2)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [3, 4, 2, 5])
    top[0].diff[...] = [10, 20, 30, 40]
    layer.backward(top, [True] * 3, bottom)
    # A three-way tie at index 2: Caffe gives it to bottom 1 (x0 > x1 is false,
    # and x2 is not strictly greater).
    np.testing.assert_array_equal(bottom[0].diff, [10, 0, 0, 0])
    np.testing.assert_array_equal(bottom[1].diff, [0, 20, 30, 0])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0, 40])


def test_unstable_prod_gradient_is_top_over_x():
    xs = inputs(3)
    layer = eltwise("PROD", stable=False)
    bottom = make_blobs(*xs)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1.5
    layer.backward(top, [True] * 3, bottom)
    np.testing.assert_allclose(bottom[1].diff, 1.5 * xs[0] * xs[2], rtol=1e-12)


def test_only_propagated_bottoms_are_written():
    layer = eltwise("SUM", (2.0, 3.0))
    bottom = make_blobs(*inputs(2))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 9
    layer.backward(top, [False, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 9)
    np.testing.assert_array_equal(bottom[1].diff, 3)


@pytest.mark.parametrize("op,coeff,stable", [("SUM", (0.5, -1.0, 2.0), True), ("PROD", (), True),
                                             ("PROD", (), False), ("MAX", (), True)])
def test_gpu_path_on_numpy_equals_cpu_path(op, coeff, stable):
    xs = inputs(3, seed=5)
    xs[1][0, 0, :2] = xs[0][0, 0, :2]           # ties, so the tie rule is compared too
    xs[2][0, 1, :2] = xs[0][0, 1, :2]
    cpu, gpu = eltwise(op, coeff, stable), eltwise(op, coeff, stable)
    b1, b2 = make_blobs(*xs), make_blobs(*xs)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(6).standard_normal(xs[0].shape)
    cpu.backward_cpu(t1, [True] * 3, b1)
    gpu.backward_gpu(t2, [True] * 3, b2)
    for a, b in zip(b1, b2):
        np.testing.assert_allclose(b.diff, a.diff, rtol=1e-12)


def test_wrong_coeff_count_names_the_layer():
    with pytest.raises(NetError, match="'elt'.*3 coeff.*2 bottoms"):
        setup_layer(eltwise("SUM", (1.0, 2.0, 3.0)), make_blobs(*inputs(2)))


@pytest.mark.parametrize("op", ["PROD", "MAX"])
def test_coeff_outside_sum_is_refused(op):
    with pytest.raises(NetError, match="'elt'"):
        setup_layer(eltwise(op, (1.0, 2.0)), make_blobs(*inputs(2)))


def test_mismatched_shapes_name_the_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"'elt'.*\(2, 3\).*\(3, 2\)"):
        setup_layer(eltwise(), make_blobs(np.zeros((2, 3)), np.zeros((3, 2))))


def test_needs_two_bottoms():
    with pytest.raises(NetError, match="'elt'"):
        setup_layer(eltwise(), make_blobs(np.zeros(3)))


def test_in_place_is_refused():
    bottom = make_blobs(*inputs(2))
    with pytest.raises(NetError, match="'elt'"):
        setup_layer(eltwise(), bottom, top=[bottom[0]])


@pytest.mark.parametrize("case", ["eltwise_sum_coeff", "eltwise_sum3", "eltwise_prod",
                                  "eltwise_max"])
def test_caffe_golden(case):
    run_case(case)
