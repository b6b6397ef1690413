"""STOCHASTIC (Caffe's) and L2 (cyffe's) pooling."""
import math

import numpy as np
import pytest

from cyffe.layers.backend import rng, set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer

STOCHASTIC, L2 = pb.PoolingParameter.STOCHASTIC, pb.PoolingParameter.L2
FLT_MIN = float(np.finfo(np.float32).tiny)


def pooling(method, phase=pb.TRAIN, dtype=np.float64, **fields):
    param = pb.LayerParameter(name="pool", type="Pooling")
    param.pooling_param.pool = method
    for key, value in fields.items():
        setattr(param.pooling_param, key, value)
    return layer_class("Pooling")(param, phase, dtype)


def windows(shape, kernel, stride, pad, ceil_mode=True):
    """Caffe's output size and, per output pixel, the in-image rows and columns it covers."""
    h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    rounding = math.ceil if ceil_mode else math.floor
    ho = rounding((h + 2 * ph - kh) / sh) + 1
    wo = rounding((w + 2 * pw - kw) / sw) + 1
    if ph or pw:
        ho -= (ho - 1) * sh >= h + ph
        wo -= (wo - 1) * sw >= w + pw
    return (ho, wo), {(i, j): (range(max(i * sh - ph, 0), min(i * sh - ph + kh, h)),
                               range(max(j * sw - pw, 0), min(j * sw - pw + kw, w)))
                      for i in range(ho) for j in range(wo)}


def reference(x, method, phase, kernel, stride, pad, u=None):
    """The pooled planes and (TRAIN stochastic) the drawn flat index per window."""
    n, c, h, w = x.shape
    (ho, wo), cover = windows((h, w), kernel, stride, pad)
    planes = x.reshape(n * c, h, w)
    y = np.zeros((n * c, ho, wo))
    drawn = np.full((n * c, ho, wo), -1)
    for (i, j), (rows, cols) in cover.items():
        for p in range(n * c):
            values = [planes[p, r, s] for r in rows for s in cols]
            flat = [r * w + s for r in rows for s in cols]
            if method == L2:
                y[p, i, j] = math.sqrt(sum(v * v for v in values))
            elif phase == pb.TEST:
                y[p, i, j] = sum(v * v for v in values) / (FLT_MIN + sum(values))
            elif values:
                threshold = u[p, i, j] * sum(values)
                k = next((k for k in range(len(values)) if sum(values[:k + 1]) >= threshold),
                         len(values) - 1)
                y[p, i, j], drawn[p, i, j] = values[k], flat[k]
    return y.reshape(n, c, ho, wo), drawn


def positive_values(shape, seed=0):
    """Distinct activations in [0.5, 1.5): no zero windows, as after a ReLU."""
    return np.random.default_rng(seed).permutation(np.linspace(0.5, 1.5, np.prod(shape),
                                                               endpoint=False)).reshape(shape)


# fields, kernel, stride, pad, input (H, W)
CONFIGS = {
    "k2_s2": (dict(kernel_size=2, stride=2), (2, 2), (2, 2), (0, 0), (4, 6)),
    "k3_s2_overhang": (dict(kernel_size=3, stride=2), (3, 3), (2, 2), (0, 0), (6, 6)),
    "k3_s2_p1": (dict(kernel_size=3, stride=2, pad=1), (3, 3), (2, 2), (1, 1), (5, 5)),
    "rect": (dict(kernel_h=3, kernel_w=2, stride_h=1, stride_w=2), (3, 2), (1, 2), (0, 0),
             (5, 5)),
}


# -- STOCHASTIC, TRAIN ------------------------------------------------------------

def test_stochastic_draws_in_proportion_to_the_activations():
    activations = np.array([0.5, 1.0, 1.5, 2.0, 0.0, 5.0])
    x = np.broadcast_to(activations.reshape(2, 3), (1, 30000, 2, 3))
    set_random_seed(3)
    _, top = run_layer(pooling(STOCHASTIC, kernel_h=2, kernel_w=3), x)
    picked = top[0].data.reshape(-1)
    frequencies = [(picked == a).mean() for a in activations]
    np.testing.assert_allclose(frequencies, activations / activations.sum(), atol=0.01)
    assert frequencies[4] == 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_train_matches_the_walk(name, dtype):
    fields, kernel, stride, pad, hw = CONFIGS[name]
    x = positive_values((2, 3) + hw).astype(dtype)
    layer = pooling(STOCHASTIC, dtype=dtype, **fields)
    set_random_seed(11)
    bottom, top = run_layer(layer, x)
    set_random_seed(11)
    u = rng().random((6,) + top[0].shape[2:], dtype=dtype)
    # The walk in the layer's dtype, so its sums round as the kernel's do.
    expected, drawn = reference(x, STOCHASTIC, pb.TRAIN, kernel, stride, pad, u)
    np.testing.assert_array_equal(top[0].data, expected.astype(dtype))
    # Backward routes dy to the drawn pixel, summing where windows drew the same one.
    top[0].diff[...] = np.arange(top[0].count).reshape(top[0].shape) + 1
    layer.backward(top, [True], bottom)
    dx = np.zeros(6 * hw[0] * hw[1])
    planes = drawn.reshape(6, -1)
    for p in range(6):
        for k, index in enumerate(planes[p]):
            if index >= 0:
                dx[p * hw[0] * hw[1] + index] += top[0].diff.reshape(6, -1)[p, k]
    np.testing.assert_array_equal(bottom[0].diff.reshape(-1), dx.astype(dtype))


