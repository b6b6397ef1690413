"""Caffe's own client code, run unchanged against cyffe: pycaffe's unit tests, draw_net.py,
classify.py and the training-log parsers.

The files are Caffe's (BSD-2), read from ../shared/data/caffe-clients (README there),
never copied into this repository. `import caffe` is answered by cyffe through the
package in tests/helpers/caffe_shim, put first on PYTHONPATH of a child Python.
"""
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from helpers.shared import SHARED

CLIENTS = SHARED / "data" / "caffe-clients"
PYCAFFE_TESTS = CLIENTS / "python" / "caffe" / "test"
PROTOTXT = SHARED / "data" / "caffe-prototxt"
SHIM = Path(__file__).resolve().parent / "helpers" / "caffe_shim"

needs_clients = pytest.mark.skipif(
    not PYCAFFE_TESTS.is_dir(),
    reason=f"{CLIENTS} is absent: put the team's shared/ folder beside the checkout or set "
           "CYFFE_SHARED")

PYCAFFE_MODULES = ["test_coord_map", "test_draw", "test_io", "test_layer_type_list", "test_nccl",
                   "test_net", "test_net_spec", "test_python_layer",
                   "test_python_layer_with_param_str", "test_solver"]


def caffe_environment(*folders):
    """The environment of a child Python whose `import caffe` is cyffe (folders after the shim)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM), *map(str, folders),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Caffe's scripts run `python`: this interpreter's folder first on PATH.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def caffe_tree(root):
    """A folder laid out as Caffe's source tree (python/caffe/test, models, examples), linked
    to ../shared: test_draw walks the tree's models/ and examples/ for prototxts."""
    (root / "python" / "caffe").mkdir(parents=True)
    (root / "python" / "caffe" / "test").symlink_to(PYCAFFE_TESTS, target_is_directory=True)
    for name in ("models", "examples"):
        (root / name).symlink_to(PROTOTXT / name, target_is_directory=True)
    return root / "python" / "caffe" / "test"


@needs_clients
@pytest.mark.parametrize("module", PYCAFFE_MODULES)
def test_pycaffe_own_unit_tests_pass(module, tmp_path):
    if module == "test_draw" and shutil.which("dot") is None:
        pytest.skip("pycaffe's test_draw renders PNGs with Graphviz's dot, which is not on PATH")
    tests = caffe_tree(tmp_path / "caffe")
    work = tmp_path / "work"                    # test_solver snapshots into the working directory
    work.mkdir()
    env = caffe_environment(tests)
    # pycaffe's tests are written for a CPU build: test_clear_param_diffs holds a param's
    # diff array across clear_param_diffs, which on a GPU (real Caffe's too) zeroes the
    # device copy only. So they run on the CPU whatever CYFFE_BACKEND this suite runs with.
    env.pop("CYFFE_BACKEND", None)
    r = subprocess.run([sys.executable, "-m", "unittest", "-v", module], cwd=work, env=env,
                       capture_output=True, text=True, timeout=900)
    report = r.stderr
    ran = re.search(r"^Ran (\d+) tests?", report, re.M)
    assert r.returncode == 0 and ran and int(ran.group(1)) > 0, report[-4000:]
    # Every test ran: none skipped (the Python-layer tests skip where a Caffe lacks the layer).
    assert re.search(r"^OK$", report, re.M), report[-4000:]


# -- Caffe's training-log parsers over train_net's log --------------------------------------

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "lenet_train_test.prototxt"
EXTRA = CLIENTS / "tools" / "extra"


