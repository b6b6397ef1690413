import numpy as np
import pytest

from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def silence():
    return layer_class("Silence")(pb.LayerParameter(name="quiet", type="Silence"),
                                  pb.TRAIN, np.float64)


def test_forward_has_no_tops_and_leaves_bottoms_alone():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((4,))
    layer = silence()
    bottom = make_blobs(x, y)
    top = setup_layer(layer, bottom, num_top=0)
    layer.forward(bottom, top)
    assert top == []
    np.testing.assert_array_equal(bottom[0].data, x)
    np.testing.assert_array_equal(bottom[1].data, y)


def test_backward_zeroes_only_the_diffs_asked_for():
    layer = silence()
    bottom = make_blobs(np.ones((2, 3)), np.ones((4,)))
    top = setup_layer(layer, bottom, num_top=0)
    for b in bottom:
        b.diff[...] = 5
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 0)
    np.testing.assert_array_equal(bottom[1].diff, 5)


def test_gradient_is_zero():
    layer = silence()
    bottom = make_blobs(np.random.default_rng(1).standard_normal((2, 2)))
    top = setup_layer(layer, bottom, num_top=0)
    check_gradient(layer, bottom, top)


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = silence(), silence()
    b1, b2 = make_blobs(np.ones(3)), make_blobs(np.ones(3))
    t1, t2 = setup_layer(cpu, b1, 0), setup_layer(gpu, b2, 0)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    b1[0].diff[...] = b2[0].diff[...] = 3
    cpu.backward_cpu(t1, [True], b1)
    gpu.backward_gpu(t2, [True], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


def test_a_top_is_refused_naming_the_layer():
    with pytest.raises(NetError, match="'quiet'"):
        setup_layer(silence(), make_blobs(np.ones(3)), num_top=1)


def test_no_bottom_is_refused_naming_the_layer():
    with pytest.raises(NetError, match="'quiet'"):
        setup_layer(silence(), [], num_top=0)