def test_stochastic_is_repeatable_under_the_seed():
    x = positive_values((2, 3, 6, 6))
    outputs = []
    for seed in (5, 5, 6):
        set_random_seed(seed)
        outputs.append(run_layer(pooling(STOCHASTIC, kernel_size=3, stride=1), x)[1][0].data.copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.any(outputs[0] != outputs[2])


def test_stochastic_zero_window_draws_its_first_pixel():
    # Caffe's walk with a zero sum stops at once: the first pixel, value 0, takes dy.
    layer = pooling(STOCHASTIC, kernel_size=2, stride=2)
    bottom, top = run_layer(layer, np.zeros((1, 1, 4, 4)))
    assert np.all(top[0].data == 0)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(bottom[0].diff[0, 0], expected)


def test_stochastic_window_past_the_edge_is_zero_and_takes_no_gradient():
    layer = pooling(STOCHASTIC, kernel_size=1, stride=3)
    bottom, top = run_layer(layer, positive_values((1, 2, 6, 6)))
    assert top[0].shape == (1, 2, 3, 3)
    assert np.all(top[0].data[:, :, 2, :] == 0) and np.all(top[0].data[:, :, :, 2] == 0)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.sum() == 2 * 4


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stochastic_train_gradient(name):
    fields, hw = CONFIGS[name][0], CONFIGS[name][4]
    layer = pooling(STOCHASTIC, **fields)
    bottom = make_blobs(positive_values((1, 2) + hw, seed=2))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


# -- STOCHASTIC, TEST ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_test_is_the_activation_weighted_average(name, dtype):
    fields, kernel, stride, pad, hw = CONFIGS[name]
    x = positive_values((2, 3) + hw, seed=4)
    x[0, 0] = 0  # zero windows give 0 (Caffe's FLT_MIN in the divisor)
    _, top = run_layer(pooling(STOCHASTIC, pb.TEST, dtype, **fields), x.astype(dtype))
    expected, _ = reference(x, STOCHASTIC, pb.TEST, kernel, stride, pad)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)
    assert np.all(top[0].data[0, 0] == 0)


def test_stochastic_test_has_no_backward():
    for path in ("backward_cpu", "backward_gpu"):
        layer = pooling(STOCHASTIC, pb.TEST, kernel_size=2)
        bottom, top = run_layer(layer, positive_values((1, 1, 4, 4)))
        with pytest.raises(NetError, match="'pool'.*STOCHASTIC.*TEST"):
            getattr(layer, path)(top, [True], bottom)


# -- L2 -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_forward(name, dtype):
    fields, kernel, stride, pad, hw = CONFIGS[name]
    x = positive_values((2, 3) + hw, seed=5) - 1.0
    _, top = run_layer(pooling(L2, dtype=dtype, **fields), x.astype(dtype))
    expected, _ = reference(x, L2, pb.TRAIN, kernel, stride, pad)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(top[0].data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_l2_gradient(name):
    fields, hw = CONFIGS[name][0], CONFIGS[name][4]
    layer = pooling(L2, **fields)
    bottom = make_blobs(positive_values((1, 2) + hw, seed=6) - 1.0)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_l2_zero_window_has_zero_output_and_gradient():
    layer = pooling(L2, kernel_size=2, stride=2)
    x = positive_values((1, 1, 4, 4))
    x[0, 0, :2, :2] = 0
    bottom, top = run_layer(layer, x)
    assert top[0].data[0, 0, 0, 0] == 0
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert np.all(bottom[0].diff[0, 0, :2, :2] == 0)
    assert np.all(np.isfinite(bottom[0].diff))


# -- GPU path on numpy ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS) + ["past_edge"])
@pytest.mark.parametrize("method, phase", [(STOCHASTIC, pb.TRAIN), (STOCHASTIC, pb.TEST),
                                           (L2, pb.TRAIN)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_path_on_numpy_equals_cpu_path(name, method, phase, dtype):
    fields = CONFIGS[name][0] if name in CONFIGS else dict(kernel_size=1, stride=3)
    x = positive_values((2, 3, 5, 6), seed=7)
    x[1, 1] = 0
    runs = []
    for path in ("cpu", "gpu"):
        layer = pooling(method, phase, dtype, **fields)
        bottom = [Blob(x.shape, dtype)]
        bottom[0].data[...] = x
        top = setup_layer(layer, bottom)
        set_random_seed(8)
        getattr(layer, f"forward_{path}")(bottom, top)
        result = [top[0].data.copy()]
        if phase == pb.TRAIN:
            top[0].diff[...] = np.random.default_rng(9).standard_normal(top[0].shape)
            getattr(layer, f"backward_{path}")(top, [True], bottom)
            result.append(bottom[0].diff.copy())
        runs.append(result)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    if method == STOCHASTIC and phase == pb.TRAIN:
        np.testing.assert_array_equal(runs[1][0], runs[0][0])  # the very same draws
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("method", [STOCHASTIC, L2])
def test_only_max_has_a_mask_top(method):
    with pytest.raises(NetError, match="'pool'.*mask"):
        setup_layer(pooling(method, kernel_size=2), [Blob((1, 1, 4, 4))], num_top=2)


def test_stochastic_negative_inputs_fall_back_alike_on_both_paths():
    # Caffe assumes activations >= 0; should the walk never reach u * sum, both paths take
    # the window's last pixel rather than leave the output undefined.
    x = np.random.default_rng(10).standard_normal((2, 3, 6, 6))
    results = []
    for path in ("cpu", "gpu"):
        layer = pooling(STOCHASTIC, kernel_size=3, stride=2)
        bottom = make_blobs(x)
        top = setup_layer(layer, bottom)
        set_random_seed(12)
        getattr(layer, f"forward_{path}")(bottom, top)
        top[0].diff[...] = 1.0
        getattr(layer, f"backward_{path}")(top, [True], bottom)
        results.append((top[0].data.copy(), bottom[0].diff.copy()))
        assert np.all(np.isin(top[0].data, x))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
