"""test_net, time_net, draw_net and check_grad from the command line, and the API under them."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cyffe
from cyffe.net.analysis.drawing import to_dot
from cyffe.net.analysis.evaluation import evaluate
from cyffe.net.analysis.gradcheck import check_net_gradients, random_inputs
from cyffe.net.analysis.timing import time_layers
from helpers.tool_errors import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "lenet_train_test.prototxt"

TINY = '''name: "tiny"
layer { name: "in" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "prob_ip" type: "InnerProduct" bottom: "ip" top: "score"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_weight: 2 }
'''

# y = 2x, but backward claims dx = 3 dy: a gradient check must catch it.
BAD_LAYER = '''
import cyffe

class Twice(cyffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 3 * top[0].diff
'''


def tool(name, *args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", f"cyffe.tools.{name}", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory):
    """LeNet-digits trained for a few iterations, so test_net has something to score."""
    out = tmp_path_factory.mktemp("weights") / "digits.caffemodel"
    solver = cyffe.SGDSolver(f'net: "{DIGITS}"\nbase_lr: 0.05\nmomentum: 0.9\n'
                             'lr_policy: "fixed"\nmax_iter: 40\nrandom_seed: 3\n',
                             log=lambda line: None)
    solver.solve()
    solver.net.save(out)
    return out


# -- every tool ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, flags", [
    ("test_net", ["--proto", "--weights", "--iterations", "--output", "--phase", "--debug"]),
    ("time_net", ["--proto", "--iterations", "--phase", "--debug"]),
    ("draw_net", ["NET", "OUT", "--rankdir", "--phase", "--debug", "Graphviz"]),
    ("check_grad", ["--proto", "--eps", "--threshold", "--max_checks", "--seed", "--phase",
                    "--level", "--stage", "--debug", "--version"]),
])
def test_help_documents_the_flags(name, flags, tmp_path):
    r = tool(name, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {name}")
    for flag in flags:
        assert flag in r.stdout


@pytest.mark.parametrize("name, args", [
    ("test_net", ["--proto", "nope.prototxt", "--weights", "w.caffemodel"]),
    ("time_net", ["--proto", "nope.prototxt"]),
    ("draw_net", ["nope.prototxt", "out.dot"]),
    ("check_grad", ["--proto", "nope.prototxt"]),
])
def test_a_missing_net_file_is_one_line(name, args, tmp_path):
    r = tool(name, *args, cwd=tmp_path)
    assert_one_line_error(r, f"{name}: error:", "nope.prototxt", "not found")
    assert not (tmp_path / "out.dot").exists()


def test_debug_shows_the_traceback(tmp_path):
    r = tool("time_net", "--proto", "nope.prototxt", "--debug", cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" in r.stderr and "DataError" in r.stderr


def test_console_scripts_are_registered():
    text = (REPO / "pyproject.toml").read_text()
    for name in ("test_net", "time_net", "draw_net", "check_grad"):
        assert f'{name} = "cyffe.tools.{name}:main"' in text


# -- test_net ----------------------------------------------------------------------------------

def test_test_net_prints_batches_and_averages_as_caffe_test(digits_weights, tmp_path):
    r = tool("test_net", "--proto", DIGITS, "--weights", digits_weights, "--iterations", 3,
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for k in range(3):
        assert any(re.fullmatch(rf"Batch {k}, accuracy = [0-9.e-]+", l) for l in lines)
        assert any(re.fullmatch(rf"Batch {k}, loss = [0-9.e-]+", l) for l in lines)
    net = cyffe.Net(str(DIGITS), cyffe.TEST, weights=str(digits_weights))
    means, loss = evaluate(net, 3)
    accuracy = float(re.search(r"^accuracy = (\S+)$", r.stdout, re.M).group(1))
    assert accuracy == pytest.approx(float(means["accuracy"]), abs=1e-5)
    assert accuracy > 0.5                                  # trained, not chance (0.1)
    m = re.search(r"^loss = (\S+) \(\* 1 = (\S+) loss\)$", r.stdout, re.M)
    assert float(m.group(1)) == pytest.approx(float(means["loss"]), rel=1e-5)
    assert float(m.group(2)) == float(m.group(1))
    assert float(re.search(r"^Loss: (\S+)$", r.stdout, re.M).group(1)) == pytest.approx(loss,
                                                                                     rel=1e-5)


def test_test_net_named_output_and_loss_weight(tiny, tmp_path):
    net = cyffe.Net(str(tiny), cyffe.TEST)
    net.save(tmp_path / "tiny.caffemodel")
    r = tool("test_net", "--proto", tiny, "--weights", "tiny.caffemodel", "--iterations", 2,
             "--output", "loss", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "accuracy" not in r.stdout
    value, weighted = re.search(r"^loss = (\S+) \(\* 2 = (\S+) loss\)$", r.stdout, re.M).groups()
    assert float(weighted) == pytest.approx(2 * float(value), rel=1e-5)


def test_test_net_without_the_named_output(tiny, tmp_path):
    cyffe.Net(str(tiny), cyffe.TEST).save(tmp_path / "tiny.caffemodel")
    r = tool("test_net", "--proto", tiny, "--weights", "tiny.caffemodel", "--output", "prob",
             cwd=tmp_path)
    assert_one_line_error(r, "no output named 'prob'", "accuracy, loss")


def test_test_net_on_a_net_without_outputs(tmp_path):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
        'layer { name: "quiet" type: "Silence" bottom: "x" }\n')
    cyffe.Net(str(tmp_path / "net.prototxt"), cyffe.TEST).save(tmp_path / "w.caffemodel")
    r = tool("test_net", "--proto", "net.prototxt", "--weights", "w.caffemodel", cwd=tmp_path)
    assert_one_line_error(r, "net.prototxt", "no outputs")


def test_test_net_missing_weights(tiny, tmp_path):
    r = tool("test_net", "--proto", tiny, "--weights", "missing.caffemodel", cwd=tmp_path)
    assert_one_line_error(r, "missing.caffemodel")


# -- time_net ----------------------------------------------------------------------------------

def test_time_net_lists_every_layer_and_the_totals(tiny, tmp_path):
    r = tool("time_net", "--proto", tiny, "--iterations", 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("in", "ip", "relu", "prob_ip", "accuracy", "loss"):
        assert re.search(rf"^\s*{name}\s+\w+\s+[0-9.]+\s+[0-9.]+$", r.stdout, re.M), name
    for total in ("Forward pass:", "Backward pass:", "Forward-backward:"):
        assert total in r.stdout
    assert re.search(r"Images per second: [0-9.]+ \(batch size 4,", r.stdout)


def test_time_net_on_the_digits_example(tmp_path):
    r = tool("time_net", "--proto", DIGITS, "--iterations", 2, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "conv1" in r.stdout and "(batch size 64," in r.stdout


def test_time_layers_from_python(tiny):
    net = cyffe.Net(str(tiny), cyffe.TRAIN)
    timings = time_layers(net, 2)
    assert [t.name for t in timings if "_split" not in t.name] == [
        "in", "ip", "relu", "prob_ip", "accuracy", "loss"]
    assert [t.name for t in timings] == net._layer_names       # the Splits too, as caffe time
    by_name = {t.name: t for t in timings}
    assert by_name["ip"].forward_ms > 0 and by_name["ip"].backward_ms > 0
    assert by_name["accuracy"].backward_ms == 0 and by_name["in"].backward_ms == 0
    assert all(np.all(p.diff == 0) for p in net.learnable_params)
    with pytest.raises(ValueError):
        time_layers(net, 0)


# -- draw_net ----------------------------------------------------------------------------------

def test_draw_net_dot_has_every_layer_and_blob_with_shapes(tmp_path):
    r = tool("draw_net", DIGITS, "lenet.dot", "--rankdir", "TB", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    dot = (tmp_path / "lenet.dot").read_text()
    assert dot.startswith('digraph "LeNet-digits" {') and "rankdir=TB;" in dot
    net = cyffe.Net(str(DIGITS), cyffe.TRAIN)
    for name in net._layer_names:
        if "_split" not in name:
            assert f'"layer ' in dot and f" {name}\"" in dot, name
    for name in ("data", "label", "conv1", "pool1", "conv2", "pool2", "ip1", "ip2", "loss"):
        assert f'"blob {name}"' in dot, name
    assert "Accuracy" not in dot                           # TEST-only layer
    assert 'label="data\\n64x1x8x8"' in dot
    assert 'label="loss\\nscalar"' in dot
    assert "num_output: 20\\nkernel: 3 stride: 1 pad: 1" in dot
    assert "MAX kernel: 2 stride: 2 pad: 0" in dot
    # relu1 runs in place on ip1: its output is a second version of the blob, no cycle.
    assert '"blob ip1" -> "layer 6 relu1"' in dot
    assert '"layer 6 relu1" -> "blob ip1 (2)"' in dot
    assert '"blob ip1 (2)" -> "layer 7 ip2"' in dot


def test_draw_net_test_phase_and_a_net_that_does_not_build(tmp_path):
    text = DIGITS.read_text().replace('"test.txt"', '"absent.txt"')
    (tmp_path / "net.prototxt").write_text(text)
    r = tool("draw_net", "net.prototxt", "net.dot", "--phase", "TEST", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "drawing without blob shapes" in r.stderr and "absent.txt" in r.stderr
    dot = (tmp_path / "net.dot").read_text()
    assert "(Accuracy)" in dot and 'label="data"' in dot


def test_draw_net_unknown_extension(tiny, tmp_path):
    r = tool("draw_net", tiny, "graph.jpg", cwd=tmp_path)
    assert_one_line_error(r, "graph.jpg", "unknown output format 'jpg'", ".dot, .png, .svg")
    assert not (tmp_path / "graph.jpg").exists()


def test_draw_net_png_without_graphviz_says_so(tiny, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    r = tool("draw_net", tiny, "graph.png", cwd=tmp_path, env=env)
    assert_one_line_error(r, "graph.png", "Graphviz", "apt-get install graphviz", ".dot")
    assert not (tmp_path / "graph.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("ext, magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_draw_net_renders_with_graphviz(ext, magic, tmp_path):
    r = tool("draw_net", DIGITS, f"lenet.{ext}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"lenet.{ext}").read_bytes().startswith(magic)


def test_to_dot_from_python_without_shapes(tiny):
    dot = to_dot(str(tiny), cyffe.TEST, "LR")
    assert '"blob data" -> "layer 1 ip"' in dot and 'label="score"' in dot
    with pytest.raises(cyffe.NetError, match="rankdir"):
        to_dot(str(tiny), rankdir="UP")


# -- check_grad --------------------------------------------------------------------------------

def test_check_grad_passes_a_correct_net(tiny, tmp_path):
    r = tool("check_grad", "--proto", tiny, "--max-checks", 0, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for name, kind in (("ip", "InnerProduct"), ("relu", "ReLU"), ("prob_ip", "InnerProduct"),
                       ("loss", "SoftmaxWithLoss")):
        assert re.search(rf"^\s*{name}\s+{kind}\s+worst relative error \S+\s+ok", r.stdout,
                         re.M), name
    assert "accuracy" not in r.stdout                      # no backward to check
    assert "All 6 layers within 0.001" in r.stdout        # and the Splits of score and label


def test_check_grad_on_the_digits_example(tmp_path):
    r = tool("check_grad", "--proto", DIGITS, "--max-checks", 10, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"):
        assert re.search(rf"^\s*{name}\s", r.stdout, re.M), name


def test_check_grad_catches_a_wrong_backward(tmp_path):
    (tmp_path / "badgrad.py").write_text(BAD_LAYER)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "twice" type: "Python" bottom: "x" top: "y"\n'
        '        python_param { module: "badgrad" layer: "Twice" } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "y" top: "z"\n'
        '        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }\n')
    r = tool("check_grad", "--proto", "net.prototxt", cwd=tmp_path)
    assert r.returncode == 1
    assert re.search(r"^\s*twice\s+Python\s+worst relative error \S+\s+FAIL", r.stdout, re.M)
    assert re.search(r"^\s*ip\s+InnerProduct\s+.*ok", r.stdout, re.M)
    assert "at bottom 0[" in r.stdout
    assert r.stderr.strip() == "check_grad: 1 of 2 layers over threshold 0.001: twice"


def test_check_grad_with_no_layer_to_check(tmp_path):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n')
    r = tool("check_grad", "--proto", "net.prototxt", cwd=tmp_path)
    assert_one_line_error(r, "no layer has a backward")


def test_random_inputs_give_labels_in_the_class_range(tiny):
    net = cyffe.Net(str(tiny), cyffe.TRAIN, dtype=np.float64)
    random_inputs(net, seed=5)
    labels = net.blobs["label"].data
    assert np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() < 5
    data = net.blobs["data"].data
    assert 0 <= data.min() and data.max() < 1 and np.unique(data).size == data.size


def test_kinks_are_skipped_not_failed():
    net = cyffe.Net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 } } }\n'
                    'layer { name: "relu" type: "ReLU" bottom: "x" top: "y" }\n'
                    'force_backward: true\n', cyffe.TRAIN, dtype=np.float64)
    net.blobs["x"].data[...] = [-0.5, 2e-4, 1.0]          # the middle one within eps of 0
    (report,) = check_net_gradients(net, eps=1e-3, max_checks=None)
    assert (report.name, report.checked, report.kinks) == ("relu", 3, 1)
    assert report.worst < 1e-9


def test_small_activations_get_a_smaller_step():
    """cifar10_full's conv1 (std 1e-4 weights) feeds max pooling values far below eps apart."""
    net = cyffe.Net(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 1 '
        'dim: 7 dim: 7 } } }\n'
        'layer { name: "conv" type: "Convolution" bottom: "x" top: "c" convolution_param { '
        'num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.0001 } } }\n'
        'layer { name: "pool" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX '
        'kernel_size: 3 stride: 2 } }\n', cyffe.TRAIN, dtype=np.float64)
    random_inputs(net)
    reports = {r.name: r for r in check_net_gradients(net, max_checks=None)}
    assert reports["pool"].checked == 2 * 3 * 5 * 5
    assert reports["pool"].worst < 1e-6 and reports["pool"].kinks < 5


def test_check_net_gradients_needs_float64(tiny):
    with pytest.raises(TypeError, match="float64"):
        check_net_gradients(cyffe.Net(str(tiny), cyffe.TRAIN))
