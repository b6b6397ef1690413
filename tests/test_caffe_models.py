"""Real Caffe-trained models give real Caffe's answers: LeNet, the V1 CIFAR-10 quick, MTCNN.

The references are ../shared/golden/caffe-models/caffe_ref_models.npz (BVLC Caffe,
CPU, float32, TEST phase; see its README) and the LeNet README's numbers.
"""
import json

import numpy as np
import pytest

import cyffe
from cyffe.proto.io import blobproto_to_array, read_net_weights
from helpers import mnist
from helpers.shared import shared_path

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


@pytest.fixture(scope="module")
def golden():
    z = np.load(shared_path("golden", "caffe-models", "caffe_ref_models.npz"))
    return z, json.loads(z["metadata"].item())


def model(*parts):
    return str(shared_path("data", "caffe-models", *parts))


def assert_like_caffe(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def assert_params_are_the_files(net, weights):
    """Every param blob of the net holds exactly the values of the caffemodel's blob."""
    source = {l.name: l for l in read_net_weights(weights).layer}
    assert net.params
    for name, blobs in net.params.items():
        for blob, proto in zip(blobs, source[name].blobs):
            np.testing.assert_array_equal(blob.data.ravel(), blobproto_to_array(proto).ravel())


@pytest.fixture(scope="module")
def lenet():
    weights = model("lenet", "lenet_iter_10000.caffemodel")
    return cyffe.Net(model("lenet", "lenet.prototxt"), cyffe.TEST, weights=weights), weights


def test_lenet_gets_0_9904_on_the_mnist_test_set_as_caffe(lenet, golden):
    net, weights = lenet
    z, _ = golden
    assert_params_are_the_files(net, weights)
    images, labels = mnist.load("t10k")
    predictions = []
    for start in range(0, len(images), 100):
        batch = images[start:start + 100].astype(np.float32) * np.float32(0.00390625)
        predictions.append(net.forward(data=batch)["prob"].argmax(axis=1))
    predictions = np.concatenate(predictions)
    assert len(predictions) == 10_000
    assert np.mean(predictions == labels) == 0.9904
    assert float(z["lenet/t10k_accuracy"]) == 0.9904
    np.testing.assert_array_equal(predictions, z["lenet/t10k_pred"])


def test_lenet_logits_are_the_readmes_and_caffes(lenet, golden):
    net, _ = lenet
    z, meta = golden
    assert "0.00390625" in meta["lenet/input"]["what"]
    images, _ = mnist.load("t10k", 100)
    x = images.astype(np.float32) * np.float32(0.00390625)
    np.testing.assert_array_equal(x, z["lenet/input"])
    net.forward(data=x)
    readme = [-2.9009, 2.0346, -0.2381, 4.9281, -3.2285, -1.3293, -10.3356, 14.8614, -2.3150,
              2.5115]
    # The README prints 4 decimals of its own NumPy pass; real Caffe's values are held tighter below.
    np.testing.assert_allclose(net.blobs["ip2"].data[0], readme, atol=1e-4)
    assert list(net.blobs["ip2"].data[:10].argmax(axis=1)) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert_like_caffe(net.blobs["ip2"].data, z["lenet/ip2"])
    assert_like_caffe(net.blobs["prob"].data, z["lenet/prob"])


def test_lenets_one_image_deploy_net_agrees():
    weights = model("lenet", "lenet_iter_10000.caffemodel")
    net = cyffe.Net(model("lenet", "mnist_deploy.prototxt"), cyffe.TEST, weights=weights)
    assert net.blobs["data"].data.shape == (1, 1, 28, 28)
    images, _ = mnist.load("t10k", 3)
    picks = [int(net.forward(data=img[None].astype(np.float32) / 256)["loss"].argmax())
             for img in images]
    assert picks == [7, 2, 1]


@pytest.fixture(scope="module")
def cifar10_quick():
    weights = model("cifar10_quick", "cifar10_quick_iter_5000.caffemodel")
    net = cyffe.Net(model("cifar10_quick", "cifar10_quick.prototxt"), cyffe.TEST, weights=weights)
    return net, weights


def test_the_v1_cifar10_quick_caffemodel_loads_exactly(cifar10_quick, golden):
    net, weights = cifar10_quick
    _, meta = golden
    assert set(net.params) == set(meta["cifar10_quick/ip2"]["weights_checked"])
    assert_params_are_the_files(net, weights)
    assert net.params["ip1"][0].data.shape == (64, 1024)      # (1, 1, 64, 1024) in the file


def test_cifar10_quick_outputs_and_classes_are_caffes(cifar10_quick, golden):
    net, _ = cifar10_quick
    z, meta = golden
    out = net.forward(data=z["cifar10_quick/input"])
    assert_like_caffe(net.blobs["ip2"].data, z["cifar10_quick/ip2"])
    assert_like_caffe(out["prob"], z["cifar10_quick/prob"])
    assert meta["cifar10_quick/prob"]["classes"] == CIFAR10_CLASSES
    picks = [CIFAR10_CLASSES[i] for i in out["prob"][:3].argmax(axis=1)]
    caffes = [CIFAR10_CLASSES[i] for i in z["cifar10_quick/prob"][:3].argmax(axis=1)]
    assert picks == caffes
    assert picks[1:] == ["dog", "truck"]                  # dog10.png and truck10.png


def test_cifar10_quick_sample_images_decode_to_caffes_input(golden):
    image = pytest.importorskip("PIL.Image")
    z, _ = golden
    for row, name in enumerate(["cat10.png", "dog10.png", "truck10.png"]):
        rgb = np.asarray(image.open(model("cifar10_quick", "samples", name)).convert("RGB"))
        bgr_chw = rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
        np.testing.assert_array_equal(bgr_chw, z["cifar10_quick/input"][row])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mtcnn_nets_give_caffes_outputs(k, golden):
    z, meta = golden
    weights = model("mtcnn", f"det{k}.caffemodel")
    net = cyffe.Net(model("mtcnn", f"det{k}.prototxt"), cyffe.TEST, weights=weights)
    assert_params_are_the_files(net, weights)
    prefix = f"mtcnn_det{k}/"
    outputs = [key[len(prefix):] for key in z.files
               if key.startswith(prefix) and key != prefix + "input"]
    assert set(meta[prefix + outputs[0]]["weights_checked"]) == set(net.params)
    result = net.forward(data=z[prefix + "input"])
    assert set(outputs) <= set(result)
    for name in outputs:
        assert_like_caffe(result[name], z[prefix + name])
