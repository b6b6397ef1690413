import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

FLT_MIN = float(np.finfo(np.float32).tiny)
MODES = {"FULL": pb.LossParameter.FULL, "VALID": pb.LossParameter.VALID,
         "BATCH_SIZE": pb.LossParameter.BATCH_SIZE, "NONE": pb.LossParameter.NONE}


def softmax_loss(normalization=None, ignore_label=None, normalize=None, axis=1,
                 dtype=np.float64):
    param = pb.LayerParameter(name="loss", type="SoftmaxWithLoss")
    if normalization is not None:
        param.loss_param.normalization = MODES[normalization]
    if ignore_label is not None:
        param.loss_param.ignore_label = ignore_label
    if normalize is not None:
        param.loss_param.normalize = normalize
    param.softmax_param.axis = axis
    return layer_class("SoftmaxWithLoss")(param, pb.TRAIN, dtype)


def reference(x, labels, axis, ignore_label):
    """(loss, d loss / d x) by numpy, for a loss weight of 1."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    c = x.shape[-1]
    x = x.reshape(-1, c)
    labels = np.trunc(labels.reshape(-1)).astype(int)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    keep = labels != ignore_label if ignore_label is not None else np.ones(len(labels), bool)
    rows = np.arange(len(labels))[keep]
    loss = -np.log(np.maximum(p[rows, labels[keep]], FLT_MIN)).sum()
    return loss, p, keep, labels


def normalizer(mode, outer, inner, valid):
    n = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return max(1, n)


def grad_reference(p, labels, keep, scale):
    g = p.copy()
    g[np.arange(len(labels))[keep], labels[keep]] -= 1
    g[~keep] = 0
    return g * scale


def make_case(shape=(2, 3, 2, 2), axis=1, ignore_label=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    axis = axis % len(shape)
    c = shape[axis]
    label_shape = shape[:axis] + shape[axis + 1:]
    labels = rng.integers(0, c, label_shape).astype(np.float64)
    if ignore_label is not None:
        labels.reshape(-1)[::3] = ignore_label
    return x, labels


def run(layer, x, labels, dtype=np.float64, num_top=1, loss_weight=1.0):
    bottom = [Blob(x.shape, dtype), Blob(labels.shape, dtype)]
    bottom[0].data[...] = x
    bottom[1].data[...] = labels
    top = setup_layer(layer, bottom, num_top=num_top)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, [True, False], bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape,axis", [((2, 3, 2, 2), 1), ((5, 4), 1), ((2, 3, 4), -1),
                                        ((2, 3, 4, 2), 2)])
def test_forward_and_backward_match_numpy(dtype, mode, shape, axis):
    x, labels = make_case(shape, axis, ignore_label=7)
    layer = softmax_loss(mode, ignore_label=7, axis=axis, dtype=dtype)
    bottom, top = run(layer, x.astype(dtype), labels, dtype, loss_weight=1.5)
    loss, p, keep, lab = reference(x, labels, axis % len(shape), 7)
    a = axis % len(shape)
    outer, inner = int(np.prod(shape[:a])), int(np.prod(shape[a + 1:]))
    n = normalizer(mode, outer, inner, keep.sum())
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, loss / n, rtol=tol)
    g = grad_reference(p, lab, keep, 1.5 / n)
    moved = np.moveaxis(np.empty(shape), a, -1).shape
    expected = np.moveaxis(g.reshape(moved), -1, a)
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode,n", [("FULL", 6), ("VALID", 5), ("BATCH_SIZE", 2), ("NONE", 1)])
def test_each_normalization_by_hand(mode, n):
    # all scores 0 over 4 classes: p = 1/4 everywhere; 6 positions, one ignored
    x = np.zeros((2, 4, 3))                           # outer 2, C 4, inner 3
    labels = np.array([[0, 1, 2], [3, 9, 1]], float)  # 9 is ignored
    bottom, top = run(softmax_loss(mode, ignore_label=9), x, labels)
    assert top[0].data == pytest.approx(5 * np.log(4) / n, rel=1e-14)
    # gradient: 1/4 - 1 on the label, 1/4 elsewhere, 0 at the ignored position, / n
    assert bottom[0].diff[0, 0, 0] == pytest.approx(-0.75 / n, rel=1e-14)
    assert bottom[0].diff[0, 1, 0] == pytest.approx(0.25 / n, rel=1e-14)
    assert not bottom[0].diff[1, :, 1].any()


def test_default_is_valid_and_without_ignore_label_valid_counts_everything():
    x, labels = make_case((4, 3, 2))
    _, top_default = run(softmax_loss(), x, labels)
    _, top_full = run(softmax_loss("FULL"), x, labels)
    assert top_default[0].data == top_full[0].data


@pytest.mark.parametrize("normalize,mode", [(True, "VALID"), (False, "BATCH_SIZE")])
def test_legacy_normalize(normalize, mode):
    x, labels = make_case(ignore_label=5)
    _, legacy = run(softmax_loss(normalize=normalize, ignore_label=5), x, labels)
    _, modern = run(softmax_loss(mode, ignore_label=5), x, labels)
    assert legacy[0].data == modern[0].data


def test_explicit_normalization_wins_over_legacy_normalize():
    x, labels = make_case(ignore_label=5)
    _, both = run(softmax_loss("NONE", normalize=True, ignore_label=5), x, labels)
    _, none = run(softmax_loss("NONE", ignore_label=5), x, labels)
    assert both[0].data == none[0].data


def test_all_ignored_clamps_the_normalizer_to_one():
    x = np.random.default_rng(0).standard_normal((2, 3))
    bottom, top = run(softmax_loss(ignore_label=-1), x, np.array([-1.0, -1.0]))
    assert top[0].data == 0
    assert not bottom[0].diff.any()


def test_vanishing_probability_is_clamped_to_flt_min():
    x = np.array([[0.0, -1000.0]])
    _, top = run(softmax_loss(), x, np.array([1.0]))
    assert top[0].data == pytest.approx(-np.log(FLT_MIN))


def test_labels_are_truncated_like_a_cast_to_int():
    x, _ = make_case((3, 4))
    _, exact = run(softmax_loss(), x, np.array([0.0, 2.0, 3.0]))
    _, fractional = run(softmax_loss(), x, np.array([0.9, 2.5, 3.99]))
    assert exact[0].data == fractional[0].data


def test_second_top_is_the_probabilities_and_its_diff_is_ignored():
    x, labels = make_case((3, 4, 2))
    layer = softmax_loss()
    bottom = make_blobs(x, labels)
    top = setup_layer(layer, bottom, num_top=2)
    assert top[1].shape == x.shape
    layer.forward(bottom, top)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(top[1].data, e / e.sum(axis=1, keepdims=True), rtol=1e-14)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    first = bottom[0].diff.copy()
    top[1].diff[...] = 100
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, first)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape,axis", [((2, 3, 2, 2), 1), ((3, 4), -1), ((2, 2, 3, 2), 2)])
def test_gradient(mode, shape, axis):
    x, labels = make_case(shape, axis, ignore_label=4)
    layer = softmax_loss(mode, ignore_label=4, axis=axis)
    bottom = make_blobs(x, labels)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


@pytest.mark.parametrize("mode", list(MODES))
def test_gpu_path_on_numpy_equals_cpu_path(mode):
    x, labels = make_case((2, 4, 3), ignore_label=2)
    cpu, gpu = softmax_loss(mode, ignore_label=2), softmax_loss(mode, ignore_label=2)
    b1, b2 = make_blobs(x, labels), make_blobs(x, labels)
    t1, t2 = setup_layer(cpu, b1, num_top=2), setup_layer(gpu, b2, num_top=2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    for a, b in zip(t1, t2):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-15)
    t1[0].diff[...] = t2[0].diff[...] = 0.7
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", [
    "softmax_loss", "softmax_loss_valid_ignore", "softmax_loss_default_ignore",
    "softmax_loss_batch_size_ignore", "softmax_loss_full_ignore", "softmax_loss_none_ignore",
    "softmax_loss_normalize_false"])
def test_caffe_golden(case):
    run_case(case)


# -- errors -------------------------------------------------------------------

def test_labels_take_no_gradient():
    layer = softmax_loss()
    assert layer.allow_backward(0) and not layer.allow_backward(1)
    x, labels = make_case((3, 4))
    bottom = make_blobs(x, labels)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    for backward in (layer.backward_cpu, layer.backward_gpu):
        with pytest.raises(NetError, match="'loss'.*labels"):
            backward(top, [True, True], bottom)


def test_label_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"'loss'.*label count 6.*outer \* inner = 2 \* 4"):
        setup_layer(softmax_loss(), make_blobs(np.ones((2, 3, 4)), np.ones((2, 3))))


def test_batch_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match="'loss'"):
        setup_layer(softmax_loss(), make_blobs(np.ones((2, 3)), np.ones(3)))


@pytest.mark.parametrize("bad", [3.0, -1.0, 255.0, np.nan])
@pytest.mark.parametrize("path", ["forward_cpu", "forward_gpu"])
def test_label_outside_the_classes_is_a_shape_error(bad, path):
    layer = softmax_loss(ignore_label=4)
    bottom = make_blobs(np.zeros((3, 3)), np.array([0.0, bad, 1.0]))
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match=r"'loss'.*label nan|'loss'.*label -?\d+ at position 1"
                                         r".*\[0, 3\).*ignore_label 4"):
        getattr(layer, path)(bottom, top)


def test_axis_out_of_range_is_an_error():
    with pytest.raises(ShapeError, match="'loss'.*axis 2"):
        setup_layer(softmax_loss(axis=2), make_blobs(np.ones((2, 3)), np.ones(2)))
