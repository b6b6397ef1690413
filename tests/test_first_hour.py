"""What a new user meets in the first hour: typo hints, the net summary, the tools' manners
(a closed pipe, one pass of test data, where files went, consistent --help), classify."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cyffe
from cyffe.net.analysis.evaluation import batches_per_pass
from cyffe.tools import train_net

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"
NET = DIGITS / "lenet_train_test.prototxt"
TOOLS = ("train_net", "test_net", "time_net", "draw_net", "check_grad", "upgrade_net",
         "convert_mnist", "convert_imageset", "compute_image_mean", "plot_training_log",
         "classify", "export_onnx", "caffe")

INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


def tool(name, *args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", f"cyffe.tools.{name}", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)


# -- did you mean ------------------------------------------------------------------------------

def test_a_misspelt_layer_type_gets_a_suggestion_not_the_whole_list():
    with pytest.raises(cyffe.NetError) as e:
        cyffe.Net(INPUT + 'layer { name: "c" type: "Convolutoin" bottom: "x" top: "c" }',
                  cyffe.TEST)
    assert "did you mean 'Convolution'?" in str(e.value)
    assert "InnerProduct" not in str(e.value)


def test_an_unknown_type_far_from_every_name_lists_them():
    with pytest.raises(cyffe.NetError, match="known types: .*InnerProduct"):
        cyffe.Net(INPUT + 'layer { name: "c" type: "Qqqqqqqq" bottom: "x" top: "c" }',
                  cyffe.TEST)


def test_a_misspelt_field_gets_a_suggestion():
    with pytest.raises(cyffe.ProtoError, match=r"3:\d+: .*num_ouput.*did you mean 'num_output'"):
        cyffe.Net(INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"\n'
                  '  inner_product_param { num_ouput: 3 } }', cyffe.TEST)


def test_a_misspelt_enum_value_gets_a_suggestion():
    with pytest.raises(cyffe.ProtoError, match="did you mean 'MAX'"):
        cyffe.Net(INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p"\n'
                  '  pooling_param { pool: MAXX } }', cyffe.TEST)


def test_a_misspelt_bottom_gets_a_suggestion():
    with pytest.raises(cyffe.NetError, match="bottom blob 'X' .*did you mean 'x'"):
        cyffe.Net(INPUT + 'layer { name: "r" type: "ReLU" bottom: "X" top: "r" }', cyffe.TEST)


# -- the net summary --------------------------------------------------------------------------

def test_print_net_is_a_table_of_layers_shapes_params_and_memory():
    net = cyffe.Net(str(NET), cyffe.TEST)
    text = str(net)
    assert text == net.summary()
    lines = text.splitlines()
    assert lines[0] == "LeNet-digits (TEST)"
    batch = net.blobs["data"].shape[0]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert re.match(rf"conv1\s+Convolution\s+conv1 {batch}x20x8x8\s+200\s+[\d.]+ KiB$", conv1)
    total = sum(p.data.size for ps in net.params.values() for p in ps)
    assert lines[-1].startswith(f"{len(net.layers)} layers, {total:,} learnable params")
    assert repr(net) == f"<cyffe.Net 'LeNet-digits' TEST: {len(net.layers)} layers, {total:,} params>"


def test_summary_lists_every_top_of_a_layer_with_two():
    net = cyffe.Net('name: "two"\nlayer { name: "in" type: "Input" top: "a" top: "b"\n'
                    '  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }', cyffe.TEST)
    lines = net.summary().splitlines()
    assert re.match(r"in\s+Input\s+a 2x3\s+\d+ B$", lines[2])
    assert re.match(r"\s+b 2$", lines[3])


# -- the tools' manners -------------------------------------------------------------------------

@pytest.mark.parametrize("name, args", [
    ("time_net", ["--proto", NET, "--iterations", 1]),
    ("train_net", ["--proto", NET, "--max_iter", 2, "--test_interval", 0, "--display", 1,
                   "--out", "w.caffemodel"]),
])
def test_a_closed_pipe_ends_quietly(name, args, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", f"cyffe.tools.{name}", *map(str, args)],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    process.stdout.close()                  # `tool | head -0`: the reader is gone at once
    err = process.stderr.read()
    assert process.wait(timeout=300) == 128 + 13
    assert "Broken pipe" not in err and "Traceback" not in err, err


def test_test_net_runs_one_pass_over_the_test_data_by_default(tmp_path):
    solver = cyffe.SGDSolver(f'net: "{NET}"\nbase_lr: 0.05\nlr_policy: "fixed"\nmax_iter: 5\n',
                             log=lambda line: None)
    solver.solve()
    solver.net.save(tmp_path / "w.caffemodel")
    r = tool("test_net", "--proto", NET, "--weights", "w.caffemodel", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    net = cyffe.Net(str(NET), cyffe.TEST)
    batches = batches_per_pass(net)
    assert batches * net.blobs["data"].shape[0] >= 360 > (batches - 1) * net.blobs["data"].shape[0]
    assert f"Batch {batches - 1}, accuracy" in r.stdout and f"Batch {batches}," not in r.stdout


def test_a_net_without_a_loss_does_not_train():
    with pytest.raises(cyffe.NetError, match="no loss to minimize"):
        cyffe.SGDSolver(f'net_param {{ {INPUT} layer {{ name: "ip" type: "InnerProduct" '
                        'bottom: "x" top: "ip" inner_product_param { num_output: 2 } } }\n'
                        'base_lr: 0.1\nmax_iter: 1\n', log=lambda line: None)


def test_upgrade_net_does_not_create_folders(tmp_path):
    r = tool("upgrade_net", NET, "missing/out.prototxt", cwd=tmp_path)
    assert r.returncode == 1 and "missing" in r.stderr and "does not exist" in r.stderr
    assert not (tmp_path / "missing").exists()


def test_diagnose_without_matplotlib_fails_before_training(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert train_net.main(["--proto", str(NET), "--diagnose"]) == 1
    captured = capsys.readouterr()
    assert "matplotlib" in captured.err and "Iteration" not in captured.out


def test_the_progress_bar_shows_images_per_second_as_a_plain_number():
    class Bar:
        format_dict = {"rate": 197.2}

        def update(self, n):
            self.n = n

        def set_postfix(self, postfix, refresh):
            self.postfix = postfix

    class Solver:
        net = type("N", (), {"batch_size": 64})()
        param = type("P", (), {"iter_size": 1})()
        smoothed_loss = 0.123456

        def add_callback(self, callback):
            self.callback = callback

    bar, solver = Bar(), Solver()
    train_net.follow(solver, bar)
    solver.callback(solver)
    assert bar.postfix == {"loss": "0.1235", "img/s": "12,621"}


@pytest.mark.parametrize("name", TOOLS)
def test_help_is_alike_in_every_tool(name, tmp_path):
    r = tool(name, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    prog = "cyffe" if name == "caffe" else name
    assert r.stdout.startswith(f"usage: {prog}")
    assert "--debug" in r.stdout and "--version" in r.stdout
    assert "(default: None)" not in r.stdout and "(default: False)" not in r.stdout
    long_flags = re.findall(r"(?<![\w-])--\w[\w-]*", r.stdout)
    assert not [f for f in long_flags if "-" in f[2:]], "Caffe's spelling is --flag_name"
    v = tool(name, "--version", cwd=tmp_path)
    assert v.returncode == 0 and cyffe.__version__ in v.stdout


# -- classify -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights") / "digits.caffemodel"
    solver = cyffe.SGDSolver(f'net: "{NET}"\nbase_lr: 0.05\nmomentum: 0.9\n'
                             'lr_policy: "fixed"\nmax_iter: 150\nrandom_seed: 3\n',
                             log=lambda line: None)
    solver.solve()
    solver.net.save(out)
    return out


def test_the_deploy_net_loads_the_trained_weights_and_gives_probabilities(digits_weights):
    net = cyffe.Net(str(DIGITS / "deploy.prototxt"), cyffe.TEST, weights=str(digits_weights))
    samples = np.load(DIGITS / "samples.npy")
    net.blobs["data"].reshape(10, 1, 8, 8)
    net.reshape()
    net.blobs["data"].data[...] = samples[:, None]
    prob = net.forward()["prob"]
    np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)
    assert (prob.argmax(axis=1) == np.arange(10)).sum() >= 8


def test_classify_prints_the_top_classes_of_each_sample(digits_weights, tmp_path):
    r = tool("classify", DIGITS / "deploy.prototxt", digits_weights, DIGITS / "samples.npy",
             "--top", 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 10
    right = 0
    for digit, line in enumerate(lines):
        found = re.fullmatch(rf"samples\.npy\[{digit}\]: (\d) \(([\d.]+)\), \d \([\d.]+\), "
                             r"\d \([\d.]+\)", line)
        assert found, line
        right += int(found.group(1)) == digit
    assert right >= 8


def test_classify_with_labels_and_an_image_file(digits_weights, tmp_path):
    image = pytest.importorskip("PIL.Image")
    pixels = (np.load(DIGITS / "samples.npy")[3] * 255).astype(np.uint8)
    image.fromarray(pixels).save(tmp_path / "three.png")
    (tmp_path / "labels.txt").write_text("".join(f"digit {d}\n" for d in range(10)))
    r = tool("classify", DIGITS / "deploy.prototxt", digits_weights, "three.png",
             "--labels", "labels.txt", "--top", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"three\.png: digit \d \([\d.]+\)", r.stdout.strip())


def test_classify_needs_a_deploy_net(digits_weights, tmp_path):
    r = tool("classify", NET, digits_weights, DIGITS / "samples.npy", cwd=tmp_path)
    assert r.returncode == 1 and "Input layer" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_mnist_deploy_net_classifies_with_caffes_lenet_weights():
    from helpers import mnist
    from helpers.shared import shared_path
    weights = shared_path("data", "caffe-models", "lenet", "lenet_iter_10000.caffemodel")
    net = cyffe.Net(str(REPO / "examples" / "mnist" / "deploy.prototxt"), cyffe.TEST,
                    weights=str(weights))
    images, labels = mnist.load("t10k", 64)
    net.blobs["data"].data[...] = images.reshape(64, 1, 28, 28) * np.float32(0.00390625)
    prob = net.forward()["prob"]
    np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)
    assert (prob.argmax(axis=1) == labels).mean() >= 0.95
