import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError
from cyffe.proto.io import array_to_blobproto

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def inner_product(num_output=4, bias_term=True, axis=1, transpose=False, dtype=np.float64,
                  blobs=()):
    param = pb.LayerParameter(name="fc", type="InnerProduct")
    p = param.inner_product_param
    p.num_output = num_output
    p.bias_term = bias_term
    p.axis = axis
    p.transpose = transpose
    p.weight_filler.type = "gaussian"
    p.weight_filler.std = 0.5
    p.bias_filler.type = "uniform"
    p.bias_filler.min, p.bias_filler.max = -1, 1
    for b in blobs:
        param.blobs.append(array_to_blobproto(b))
    return layer_class("InnerProduct")(param, pb.TRAIN, dtype)


def reference(x, w, b, axis, transpose):
    lead = x.shape[:axis]
    x2 = x.reshape(int(np.prod(lead)), -1).astype(np.float64)
    w2 = w.T if transpose else w
    y = x2 @ w2.T.astype(np.float64)
    if b is not None:
        y = y + b
    return y.reshape(lead + (w2.shape[0],))


CONFIGS = [dict(), dict(transpose=True), dict(bias_term=False), dict(axis=2),
           dict(axis=-1), dict(axis=0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_matches_numpy(dtype, cfg):
    set_random_seed(3)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(dtype)
    layer = inner_product(dtype=dtype, **cfg)
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    axis = cfg.get("axis", 1) % 3
    b = layer.blobs[1].data if cfg.get("bias_term", True) else None
    expected = reference(x, layer.blobs[0].data, b, axis, cfg.get("transpose", False))
    assert top[0].shape == x.shape[:axis] + (4,)
    assert top[0].data.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


def test_default_fillers_are_zero_and_shapes_follow_caffe():
    param = pb.LayerParameter(name="fc", type="InnerProduct")
    param.inner_product_param.num_output = 3
    layer = layer_class("InnerProduct")(param, pb.TRAIN, np.float32)
    setup_layer(layer, [Blob((2, 5, 2), np.float32)])
    assert [b.shape for b in layer.blobs] == [(3, 10), (3,)]
    assert not layer.blobs[0].data.any() and not layer.blobs[1].data.any()


@pytest.mark.parametrize("cfg", CONFIGS)
def test_gradient(cfg):
    set_random_seed(4)
    layer = inner_product(num_output=3, **cfg)
    bottom = make_blobs(np.random.default_rng(1).standard_normal((2, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_param_diffs_accumulate_bottom_diff_is_written():
    set_random_seed(5)
    layer = inner_product()
    bottom = make_blobs(np.random.default_rng(2).standard_normal((3, 5)))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(3).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    once = [b.diff.copy() for b in layer.blobs] + [bottom[0].diff.copy()]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0])
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * once[1])
    np.testing.assert_allclose(bottom[0].diff, once[2])


def test_no_bottom_diff_without_propagate_down():
    layer = inner_product()
    bottom = make_blobs(np.ones((2, 5)))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 7
    layer.backward(top, [False], bottom)
    assert (bottom[0].diff == 7).all()
    assert layer.blobs[1].diff.tolist() == [2.0] * 4


@pytest.mark.parametrize("cfg", CONFIGS)
def test_gpu_path_on_numpy_equals_cpu_path(cfg):
    x = np.random.default_rng(6).standard_normal((2, 3, 4))
    dy_rng = np.random.default_rng(7)
    set_random_seed(8)
    cpu = inner_product(**cfg)
    b1 = make_blobs(x)
    t1 = setup_layer(cpu, b1)
    set_random_seed(8)
    gpu = inner_product(**cfg)
    b2 = make_blobs(x)
    t2 = setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-12)
    t1[0].diff[...] = t2[0].diff[...] = dy_rng.standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12)
    for p1, p2 in zip(cpu.blobs, gpu.blobs):
        np.testing.assert_allclose(p2.diff, p1.diff, rtol=1e-12)


def test_given_weights_are_kept():
    w = np.arange(12.0).reshape(4, 3)
    b = np.arange(4.0)
    layer = inner_product(blobs=[w, b])
    bottom = make_blobs(np.ones((2, 3)))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, np.ones((2, 3)) @ w.T + b)


def test_legacy_4d_weights_are_accepted():
    w = np.arange(12.0).reshape(1, 1, 4, 3)
    b = np.arange(4.0).reshape(1, 1, 1, 4)
    layer = inner_product(blobs=[w, b])
    setup_layer(layer, make_blobs(np.ones((2, 3))))
    assert [p.shape for p in layer.blobs] == [(4, 3), (4,)]
    np.testing.assert_array_equal(layer.blobs[0].data, w.reshape(4, 3))


@pytest.mark.parametrize("case", ["ip", "ip_transpose", "ip_nobias", "ip_axis2"])
def test_caffe_golden(case):
    run_case(case)


# -- errors -------------------------------------------------------------------

def test_zero_num_output_is_an_error():
    with pytest.raises(NetError, match="'fc'.*num_output"):
        setup_layer(inner_product(num_output=0), make_blobs(np.ones((2, 3))))


def test_bottom_changing_its_input_size_is_a_shape_error():
    layer = inner_product()
    bottom = make_blobs(np.ones((2, 3)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(2, 5)
    with pytest.raises(ShapeError, match=r"'fc'.*\(2, 5\).*5 inputs.*take 3"):
        layer.reshape(bottom, top)


def test_bottom_changing_batch_size_is_fine():
    layer = inner_product()
    bottom = make_blobs(np.ones((2, 3)))
    top = setup_layer(layer, bottom)
    bottom[0].reshape(6, 3)
    layer.reshape(bottom, top)
    assert top[0].shape == (6, 4)


def test_given_weights_of_the_wrong_size_are_a_shape_error():
    layer = inner_product(blobs=[np.ones((4, 5)), np.ones(4)])
    with pytest.raises(ShapeError, match=r"'fc'.*\(4, 5\).*\(4, 3\)"):
        setup_layer(layer, make_blobs(np.ones((2, 3))))


def test_given_bias_of_the_wrong_size_is_a_shape_error():
    layer = inner_product(blobs=[np.ones((4, 3)), np.ones(5)])
    with pytest.raises(ShapeError, match=r"'fc'.*bias.*\(5,\).*\(4,\)"):
        setup_layer(layer, make_blobs(np.ones((2, 3))))


def test_wrong_number_of_given_blobs_is_an_error():
    layer = inner_product(blobs=[np.ones((4, 3))])
    with pytest.raises(NetError, match="'fc'.*expected 2 param blob"):
        setup_layer(layer, make_blobs(np.ones((2, 3))))


def test_axis_out_of_range_is_an_error():
    with pytest.raises(ShapeError, match="'fc'.*axis 3"):
        setup_layer(inner_product(axis=3), make_blobs(np.ones((2, 3))))
