import numpy as np
import pytest

from cyffe.proto import cyffe_pb2 as pb
from cyffe.layers.registry import layer_class
from cyffe.proto.errors import NetError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def clip(low=-0.5, high=0.8, dtype=np.float64):
    return make_layer("Clip", dtype, "clip_param", min=low, max=high)


def away_from_bounds(shape, low=-0.5, high=0.8, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    near = (np.abs(x - low) < 0.05) | (np.abs(x - high) < 0.05)
    return np.where(near, (low + high) / 2, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(dtype):
    x = away_from_bounds((2, 3, 4, 5)).astype(dtype)
    _, top = run_layer(clip(dtype=dtype), x)
    # The bounds are float32 in the proto, in float64 layers too.
    low, high = dtype(np.float32(-0.5)), dtype(np.float32(0.8))
    np.testing.assert_array_equal(top[0].data, np.clip(x, low, high))


def test_gradient():
    layer = clip()
    bottom = make_blobs(away_from_bounds((2, 3, 4)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_passes_at_the_bounds_as_in_caffe(dtype):
    # Caffe's rule is min <= x <= max, bounds included (float32 bounds for float32 data).
    layer = clip(-0.5, 0.8, dtype)
    x = np.array([-0.6, -0.5, 0.0, 0.8, 0.9], dtype)
    x[3] = dtype(0.8)
    bottom, top = run_layer(layer, x)
    top[0].diff[...] = 2.0
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 2, 2, 2, 0])


@pytest.mark.parametrize("gpu", [False, True])
def test_in_place_equals_separate_top(gpu):
    x = away_from_bounds((3, 7))
    x[0, :2] = [-0.5, 0.8]
    check_in_place(clip, x, gpu=gpu)


def test_gpu_path_on_numpy_equals_cpu_path():
    x = away_from_bounds((4, 6))
    x[0, :2] = [-0.5, 0.8]
    check_gpu_matches_cpu(clip, x)


def test_caffe_golden():
    run_case("clip")


def test_min_greater_than_max_is_an_error():
    with pytest.raises(NetError, match=r"'clip'.*min \(1.0\).*max \(-1.0\)"):
        setup_layer(clip(1.0, -1.0), make_blobs(np.ones(3)))


def test_min_and_max_are_required():
    param = pb.LayerParameter(name="c", type="Clip")
    param.clip_param.min = 0.0
    with pytest.raises(NetError, match=r"'c'.*clip_param.max"):
        setup_layer(layer_class("Clip")(param, pb.TRAIN, np.float64), make_blobs(np.ones(3)))
