import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

MODES = {"FULL": pb.LossParameter.FULL, "VALID": pb.LossParameter.VALID,
         "BATCH_SIZE": pb.LossParameter.BATCH_SIZE, "NONE": pb.LossParameter.NONE}


def sigmoid_ce(normalization=None, ignore_label=None, normalize=None, dtype=np.float64):
    param = pb.LayerParameter(name="sce", type="SigmoidCrossEntropyLoss")
    if normalization is not None:
        param.loss_param.normalization = MODES[normalization]
    if ignore_label is not None:
        param.loss_param.ignore_label = ignore_label
    if normalize is not None:
        param.loss_param.normalize = normalize
    return layer_class("SigmoidCrossEntropyLoss")(param, pb.TRAIN, dtype)


def make_case(shape=(3, 2, 2, 2), ignore_label=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    t = rng.uniform(0, 1, shape)
    t.reshape(-1)[1::4] = 1.0
    t.reshape(-1)[2::4] = 0.0
    if ignore_label is not None:
        t.reshape(-1)[::5] = ignore_label
    return x, t


def reference(x, t, ignore_label):
    """(summed loss, d loss / d x, valid count), straight from the definition."""
    x, t = x.astype(np.float64), t.astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    keep = np.trunc(t) != ignore_label if ignore_label is not None else np.ones(t.shape, bool)
    return (per * keep).sum(), (p - t) * keep, int(keep.sum())


def normalizer(mode, x, valid):
    outer, inner = x.shape[0], x.size // x.shape[0]
    return max(1, {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode])


def run(layer, x, t, dtype=np.float64, loss_weight=1.0):
    bottom = [Blob(x.shape, dtype), Blob(t.shape, dtype)]
    bottom[0].data[...] = x
    bottom[1].data[...] = t
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, [True, False], bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("ignore_label", [None, -1])
def test_forward_and_backward_match_numpy(dtype, mode, ignore_label):
    x, t = make_case(ignore_label=ignore_label)
    bottom, top = run(sigmoid_ce(mode, ignore_label, dtype=dtype), x.astype(dtype),
                      t.astype(dtype), dtype, loss_weight=0.7)
    loss, grad, valid = reference(x.astype(dtype), t.astype(dtype), ignore_label)
    n = normalizer(mode, x, valid)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, loss / n, rtol=tol)
    np.testing.assert_allclose(bottom[0].diff, 0.7 * grad / n, rtol=tol, atol=tol)


def test_default_normalization_is_batch_size_and_legacy_normalize():
    x, t = make_case(shape=(2, 5))
    loss, _, _ = reference(x, t, None)
    for layer, n in ((sigmoid_ce(), 2), (sigmoid_ce(normalize=True), 10),
                     (sigmoid_ce(normalize=False), 2), (sigmoid_ce("NONE", normalize=True), 1)):
        _, top = run(layer, x, t)
        np.testing.assert_allclose(top[0].data, loss / n, rtol=1e-13)


def test_by_hand_with_ignored_targets():
    x = np.array([[0.0, 2.0], [-1.0, 50.0]])
    t = np.array([[1.0, -1.0], [0.0, -1.0]])
    bottom, top = run(sigmoid_ce("VALID", ignore_label=-1), x, t)
    expected = (np.log(2) + np.log1p(np.exp(-1.0))) / 2
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-14)
    s = 1 / (1 + np.exp(1.0))
    np.testing.assert_allclose(bottom[0].diff, [[-0.25, 0], [s / 2, 0]], rtol=1e-14)


def test_soft_target_truncating_to_the_ignore_label_is_ignored():
    # Caffe compares int(target) with ignore_label: 0.5 truncates to 0.
    x, t = np.array([[1.0, -2.0]]), np.array([[0.5, 1.0]])
    bottom, top = run(sigmoid_ce("VALID", ignore_label=0), x, t)
    np.testing.assert_allclose(top[0].data, np.log1p(np.exp(-2.0)) + 2.0, rtol=1e-14)
    assert bottom[0].diff[0, 0] == 0


def test_extreme_scores_stay_finite():
    x, t = np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]])
    bottom, top = run(sigmoid_ce(), x, t)
    np.testing.assert_allclose(top[0].data, 1600.0)
    np.testing.assert_allclose(bottom[0].diff, [[1.0, -1.0]])


def test_all_ignored_gives_zero_loss():
    x, t = np.ones((2, 3)), -np.ones((2, 3))
    bottom, top = run(sigmoid_ce("VALID", ignore_label=-1), x, t)
    assert top[0].data == 0 and not bottom[0].diff.any()


@pytest.mark.parametrize("mode", ["BATCH_SIZE", "VALID"])
def test_gradient(mode):
    x, t = make_case(shape=(2, 3, 2), ignore_label=-1)
    layer = sigmoid_ce(mode, ignore_label=-1)
    bottom = make_blobs(x, t)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_gpu_path_on_numpy_equals_cpu_path():
    x, t = make_case(ignore_label=-1)
    cpu, gpu = sigmoid_ce("VALID", -1), sigmoid_ce("VALID", -1)
    b1, b2 = make_blobs(x, t), make_blobs(x, t)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data, rtol=1e-13)
    t1[0].diff[...] = t2[0].diff[...] = 1.3
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("case", ["sigmoid_ce_loss", "sigmoid_ce_loss_soft_targets",
                                  "sigmoid_ce_loss_valid_ignore"])
def test_caffe_golden(case):
    run_case(case)


def test_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'sce'.*same count.*\(2, 3\).*\(2, 4\)"):
        setup_layer(sigmoid_ce(), make_blobs(np.ones((2, 3)), np.ones((2, 4))))


def test_backward_to_targets_is_an_error():
    layer = sigmoid_ce()
    bottom = make_blobs(np.ones((2, 3)), np.ones((2, 3)))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    with pytest.raises(NetError, match="'sce'.*targets"):
        layer.backward(top, [True, True], bottom)
    assert not layer.allow_backward(1)
