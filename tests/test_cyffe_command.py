"""The `cyffe` command: Caffe's `caffe` tool, its commands and flags as Caffe users type them.

The tutorial test runs Caffe's MNIST tutorial (create_mnist.sh, train_lenet.sh, a resume,
`caffe test`, `caffe time`) with `caffe` spelled `cyffe`, on Caffe's own unchanged solver and
net files from the shared folder, in a folder laid out as $CAFFE_ROOT.
"""
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cyffe
from cyffe.layers import backend
from cyffe.tools import caffe, cli
from helpers.shared import shared_path
from helpers.tool_errors import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"
HAS_CUPY = importlib.util.find_spec("cupy") is not None


def cyffe_command():
    """The installed `cyffe` script when it is on PATH, else the module it runs."""
    script = shutil.which("cyffe")
    return [script] if script else [sys.executable, "-m", "cyffe.tools.caffe"]


def environment(backend_mode=None):
    env = {k: v for k, v in os.environ.items() if k != backend.BACKEND_VARIABLE}
    if backend_mode:
        env[backend.BACKEND_VARIABLE] = backend_mode
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(*args, cwd, env=None):
    return subprocess.run(cyffe_command() + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# -- version and parsing -----------------------------------------------------------------

def test_version_is_the_packages(tmp_path):
    with open(REPO / "pyproject.toml", "rb") as f:
        assert cyffe.__version__ == tomllib.load(f)["project"]["version"]
    r = run("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"cyffe {cyffe.__version__}"


def test_console_script_is_registered():
    text = (REPO / "pyproject.toml").read_text()
    assert 'cyffe = "cyffe.tools.caffe:main"' in text
    assert 'classify = "cyffe.tools.classify:main"' in text


@pytest.mark.parametrize("argv", [
    ["train", "--solver=s.prototxt", "-weights", "a.caffemodel,b.caffemodel"],
    ["train", "-solver", "s.prototxt", "--weights=a.caffemodel,b.caffemodel"],
    ["-solver=s.prototxt", "train", "-weights=a.caffemodel,b.caffemodel"],
])
def test_gflags_spellings(argv):
    parser = caffe.build_parser()
    args = parser.parse_args(cli.caffe_spellings(parser, argv))
    assert (args.command, args.solver, args.weights) == (
        "train", "s.prototxt", "a.caffemodel,b.caffemodel")


def test_every_caffe_flag_is_taken():
    parser = caffe.build_parser()
    argv = ["time", "-model", "m", "-iterations", "10", "-gpu", "all", "-phase", "test",
            "-level", "2", "-stage", "a,b", "-stage", "c", "-sigint_effect", "snapshot",
            "-sighup_effect", "none", "-snapshot", "x.solverstate"]
    args = parser.parse_args(cli.caffe_spellings(parser, argv))
    assert (args.model, args.iterations, args.gpu, args.phase, args.level) == (
        "m", 10, "all", "TEST", 2)
    assert cli.stages(args) == ["a", "b", "c"]
    assert (args.sigint_effect, args.sighup_effect, args.snapshot) == (
        "snapshot", "none", "x.solverstate")


@pytest.mark.parametrize("argv, message", [
    (["train"], "Need a solver definition to train"),
    (["test", "-weights", "w"], "Need a model definition to score"),
    (["test", "-model", "m"], "Need model weights to score"),
    (["time"], "Need a model definition to time"),
    (["device_query"], "Need a device ID to query"),
    (["train", "-solver", "s", "-weights", "w", "-snapshot", "x"], "not both"),
    (["frobnicate"], "invalid choice"),
])
def test_caffe_usage_errors(argv, message, tmp_path):
    r = run(*argv, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_no_command_prints_the_usage(tmp_path):
    r = run(cwd=tmp_path)
    assert r.returncode == 1 and "train" in r.stdout and "device_query" in r.stdout


def test_device_query_without_a_gpu_is_one_line(tmp_path):
    if HAS_CUPY:
        pytest.skip("CuPy is installed: a GPU may answer")
    r = run("device_query", "-gpu", "0", cwd=tmp_path, env=environment())
    assert_one_line_error(r, "cyffe: error:", "GPU 0")


def test_gpu_ids():
    assert cli.gpu_ids("0") == [0] and cli.gpu_ids("0,1") == [0, 1]
    assert cli.gpu_ids("all") == list(range(backend.gpu_count()))
    for bad in ("x", "-1", ","):
        with pytest.raises(cyffe.CyffeError, match="device ids"):
            cli.gpu_ids(bad)


# -- the CPU/GPU choice ------------------------------------------------------------------

class Flags:
    def __init__(self, gpu=None, cpu=False):
        self.gpu, self.cpu = gpu, cpu


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed: a GPU may be usable")
def test_a_solver_asking_for_the_gpu_runs_on_the_cpu_with_one_warning(mode, monkeypatch,
                                                                      capsys):
    monkeypatch.delenv(backend.BACKEND_VARIABLE, raising=False)
    cli.choose_device("cyffe", Flags(), requested=0)
    assert mode.mode() == "cpu"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cyffe: warning: the solver asks for GPU 0")
    assert "running on the CPU" in err[0]


def test_an_explicit_cpu_choice_wins(mode, monkeypatch, capsys):
    monkeypatch.setenv(backend.BACKEND_VARIABLE, "gpu-emulated")
    cli.choose_device("cyffe", Flags(cpu=True), requested=0)
    assert mode.mode() == "cpu"
    monkeypatch.setenv(backend.BACKEND_VARIABLE, "cpu")
    cli.choose_device("cyffe", Flags(), requested=0)
    assert mode.mode() == "cpu" and capsys.readouterr().err == ""
    cli.choose_device("cyffe", Flags(gpu="0"), requested=0)
    assert mode.mode() == "cpu" and "ignored: CYFFE_BACKEND=cpu" in capsys.readouterr().err


def test_a_usable_gpu_is_taken(mode, monkeypatch, capsys):
    monkeypatch.setenv(backend.BACKEND_VARIABLE, "gpu-emulated")
    cli.choose_device("cyffe", Flags(), requested=0)
    assert mode.mode() == "gpu-emulated" and capsys.readouterr().err == ""


def test_several_gpus_need_one_process_each(mode, monkeypatch):
    monkeypatch.setenv(backend.BACKEND_VARIABLE, "gpu-emulated")
    with pytest.raises(cyffe.CyffeError, match="mpiexec -n 2"):
        cli.choose_device("cyffe", Flags(gpu="0,1"))


# -- the commands on the digits example ----------------------------------------------------

def test_train_test_and_time_on_the_digits(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{DIGITS / "lenet_train_test.prototxt"}"\ntest_iter: 2\n'
                      'test_interval: 1000\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "fixed"\n'
                      'max_iter: 30\ndisplay: 10\nsnapshot_prefix: "digits"\nrandom_seed: 1\n'
                      'solver_mode: CPU\n')
    r = run("train", f"--solver={solver}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "digits_iter_30.caffemodel").is_file()
    r = run("test", "-model", DIGITS / "lenet_train_test.prototxt",
            "-weights", "digits_iter_30.caffemodel", "-iterations", 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Batch 2, accuracy = " in r.stdout and "Batch 3," not in r.stdout
    accuracy = float(re.search(r"^accuracy = ([\d.]+)", r.stdout, re.M).group(1))
    assert accuracy > 0.5
    r = run("time", "-model", DIGITS / "lenet_train_test.prototxt", "-iterations", 2,
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "(TRAIN)" in r.stdout and re.search(r"conv1\s+Convolution\s+[\d.]+\s+[\d.]+", r.stdout)
    assert "Backward pass:" in r.stdout


# -- Caffe's MNIST tutorial ------------------------------------------------------------------

def stop_at_display(command, cwd, env):
    """Run a training command until it logs its first "Iteration N (" line (Caffe's log lines
    go to stderr, as glog's), then SIGINT it. Returns (exit code, stdout, stderr)."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if re.search(r"\] Iteration [1-9]\d* \(|^Iteration [1-9]\d* \(", line):
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    return process.returncode, out, "".join(lines) + err


def test_caffes_mnist_tutorial_with_caffe_spelled_cyffe(tmp_path):
    caffe_files = shared_path("data", "caffe-prototxt", "examples", "mnist")
    mnist = shared_path("data", "mnist")
    root = tmp_path / "caffe"                        # $CAFFE_ROOT
    (root / "examples" / "mnist").mkdir(parents=True)
    for name in ("lenet_solver.prototxt", "lenet_train_test.prototxt", "lenet.prototxt"):
        shutil.copy(caffe_files / name, root / "examples" / "mnist" / name)
    env = environment(None if not HAS_CUPY else "cpu")

    # create_mnist.sh: convert_mnist_data.bin IMAGES LABELS DB --backend=lmdb
    for split, db in (("train", "mnist_train_lmdb"), ("t10k", "mnist_test_lmdb")):
        r = subprocess.run([sys.executable, "-m", "cyffe.tools.convert_mnist",
                            mnist / f"{split}-images-idx3-ubyte.gz",
                            mnist / f"{split}-labels-idx1-ubyte.gz",
                            f"examples/mnist/{db}", "--backend=lmdb"],
                           cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr

    # train_lenet.sh: caffe train --solver=examples/mnist/lenet_solver.prototxt, stopped early
    code, out, err = stop_at_display(
        cyffe_command() + ["train", "--solver=examples/mnist/lenet_solver.prototxt"], root, env)
    assert code == 0, err
    assert "Iteration 0, Testing net (#0)" in err
    if not HAS_CUPY:          # the file says solver_mode: GPU
        warnings = [line for line in err.splitlines() if "warning:" in line]
        assert len(warnings) == 1 and "solver_mode: GPU" in warnings[0], err
        assert "running on the CPU" in warnings[0]
    states = list((root / "examples" / "mnist").glob("lenet_iter_*.solverstate"))
    assert len(states) == 1, (out, err)
    first = int(re.search(r"_iter_(\d+)", states[0].name).group(1))
    assert first >= 1

    # resume: caffe train -solver S -snapshot examples/mnist/lenet_iter_N.solverstate
    code, out, err = stop_at_display(
        cyffe_command() + ["train", "-solver", "examples/mnist/lenet_solver.prototxt",
                           "-snapshot", f"examples/mnist/{states[0].name}"], root, env)
    assert code == 0, err
    states = sorted((root / "examples" / "mnist").glob("lenet_iter_*.caffemodel"),
                    key=lambda p: int(re.search(r"_iter_(\d+)", p.name).group(1)))
    last = states[-1]
    assert int(re.search(r"_iter_(\d+)", last.name).group(1)) > first

    # caffe test -model M -weights W -iterations 100
    r = run("test", "-model", "examples/mnist/lenet_train_test.prototxt",
            "-weights", f"examples/mnist/{last.name}", "-iterations", 100, cwd=root, env=env)
    assert r.returncode == 0, r.stderr
    accuracy = float(re.search(r"^accuracy = ([\d.]+)", r.stdout, re.M).group(1))
    assert accuracy > 0.8, r.stdout[-500:]

    # caffe time -model M -iterations 10: forward and backward of every layer, in TRAIN
    r = run("time", "-model", "examples/mnist/lenet_train_test.prototxt", "-iterations", 10,
            cwd=root, env=env)
    assert r.returncode == 0, r.stderr
    for layer in ("mnist", "conv1", "pool1", "conv2", "ip1", "relu1", "ip2", "loss"):
        assert re.search(rf"^\s*{layer}\s+\w+\s+[\d.]+\s+[\d.]+$", r.stdout, re.M), layer
