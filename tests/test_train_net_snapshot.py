"""train_net --snapshot (resume), --weights (fine-tune, .h5 too) and Ctrl-C / SIGHUP effects."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import cyffe
from helpers.glog_lines import GLOG_LINE, messages

# helpers/counting_data.CountingData: batch k is a function of k alone, and the layer skips
# batches, so resuming is exact; param_str is a pause per batch, so a signal surely lands
# during training.
HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")

NET = """
name: "regress"
layer {{ name: "data" type: "Python" top: "x" top: "t"
        python_param {{ module: "counting_data" layer: "CountingData"
                        param_str: "{pause}" }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param {{ num_output: 5 weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "tanh" type: "TanH" bottom: "h" top: "a" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "a" top: "y"
        inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
"""


def setup_run(tmp_path, max_iter=12, pause=0, extra=""):
    (tmp_path / "net.prototxt").write_text(NET.format(pause=pause))
    (tmp_path / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nbase_lr: 0.05\nmomentum: 0.9\nlr_policy: "step"\ngamma: 0.5\n'
        f'stepsize: 4\nmax_iter: {max_iter}\ndisplay: 1\nrandom_seed: 3\n{extra}\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HELPERS, env.get("PYTHONPATH", "")])
    return env


def command(*args):
    return [sys.executable, "-m", "cyffe.tools.train_net", "--solver", "solver.prototxt",
            *map(str, args)]


def run(tmp_path, env, *args):
    return subprocess.run(command(*args), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def params(tmp_path, weights):
    net = cyffe.Net(str(tmp_path / "net.prototxt"), cyffe.TEST, weights=str(tmp_path / weights))
    return [b.data for name in ("ip1", "ip2") for b in net.params[name]]


@pytest.fixture
def importable(monkeypatch):
    """The data layer importable here too (params() builds the net in this process)."""
    monkeypatch.syspath_prepend(HELPERS)


def test_snapshot_flag_resumes_exactly(tmp_path, importable):
    env = setup_run(tmp_path, extra="snapshot: 6")
    r = run(tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert f"Wrote trained weights to {tmp_path / 'solver_iter_12.caffemodel'}" in r.stdout
    r = run(tmp_path, env, "--snapshot", "solver_iter_6.solverstate", "--out", "resumed.caffemodel")
    assert r.returncode == 0, r.stderr
    assert "Iteration 6" in r.stderr and "Iteration 0," not in r.stderr
    for straight, resumed in zip(params(tmp_path, "solver_iter_12.caffemodel"),
                                 params(tmp_path, "resumed.caffemodel")):
        np.testing.assert_array_equal(straight, resumed)


@pytest.mark.parametrize("max_iter", [4, 2])
def test_resuming_at_or_past_max_iter_snapshots_as_caffe(tmp_path, max_iter):
    env = setup_run(tmp_path, max_iter=4)
    assert run(tmp_path, env).returncode == 0
    setup_run(tmp_path, max_iter=max_iter)
    r = run(tmp_path, env, "--snapshot", "solver_iter_4.solverstate")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"Wrote trained weights to "
                                f"{tmp_path / 'solver_iter_4.caffemodel'}"), r.stdout


def test_weights_flag_fine_tunes_from_h5_and_binary(tmp_path, importable):
    env = setup_run(tmp_path, max_iter=3)
    cyffe.set_random_seed(99)
    start = cyffe.Net(str(tmp_path / "net.prototxt"), cyffe.TEST)
    start.save(str(tmp_path / "start.caffemodel.h5"))
    start.save(str(tmp_path / "start.caffemodel"))
    for weights in ("start.caffemodel.h5", "start.caffemodel"):
        r = run(tmp_path, env, "--weights", weights, "--base-lr", 0, "--out", "tuned.caffemodel")
        assert r.returncode == 0, r.stderr
        expected = [b.data for name in ("ip1", "ip2") for b in start.params[name]]
        for mine, theirs in zip(expected, params(tmp_path, "tuned.caffemodel")):
            np.testing.assert_array_equal(mine, theirs)


def test_missing_or_corrupt_resume_files_are_one_line(tmp_path):
    env = setup_run(tmp_path)
    (tmp_path / "bad.solverstate").write_bytes(b"\xff\xfe garbage")
    for flag, name in (("--snapshot", "none.solverstate"), ("--snapshot", "bad.solverstate"),
                       ("--weights", "none.caffemodel.h5")):
        r = run(tmp_path, env, flag, name)
        assert r.returncode == 1 and name in r.stderr
        assert len(messages(r.stderr)) == 1, r.stderr
    r = run(tmp_path, env, "--snapshot", "a.solverstate", "--weights", "b.caffemodel")
    assert r.returncode == 2 and "not allowed with" in r.stderr


def start_and_signal(tmp_path, env, signals, *args, after=3):
    """Start a long run, send each signal once `after` more iterations have been logged.

    Returns (exit code, Caffe's log lines and stdout, the rest of stderr): the log lines
    come on stderr with glog's prefix, train_net's own messages without it.
    """
    proc = subprocess.Popen(command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log, other, seen, pending = [], [], 0, list(signals)
    try:
        for line in proc.stderr:
            if not GLOG_LINE.match(line):
                other.append(line)
                continue
            log.append(line)
            if "] Iteration" in line and "lr = " in line:
                seen += 1
                if pending and seen % after == 0:
                    proc.send_signal(pending.pop(0))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(log) + proc.stdout.read(), "".join(other)


def iterations_of(tmp_path, ext):
    return sorted(int(p.name.split("_iter_")[1].split(".")[0]) for p in tmp_path.glob(f"*{ext}"))


def test_ctrl_c_snapshots_and_stops_cleanly(tmp_path, importable):
    env = setup_run(tmp_path, max_iter=100000, pause=0.005)
    code, out, err = start_and_signal(tmp_path, env, [signal.SIGINT])
    assert code == 0, err
    [k] = iterations_of(tmp_path, ".solverstate")
    assert 3 <= k < 100000
    assert err.strip() == f"train_net: SIGINT at iteration {k}: training stopped"
    assert "Optimization stopped early." in out
    assert not list(tmp_path.glob(".tmp-*"))
    solver = cyffe.get_solver(str(tmp_path / "solver.prototxt"), log=lambda line: None)
    solver.restore(str(tmp_path / f"solver_iter_{k}.solverstate"))
    assert solver.iter == k


def test_sigint_effect_snapshot_and_sighup_effect_stop(tmp_path, importable):
    env = setup_run(tmp_path, max_iter=100000, pause=0.005, extra="snapshot_format: HDF5")
    code, out, err = start_and_signal(tmp_path, env, [signal.SIGINT, signal.SIGHUP],
                                      "--sigint_effect", "snapshot", "--sighup-effect", "stop")
    assert code == 0, err
    first, last = iterations_of(tmp_path, ".solverstate.h5")
    assert first < last and iterations_of(tmp_path, ".caffemodel.h5") == [first, last]
    assert "SIGHUP" in err


def test_sigint_effect_none_trains_on(tmp_path, importable):
    env = setup_run(tmp_path, max_iter=60, pause=0.005)
    code, out, err = start_and_signal(tmp_path, env, [signal.SIGINT], "--sigint_effect", "none")
    assert code == 0 and err == ""
    assert iterations_of(tmp_path, ".solverstate") == [60]
