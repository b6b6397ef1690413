import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError, NetError, ShapeError
from cyffe.proto.io import array_to_blobproto

from helpers.gradcheck import check_gradient, make_blobs, setup_layer

THRESHOLD = float(np.float32(1e-20))
MODES = {"FULL": pb.LossParameter.FULL, "VALID": pb.LossParameter.VALID,
         "BATCH_SIZE": pb.LossParameter.BATCH_SIZE, "NONE": pb.LossParameter.NONE}


def infogain(normalization=None, ignore_label=None, axis=None, source=None,
             dtype=np.float64):
    param = pb.LayerParameter(name="info", type="InfogainLoss")
    if normalization is not None:
        param.loss_param.normalization = MODES[normalization]
    if ignore_label is not None:
        param.loss_param.ignore_label = ignore_label
    if axis is not None:
        param.infogain_loss_param.axis = axis
    if source is not None:
        param.infogain_loss_param.source = str(source)
    return layer_class("InfogainLoss")(param, pb.TRAIN, dtype)


def make_case(shape=(2, 3, 2, 2), axis=1, ignore_label=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    c = shape[axis]
    labels = rng.integers(0, c, shape[:axis] + shape[axis + 1:]).astype(np.float64)
    if ignore_label is not None:
        labels.reshape(-1)[::3] = ignore_label
    h = rng.uniform(0, 1, (c, c))
    return x, labels, h


def reference(x, labels, h, axis, ignore_label):
    """(summed loss, gradient for a unit normalizer, valid count, outer, inner)."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    moved_shape = x.shape
    c = x.shape[-1]
    x = x.reshape(-1, c)
    labels = np.trunc(labels.reshape(-1)).astype(int)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    keep = labels != ignore_label if ignore_label is not None else np.ones(len(labels), bool)
    safe = np.where(keep, labels, 0)
    loss = -(h[safe] * np.log(np.maximum(p, THRESHOLD))).sum(axis=1)[keep].sum()
    grad = (p * h[safe].sum(axis=1, keepdims=True) - h[safe]) * keep[:, None]
    grad = np.moveaxis(grad.reshape(moved_shape), -1, axis)
    return loss, grad, int(keep.sum())


def normalizer(mode, shape, axis, valid):
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis + 1:]))
    return max(1, {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode])


def run(layer, x, labels, h=None, dtype=np.float64, loss_weight=1.0, num_top=1):
    arrays = [x, labels] + ([h] if h is not None else [])
    bottom = [Blob(a.shape, dtype) for a in arrays]
    for blob, a in zip(bottom, arrays):
        blob.data[...] = a
    top = setup_layer(layer, bottom, num_top=num_top)
    layer.forward(bottom, top)
    top[0].diff[...] = loss_weight
    layer.backward(top, [True] + [False] * (len(bottom) - 1), bottom)
    return bottom, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("ignore_label", [None, 1])
def test_forward_and_backward_match_numpy(dtype, mode, ignore_label):
    x, labels, h = make_case(ignore_label=ignore_label)
    bottom, top = run(infogain(mode, ignore_label, dtype=dtype), x.astype(dtype), labels,
                      h.astype(dtype), dtype, loss_weight=0.9)
    loss, grad, valid = reference(x.astype(dtype), labels, h.astype(dtype), 1, ignore_label)
    n = normalizer(mode, x.shape, 1, valid)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top[0].data, loss / n, rtol=tol)
    np.testing.assert_allclose(bottom[0].diff, 0.9 * grad / n, rtol=tol, atol=tol)


@pytest.mark.parametrize("axis", [2, -1, -2])
def test_other_axes(axis):
    shape = (3, 2, 4)
    x, labels, h = make_case(shape, axis % 3)
    bottom, top = run(infogain(axis=axis, normalization="FULL"), x, labels, h, num_top=2)
    loss, grad, valid = reference(x, labels, h, axis % 3, None)
    n = normalizer("FULL", shape, axis % 3, valid)
    np.testing.assert_allclose(top[0].data, loss / n, rtol=1e-13)
    np.testing.assert_allclose(bottom[0].diff, grad / n, rtol=1e-12, atol=1e-15)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(top[1].data, e / e.sum(axis=axis, keepdims=True), rtol=1e-13)


def test_identity_matrix_is_softmax_with_loss():
    x, labels, _ = make_case()
    _, top = run(infogain(), x, labels, np.eye(3))
    param = pb.LayerParameter(name="sm", type="SoftmaxWithLoss")
    softmax_loss = layer_class("SoftmaxWithLoss")(param, pb.TRAIN, np.float64)
    _, expected = run(softmax_loss, x, labels)
    np.testing.assert_allclose(top[0].data, expected[0].data, rtol=1e-13)


def test_matrix_from_a_binaryproto_file(tmp_path):
    x, labels, h = make_case()
    path = tmp_path / "H.binaryproto"
    path.write_bytes(array_to_blobproto(h.reshape(1, 1, 3, 3)).SerializeToString())
    from_file, from_bottom = infogain(source=path), infogain()
    b1, t1 = run(from_file, x, labels)
    b2, t2 = run(from_bottom, x, labels, h)
    np.testing.assert_allclose(t1[0].data, t2[0].data, rtol=1e-6)
    np.testing.assert_allclose(b1[0].diff, b2[0].diff, rtol=1e-6, atol=1e-12)


def test_by_hand():
    x = np.zeros((1, 2))                 # p = (0.5, 0.5)
    h = np.array([[2.0, 1.0], [0.0, 3.0]])
    bottom, top = run(infogain(), x, np.array([0.0]), h)
    np.testing.assert_allclose(top[0].data, 3 * np.log(2), rtol=1e-14)
    np.testing.assert_allclose(bottom[0].diff, [[0.5 * 3 - 2, 0.5 * 3 - 1]], rtol=1e-14)


@pytest.mark.parametrize("mode", ["VALID", "BATCH_SIZE"])
def test_gradient(mode):
    x, labels, h = make_case((2, 3, 2), ignore_label=0)
    layer = infogain(mode, ignore_label=0)
    bottom = make_blobs(x, labels, h)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_gpu_path_on_numpy_equals_cpu_path():
    x, labels, h = make_case(ignore_label=2)
    cpu, gpu = infogain("VALID", 2), infogain("VALID", 2)
    b1, b2 = make_blobs(x, labels, h), make_blobs(x, labels, h)
    t1, t2 = setup_layer(cpu, b1, 2), setup_layer(gpu, b2, 2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    for a, b in zip(t1, t2):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-13)
    t1[0].diff[...] = t2[0].diff[...] = 1.3
    cpu.backward_cpu(t1, [True, False, False], b1)
    gpu.backward_gpu(t2, [True, False, False], b2)
    np.testing.assert_allclose(b2[0].diff, b1[0].diff, rtol=1e-13, atol=1e-16)


def test_missing_source_file_is_a_data_error(tmp_path):
    path = tmp_path / "nope.binaryproto"
    with pytest.raises(DataError, match=f"'info'.*{path}"):
        setup_layer(infogain(source=path), make_blobs(*make_case()[:2]))


def test_corrupt_source_file_is_a_data_error(tmp_path):
    path = tmp_path / "bad.binaryproto"
    path.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(DataError, match=f"'info'.*{path}"):
        setup_layer(infogain(source=path), make_blobs(*make_case()[:2]))


def test_no_matrix_is_an_error():
    with pytest.raises(NetError, match="'info'.*third bottom or.*source"):
        setup_layer(infogain(), make_blobs(*make_case()[:2]))


def test_legacy_normalize_is_rejected():
    layer = infogain()
    layer.param.loss_param.normalize = True
    with pytest.raises(NetError, match="'info'.*normalize"):
        setup_layer(layer, make_blobs(*make_case()))


def test_matrix_of_the_wrong_size_is_a_shape_error():
    x, labels, _ = make_case()
    with pytest.raises(ShapeError, match=r"'info'.*\(2, 2\).*3 x 3"):
        setup_layer(infogain(), make_blobs(x, labels, np.eye(2)))


def test_label_count_mismatch_is_a_shape_error():
    x, _, h = make_case()
    with pytest.raises(ShapeError, match="'info'.*label count 4"):
        setup_layer(infogain(), make_blobs(x, np.zeros((2, 2)), h))


def test_label_out_of_range_is_a_shape_error():
    x, labels, h = make_case()
    labels[1, 0, 1] = 3
    layer = infogain()
    bottom = make_blobs(x, labels, h)
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match=r"'info'.*label 3 at position 5.*\[0, 3\)"):
        layer.forward(bottom, top)


def test_backward_to_labels_or_matrix_is_an_error():
    layer = infogain()
    bottom = make_blobs(*make_case())
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    with pytest.raises(NetError, match="'info'.*labels"):
        layer.backward(top, [True, True, False], bottom)
    with pytest.raises(NetError, match="'info'.*infogain matrix"):
        layer.backward(top, [True, False, True], bottom)
