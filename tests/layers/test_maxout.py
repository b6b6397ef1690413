import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.proto.errors import NetError, ShapeError

from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import make_layer


def maxout(num_pieces, dtype=np.float64):
    return make_layer("Maxout", dtype, "maxout_param", num_pieces=num_pieces)


def distinct(*shape, seed=0):
    """Values at least 0.1 apart, so no two pieces tie."""
    r = np.random.default_rng(seed)
    return (r.permutation(int(np.prod(shape))) * 0.1 - 1).reshape(shape)


def reference(x, k):
    n, c = x.shape[:2]
    return x.reshape((n, c // k, k) + x.shape[2:]).max(axis=2)


CASES = [((2, 6, 3, 4), 2), ((2, 6, 3, 4), 3), ((2, 6, 3, 4), 6), ((2, 6, 3, 4), 1),
         ((3, 8), 4), ((2, 4, 5), 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k", CASES)
def test_forward_matches_numpy(dtype, shape, k):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    _, top = run_layer(maxout(k, dtype), x)
    assert top[0].shape == reference(x, k).shape
    np.testing.assert_array_equal(top[0].data, reference(x, k))


def test_pieces_are_consecutive_channels():
    x = np.array([1.0, 5.0, 2.0, 3.0, 4.0, 0.0]).reshape(1, 6)
    _, top = run_layer(maxout(2), x)
    np.testing.assert_array_equal(top[0].data, [[5.0, 3.0, 4.0]])


@pytest.mark.parametrize("shape,k", [((2, 6, 2, 3), 2), ((2, 6, 3), 3), ((3, 4), 4)])
def test_gradient(shape, k):
    layer = maxout(k)
    bottom = make_blobs(distinct(*shape))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def _passes(layer, x, dy, gpu):
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom)
    bottom[0].diff[...] = np.nan
    (layer.forward_gpu if gpu else layer.forward_cpu)(bottom, top)
    top[0].diff[...] = dy
    (layer.backward_gpu if gpu else layer.backward_cpu)(top, [True], bottom)
    return top[0].data.copy(), bottom[0].diff.copy()


def test_backward_routes_to_the_first_of_tied_pieces():
    x = np.array([[2.0, 2.0, 1.0, 7.0, 3.0, 7.0]]).reshape(1, 6, 1)
    for gpu in (False, True):
        y, dx = _passes(maxout(3), x, np.array([10.0, 20.0]).reshape(1, 2, 1), gpu)
        np.testing.assert_array_equal(y.reshape(-1), [2.0, 7.0])
        np.testing.assert_array_equal(dx.reshape(-1), [10.0, 0, 0, 20.0, 0, 0])


@pytest.mark.parametrize("shape,k", [((2, 6, 2, 3), 3), ((3, 8), 2)])
def test_gpu_path_on_numpy_equals_cpu_path(shape, k):
    x = np.random.default_rng(0).standard_normal(shape)
    dy = np.random.default_rng(1).standard_normal(reference(x, k).shape)
    cpu = _passes(maxout(k), x, dy, gpu=False)
    gpu = _passes(maxout(k), x, dy, gpu=True)
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(b, a)


def test_refuses_to_run_in_place():
    bottom = make_blobs(distinct(2, 4))
    with pytest.raises(NetError, match="'maxout'.*does not run in place"):
        setup_layer(maxout(2), bottom, top=bottom)


def test_errors_name_the_layer():
    with pytest.raises(NetError, match=r"'maxout'.*6 channels.*num_pieces 4"):
        setup_layer(maxout(4), make_blobs(distinct(2, 6, 3)))
    with pytest.raises(NetError, match="'maxout'.*num_pieces must be at least 1"):
        setup_layer(maxout(0), make_blobs(distinct(2, 6)))
    with pytest.raises(ShapeError, match="'maxout'.*at least 2 axes"):
        setup_layer(maxout(2), make_blobs(distinct(6)))
    layer = maxout(2)
    top = setup_layer(layer, make_blobs(distinct(2, 4)))
    with pytest.raises(NetError, match="'maxout'.*5 channels"):
        layer.reshape([Blob((2, 5), np.float64)], top)
