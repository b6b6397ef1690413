"""ONNX export of every deploy net in ../shared: ONNX Runtime gives cyffe's outputs.

LeNet, cifar10_quick and MTCNN det1-4 with their Caffe-trained weights; SqueezeNet 1.0/1.1,
GoogLeNet, ResNet-50, AlexNet, CaffeNet and VGG-16 with the inference benchmark's seeded
random weights (random biases, BatchNorm statistics and Scale params, every layer's output
near unit scale: benchmarks/zoo.py), written once per session. Each net is exported at
batch 1 on a seeded input shaped like its images, checked by onnx.checker, run in ONNX
Runtime, and every output and a few inner blobs must agree with cyffe's within 1e-4 of
their scale. The reference is cyffe's CPU forward, whatever $CYFFE_BACKEND says: the
export does not depend on the backend, and the GPU path's agreement with the CPU's is
tested elsewhere.
"""
import sys
from pathlib import Path

import pytest

import cyffe
from helpers.onnx_check import TOLERANCE, relative_error, run_onnx

onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx: pip install \"cyffe[onnx]\"")
ort = pytest.importorskip("onnxruntime",
                          reason="checking ONNX exports needs onnxruntime: pip install onnxruntime")

# benchmarks/ is run from the checkout (python -m benchmarks.inference), not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    from benchmarks import zoo
finally:
    del sys.path[0]

SEED = 0

# Inner blobs worth comparing too: where a fault would start (pooling borders, concat,
# BatchNorm chains, LRN, PReLU).
INNER = {
    "lenet": ["pool1", "ip1"],
    "cifar10_quick": ["pool1", "pool2"],
    "mtcnn_det1": ["pool1", "conv3"],
    "mtcnn_det2": ["pool2", "conv4"],
    "mtcnn_det3": ["pool3", "conv5"],
    "mtcnn_det4": [],
    "squeezenet1.0": ["pool1", "fire2/concat", "pool10"],
    "squeezenet1.1": ["pool1", "fire9/concat"],
    "googlenet": ["pool1/norm1", "inception_3a/output", "pool5/7x7_s1"],
    "resnet50": ["pool1", "res2a", "pool5"],
    "alexnet": ["norm1", "pool5"],
    "caffenet": ["norm2", "pool5"],
    "vgg16": ["pool1", "pool5"],
}


@pytest.fixture(scope="session")
def weights_folder(tmp_path_factory):
    """Where the zoo's seeded random weights are written, once per session."""
    return tmp_path_factory.mktemp("onnx-zoo")


def zoo_net(name, folder):
    """(the TEST net at batch 1 with its weights, its NetParameter, the weights' path, its
    output names); skips when the net's files are not in ../shared."""
    reason = zoo.missing(name)
    if reason:
        pytest.skip(reason)
    weights, outputs = zoo.prepare(name, folder, SEED)
    param = zoo.param_at_batch(zoo.NETS[name].prototxt, 1)
    return cyffe.Net(param, cyffe.TEST, weights=str(weights)), param, weights, outputs


@pytest.mark.parametrize("name", list(zoo.NETS))
def test_zoo_net_exports_and_gives_cyffe_outputs(name, weights_folder, mode):
    mode.set_mode_cpu()
    net, param, weights, outputs = zoo_net(name, weights_folder)
    x = zoo.inputs(name, 1, zoo.image_shape(param), SEED)
    wanted = outputs + INNER[name]
    model = cyffe.export_onnx(net, outputs=wanted)
    if zoo.NETS[name].weights is None:
        Path(weights).unlink()              # VGG-16's are half a gigabyte
    onnx.checker.check_model(model)
    expected = net.forward(blobs=INNER[name], **{net.inputs[0]: x})
    got = run_onnx(model, {net.inputs[0]: x})
    assert list(got) == wanted
    errors = {blob: relative_error(got[blob], expected[blob]) for blob in wanted}
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize("name", ["squeezenet1.1", "mtcnn_det4"])
def test_zoo_net_with_a_dynamic_batch_runs_batch_3(name, weights_folder, mode):
    mode.set_mode_cpu()
    net, param, _, outputs = zoo_net(name, weights_folder)
    model = cyffe.export_onnx(net, dynamic_batch=True)
    feed = {net.inputs[0]: zoo.inputs(name, 3, zoo.image_shape(param), SEED)}
    expected = net.forward(**feed)
    got = run_onnx(model, feed)
    assert list(got) == outputs
    for blob in outputs:
        assert got[blob].shape[0] == 3
        assert relative_error(got[blob], expected[blob]) <= TOLERANCE, blob
