"""The backend mode (CPU, GPU, emulated GPU) and the lazy host/device sync of blobs.

Runs on every machine: the emulated GPU mode takes the GPU code path, with
numpy arrays standing in for device memory (separate buffers, so a missing
copy between host and device shows up as a wrong number).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cyffe
from cyffe.layers import backend
from cyffe.layers.blob import Blob
from cyffe.tools import train_net
from helpers.glog_lines import messages

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "lenet_train_test.prototxt"
CUPY_MISSING = "CuPy is not installed: pip install 'cyffe[gpu]'"

MLP = """
name: "mlp"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 6 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "act" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "flat" type: "Flatten" bottom: "ip1" top: "flat" }
layer { name: "ip2" type: "InnerProduct" bottom: "flat" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""
SOLVER = """
base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed" max_iter: 10 display: 0
"""
X = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
Y = np.array([0, 2, 1, 2], np.float32)


@pytest.fixture
def no_cupy(monkeypatch):
    """CuPy made unimportable, and no $CYFFE_BACKEND asking for emulation."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.delenv(backend.BACKEND_VARIABLE, raising=False)


def fed(net):
    net.blobs["data"].data[...] = X
    net.blobs["label"].data[...] = Y
    return net


# -- the mode switch -------------------------------------------------------------------

def test_modes_switch_and_say_which(mode):
    cyffe.set_mode_gpu(emulate=True)
    assert mode.mode() == "gpu-emulated" and mode.gpu_mode()
    assert mode.device_module() is np
    cyffe.set_mode_cpu()
    assert mode.mode() == "cpu" and not mode.gpu_mode()


def test_set_mode_gpu_without_cupy_says_how_to_install_it(mode, no_cupy):
    cyffe.set_mode_cpu()
    with pytest.raises(cyffe.CyffeError) as e:
        cyffe.set_mode_gpu()
    assert str(e.value) == CUPY_MISSING
    assert mode.mode() == "cpu"                  # nothing changed


def test_set_device_without_cupy_only_records_the_id(mode, no_cupy):
    cyffe.set_mode_cpu()
    cyffe.set_device(2)
    assert mode.device() == 2 and mode.mode() == "cpu"


def test_the_environment_variable_sets_the_mode(mode, monkeypatch):
    monkeypatch.setenv("CYFFE_BACKEND", "gpu-emulated")
    mode.mode_from_environment()
    assert mode.mode() == "gpu-emulated"
    cyffe.set_mode_cpu()
    cyffe.set_mode_gpu()                         # emulates, as the variable says
    assert mode.mode() == "gpu-emulated"
    monkeypatch.setenv("CYFFE_BACKEND", "CPU")
    mode.mode_from_environment()
    assert mode.mode() == "cpu"
    monkeypatch.setenv("CYFFE_BACKEND", "tpu")
    with pytest.raises(cyffe.CyffeError, match=r"\$CYFFE_BACKEND is 'tpu'; use one of cpu, gpu"):
        mode.mode_from_environment()


def test_the_environment_variable_asking_for_a_gpu_without_cupy(mode, no_cupy, monkeypatch):
    monkeypatch.setenv("CYFFE_BACKEND", "gpu")
    with pytest.raises(cyffe.CyffeError, match=r"CuPy is not installed"):
        mode.mode_from_environment()


def test_import_reads_the_environment_variable():
    code = "import cyffe.layers.backend as b; print(b.mode())"
    env = dict(__import__("os").environ, CYFFE_BACKEND="gpu-emulated")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gpu-emulated"


# -- a blob's two copies ------------------------------------------------------------------

def test_blob_copies_cross_only_when_the_other_side_asks(mode):
    cyffe.set_mode_gpu(emulate=True)
    blob = Blob((2, 3))
    blob.data[...] = 1                               # Python writes the host copy
    assert blob.head == "host"
    with mode.device_side():
        device = blob.data
        assert np.all(device == 1)                   # copied over on the first device read
        assert not np.shares_memory(device, blob._data.host)   # a separate buffer
        device += 1                                  # a layer writes the device copy
    assert blob.head == "device"
    assert np.all(blob._data.host == 1)              # the host copy is stale until read
    assert np.all(blob.host_data() == 2)             # a read-only look syncs it ...
    assert blob.head == "synced"                     # ... and both copies agree
    with mode.device_side():
        assert blob.data is device                   # no copy back: nothing changed on the host
    host = blob.data                                 # Python may write what it reads:
    assert blob.head == "host"                       # the host copy is the current one
    host[...] = 5
    with mode.device_side():
        assert np.all(blob.data == 5)


def test_views_and_shared_blobs_share_both_copies(mode):
    cyffe.set_mode_gpu(emulate=True)
    blob = Blob((2, 6))
    flat, twin = blob.view((12,)), Blob((2, 6))
    twin.share_data(blob)
    blob.data[...] = np.arange(12).reshape(2, 6)
    with mode.device_side():
        flat.data[...] *= 2                          # through the view, on the device
    np.testing.assert_array_equal(twin.data, 2 * np.arange(12).reshape(2, 6))
    assert flat.data is flat.data                    # the reshaped view is kept


def test_in_cpu_mode_there_is_only_the_host_copy(mode):
    cyffe.set_mode_cpu()
    blob = Blob((3,))
    with mode.device_side():
        blob.data[...] = 4
    assert blob._data.device is None
    assert blob.data is blob._data.host


def test_to_host_is_a_numpy_copy():
    a = np.arange(3.0)
    b = backend.to_host(a)
    assert type(b) is np.ndarray and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)


# -- nets in emulated GPU mode ---------------------------------------------------------------

def test_a_net_in_emulated_gpu_mode_computes_what_the_cpu_does(mode):
    cyffe.set_mode_cpu()
    cyffe.set_random_seed(5)
    cpu = fed(cyffe.Net(MLP, cyffe.TRAIN))
    cpu_loss = cpu.forward()["loss"].copy()
    cpu.backward()
    cyffe.set_mode_gpu(emulate=True)
    cyffe.set_random_seed(5)
    gpu = fed(cyffe.Net(MLP, cyffe.TRAIN))
    out = gpu.forward()
    gpu.backward()
    np.testing.assert_allclose(out["loss"], cpu_loss, rtol=1e-5)
    for name in ("ip1", "ip2"):
        for a, b in zip(gpu.params[name], cpu.params[name]):
            np.testing.assert_allclose(a.diff, b.diff, rtol=1e-4, atol=1e-6)


def test_results_stay_on_the_device_until_python_reads_them(mode):
    cyffe.set_mode_gpu(emulate=True)
    net = fed(cyffe.Net(MLP, cyffe.TRAIN))
    net.forward_pass()
    ip2 = net.blobs["ip2"]
    assert ip2.head == "device"
    assert not np.any(ip2._data.host)                # not copied yet
    with mode.device_side():
        expected = ip2.data.copy()
    np.testing.assert_array_equal(ip2.data, expected)    # the read brings it over


def test_a_write_from_python_is_seen_by_the_next_forward(mode):
    cyffe.set_mode_gpu(emulate=True)
    net = fed(cyffe.Net(MLP, cyffe.TRAIN))
    first = net.forward(blobs=["ip2"])["ip2"].copy()
    net.blobs["data"].data[...] = 2 * X                  # read again, then write: pycaffe's way
    second = net.forward(blobs=["ip2"])["ip2"]
    assert not np.allclose(first, second)
    cyffe.set_mode_cpu()
    reference = cyffe.Net(MLP, cyffe.TRAIN)
    for name in ("ip1", "ip2"):
        for mine, theirs in zip(reference.params[name], net.params[name]):
            mine.data[...] = theirs.data
    reference.blobs["data"].data[...] = 2 * X
    np.testing.assert_allclose(second, reference.forward(blobs=["ip2"])["ip2"], rtol=1e-5)


def test_a_param_written_from_python_reaches_the_device(mode):
    cyffe.set_mode_gpu(emulate=True)
    net = fed(cyffe.Net(MLP, cyffe.TRAIN))
    net.forward_pass()
    net.params["ip2"][0].data[...] = 0
    assert np.all(net.forward(blobs=["ip2"])["ip2"] == 0)


def test_the_solver_updates_on_the_device_and_matches_the_cpu(mode):
    def trained(emulate):
        if emulate:
            cyffe.set_mode_gpu(emulate=True)
        else:
            cyffe.set_mode_cpu()
        cyffe.set_random_seed(11)
        param = cyffe.pb.SolverParameter()
        from google.protobuf import text_format
        text_format.Merge(SOLVER, param)
        param.net_param.CopyFrom(cyffe.Net(MLP, cyffe.TRAIN).param)
        solver = cyffe.SGDSolver(param, log=lambda line: None)
        fed(solver.net)
        solver.step(10)
        return solver

    gpu = trained(True)
    # Ten updates, and the weights never came back to the host.
    assert all(b.head == "device" for b in gpu.net.learnable_params)
    cpu = trained(False)
    for a, b in zip(gpu.net.learnable_params, cpu.net.learnable_params):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5)


def test_data_layers_fill_on_the_host_and_the_consumer_copies_once(mode):
    cyffe.set_mode_gpu(emulate=True)
    net = cyffe.Net("""
        layer { name: "data" type: "DummyData" top: "x"
                dummy_data_param { shape { dim: 3 dim: 4 } data_filler { type: "uniform" } } }
        layer { name: "sq" type: "Power" bottom: "x" top: "y" power_param { power: 2 } }
        """, cyffe.TEST)
    for _ in range(2):
        net.forward_pass()
        x = net.blobs["x"]
        assert x.head == "synced"                    # filled on the host, read by the device
        np.testing.assert_allclose(net.blobs["y"].data, x.data ** 2, rtol=1e-6)


# -- train_net ------------------------------------------------------------------------------

def test_train_net_gpu_without_cupy_is_one_clear_line(mode, no_cupy, tmp_path, capsys):
    code = train_net.main(["--proto", str(DIGITS), "--max-iter", "1", "--gpu", "0",
                           "--out", str(tmp_path / "w.caffemodel")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err == [f"train_net: error: {CUPY_MISSING}"]
    assert not (tmp_path / "w.caffemodel").exists()


def test_a_solver_file_asking_for_the_gpu_without_cupy_trains_on_the_cpu(mode, no_cupy, tmp_path,
                                                                         capsys):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{DIGITS}" base_lr: 0.01 max_iter: 1 test_iter: 1 '
                      'test_interval: 100 solver_mode: GPU\n')
    assert train_net.main(["--solver", str(solver), "--out", str(tmp_path / "w.caffemodel")]) == 0
    # One warning line; the rest of stderr is the solver's Caffe log lines.
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert warnings == [
        f"train_net: warning: the solver asks for GPU 0 (solver_mode: GPU) but no GPU is usable "
        f"({CUPY_MISSING}); running on the CPU"]
    assert mode.mode() == "cpu" and (tmp_path / "w.caffemodel").is_file()


def test_the_gpu_flag_without_cupy_is_an_error(mode, no_cupy, tmp_path, capsys):
    assert train_net.main(["--proto", str(DIGITS), "--max_iter", "1", "--gpu", "0",
                           "--out", str(tmp_path / "w.caffemodel")]) == 1
    assert capsys.readouterr().err.strip() == f"train_net: error: {CUPY_MISSING}"


def test_train_net_gpu_runs_emulated_when_the_variable_says_so(tmp_path):
    env = dict(__import__("os").environ, CYFFE_BACKEND="gpu-emulated")
    r = subprocess.run([sys.executable, "-m", "cyffe.tools.train_net", "--proto", str(DIGITS),
                        "--max-iter", "40", "--test-interval", "40", "--display", "20",
                        "--seed", "1", "--gpu", "0", "--out", "w.caffemodel"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Test net output #0: accuracy = " in r.stderr
    net = cyffe.Net(str(DIGITS), cyffe.TEST, weights=str(tmp_path / "w.caffemodel"))
    assert np.any(net.params["conv1"][0].data != 0)


def test_training_lenet_copies_nothing_back_to_the_host(mode, monkeypatch):
    # Conv, pooling, data layers, the loss and the solver: once running, no step
    # brings an array from the device to the host (the HDF5 batches go up, once each).
    from cyffe.layers import blob as blob_module
    cyffe.set_mode_gpu(emulate=True)
    param = cyffe.pb.SolverParameter(net=str(DIGITS), base_lr=0.01, momentum=0.9,
                                     weight_decay=5e-4, lr_policy="fixed", max_iter=10)
    solver = cyffe.SGDSolver(param, log=lambda line: None)
    solver.step(1)
    downloads = []
    real = blob_module._to_numpy
    monkeypatch.setattr(blob_module, "_to_numpy", lambda a: downloads.append(a) or real(a))
    solver.step(3)
    assert downloads == []
    assert np.isfinite(solver.net.blobs["loss"].data).all()  # reading is what copies
    assert len(downloads) == 1


@pytest.mark.parametrize("value, message", [("gpu", CUPY_MISSING),
                                            ("tpu", "$CYFFE_BACKEND is 'tpu'; use one of")])
def test_train_net_with_an_unusable_backend_variable_is_one_line(tmp_path, value, message):
    # CuPy blocked in the child whether or not this machine has it.
    code = ("import sys; sys.modules['cupy'] = None; from cyffe.tools.train_net import main; "
            f"sys.exit(main(['--proto', {str(DIGITS)!r}, '--max-iter', '1']))")
    env = dict(__import__("os").environ, CYFFE_BACKEND=value)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    lines = messages(r.stderr)                           # besides Caffe's log lines
    assert len(lines) == 1 and lines[0].startswith("train_net: error: " + message), r.stderr
