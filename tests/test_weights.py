"""Weights copied by layer name as Caffe does, and bad weight files refused whole, naming the file."""
import numpy as np
import pytest

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import blob_shape_matches, write_binary
from helpers.shared import shared_path

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
"""


def weights_of(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def assert_weights_equal(net, weights):
    for name, arrays in weights.items():
        for blob, array in zip(net.params[name], arrays):
            np.testing.assert_array_equal(blob.data, array)


def trained(tmp_path):
    """A NET whose weights were saved to a .caffemodel; returns (path, its weights)."""
    net = cyffe.Net(NET, cyffe.TEST)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = np.random.RandomState(blob.count).randn(*blob.shape)
    path = tmp_path / "w.caffemodel"
    net.save(path)
    return path, weights_of(net)


def test_weights_round_trip_through_a_caffemodel(tmp_path):
    path, weights = trained(tmp_path)
    assert_weights_equal(cyffe.Net(NET, cyffe.TEST, weights=str(path)), weights)
    net = cyffe.Net(NET, cyffe.TEST)
    net.copy_from(path)                                   # a PathLike works too
    assert_weights_equal(net, weights)


def test_layers_the_net_lacks_are_skipped_and_new_layers_keep_their_fillers(tmp_path):
    path, weights = trained(tmp_path)
    finetune = NET.replace('name: "ip"', 'name: "ip_new"')
    net = cyffe.Net(finetune, cyffe.TEST)
    fresh = [b.data.copy() for b in net.params["ip_new"]]
    net.copy_from(str(path))
    assert_weights_equal(net, {"conv": weights["conv"], "ip_new": fresh})


def legacy_blob(array, dims):
    blob = pb.BlobProto(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
    blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    return blob


def test_legacy_4d_blobs_fit_as_caffes_shape_equals_says():
    assert blob_shape_matches(pb.BlobProto(num=1, channels=1, height=4, width=72), (4, 72))
    assert blob_shape_matches(pb.BlobProto(num=1, channels=1, height=1, width=4), (4,))
    assert blob_shape_matches(pb.BlobProto(num=3, channels=1, height=3, width=3), (3, 1, 3, 3))
    assert not blob_shape_matches(pb.BlobProto(num=4, channels=72, height=1, width=1), (4, 72))
    assert not blob_shape_matches(pb.BlobProto(num=1, channels=1, height=1, width=4), (1, 4, 1))
    assert not blob_shape_matches(pb.BlobProto(num=1, channels=1, height=1, width=8), (2, 2, 2, 1, 1))
    shaped = pb.BlobProto()
    shaped.shape.dim.extend([4, 72])
    assert blob_shape_matches(shaped, (4, 72)) and not blob_shape_matches(shaped, (72, 4))


def test_a_v1_style_caffemodel_with_legacy_shapes_loads(tmp_path):
    w = np.arange(4 * 48, dtype=np.float32).reshape(4, 48)
    b = np.arange(4, dtype=np.float32)
    conv_w = np.ones((3, 1, 3, 3), np.float32)
    old = pb.NetParameter()
    conv = old.layers.add(name="conv", type=pb.V1LayerParameter.CONVOLUTION)
    conv.blobs.extend([legacy_blob(conv_w, (3, 1, 3, 3)), legacy_blob(np.zeros(3), (1, 1, 1, 3))])
    ip = old.layers.add(name="ip", type=pb.V1LayerParameter.INNER_PRODUCT)
    ip.blobs.extend([legacy_blob(w, (1, 1, 4, 48)), legacy_blob(b, (1, 1, 1, 4))])
    write_binary(old, tmp_path / "v1.caffemodel")
    net = cyffe.Net(NET, cyffe.TEST, weights=str(tmp_path / "v1.caffemodel"))
    assert_weights_equal(net, {"conv": [conv_w, np.zeros(3)], "ip": [w, b]})


def test_a_legacy_blob_of_the_right_count_but_wrong_axes_is_refused(tmp_path):
    old = pb.NetParameter()
    ip = old.layer.add(name="ip", type="InnerProduct")
    ip.blobs.extend([legacy_blob(np.zeros((4, 48)), (4, 48, 1, 1)), legacy_blob(np.zeros(4), (1, 1, 1, 4))])
    net = cyffe.Net(NET, cyffe.TEST)
    with pytest.raises(cyffe.ShapeError, match=r"layer 'ip' param 0: shape \(4, 48, 1, 1\) in "
                                               r"the file but \(4, 48\) in the net"):
        net.copy_from(old)


def test_a_shape_mismatch_names_the_layer_and_both_shapes_and_copies_nothing(tmp_path):
    path, _ = trained(tmp_path)
    wider = NET.replace("num_output: 4", "num_output: 5")
    net = cyffe.Net(wider, cyffe.TEST)
    before = weights_of(net)
    with pytest.raises(cyffe.ShapeError, match=r"w.caffemodel: layer 'ip' param 0: shape "
                                               r"\(4, 48\) in the file but \(5, 48\) in the net"):
        net.copy_from(str(path))
    assert_weights_equal(net, before)                  # conv, checked first, was not copied


def test_a_blob_count_mismatch_names_the_layer(tmp_path):
    path, _ = trained(tmp_path)
    net = cyffe.Net(NET.replace("num_output: 4", "num_output: 4 bias_term: false"), cyffe.TEST)
    with pytest.raises(cyffe.ShapeError, match="layer 'ip' has 2 blobs in the file but 1 in the net"):
        net.copy_from(str(path))


def test_another_architectures_weights_name_the_first_mismatching_layer():
    lenet = str(shared_path("data", "caffe-models", "lenet", "lenet_iter_10000.caffemodel"))
    cifar = shared_path("data", "caffe-models", "cifar10_quick", "cifar10_quick.prototxt")
    with pytest.raises(cyffe.ShapeError, match=r"lenet_iter_10000.caffemodel: layer 'conv1' param "
                                               r"0: shape \(20, 1, 5, 5\) in the file but "
                                               r"\(32, 3, 5, 5\) in the net"):
        cyffe.Net(str(cifar), cyffe.TEST, weights=lenet)


def test_weights_sharing_no_layer_name_with_the_net_are_refused():
    det1 = str(shared_path("data", "caffe-models", "mtcnn", "det1.caffemodel"))
    with pytest.raises(cyffe.DataError, match=r"det1.caffemodel: weights for another net: none of "
                                              r"its layers \('conv1', 'PReLU1', 'conv2', \.\.\.\) "
                                              r"is in this net \('conv', 'ip'\)"):
        cyffe.Net(NET, cyffe.TEST, weights=det1)


def lenet_bytes():
    return shared_path("data", "caffe-models", "lenet", "lenet_iter_10000.caffemodel").read_bytes()


def lenet_deploy():
    return cyffe.Net(str(shared_path("data", "caffe-models", "lenet", "lenet.prototxt")), cyffe.TEST)


@pytest.mark.parametrize("keep", [0.999, 0.5, 0.01, 10 / 1725006])
def test_a_truncated_caffemodel_is_one_data_error_and_no_partial_load(tmp_path, keep):
    data = lenet_bytes()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[:int(len(data) * keep)])
    net = lenet_deploy()
    before = weights_of(net)
    with pytest.raises(cyffe.DataError, match=r"cut.caffemodel: .*truncated or corrupt"):
        net.copy_from(str(path))
    assert_weights_equal(net, before)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_a_data_error_naming_the_file(tmp_path, seed):
    path = tmp_path / "noise.caffemodel"
    path.write_bytes(np.random.RandomState(seed).bytes(4096))
    with pytest.raises(cyffe.DataError, match="noise.caffemodel"):
        lenet_deploy().copy_from(str(path))


def test_an_empty_or_weightless_file_is_a_data_error(tmp_path):
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    with pytest.raises(cyffe.DataError, match="empty.caffemodel: empty file"):
        lenet_deploy().copy_from(str(tmp_path / "empty.caffemodel"))
    write_binary(pb.NetParameter(name="n", layer=[pb.LayerParameter(name="conv1")]),
                 tmp_path / "none.caffemodel")
    with pytest.raises(cyffe.DataError, match="none.caffemodel: holds no learned weights"):
        lenet_deploy().copy_from(str(tmp_path / "none.caffemodel"))


def test_a_blob_holding_the_wrong_number_of_values_names_the_layer(tmp_path):
    data = bytearray(lenet_bytes())
    net_param = pb.NetParameter.FromString(bytes(data))
    ip2 = next(l for l in net_param.layer if l.name == "ip2")
    del ip2.blobs[1].data[-1]
    write_binary(net_param, tmp_path / "short.caffemodel")
    net = lenet_deploy()
    before = weights_of(net)
    with pytest.raises(cyffe.DataError, match=r"short.caffemodel: layer 'ip2' param 1: blob of "
                                              r"shape \(10,\) holds 9 values"):
        net.copy_from(str(tmp_path / "short.caffemodel"))
    assert_weights_equal(net, before)


def test_missing_weights_and_a_folder_are_data_errors(tmp_path):
    with pytest.raises(cyffe.DataError, match="nope.caffemodel: cannot read weights"):
        lenet_deploy().copy_from(str(tmp_path / "nope.caffemodel"))
    with pytest.raises(cyffe.DataError, match="cannot read weights"):
        lenet_deploy().copy_from(str(tmp_path))
