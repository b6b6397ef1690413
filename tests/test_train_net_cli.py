"""train_net from the command line: training, solver files, and one-line errors."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cyffe
from cyffe.net.solver import LR_POLICIES
from cyffe.tools.train_net import build_parser
from helpers.glog_lines import messages

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "lenet_train_test.prototxt"


def train_net(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cyffe.tools.train_net", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = messages(result.stderr)                      # besides Caffe's log lines
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_trains_the_digits_example_and_writes_weights(tmp_path):
    r = train_net("--proto", DIGITS, "--max-iter", 60, "--test-interval", 30, "--display", 20,
                  "--seed", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # Caffe's log lines go to stderr, as glog's; what train_net says itself, to stdout.
    assert "Iteration 20" in r.stderr and "lr = " in r.stderr
    assert "Test net output #0: accuracy = " in r.stderr
    out = tmp_path / "LeNet-digits_iter_60.caffemodel"
    assert f"Wrote trained weights to {out}" in r.stdout
    net = cyffe.Net(str(DIGITS), cyffe.TEST, weights=str(out))
    assert np.any(net.params["conv1"][0].data != 0)


def test_out_flag_and_solver_file_with_relative_net(tmp_path):
    (tmp_path / "nets").mkdir()
    shutil.copy(DIGITS, tmp_path / "nets" / "net.prototxt")
    for name in ("train.txt", "test.txt", "train.h5", "test.h5"):
        shutil.copy(DIGITS.parent / name, tmp_path / "nets" / name)
    (tmp_path / "solver.prototxt").write_text(
        'net: "nets/net.prototxt"\ntest_iter: 1\ntest_interval: 10\nbase_lr: 0.01\n'
        'momentum: 0.9\nlr_policy: "fixed"\nmax_iter: 10\ndisplay: 5\n')
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    r = train_net("--solver", tmp_path / "solver.prototxt", "--out", "w/final.caffemodel",
                  cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "w" / "final.caffemodel").is_file()
    assert "Iteration 10, Testing net (#0)" in r.stderr


def test_help_documents_the_flags(tmp_path):
    r = train_net("--help", cwd=tmp_path)
    for flag in ("--proto", "--solver", "--base_lr", "--momentum", "--weight_decay", "--lr_policy",
                 "--gamma", "--power", "--stepsize", "--stepvalue", "--max_iter",
                 "--test_interval", "--test_iter", "--display", "--seed", "--out", "--debug",
                 "--level", "--stage", "--gpu", "--cpu", "--version"):
        assert flag in r.stdout
    assert "(default: None)" not in r.stdout


@pytest.mark.parametrize("spelling", [
    ["--max_iter", "7"], ["--max-iter", "7"], ["-max_iter", "7"], ["--max_iter=7"],
    ["-max_iter=7"]])
def test_caffe_and_dash_spellings_of_a_flag_are_one(spelling):
    from cyffe.tools import cli
    parser = build_parser()
    args = parser.parse_args(cli.caffe_spellings(parser, ["--proto", "n"] + spelling))
    assert args.max_iter == 7


def test_gflags_booleans():
    from cyffe.tools import cli
    parser = build_parser()
    for argv, expected in ((["--no_progress=true"], True), (["-no_progress=false"], False),
                           (["--nono_progress"], False), (["--no_progress"], True)):
        args = parser.parse_args(cli.caffe_spellings(parser, ["--proto", "n"] + argv))
        assert args.no_progress is expected, argv


def test_console_script_is_installed():
    if shutil.which("train_net") is None:
        pytest.skip("train_net is not on PATH (cyffe not installed with pip)")
    r = subprocess.run(["train_net", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--proto" in r.stdout


INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


@pytest.mark.parametrize("text, fragments", [
    ('name: "bad"\nlayer {\n  name: "a"\n  typ: "ReLU"\n}\n', ["net.prototxt:4:", "typ"]),
    (INPUT + 'layer { name: "c" type: "Convolutoin" bottom: "x" top: "c" }\n',
     ["unknown layer type 'Convolutoin'", "known types:", "Convolution"]),
    (INPUT + 'layer { name: "r" type: "ReLU" bottom: "nothing" top: "r" }\n',
     ["layer 'r'", "'nothing'"]),
    (INPUT + 'layer { name: "in2" type: "Input" top: "y" input_param { shape { dim: 2 dim: 4 } } }\n'
     'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "e" }\n',
     ["layer 'e'", "(2, 3)", "(2, 4)"]),
    ('layer { name: "d" type: "HDF5Data" top: "data" top: "label" '
     'hdf5_data_param { source: "missing_list.txt" batch_size: 4 } }\n', ["missing_list.txt"]),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, text, fragments):
    (tmp_path / "net.prototxt").write_text(text)
    r = train_net("--proto", "net.prototxt", "--max-iter", 1, cwd=tmp_path)
    assert_one_line_error(r, *fragments)
    assert not list(tmp_path.glob("*.caffemodel"))


def test_missing_net_file(tmp_path):
    assert_one_line_error(train_net("--proto", "nope.prototxt", cwd=tmp_path), "nope.prototxt")


def test_inner_product_fed_the_wrong_size_names_layer_and_sizes(tmp_path):
    good = tmp_path / "good.prototxt"
    good.write_text(INPUT.replace("dim: 3", "dim: 5") +
                    'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" '
                    'inner_product_param { num_output: 2 } }\n')
    cyffe.Net(str(good)).save(str(tmp_path / "w.caffemodel"))
    with pytest.raises(cyffe.ShapeError, match="ip"):
        cyffe.Net(INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" '
                  'inner_product_param { num_output: 2 } }\n', weights=str(tmp_path / "w.caffemodel"))


def test_diverging_training_stops_with_the_iteration_and_layer(tmp_path):
    r = train_net("--proto", DIGITS, "--base-lr", "1e30", "--max-iter", 50, "--test-interval", 0,
                  cwd=tmp_path)
    assert_one_line_error(r, "iteration", "layer '")
    assert not list(tmp_path.glob("*.caffemodel"))


def test_debug_shows_the_traceback(tmp_path):
    r = train_net("--proto", "nope.prototxt", "--debug", cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_lr_policy_flag_takes_every_policy_the_solver_knows(tmp_path):
    for policy in LR_POLICIES:
        args = build_parser().parse_args(["--proto", "n", "--lr_policy", policy])
        assert args.lr_policy == policy
    r = train_net("--proto", DIGITS, "--lr-policy", "cosine", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice: 'cosine'" in r.stderr
