"""upgrade_net from the command line: old prototxt and .caffemodel files in, today's format out."""
import subprocess
import sys
from pathlib import Path

import numpy as np
from google.protobuf import text_format

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import read_binary_net
from helpers.shared import shared_path
from helpers.tool_errors import assert_one_line_error

OLD = '''name: "old"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 blobs_lr: 2
         convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "prob" type: SOFTMAX bottom: "conv" top: "prob" }
'''


def upgrade_net(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cyffe.tools.upgrade_net", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_v1_prototxt_becomes_a_new_prototxt(tmp_path):
    (tmp_path / "old.prototxt").write_text(OLD)
    r = upgrade_net("old.prototxt", "new.prototxt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "old.prototxt: upgraded; wrote new.prototxt (text)" in r.stdout
    new = text_format.Parse((tmp_path / "new.prototxt").read_text(), pb.NetParameter())
    assert not new.layers and not new.input
    assert [(l.name, l.type) for l in new.layer] == [
        ("input", "Input"), ("conv", "Convolution"), ("relu", "ReLU"), ("prob", "Softmax")]
    assert [p.lr_mult for p in new.layer[1].param] == [1, 2]
    assert cyffe.Net(str(tmp_path / "new.prototxt"), cyffe.TEST).blobs["prob"].data.shape == (
        2, 4, 6, 6)


def test_vgg16s_v1_deploy_upgrades_layer_for_layer(tmp_path):
    vgg = shared_path("data", "caffe-prototxt", "extra", "VGG_ILSVRC_16_layers_deploy.prototxt")
    r = upgrade_net(vgg, tmp_path / "vgg.prototxt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    old = text_format.Parse(vgg.read_text(), pb.NetParameter())
    new = text_format.Parse((tmp_path / "vgg.prototxt").read_text(), pb.NetParameter())
    assert [l.name for l in new.layer] == ["input"] + [l.name for l in old.layers]
    assert [l.type for l in new.layer].count("Convolution") == 13
    assert list(new.layer[0].input_param.shape[0].dim) == [16, 3, 224, 224]


def test_a_v1_caffemodel_becomes_a_new_caffemodel_with_the_same_weights(tmp_path):
    folder = shared_path("data", "caffe-models", "cifar10_quick")
    r = upgrade_net(folder / "cifar10_quick_iter_5000.caffemodel", "new.caffemodel", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "upgraded; wrote new.caffemodel (binary)" in r.stdout
    new = read_binary_net(str(tmp_path / "new.caffemodel"))
    assert not new.layers and {"conv1", "ip2"} <= {l.name for l in new.layer}
    deploy = str(folder / "cifar10_quick.prototxt")
    a = cyffe.Net(deploy, cyffe.TEST, weights=str(folder / "cifar10_quick_iter_5000.caffemodel"))
    b = cyffe.Net(deploy, cyffe.TEST, weights=str(tmp_path / "new.caffemodel"))
    for name in a.params:
        for x, y in zip(a.params[name], b.params[name]):
            np.testing.assert_array_equal(x.data, y.data)


def test_a_current_caffemodel_is_copied_and_said_so(tmp_path):
    lenet = shared_path("data", "caffe-models", "lenet", "lenet_iter_10000.caffemodel")
    r = upgrade_net(lenet, "same.caffemodel", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already in the latest format" in r.stdout
    assert read_binary_net(str(tmp_path / "same.caffemodel")) == read_binary_net(str(lenet))


def test_format_follows_the_content_when_the_extension_says_nothing(tmp_path):
    (tmp_path / "old.net").write_text(OLD)
    folder = shared_path("data", "caffe-models", "cifar10_quick")
    (tmp_path / "weights.bin").write_bytes((folder / "cifar10_quick_iter_5000.caffemodel").read_bytes())
    assert upgrade_net("old.net", "a", cwd=tmp_path).returncode == 0
    assert text_format.Parse((tmp_path / "a").read_text(), pb.NetParameter()).layer
    assert "(binary)" in upgrade_net("weights.bin", "b", cwd=tmp_path).stdout
    assert read_binary_net(str(tmp_path / "b")).layer


def test_upgrade_warnings_go_to_stderr(tmp_path):
    (tmp_path / "v0.prototxt").write_text(
        'layers { layer { name: "r" type: "relu" num_output: 3 } top: "y" }')
    r = upgrade_net("v0.prototxt", "out.prototxt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "upgrade_net: warning: v0.prototxt: layer 'r': V0 setting 'num_output'" in r.stderr


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    assert_one_line_error(upgrade_net("missing.prototxt", "out", cwd=tmp_path),
                          "missing.prototxt", "not found")
    (tmp_path / "broken.prototxt").write_text('layers { name: "a" type: CONVOLUTON }\n')
    assert_one_line_error(upgrade_net("broken.prototxt", "out", cwd=tmp_path),
                          "broken.prototxt:1:")
    lenet = shared_path("data", "caffe-models", "lenet", "lenet_iter_10000.caffemodel")
    (tmp_path / "cut.caffemodel").write_bytes(lenet.read_bytes()[:5000])
    assert_one_line_error(upgrade_net("cut.caffemodel", "out", cwd=tmp_path),
                          "cut.caffemodel", "truncated or corrupt")
    (tmp_path / "v0.prototxt").write_text('layers { layer { name: "a" type: "warp" } top: "x" }')
    assert_one_line_error(upgrade_net("v0.prototxt", "out", cwd=tmp_path),
                          "v0.prototxt", "unknown V0 layer type 'warp'")
    assert not (tmp_path / "out").exists()
    (tmp_path / "old.prototxt").write_text(OLD)
    (tmp_path / "taken").mkdir()
    assert_one_line_error(upgrade_net("old.prototxt", "taken", cwd=tmp_path), "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broken.prototxt", "cut.caffemodel", "old.prototxt", "taken", "v0.prototxt"]


def test_upgrade_net_is_a_console_script_with_help(tmp_path):
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'upgrade_net = "cyffe.tools.upgrade_net:main"' in pyproject
    r = upgrade_net("--help", cwd=tmp_path)
    assert r.returncode == 0 and "V0/V1" in r.stdout
