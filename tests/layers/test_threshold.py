import numpy as np
import pytest

from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import make_blobs, run_layer, setup_layer
from helpers.neuron import make_layer


def threshold(t=0.0, dtype=np.float64):
    return make_layer("Threshold", dtype, "threshold_param", threshold=t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [0.0, 0.2, -1.0])
def test_forward_matches_numpy(dtype, t):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(dtype)
    x.flat[0] = t                           # exactly at the threshold: 0 (strictly greater)
    _, top = run_layer(threshold(t, dtype), x)
    np.testing.assert_array_equal(top[0].data, (x > dtype(t)).astype(dtype))
    assert top[0].data.flat[0] == 0


def test_in_place_equals_separate_top():
    x = np.random.default_rng(0).standard_normal((3, 7))
    _, separate = run_layer(threshold(0.3), x)
    bottom = make_blobs(x)
    layer = threshold(0.3)
    setup_layer(layer, bottom, top=bottom)
    layer.forward(bottom, bottom)
    np.testing.assert_array_equal(bottom[0].data, separate[0].data)


def test_gpu_path_on_numpy_equals_cpu_path():
    x = np.random.default_rng(0).standard_normal((4, 6))
    cpu, gpu = threshold(0.1), threshold(0.1)
    b1, b2 = make_blobs(x), make_blobs(x)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)


def test_caffe_golden():
    run_case("threshold")


def test_no_gradient_flows():
    layer = threshold()
    assert not layer.allow_backward(0)
    bottom, top = run_layer(layer, np.ones(3))
    layer.backward(top, [False], bottom)          # a net may still call it: nothing to do
    with pytest.raises(NetError, match=r"'threshold'.*no backward"):
        layer.backward(top, [True], bottom)
