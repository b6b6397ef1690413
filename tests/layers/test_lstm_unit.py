import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import ShapeError

from helpers.gradcheck import check_gradient, make_blobs, setup_layer

N, H = 3, 4


def lstm_unit(dtype=np.float64):
    return layer_class("LSTMUnit")(pb.LayerParameter(name="unit", type="LSTMUnit"),
                                   pb.TRAIN, dtype)


def inputs(seed=0, cont=(1, 0, 1)):
    r = np.random.default_rng(seed)
    return (r.standard_normal((1, N, H)), r.standard_normal((1, N, 4 * H)),
            np.array([cont], np.float64))


def reference(c_prev, x, cont):
    """Caffe's LSTMUnit, one stream and unit at a time."""
    sig = lambda z: 1 / (1 + np.exp(-z))
    c = np.empty_like(c_prev)
    h = np.empty_like(c_prev)
    for n in range(c_prev.shape[1]):
        for d in range(H):
            i, f, o = (sig(x[0, n, k * H + d]) for k in range(3))
            g = np.tanh(x[0, n, 3 * H + d])
            c[0, n, d] = cont[0, n] * f * c_prev[0, n, d] + i * g
            h[0, n, d] = o * np.tanh(c[0, n, d])
    return c, h


def run(layer, arrays):
    bottom = [Blob(a.shape, layer.dtype) for a in arrays]
    for b, a in zip(bottom, arrays):
        b.data[...] = a
    top = setup_layer(layer, bottom, num_top=2)
    layer.forward(bottom, top)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(dtype):
    arrays = inputs(cont=(1, 0, 0.5))
    _, top = run(lstm_unit(dtype), arrays)
    c, h = reference(*arrays)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, c, rtol=tol, atol=tol)
    np.testing.assert_allclose(top[1].data, h, rtol=tol, atol=tol)
    assert top[0].data.dtype == dtype


def test_cont_zero_forgets_the_previous_cell():
    c_prev, x, _ = inputs()
    _, top = run(lstm_unit(), (c_prev, x, np.zeros((1, N))))
    _, fresh = run(lstm_unit(), (np.zeros_like(c_prev), x, np.zeros((1, N))))
    np.testing.assert_array_equal(top[0].data, fresh[0].data)


@pytest.mark.parametrize("cont", [(1, 0, 1), (0.5, 1, 0)])
def test_gradient_to_c_prev_and_x(cont):
    layer = lstm_unit()
    bottom = make_blobs(*inputs(cont=cont))
    top = setup_layer(layer, bottom, num_top=2)
    check_gradient(layer, bottom, top, check_bottom=[0, 1])


def test_no_gradient_to_cont():
    layer = lstm_unit()
    assert layer.allow_backward(0) and layer.allow_backward(1)
    assert not layer.allow_backward(2)


def test_backward_writes_only_the_bottoms_asked_for():
    layer = lstm_unit()
    bottom, top = run(layer, inputs())
    for t in top:
        t.diff[...] = 1
    bottom[0].diff[...] = 7
    layer.backward(top, [False, True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 7)
    dx = bottom[1].diff.copy()
    layer.backward(top, [True, True, False], bottom)
    np.testing.assert_array_equal(bottom[1].diff, dx)
    assert np.any(dx != 0) and np.all(bottom[0].diff != 7)


def test_gpu_path_on_numpy_equals_cpu_path():
    arrays = inputs(cont=(1, 0, 0.5))
    dc, dh = np.random.default_rng(5).standard_normal((2, 1, N, H))
    results = []
    for gpu in (False, True):
        layer = lstm_unit()
        bottom = make_blobs(*arrays)
        top = setup_layer(layer, bottom, num_top=2)
        (layer.forward_gpu if gpu else layer.forward_cpu)(bottom, top)
        top[0].diff[...] = dc
        top[1].diff[...] = dh
        (layer.backward_gpu if gpu else layer.backward_cpu)(top, [True, True, False], bottom)
        results.append([top[0].data.copy(), top[1].data.copy(), bottom[0].diff.copy(),
                        bottom[1].diff.copy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shapes, message", [
    (((1, N, H), (1, N, 4 * H), (1, N + 1)), "same N streams"),
    (((1, N, H), (1, N, 4 * H), (N,)), "cont \\(1, N\\)"),
    (((1, N, H), (1, N, 3 * H), (1, N)), "4 \\* H"),
    (((2, N, H), (2, N, 4 * H), (2, N)), "one timestep"),
])
def test_shape_errors_name_the_layer(shapes, message):
    bottom = [Blob(s, np.float64) for s in shapes]
    with pytest.raises(ShapeError, match=f"layer 'unit' \\(LSTMUnit\\).*{message}"):
        setup_layer(lstm_unit(), bottom, num_top=2)
