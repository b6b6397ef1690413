import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def contrastive(margin=None, legacy=None, dtype=np.float64):
    param = pb.LayerParameter(name="siamese", type="ContrastiveLoss")
    if margin is not None:
        param.contrastive_loss_param.margin = margin
    if legacy is not None:
        param.contrastive_loss_param.legacy_version = legacy
    return layer_class("ContrastiveLoss")(param, pb.TRAIN, dtype)


def make_case(num=6, channels=3, margin=2.0, legacy=False, seed=0):
    """Pairs whose dissimilar terms stay away from the margin's kink."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((num, channels))
    b = rng.standard_normal((num, channels))
    y = (np.arange(num) % 2).astype(np.float64)
    for i in range(num):
        d = np.linalg.norm(a[i] - b[i])
        gap = margin - d * d if legacy else margin - d
        if abs(gap) < 0.2:
            b[i] = a[i] + (b[i] - a[i]) * 0.5
    return a, b, y


def reference(a, b, y, margin, legacy):
    a, b = a.reshape(len(y), -1), b.reshape(len(y), -1)
    diff = a - b
    d2 = (diff * diff).sum(axis=1)
    d = np.sqrt(d2)
    similar = y.reshape(-1).astype(int) != 0
    if legacy:
        apart = np.maximum(margin - d2, 0)
        push = np.where(margin - d2 > 0, -1.0, 0.0)
    else:
        apart = np.maximum(margin - d, 0) ** 2
        push = np.where(margin - d > 0, -(margin - d) / (d + 1e-4), 0.0)
    n = len(y)
    loss = np.where(similar, d2, apart).sum() / (2 * n)
    grad_a = np.where(similar, 1.0, push)[:, None] * diff / n
    return loss, grad_a


def run(layer, a, b, y, dtype=np.float64, loss_weight=1.0):
    bottom = [Blob(v.shape, dtype) for v in (a, b, y)]
    for blob, v in zip(bottom, (a, b, y)):
        blob.data[...] = v
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, [True, True, False], bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("legacy", [False, True])
def test_forward_and_backward_match_numpy(dtype, legacy):
    a, b, y = make_case(legacy=legacy)
    args = [v.astype(dtype) for v in (a, b, y)]
    bottom, top = run(contrastive(2.0, legacy, dtype), *args, dtype, loss_weight=0.5)
    loss, grad = reference(*[v.astype(np.float64) for v in args], 2.0, legacy)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, loss, rtol=tol)
    np.testing.assert_allclose(bottom[0].diff, 0.5 * grad, rtol=tol, atol=tol)
    np.testing.assert_allclose(bottom[1].diff, -0.5 * grad, rtol=tol, atol=tol)


def test_by_hand():
    a = np.array([[3.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 4.0], [0.0, 0.5], [0.0, 0.0]])
    y = np.array([1.0, 0.0, 0.0])       # d = 5 (similar), 0.5 and 1 (dissimilar)
    _, top = run(contrastive(margin=2.0), a, b, y)
    np.testing.assert_allclose(top[0].data, (25 + 1.5 ** 2 + 1.0) / 6, rtol=1e-14)
    _, top = run(contrastive(margin=2.0, legacy=True), a, b, y)
    np.testing.assert_allclose(top[0].data, (25 + 1.75 + 1.0) / 6, rtol=1e-14)


def test_similarity_is_truncated_and_margin_defaults_to_one():
    a, b = np.array([[0.25]]), np.array([[0.0]])
    _, top = run(contrastive(), a, b, np.array([0.9]))     # int(0.9) = 0: dissimilar
    np.testing.assert_allclose(top[0].data, 0.75 ** 2 / 2, rtol=1e-14)
    _, top = run(contrastive(), a, b, np.array([1.5]))
    np.testing.assert_allclose(top[0].data, 0.0625 / 2, rtol=1e-14)


def test_pairs_beyond_the_margin_get_no_gradient():
    a, b, y = np.array([[3.0]]), np.array([[0.0]]), np.array([0.0])
    bottom, top = run(contrastive(margin=1.0), a, b, y)
    assert top[0].data == 0 and not bottom[0].diff.any() and not bottom[1].diff.any()


def test_gradient_legacy():
    a, b, y = make_case(4, 3, margin=2.0, legacy=True)
    layer = contrastive(2.0, legacy=True)
    bottom = make_blobs(a, b, y)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0, 1])


def test_gradient():
    # Caffe divides by d + 1e-4 instead of d, so the analytic gradient of the
    # dissimilar pairs is off by ~1e-4 relative: check with that tolerance.
    a, b, y = make_case(4, 3, margin=2.0)
    layer = contrastive(2.0)
    bottom = make_blobs(a, b, y)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0, 1], threshold=1e-3)


@pytest.mark.parametrize("legacy", [False, True])
def test_gpu_path_on_numpy_equals_cpu_path(legacy):
    a, b, y = make_case(legacy=legacy)
    cpu, gpu = contrastive(2.0, legacy), contrastive(2.0, legacy)
    b1, b2 = make_blobs(a, b, y), make_blobs(a, b, y)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-13)
    t1[0].diff[...] = t2[0].diff[...] = 1.3
    cpu.backward_cpu(t1, [True, True, False], b1)
    gpu.backward_gpu(t2, [True, True, False], b2)
    for x1, x2 in zip(b1[:2], b2[:2]):
        np.testing.assert_allclose(x2.diff, x1.diff, rtol=1e-13, atol=1e-16)


def test_caffe_golden():
    run_case("contrastive_loss")


def test_feature_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'siamese'.*same count.*\(2, 3\).*\(2, 4\)"):
        setup_layer(contrastive(), make_blobs(np.ones((2, 3)), np.ones((2, 4)), np.ones(2)))


def test_label_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'siamese'.*one similarity label per pair"):
        setup_layer(contrastive(), make_blobs(np.ones((2, 3)), np.ones((2, 3)),
                                              np.ones((2, 2))))


def test_two_bottoms_is_an_error():
    with pytest.raises(NetError, match="'siamese'.*3 bottom"):
        setup_layer(contrastive(), make_blobs(np.ones((2, 3)), np.ones((2, 3))))
