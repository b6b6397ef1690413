import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import make_blobs, setup_layer


def accuracy(top_k=1, axis=1, ignore_label=None, dtype=np.float64):
    param = pb.LayerParameter(name="acc", type="Accuracy")
    param.accuracy_param.top_k = top_k
    param.accuracy_param.axis = axis
    if ignore_label is not None:
        param.accuracy_param.ignore_label = ignore_label
    return layer_class("Accuracy")(param, pb.TEST, dtype)


def reference(x, labels, top_k, axis, ignore_label):
    """(accuracy, per-class accuracy) by numpy: rank of the true class among all scores."""
    scores = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    labels = labels.reshape(-1).astype(int)
    keep = labels != ignore_label
    scores, labels = scores[keep], labels[keep]
    true = scores[np.arange(len(labels)), labels]
    others_at_least = (scores >= true[:, None]).sum(axis=1) - 1
    correct = others_at_least < top_k
    c = x.shape[axis]
    per_class = np.array([correct[labels == k].mean() if (labels == k).any() else 0.0
                          for k in range(c)])
    return (correct.mean() if len(labels) else 0.0), per_class


def run(layer, x, labels, dtype=np.float64, num_top=2, path="forward"):
    bottom = [Blob(x.shape, dtype), Blob(labels.shape, dtype)]
    bottom[0].data[...] = x
    bottom[1].data[...] = labels
    top = setup_layer(layer, bottom, num_top=num_top)
    getattr(layer, path)(bottom, top)
    return top


def make_case(shape, axis=1, ignore_label=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    axis %= len(shape)
    labels = rng.integers(0, shape[axis], shape[:axis] + shape[axis + 1:]).astype(float)
    if ignore_label is not None:
        labels.reshape(-1)[::4] = ignore_label
    return x, labels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("top_k", [1, 2, 4])
@pytest.mark.parametrize("shape,axis,ignore", [((20, 5), 1, None), ((3, 5, 4, 2), 1, 3),
                                               ((4, 3, 6), -1, None), ((3, 4, 5), 2, 0)])
def test_forward_matches_numpy(dtype, top_k, shape, axis, ignore):
    x, labels = make_case(shape, axis, ignore)
    x = x.astype(dtype)
    top = run(accuracy(top_k, axis, ignore, dtype), x, labels, dtype)
    acc, per_class = reference(x, labels, top_k, axis % len(shape), ignore)
    assert top[0].shape == () and top[1].shape == (shape[axis],)
    assert top[0].data == pytest.approx(acc, rel=1e-6)
    np.testing.assert_allclose(top[1].data, per_class, rtol=1e-6)


def test_ties_count_against_the_true_class():
    # Caffe counts every other class scoring >= the true class as better.
    x = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0]])
    labels = np.array([1.0, 2.0])
    assert run(accuracy(1), x, labels)[0].data == 0
    assert run(accuracy(2), x, labels)[0].data == 0.5
    assert run(accuracy(3), x, labels)[0].data == 1


def test_by_hand_with_per_class_and_ignore():
    x = np.array([[0.1, 0.7, 0.2],    # label 1: correct
                  [0.5, 0.3, 0.2],    # label 1: wrong
                  [0.9, 0.0, 0.1],    # label 0: correct
                  [0.2, 0.2, 0.6]])   # ignored
    labels = np.array([1.0, 1.0, 0.0, -1.0])
    top = run(accuracy(ignore_label=-1), x, labels)
    assert top[0].data == pytest.approx(2 / 3)
    np.testing.assert_allclose(top[1].data, [1.0, 0.5, 0.0])    # class 2 absent: 0


def test_nothing_labelled_gives_zero():
    top = run(accuracy(ignore_label=7), np.ones((2, 3)), np.array([7.0, 7.0]))
    assert top[0].data == 0
    assert not top[1].data.any()


@pytest.mark.parametrize("top_k,ignore", [(1, None), (2, 3), (3, 0)])
def test_gpu_path_on_numpy_equals_cpu_path(top_k, ignore):
    x, labels = make_case((3, 4, 5), 1, ignore)
    x[0, :, 0] = 0.5    # a tie
    cpu = run(accuracy(top_k, ignore_label=ignore), x, labels, path="forward_cpu")
    gpu = run(accuracy(top_k, ignore_label=ignore), x, labels, path="forward_gpu")
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(b.data, a.data)


@pytest.mark.parametrize("case", ["accuracy_top1", "accuracy_top3", "accuracy_spatial_ignore"])
def test_caffe_golden(case):
    run_case(case)


def test_one_top_is_fine():
    top = run(accuracy(), np.eye(3), np.array([0.0, 1.0, 0.0]), num_top=1)
    assert top[0].data == pytest.approx(2 / 3)


def test_no_backward_and_not_a_loss():
    layer = accuracy()
    assert not layer.is_loss
    assert not layer.allow_backward(0) and not layer.allow_backward(1)
    bottom = make_blobs(np.eye(3), np.zeros(3))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    layer.backward(top, [False, False], bottom)
    for backward in (layer.backward_cpu, layer.backward_gpu):
        with pytest.raises(NotImplementedError, match="'acc'"):
            backward(top, [True, False], bottom)


# -- errors -------------------------------------------------------------------

def test_top_k_above_the_class_count_is_a_shape_error():
    with pytest.raises(ShapeError, match="'acc'.*top_k 4 exceeds the 3 classes"):
        setup_layer(accuracy(4), make_blobs(np.ones((2, 3)), np.zeros(2)))


def test_top_k_zero_is_an_error():
    with pytest.raises(NetError, match="'acc'.*top_k"):
        setup_layer(accuracy(0), make_blobs(np.ones((2, 3)), np.zeros(2)))


def test_label_count_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match="'acc'.*label count 3"):
        setup_layer(accuracy(), make_blobs(np.ones((2, 3)), np.zeros(3)))


@pytest.mark.parametrize("path", ["forward_cpu", "forward_gpu"])
@pytest.mark.parametrize("bad", [3.0, -1.0, np.nan])
def test_label_outside_the_classes_is_a_shape_error(path, bad):
    with pytest.raises(ShapeError, match=r"'acc'.*label (nan|-?\d+) at position 1.*\[0, 3\)"):
        run(accuracy(), np.ones((2, 3)), np.array([0.0, bad]), path=path)


def test_axis_out_of_range_is_an_error():
    with pytest.raises(ShapeError, match="'acc'.*axis 2"):
        setup_layer(accuracy(axis=2), make_blobs(np.ones((2, 3)), np.zeros(2)))
