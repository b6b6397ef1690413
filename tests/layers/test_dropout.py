import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def dropout(ratio=0.5, phase=pb.TRAIN, dtype=np.float64):
    param = pb.LayerParameter(name="drop", type="Dropout")
    param.dropout_param.dropout_ratio = ratio
    return layer_class("Dropout")(param, phase, dtype)


def nonzero_inputs(shape=(2, 3, 4, 5), seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def run(layer, x, dy, dtype=np.float64, in_place=False):
    bottom = [Blob(x.shape, dtype)]
    bottom[0].data[...] = x
    top = setup_layer(layer, bottom, top=bottom if in_place else None)
    layer.forward(bottom, top)
    y = top[0].data.copy()
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    return y, bottom[0].diff.copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_test_phase_is_the_identity(dtype):
    x = nonzero_inputs().astype(dtype)
    dy = nonzero_inputs(seed=1).astype(dtype)
    y, dx = run(dropout(0.3, pb.TEST, dtype), x, dy, dtype)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.9])
def test_train_phase_zeros_or_scales_each_element(dtype, ratio):
    x = nonzero_inputs((50, 40)).astype(dtype)
    dy = nonzero_inputs((50, 40), seed=1).astype(dtype)
    set_random_seed(11)
    y, dx = run(dropout(ratio, pb.TRAIN, dtype), x, dy, dtype)
    # dropout_ratio is a proto float: the scale comes from its float32 value
    scale = dtype(1.0 / (1.0 - float(np.float32(ratio))))
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    np.testing.assert_array_equal(dx, np.where(kept, dy * scale, 0))
    # the kept fraction is 1 - ratio (2000 draws: well within 5 binomial std devs)
    std = np.sqrt(ratio * (1 - ratio) / x.size)
    assert abs(kept.mean() - (1 - ratio)) < 5 * std


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_train_phase_preserves_the_mean(ratio):
    x = np.ones((200, 200))
    set_random_seed(12)
    y, _ = run(dropout(ratio), x, x)
    std = np.sqrt(ratio / (1 - ratio) / x.size)   # std of the mean of the scaled mask
    assert abs(y.mean() - 1.0) < 5 * std


def test_ratio_zero_keeps_everything_in_train():
    x = nonzero_inputs()
    y, dx = run(dropout(0.0), x, 2 * x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, 2 * x)


def test_each_forward_draws_a_fresh_mask_and_the_seed_repeats_it():
    x = np.ones((20, 30))
    set_random_seed(13)
    first, _ = run(dropout(), x, x)
    second, _ = run(dropout(), x, x)
    assert (first != second).any()
    set_random_seed(13)
    again, _ = run(dropout(), x, x)
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("phase", [pb.TRAIN, pb.TEST])
def test_gradient(phase):
    layer = dropout(0.4, phase)
    bottom = make_blobs(nonzero_inputs((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("phase", [pb.TRAIN, pb.TEST])
def test_in_place_equals_separate_top(phase):
    x = nonzero_inputs((6, 7))
    dy = nonzero_inputs((6, 7), seed=1)
    set_random_seed(14)
    y1, dx1 = run(dropout(0.5, phase), x, dy)
    set_random_seed(14)
    y2, dx2 = run(dropout(0.5, phase), x, dy, in_place=True)
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(dx2, dx1)


@pytest.mark.parametrize("phase", [pb.TRAIN, pb.TEST])
def test_gpu_path_on_numpy_equals_cpu_path(phase):
    x = nonzero_inputs((4, 6))
    cpu, gpu = dropout(0.5, phase), dropout(0.5, phase)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    set_random_seed(15)
    cpu.forward_cpu(b1, t1)
    set_random_seed(15)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = nonzero_inputs((4, 6), seed=2)
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


def test_caffe_golden():
    run_case("dropout_test")


@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1])
def test_ratio_outside_zero_one_is_an_error(ratio):
    with pytest.raises(NetError, match=f"'drop'.*dropout_ratio.*{ratio}"):
        setup_layer(dropout(ratio), make_blobs(np.ones(3)))
