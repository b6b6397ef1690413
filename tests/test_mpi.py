"""Data-parallel training: the Communicator backends, DataParallel, and `mpiexec -n 2 train_net`.

The tests marked `mpi` start real jobs with mpiexec on this machine (loopback);
they skip when mpiexec or mpi4py is absent (pip install mpich mpi4py).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cyffe
from cyffe.net.scaleout.communicator import Communicator, from_environment, launched_size
from cyffe.net.scaleout.parallel import DataParallel
from cyffe.proto.errors import NetError
from cyffe.proto.io import blobproto_to_array, read_net_weights

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
sys.path.insert(0, HELPERS)       # shard_data, the Python data layer, for in-process nets too


def _mpiexec():
    """[mpiexec, launcher flags] or None when there is no MPI to run on."""
    found = (shutil.which("mpiexec", path=os.path.dirname(sys.executable))
             or shutil.which("mpiexec"))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    if not found:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        return [found, "--allow-run-as-root", "--oversubscribe"]
    return [found]


MPIEXEC = _mpiexec()
mpi = pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec and mpi4py "
                                                 "(pip install mpich mpi4py)")


NET = """name: "toy"
layer {{ name: "data" type: "Python" top: "data" top: "label"
        python_param {{ module: "shard_data" layer: "ShardData" param_str: '{config}' }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 6 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

SOLVER = """net: "{net}"
base_lr: 0.1
momentum: 0.9
weight_decay: 0.001
lr_policy: "fixed"
max_iter: {max_iter}
display: {display}
random_seed: 1
{extra}
"""


def toy_solver(folder, name, batch, max_iter=6, display=2, extra="", **config):
    """Write a toy net (ShardData, 2 InnerProducts, softmax loss) and its solver; the solver path.

    `extra`: more solver fields; `config`: more of ShardData's param_str.
    """
    config = {"batch": batch, "out": os.path.join(folder, name), **config}
    net = os.path.join(folder, f"{name}_net.prototxt")
    with open(net, "w") as f:
        f.write(NET.format(config=json.dumps(config)))
    solver = os.path.join(folder, f"{name}_solver.prototxt")
    with open(solver, "w") as f:
        f.write(SOLVER.format(net=net, max_iter=max_iter, display=display, extra=extra))
    return solver


def weights(path):
    """{(layer, index): array} of a .caffemodel."""
    return {(layer.name, i): blobproto_to_array(b)
            for layer in read_net_weights(path).layer for i, b in enumerate(layer.blobs)}


def job_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [HELPERS, env.get("PYTHONPATH")]))
    return env


def train_net(ranks, *args, cwd, timeout=60):
    """Run train_net on `ranks` processes (1: without mpiexec); the CompletedProcess."""
    command = [sys.executable, "-m", "cyffe.tools.train_net", *args]
    if ranks > 1:
        command = MPIEXEC + ["-n", str(ranks)] + command
    return subprocess.run(command, cwd=cwd, env=job_env(), capture_output=True, text=True,
                          timeout=timeout)


# -- without MPI --------------------------------------------------------------------------


class FakeRank(Communicator):
    """Rank `rank` of `size` in this one process: collectives do nothing, as if all ranks agreed."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


def test_one_process_collectives_leave_buffers_alone():
    comm = Communicator()
    buffer = np.arange(4, dtype=np.float32)
    assert comm.allreduce_mean(buffer) is buffer and comm.broadcast(buffer) is buffer
    np.testing.assert_array_equal(buffer, np.arange(4))
    assert (comm.rank, comm.size, comm.is_root, comm.describe()) == (0, 1, True, "")


@pytest.mark.parametrize("variables, size", [
    ({}, 1),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, 4),
    ({"PMI_SIZE": "2"}, 2),
    ({"SLURM_NTASKS": "8"}, 1),                       # a batch script, not an srun task
    ({"SLURM_NTASKS": "8", "SLURM_PROCID": "3"}, 8),
])
def test_launched_size_reads_the_launchers_variables(monkeypatch, variables, size):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert launched_size() == size


def test_launched_without_mpi4py_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)       # import mpi4py now fails
    with pytest.raises(NetError, match=r"2 processes.*mpi4py.*cyffe\[mpi\]"):
        from_environment()


def test_not_launched_is_one_process(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert type(from_environment()) is Communicator


def test_other_ranks_read_their_shard_and_stay_quiet(tmp_path):
    lines = []
    solver = cyffe.get_solver(toy_solver(str(tmp_path), "r1", batch=2), log=lines.append)
    solver.param.test_interval, solver.param.snapshot = 5, 10
    parallel = DataParallel(solver, FakeRank(1, 3))
    data = solver.net.layers[0]
    assert (data.rank, data.size) == (1, 3)
    p = solver.param
    assert (p.display, p.test_interval, p.snapshot, p.snapshot_after_train) == (0, 0, 0, False)
    lines.clear()                                  # what building the solver logged
    solver.step(2)
    assert lines == []
    assert solver.before_update == [parallel.average_gradients]
    with open(tmp_path / "r1.seen.1") as f:
        assert f.read().split() == [str(r) for r in (1, 4, 7, 10)]


def test_other_ranks_draw_from_their_own_seed(tmp_path):
    from cyffe.layers.backend import rng
    solver = cyffe.get_solver(toy_solver(str(tmp_path), "seed", batch=2), log=lambda s: None)
    DataParallel(solver, FakeRank(2, 3))                   # the toy solver has random_seed: 1
    assert rng().random() == np.random.default_rng(1 + 2).random()


def test_rank_zero_keeps_logging_and_one_rank_trains_as_without_it(tmp_path):
    plain = cyffe.get_solver(toy_solver(str(tmp_path), "plain", batch=4), log=lambda s: None)
    lines = []
    wired = cyffe.get_solver(toy_solver(str(tmp_path), "wired", batch=4), log=lines.append)
    DataParallel(wired, Communicator())
    plain.step(4)
    wired.step(4)
    assert any(line.startswith("Iteration 0") for line in lines)
    for a, b in zip(plain.net.learnable_params, wired.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)


class DeviceRank(FakeRank):
    """A FakeRank whose collectives take device buffers (as NCCL's); notes which side each
    allreduce ran on."""

    on_device = True

    def __init__(self, rank, size):
        super().__init__(rank, size)
        self.sides = []

    def allreduce_mean(self, buffer):
        from cyffe.layers.backend import on_device_side
        self.sides.append(on_device_side())
        return buffer


def test_a_device_communicator_averages_the_device_copies(tmp_path, mode):
    """In GPU mode (emulated here) the gradients of a device communicator stay on the
    device; MPI's go through the host. Both train alike."""
    cyffe.set_mode_gpu(emulate=True)
    runs = []
    for comm in (FakeRank(0, 2), DeviceRank(0, 2)):
        solver = cyffe.get_solver(toy_solver(str(tmp_path), f"side{len(runs)}", batch=2),
                                  log=lambda s: None)
        DataParallel(solver, comm)
        solver.step(3)
        runs.append([b.data.copy() for b in solver.net.learnable_params])
    assert comm.sides == [True] * 3
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# -- with mpiexec -------------------------------------------------------------------------


@mpi
@pytest.mark.parametrize("extra", ["", 'type: "Adam" momentum2: 0.999 iter_size: 2 '
                                       'clip_gradients: 0.5'])
def test_two_ranks_train_as_one_rank_with_twice_the_batch(tmp_path, extra):
    folder = str(tmp_path)
    one = train_net(1, "--solver", toy_solver(folder, "one", batch=8, extra=extra),
                    "--out", "one.caffemodel", "--log", "one.jsonl", cwd=folder)
    assert one.returncode == 0, one.stderr
    two = train_net(2, "--solver", toy_solver(folder, "two", batch=4, extra=extra),
                    "--out", "two.caffemodel", "--log", "two.jsonl", cwd=folder)
    assert two.returncode == 0, two.stderr
    single, double = weights(tmp_path / "one.caffemodel"), weights(tmp_path / "two.caffemodel")
    assert single.keys() == double.keys()
    for key in single:
        np.testing.assert_allclose(double[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
        assert not np.allclose(single[key], 0)
    # Only rank 0 logs and writes: the output of a single process, once.
    for marker in ("Solving toy", "Optimization Done.", "Wrote trained weights"):
        assert (two.stdout + two.stderr).count(marker) == 1, two.stderr
    assert two.stderr.count("Iteration 4, lr") == 1
    assert two.stderr.count("Gradient clipping") == one.stderr.count("Gradient clipping")
    with open(tmp_path / "one.jsonl") as a, open(tmp_path / "two.jsonl") as b:
        assert len(a.readlines()) == len(b.readlines()) > 0


@mpi
def test_each_rank_reads_its_own_shard(tmp_path):
    folder = str(tmp_path)
    run = train_net(2, "--solver", toy_solver(folder, "shard", batch=4, max_iter=3, display=0),
                    "--out", "w.caffemodel", cwd=folder)
    assert run.returncode == 0, run.stderr
    seen = []
    for rank in (0, 1):
        with open(tmp_path / f"shard.seen.{rank}") as f:
            seen.append([int(r) for r in f.read().split()])
    assert seen[0] == list(range(0, 24, 2)) and seen[1] == list(range(1, 24, 2))


@mpi
def test_python_api_keeps_every_rank_on_the_same_weights(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "import sys, numpy as np, cyffe\n"
        "from cyffe.net.scaleout.communicator import from_environment\n"
        "from cyffe.net.scaleout.parallel import DataParallel\n"
        "comm = from_environment()\n"
        "solver = cyffe.get_solver(sys.argv[1], log=lambda s: None)\n"
        "DataParallel(solver, comm)\n"
        "solver.step(5)\n"
        "for blob in solver.net.learnable_params:\n"
        "    mine = blob.data.copy()\n"
        "    assert not np.array_equal(comm.broadcast(blob.data.copy()), 0)\n"
        "    assert np.array_equal(comm.broadcast(mine), blob.data)\n"
        "print(f'rank {comm.rank} agrees')\n")
    solver = toy_solver(str(tmp_path), "api", batch=3)
    run = subprocess.run(MPIEXEC + ["-n", "2", sys.executable, str(script), solver],
                         cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "rank 0 agrees" in run.stdout and "rank 1 agrees" in run.stdout


@mpi
def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    folder = str(tmp_path)
    solver = toy_solver(folder, "fail", batch=4, max_iter=100000, display=0,
                        fail_rank=1, fail_iter=3)
    run = train_net(2, "--solver", solver, cwd=folder, timeout=30)
    assert run.returncode != 0
    assert "train_net: error: rank 1 of 2: toy data: rank 1 fails at batch 3" in run.stderr
    assert not os.path.exists(tmp_path / "toy_iter_100000.caffemodel")


def signal_a_training_job(tmp_path, name, rank, sig):
    """Start `mpiexec -n 2 train_net` on a long toy run, send `sig` to `rank` once both ranks
    train, and wait for the end; (returncode, stdout, stderr). A hang fails the test."""
    solver = toy_solver(str(tmp_path), name, batch=4, max_iter=10**7, display=0)
    command = MPIEXEC + ["-n", "2", sys.executable, "-m", "cyffe.tools.train_net",
                         "--solver", solver]
    job = subprocess.Popen(command, cwd=tmp_path, env=job_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        seen = [tmp_path / f"{name}.seen.{r}" for r in (0, 1)]
        for _ in range(300):                       # until both ranks train (30 s at most)
            if job.poll() is not None or all(s.exists() and s.stat().st_size for s in seen):
                break
            time.sleep(0.1)
        assert job.poll() is None, job.communicate()
        os.kill(int((tmp_path / f"{name}.pid.{rank}").read_text()), sig)
        output, errors = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    return job.returncode, output, errors


@mpi
@pytest.mark.parametrize("target", [0, 1])
def test_sigint_to_one_rank_stops_every_rank_at_one_iteration(tmp_path, target):
    """mpiexec may hand a Ctrl-C to one rank only (or first): the job still stops cleanly,
    every rank after the same iteration, and rank 0 writes the final snapshot."""
    code, output, errors = signal_a_training_job(tmp_path, "stop", target, signal.SIGINT)
    assert code == 0, errors
    stopped = re.search(r"train_net: SIGINT at iteration (\d+): training stopped", errors)
    assert stopped, errors
    iteration = int(stopped.group(1))
    seen = [tmp_path / f"stop.seen.{rank}" for rank in (0, 1)]
    assert [len(s.read_text().splitlines()) for s in seen] == [iteration, iteration]
    assert list(tmp_path.glob(f"*_iter_{iteration}.caffemodel")), output


@mpi
def test_killing_one_rank_ends_the_job(tmp_path):
    code, output, errors = signal_a_training_job(tmp_path, "kill", 1, signal.SIGKILL)
    output += errors
    assert code != 0
    assert "signal 9" in output.lower() or "killed" in output.lower(), output