@pytest.fixture(scope="module")
def caffe_log(tmp_path_factory):
    """A short digits run: (the folder, its log as `train_net ... 2>&1 | tee` keeps it, the
    events of its --log run.jsonl)."""
    import json
    folder = tmp_path_factory.mktemp("caffe_log")
    log = folder / "caffe.log"
    with open(log, "w") as out:
        r = subprocess.run([sys.executable, "-m", "cyffe.tools.train_net", "--proto", str(DIGITS),
                            "--max-iter", "40", "--display", "10", "--test-interval", "20",
                            "--seed", "1", "--log", "run.jsonl"],
                           cwd=folder, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert r.returncode == 0, log.read_text()[-3000:]
    events = [json.loads(line) for line in (folder / "run.jsonl").read_text().splitlines()]
    return folder, log, events


def load_parse_log():
    """Caffe's parse_log.py as a module. It is Python 2 in one line that its functions here
    never reach (a `print` statement under `verbose`): that line is made a call in memory
    so Python 3 compiles the file, which is otherwise run as Caffe ships it."""
    import types
    source = (EXTRA / "parse_log.py").read_text()
    source, fixed = re.subn(r"print '(Wrote %s)' % output_filename",
                            r"print('\1' % output_filename)", source)
    assert fixed == 1, "parse_log.py changed: revisit load_parse_log"
    module = types.ModuleType("parse_log")
    module.__file__ = str(EXTRA / "parse_log.py")
    sys.path.insert(0, str(EXTRA))                # it imports extract_seconds from beside it
    try:
        with warnings.catch_warnings():       # its regexes are written with '\d' escapes
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(source, module.__file__, "exec")
        exec(code, module.__dict__)
    finally:
        sys.path.remove(str(EXTRA))
    return module


def close(a, b):
    return a == pytest.approx(b, rel=2e-5, abs=1e-7)


@needs_clients
def test_caffe_parse_log_py_reads_train_net_log(caffe_log, tmp_path):
    folder, log, events = caffe_log
    parse_log = load_parse_log()
    train_rows, test_rows = parse_log.parse_log(str(log))
    train = [e for e in events if e["phase"] == "train"]
    test = [e for e in events if e["phase"] == "test"]
    # Every display and every test, at the iterations --log has them, with the same values;
    # as in Caffe's logs, the display after the last step has a loss but no `Train net
    # output` lines, so the tool makes no row of it.
    stepped = train[:-1]
    assert [row["NumIters"] for row in train_rows] == [e["iter"] for e in stepped]
    assert [row["NumIters"] for row in test_rows] == [e["iter"] for e in test]
    for row, event in zip(train_rows, stepped):
        assert close(row["loss"], event["loss"]), (row, event)       # average_loss 1
    for row, event in zip(test_rows, test):
        assert close(row["accuracy"], event["accuracy"]) and close(row["loss"], event["loss"])
    # Caffe's tool takes a row's rate from the last `lr = ` line before it, which Caffe (and
    # cyffe) logs after the display: the previous display's; the first row gets the second's.
    rates = [e["lr"] for e in stepped]
    assert [row["LearningRate"] for row in train_rows[1:]] == pytest.approx(rates[:-1], rel=2e-5)
    assert train_rows[0]["LearningRate"] == train_rows[1]["LearningRate"]
    seconds = [row["Seconds"] for row in train_rows]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    # And it writes them as its CSV files.
    parse_log.save_csv_files(str(log), str(tmp_path), train_rows, test_rows)
    header = (tmp_path / "caffe.log.test").read_text().splitlines()[0]
    assert header == "NumIters,Seconds,LearningRate,accuracy,loss"


@needs_clients
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("column") is None,
                    reason="parse_log.sh needs bash, sed, awk, grep and column")
