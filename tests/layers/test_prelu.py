import numpy as np
import pytest

from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer


def prelu(dtype=np.float64, shared=False, slopes=None):
    return make_layer("PReLU", dtype, "prelu_param", blobs=() if slopes is None else [slopes],
                      channel_shared=shared)


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, -0.5, x)


def reference(x, slopes):
    a = np.asarray(slopes).reshape((1, -1) + (1,) * (x.ndim - 2)) if np.ndim(slopes) else slopes
    return np.maximum(x, 0) + a * np.minimum(x, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 3), (2, 3, 2, 2, 3)])
def test_forward_matches_numpy(dtype, shape):
    x = away_from_zero(shape).astype(dtype)
    slopes = np.array([0.1, -0.3, 2.0])
    layer = prelu(dtype, slopes=slopes)
    _, top = run_layer(layer, x)
    np.testing.assert_allclose(top[0].data, reference(x.astype(np.float64), slopes), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_shared_forward_matches_numpy(dtype):
    x = away_from_zero((2, 3, 4)).astype(dtype)
    layer = prelu(dtype, shared=True, slopes=np.array(0.3))
    _, top = run_layer(layer, x)
    np.testing.assert_allclose(top[0].data, reference(x.astype(np.float64), 0.3), rtol=1e-6)


def test_default_slopes_are_a_quarter_and_filler_is_honoured():
    layer = prelu()
    setup_layer(layer, make_blobs(np.ones((2, 5, 3))))
    assert layer.blobs[0].shape == (5,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    shared = prelu(shared=True)
    setup_layer(shared, make_blobs(np.ones((2, 5, 3))))
    assert shared.blobs[0].shape == ()
    np.testing.assert_array_equal(shared.blobs[0].data, 0.25)
    filled = prelu()
    filled.param.prelu_param.filler.type = "constant"
    filled.param.prelu_param.filler.value = -0.5
    setup_layer(filled, make_blobs(np.ones((2, 5, 3))))
    np.testing.assert_array_equal(filled.blobs[0].data, -0.5)


@pytest.mark.parametrize("shared", [False, True])
def test_gradient(shared):
    slopes = np.array(0.3) if shared else np.array([0.1, -0.3, 0.7])
    layer = prelu(shared=shared, slopes=slopes)
    bottom = make_blobs(away_from_zero((2, 3, 3, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


@pytest.mark.parametrize("shared", [False, True])
def test_slope_gradient_accumulates(shared):
    layer = prelu(shared=shared)
    bottom = make_blobs(away_from_zero((2, 3, 4)))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [False], bottom)
    once = layer.blobs[0].diff.copy()
    assert np.all(once != 0)
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)
    x = bottom[0].data
    expected = (x * (x <= 0)).sum() if shared else (x * (x <= 0)).sum(axis=(0, 2))
    np.testing.assert_allclose(once, expected)


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_in_place_equals_separate_top(shared, gpu):
    slopes = np.array(0.3) if shared else np.array([0.1, -0.3, 0.7])
    check_in_place(lambda: prelu(shared=shared, slopes=slopes), away_from_zero((3, 3, 5)),
                   gpu=gpu)


@pytest.mark.parametrize("shared", [False, True])
def test_gpu_path_on_numpy_equals_cpu_path(shared):
    slopes = np.array(0.3) if shared else np.array([0.1, -0.3, 0.7])
    check_gpu_matches_cpu(lambda: prelu(shared=shared, slopes=slopes),
                          away_from_zero((3, 3, 2, 4)))


@pytest.mark.parametrize("case", ["prelu", "prelu_channel_shared"])
def test_caffe_golden(case):
    run_case(case)


def test_slope_count_must_match_channels():
    layer = prelu(slopes=np.array([0.1, 0.2]))
    with pytest.raises(NetError, match=r"'prelu'.*2 value.*3 channels"):
        setup_layer(layer, make_blobs(np.ones((2, 3, 4))))
    shared = prelu(shared=True, slopes=np.array([0.1, 0.2]))
    with pytest.raises(NetError, match=r"'prelu'.*channel_shared"):
        setup_layer(shared, make_blobs(np.ones((2, 3, 4))))


def test_bottom_needs_a_channel_axis():
    with pytest.raises(ShapeError, match=r"'prelu'.*\(5,\)"):
        setup_layer(prelu(), make_blobs(np.ones(5)))


def test_channel_count_cannot_change_on_reshape():
    layer = prelu()
    setup_layer(layer, make_blobs(np.ones((2, 3, 4))))
    with pytest.raises(ShapeError, match=r"'prelu'.*4 channels"):
        layer.reshape(make_blobs(np.ones((2, 4, 4))), make_blobs(np.ones(1)))