def test_caffe_parse_log_sh_reads_train_net_log(caffe_log, tmp_path):
    folder, log, events = caffe_log
    # Run from a folder of links: parse_log.sh calls extract_seconds.py from its own folder
    # and writes its tables into the working directory.
    for name in ("parse_log.sh", "extract_seconds.py"):
        (tmp_path / name).symlink_to(EXTRA / name)
    shutil.copy(log, tmp_path / "caffe.log")
    r = subprocess.run(["bash", str(tmp_path / "parse_log.sh"), "caffe.log"], cwd=tmp_path,
                       env=caffe_environment(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    def table(name):
        lines = (tmp_path / name).read_text().splitlines()
        return lines[0], [[float(v) for v in line.split()] for line in lines[1:]]

    header, test_rows = table("caffe.log.test")
    assert header == "#Iters Seconds TestAccuracy TestLoss"
    test = [e for e in events if e["phase"] == "test"]
    assert [row[0] for row in test_rows] == [e["iter"] for e in test]
    for row, event in zip(test_rows, test):
        assert close(row[2], event["accuracy"]) and close(row[3], event["loss"])
    header, train_rows = table("caffe.log.train")
    assert header == "#Iters Seconds TrainingLoss LearningRate"
    train = [e for e in events if e["phase"] == "train"]
    # The shell script pairs each `loss = ` line with the `lr = ` lines in order; Caffe's
    # final `Iteration N, loss = ` line has no rate after it.
    assert [row[0] for row in train_rows] == [e["iter"] for e in train]
    for row, event in zip(train_rows, train):
        assert close(row[2], event["loss"])
        if len(row) == 4:
            assert close(row[3], event["lr"])
    assert all(len(row) == 4 for row in train_rows[:-1])


# -- Caffe's command-line scripts over `caffe` ------------------------------------------------

SCRIPTS = CLIENTS / "python"
CIFAR = SHARED / "data" / "caffe-models" / "cifar10_quick"


def run_script(name, *args, cwd):
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], cwd=cwd,
                          env=caffe_environment(), capture_output=True, text=True, timeout=600)


@needs_clients
def test_caffe_draw_net_py_draws_every_phase(tmp_path):
    net = PROTOTXT / "examples" / "mnist" / "lenet_train_test.prototxt"
    r = run_script("draw_net.py", net, tmp_path / "all.dot", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Drawing net to {tmp_path / 'all.dot'}\n"
    everything = (tmp_path / "all.dot").read_text()
    assert everything.startswith('digraph "LeNet"') and "(Data)" in everything
    assert everything.count("(Data)") == 2                  # ALL: the TRAIN and TEST data layers
    r = run_script("draw_net.py", net, tmp_path / "test.dot", "--phase", "TEST", "--rankdir",
                   "TB", "--display_lrm", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    test = (tmp_path / "test.dot").read_text()
    assert test.count("(Data)") == 1 and "rankdir=TB;" in test and "lr mult: 1, 2" in test
    if shutil.which("dot") is not None:
        r = run_script("draw_net.py", net, tmp_path / "net.png", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "net.png").read_bytes().startswith(b"\x89PNG")


@needs_clients
def test_caffe_classify_py_classifies_a_folder_of_images(tmp_path):
    pytest.importorskip("PIL", reason="caffe.io.load_image reads images with Pillow")
    import glob

    import numpy as np

    import cyffe
    if not CIFAR.is_dir():
        pytest.skip(f"{CIFAR} is absent")
    images = tmp_path / "images"
    shutil.copytree(CIFAR / "samples", images)
    # The training mean is not shipped; CIFAR-10's per-channel mean (RGB, as this net was
    # trained: no channel swap) is close to it.
    mean = np.empty((3, 32, 32), np.float32)
    mean[:] = np.array([125.3, 123.0, 113.9], np.float32)[:, None, None]
    np.save(tmp_path / "mean.npy", mean)
    model = CIFAR / "cifar10_quick.prototxt"
    weights = CIFAR / "cifar10_quick_iter_5000.caffemodel"
    r = run_script("classify.py", images, tmp_path / "out.npy", "--model_def", model,
                   "--pretrained_model", weights, "--images_dim", "32,32", "--mean_file",
                   tmp_path / "mean.npy", "--channel_swap", "", "--ext", "png", "--center_only",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "CPU mode" in r.stdout and "Classifying 3 inputs." in r.stdout
    predictions = np.load(tmp_path / "out.npy")
    # The same forward, by hand: images in [0, 1] * 255, C x H x W, less the mean.
    files = glob.glob(str(images) + "/*.png")                # classify.py's order
    net = cyffe.Net(str(model), cyffe.TEST, weights=str(weights))
    batch = np.stack([cyffe.io.load_image(f).transpose(2, 0, 1) * 255 - mean for f in files])
    net.blobs["data"].reshape(*batch.shape)
    expected = net.forward(data=batch)["prob"]
    np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-6)
    classes = {os.path.basename(f): int(np.argmax(p)) for f, p in zip(files, predictions)}
    assert classes["dog10.png"] == 5 and classes["truck10.png"] == 9     # CIFAR-10's labels
